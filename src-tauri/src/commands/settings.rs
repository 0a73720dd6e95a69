use tauri::{AppHandle, State};

use crate::error::{AppError, AppResult};
use crate::frames::FrameEndpoint;
use crate::settings::{SETTINGS_KEY, Settings};
use crate::state::{AppState, processing};

#[tauri::command]
pub async fn settings_get(state: State<'_, AppState>) -> AppResult<Settings> {
    state.settings()
}

/// Stores the settings; what needs a new engine (server, devices at start,
/// codec, bandwidth) restarts it, unless a call is on.
#[tauri::command]
pub async fn settings_save(
    app: AppHandle,
    state: State<'_, AppState>,
    settings: Settings,
) -> AppResult<()> {
    if let Some(url) = &settings.server_url
        && !(url.starts_with("ws://") || url.starts_with("wss://"))
    {
        return Err(AppError::Invalid(
            "the server address must start with ws:// or wss://".into(),
        ));
    }
    let old = state.settings()?;
    state.store().set_setting(SETTINGS_KEY, &settings)?;
    if let Ok(call) = state.call() {
        call.set_processing(processing(&settings))?;
    }
    let audio_only = Settings {
        echo_cancellation: old.echo_cancellation,
        noise_suppression: old.noise_suppression,
        auto_gain: old.auto_gain,
        renderer: old.renderer,
        ..settings.clone()
    };
    let needs_restart = audio_only != old;
    let in_call = state.view().call.is_some();
    if needs_restart && !in_call && state.profile().is_some() {
        state.restart_engine(&app).await?;
    }
    Ok(())
}

/// Where the page fetches video frames.
#[tauri::command]
pub async fn frames_endpoint(state: State<'_, AppState>) -> AppResult<FrameEndpoint> {
    Ok(state.frames.clone())
}
