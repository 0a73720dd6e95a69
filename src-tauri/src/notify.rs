//! Desktop notifications for events the user should not miss while the
//! window is in the background. Information only: Linux notifications have
//! no reliable click actions, and there may be no notification daemon.

use tauri::{AppHandle, Manager as _};
use tauri_plugin_notification::NotificationExt as _;
use tracing::debug;

pub fn when_unfocused(app: &AppHandle, title: &str, body: &str) {
    let focused = app
        .get_webview_window("main")
        .and_then(|window| window.is_focused().ok())
        .unwrap_or(false);
    if focused {
        return;
    }
    let (app, title, body) = (app.clone(), title.to_string(), body.to_string());
    // D-Bus may be slow to say there is no daemon: never on the event path.
    tauri::async_runtime::spawn_blocking(move || {
        if let Err(error) = app.notification().builder().title(title).body(body).show() {
            debug!(%error, "no desktop notification");
        }
    });
}
