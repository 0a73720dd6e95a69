use kith_proto::{DisplayName, UserId};
use kith_store::Contact;
use tauri::State;

use crate::error::AppResult;
use crate::state::AppState;

fn checked(user: &str, name: &str) -> AppResult<(UserId, DisplayName)> {
    let user = UserId::new(user.trim())?;
    let name = if name.trim().is_empty() {
        DisplayName::from(&user)
    } else {
        DisplayName::new(name.trim())?
    };
    Ok((user, name))
}

#[tauri::command]
pub async fn contacts_list(state: State<'_, AppState>, query: String) -> AppResult<Vec<Contact>> {
    Ok(state.store().search_contacts(query.trim())?)
}

#[tauri::command]
pub async fn contact_add(
    state: State<'_, AppState>,
    user: String,
    name: String,
) -> AppResult<Contact> {
    let (user, name) = checked(&user, &name)?;
    Ok(state.store().add_contact(user.as_str(), name.as_str())?)
}

#[tauri::command]
pub async fn contact_rename(
    state: State<'_, AppState>,
    user: String,
    name: String,
) -> AppResult<()> {
    let (user, name) = checked(&user, &name)?;
    Ok(state.store().rename_contact(user.as_str(), name.as_str())?)
}

#[tauri::command]
pub async fn contact_remove(state: State<'_, AppState>, user: String) -> AppResult<()> {
    Ok(state.store().remove_contact(user.trim())?)
}
