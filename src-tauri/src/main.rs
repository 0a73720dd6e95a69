//! The Kith desktop app: a thin Tauri 2 shell. Commands call into
//! kith-call and kith-store; the engine's events go to the page on the `kith`
//! event; video goes over a loopback WebSocket (see `frames`), never
//! through IPC. Nothing here makes a call decision.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

#[cfg(test)]
mod bindings;
mod commands;
mod engine;
mod error;
mod forward;
mod frames;
mod notify;
mod ringtone;
mod rules;
mod settings;
mod state;
mod view;

use std::path::PathBuf;

use anyhow::Context as _;
use kith_store::Store;
use tauri::Manager as _;
use tracing::{error, info};

use crate::state::AppState;

/// Under the C or POSIX locale (containers, CI, minimal installs) the
/// webview's JavaScript engine takes "C" as its language tag, and every
/// `Intl` call, the charts' date formatting among them, throws "invalid
/// language tag". Such a process gets a real tag instead.
fn use_a_locale_webkit_accepts() {
    let effective = ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_default();
    let language = effective.split(['.', '@']).next().unwrap_or("");
    if matches!(language, "" | "C" | "POSIX") {
        // SAFETY: the first thing main does, before any thread exists, so
        // nothing else can be reading the environment.
        #[allow(unsafe_code)]
        unsafe {
            std::env::remove_var("LC_ALL");
            std::env::remove_var("LC_MESSAGES");
            std::env::set_var("LANG", "en_US.UTF-8");
        }
    }
}

fn main() -> anyhow::Result<()> {
    use_a_locale_webkit_accepts();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,webrtc=warn,rtc=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Before any thread starts, so the call's threads inherit it.
    if let Err(err) = kith_call::priority::raise_call_priority() {
        tracing::debug!(%err, "the call runs at the usual priority");
    }
    let data_dir = match std::env::var_os("KITH_DATA_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Store::default_dir()
            .context("no home directory to keep Kith's data in; set KITH_DATA_DIR")?,
    };
    let store = Store::open_in(&data_dir)
        .with_context(|| format!("cannot open Kith's database in {}", data_dir.display()))?;
    info!(dir = %data_dir.display(), "data directory");
    let (call_tx, call_rx) = tokio::sync::watch::channel(None);
    let frames = tauri::async_runtime::block_on(frames::start(call_rx))
        .context("cannot open the loopback frame socket")?;
    tauri::Builder::default()
        .plugin(tauri_plugin_notification::init())
        .manage(AppState::new(store, frames, call_tx))
        .setup(|app| {
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                let state = handle.state::<AppState>();
                if state.profile().is_some()
                    && let Err(err) = state.restart_engine(&handle).await
                {
                    error!(%err, "cannot start the call engine");
                    state.update_view(&handle, |view| view.warnings.push(err.to_string()));
                }
            });
            Ok(())
        })
        .on_window_event(|window, event| {
            if let tauri::WindowEvent::Destroyed = event {
                let state = window.state::<AppState>();
                // Hang up cleanly so peers see us leave rather than time out.
                tauri::async_runtime::block_on(state.stop_engine());
            }
        })
        .invoke_handler(tauri::generate_handler![
            commands::profile::app_state,
            commands::profile::profile_save,
            commands::contacts::contacts_list,
            commands::contacts::contact_add,
            commands::contacts::contact_rename,
            commands::contacts::contact_remove,
            commands::calls::call_ring,
            commands::calls::call_group,
            commands::calls::call_cancel,
            commands::calls::call_answer,
            commands::calls::call_join_room,
            commands::calls::call_hang_up,
            commands::calls::call_set_mic_muted,
            commands::calls::call_set_camera,
            commands::calls::calls_history,
            commands::chat::chat_send,
            commands::chat::chat_history,
            commands::devices::devices_list,
            commands::devices::devices_switch,
            commands::devices::devices_mic_level,
            commands::settings::settings_get,
            commands::settings::settings_save,
            commands::settings::frames_endpoint,
        ])
        .run(tauri::generate_context!())
        .context("the window failed")?;
    Ok(())
}
