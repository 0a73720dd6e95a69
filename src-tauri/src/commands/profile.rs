use kith_proto::{DisplayName, UserId};
use tauri::{AppHandle, State};

use crate::error::AppResult;
use crate::settings::{PROFILE_KEY, Profile};
use crate::state::AppState;
use crate::view::View;

/// The whole view, for a page that (re)loads.
#[tauri::command]
pub async fn app_state(state: State<'_, AppState>) -> AppResult<View> {
    Ok(state.view().clone())
}

/// First run (or a change of identity): checks, stores, (re)starts the engine.
#[tauri::command]
pub async fn profile_save(
    app: AppHandle,
    state: State<'_, AppState>,
    user: String,
    name: String,
) -> AppResult<View> {
    let user = UserId::new(user.trim())?;
    let name = DisplayName::new(name.trim())?;
    let profile = Profile {
        user: user.as_str().into(),
        name: name.as_str().into(),
    };
    state.store().set_setting(PROFILE_KEY, &profile)?;
    state.update_view(&app, |view| view.profile = Some(profile));
    state.restart_engine(&app).await?;
    Ok(state.view().clone())
}
