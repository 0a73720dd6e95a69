use std::time::Duration;

use kith_call::Call;
use kith_proto::{InviteAnswer, MediaKind, RoomId, UserId};
use kith_store::CallRecord;
use tauri::{AppHandle, State};

use crate::error::{AppError, AppResult};
use crate::rules;
use crate::state::AppState;

/// How long an outgoing call rings before it gives up.
const RING_PATIENCE: Duration = Duration::from_secs(45);

fn room_id(room: &str) -> AppResult<RoomId> {
    Ok(RoomId::new(room.trim())?)
}

/// Opens or closes the camera and shows it.
async fn set_camera(app: &AppHandle, state: &AppState, call: &Call, on: bool) -> AppResult<()> {
    call.set_camera_enabled(on).await?;
    state.update_view(app, |view| view.camera_on = on);
    Ok(())
}

#[tauri::command]
pub async fn call_ring(
    app: AppHandle,
    state: State<'_, AppState>,
    user: String,
    media: MediaKind,
) -> AppResult<String> {
    let to = UserId::new(user.trim())?;
    let call = state.call()?;
    set_camera(&app, &state, &call, media == MediaKind::Video).await?;
    Ok(call.ring(to, media, RING_PATIENCE).await?.as_str().into())
}

/// The most people one group call rings (the room's mesh limit, less us).
const MAX_GROUP: usize = 7;

/// A group call: a fresh room, joined at once, with each person rung into it.
#[tauri::command]
pub async fn call_group(
    app: AppHandle,
    state: State<'_, AppState>,
    users: Vec<String>,
    media: MediaKind,
) -> AppResult<String> {
    if users.is_empty() || users.len() > MAX_GROUP {
        return Err(AppError::Invalid(format!(
            "a group call rings 1 to {MAX_GROUP} people"
        )));
    }
    let callees = users
        .iter()
        .map(|user| UserId::new(user.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    // Room ids have at most 64 characters.
    let me: String = state
        .profile()
        .ok_or(AppError::NoProfile)?
        .user
        .chars()
        .take(40)
        .collect();
    let suffix: u32 = rand::random();
    let room = room_id(&format!("group-{me}-{suffix:08x}"))?;
    let call = state.call()?;
    set_camera(&app, &state, &call, media == MediaKind::Video).await?;
    call.join(room.clone()).await?;
    for to in callees {
        call.ring_into(room.clone(), to, media, RING_PATIENCE)
            .await?;
    }
    Ok(room.as_str().into())
}

#[tauri::command]
pub async fn call_cancel(state: State<'_, AppState>, room: String) -> AppResult<()> {
    Ok(state.call()?.cancel_ring(room_id(&room)?).await?)
}

#[tauri::command]
pub async fn call_answer(
    app: AppHandle,
    state: State<'_, AppState>,
    room: String,
    answer: InviteAnswer,
) -> AppResult<()> {
    let room = room_id(&room)?;
    let call = state.call()?;
    if answer == InviteAnswer::Accept {
        // One call at a time: accepting another ends the current one.
        let current = state.view().call.as_ref().map(|c| c.room.clone());
        if let Some(current) = current {
            leave_room(&app, &state, &current).await?;
        }
        let video = state
            .view()
            .invites
            .iter()
            .find(|invite| invite.room == room.as_str())
            .is_none_or(|invite| invite.media == MediaKind::Video);
        set_camera(&app, &state, &call, video).await?;
    }
    call.answer(room.clone(), answer).await?;
    if answer != InviteAnswer::Accept {
        state.update_view(&app, |view| {
            view.invites.retain(|invite| invite.room != room.as_str());
        });
    }
    Ok(())
}

/// A group call: everyone who joins the same room name is in it.
#[tauri::command]
pub async fn call_join_room(
    app: AppHandle,
    state: State<'_, AppState>,
    room: String,
) -> AppResult<()> {
    let call = state.call()?;
    set_camera(&app, &state, &call, true).await?;
    Ok(call.join(room_id(&room)?).await?)
}

#[tauri::command]
pub async fn call_hang_up(app: AppHandle, state: State<'_, AppState>) -> AppResult<()> {
    let room = state
        .view()
        .call
        .as_ref()
        .map(|c| c.room.clone())
        .ok_or(AppError::NotInCall)?;
    leave_room(&app, &state, &room).await
}

/// Leaves `room`, records the end and shows it.
pub async fn leave_room(app: &AppHandle, state: &AppState, room: &str) -> AppResult<()> {
    let call = state.call()?;
    let result = call.leave(room_id(room)?).await;
    // Out of the call, the camera closes.
    let camera = call.set_camera_enabled(false).await;
    let end = {
        let mut view = state.view();
        view.camera_on = false;
        let effect = rules::end_call(&mut view, "ended");
        crate::state::emit_view(app, &mut view);
        effect
    };
    if let Some(rules::Effect::RecordEnd { record, outcome }) = end {
        state.store().end_call(record, &outcome)?;
    }
    result?;
    Ok(camera?)
}

#[tauri::command]
pub async fn call_set_mic_muted(
    app: AppHandle,
    state: State<'_, AppState>,
    muted: bool,
) -> AppResult<()> {
    state.call()?.set_mic_muted(muted).await?;
    state.update_view(&app, |view| view.mic_muted = muted);
    Ok(())
}

#[tauri::command]
pub async fn call_set_camera(
    app: AppHandle,
    state: State<'_, AppState>,
    on: bool,
) -> AppResult<()> {
    set_camera(&app, &state, &state.call()?, on).await
}

#[tauri::command]
pub async fn calls_history(state: State<'_, AppState>) -> AppResult<Vec<CallRecord>> {
    Ok(state.store().calls(200)?)
}
