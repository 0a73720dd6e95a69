use kith_store::{MessageState, StoredMessage};
use tauri::State;

use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Messages shown when a conversation opens.
const HISTORY_SHOWN: usize = 500;

/// Sends to everyone in the call. The forwarder stores it when the engine
/// reports it sent, which is always before its ack.
#[tauri::command]
pub async fn chat_send(state: State<'_, AppState>, text: String) -> AppResult<StoredMessage> {
    let conversation = state
        .view()
        .call
        .as_ref()
        .map(|call| call.conversation.clone())
        .ok_or(AppError::NotInCall)?;
    let from = state.profile().ok_or(AppError::NoProfile)?.user;
    let id = state.call()?.send_chat(text.clone()).await?;
    let message = StoredMessage {
        id,
        conversation,
        from,
        text,
        sent_ms: kith_store::now_ms(),
        outgoing: true,
        state: MessageState::Sent,
    };
    Ok(message)
}

#[tauri::command]
pub async fn chat_history(
    state: State<'_, AppState>,
    conversation: String,
) -> AppResult<Vec<StoredMessage>> {
    Ok(state.store().history(&conversation, HISTORY_SHOWN)?)
}
