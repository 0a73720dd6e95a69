//! The app's state: the store, the view, and the engine when a profile exists.

use std::sync::{Mutex, MutexGuard};

use kith_call::Call;
use kith_store::Store;
use tauri::{AppHandle, Emitter as _};
use tokio::sync::watch;
use tracing::warn;

use crate::engine::Engine;
use crate::error::{AppError, AppResult};
use crate::frames::FrameEndpoint;
use crate::settings::{PROFILE_KEY, Profile, SETTINGS_KEY, Settings};
use crate::view::{UiEvent, View};

#[derive(Debug)]
pub struct AppState {
    store: Mutex<Store>,
    view: Mutex<View>,
    /// Held across the await of a (re)start, so two cannot interleave.
    engine: tokio::sync::Mutex<Option<Engine>>,
    /// The running call engine, for the frame server and the commands.
    call: watch::Sender<Option<Call>>,
    pub frames: FrameEndpoint,
}

impl AppState {
    pub fn new(store: Store, frames: FrameEndpoint, call: watch::Sender<Option<Call>>) -> Self {
        let profile = store.setting::<Profile>(PROFILE_KEY).ok().flatten();
        AppState {
            store: Mutex::new(store),
            view: Mutex::new(View {
                profile,
                ..View::default()
            }),
            engine: tokio::sync::Mutex::new(None),
            call,
            frames,
        }
    }

    /// The store, for one short synchronous use.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding it leaves SQLite consistent (transactions).
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn view(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the view and sends the new one to the UI.
    pub fn update_view(&self, app: &AppHandle, change: impl FnOnce(&mut View)) {
        let mut view = self.view();
        change(&mut view);
        emit_view(app, &mut view);
    }

    pub fn call(&self) -> AppResult<Call> {
        self.call.borrow().clone().ok_or(AppError::NoProfile)
    }

    pub fn settings(&self) -> AppResult<Settings> {
        Ok(self
            .store()
            .setting::<Settings>(SETTINGS_KEY)?
            .unwrap_or_else(first_run_settings))
    }

    pub fn profile(&self) -> Option<Profile> {
        self.view().profile.clone()
    }

    /// Stops the engine if one runs, then starts one for the stored profile
    /// and settings; the engine's events go to the forwarder.
    pub async fn restart_engine(&self, app: &AppHandle) -> AppResult<()> {
        let mut engine = self.engine.lock().await;
        if let Some(old) = engine.take() {
            self.call.send_replace(None);
            old.stop().await;
        }
        let profile = self.profile().ok_or(AppError::NoProfile)?;
        let settings = self.settings()?;
        let (started, events) = Engine::start(&profile, &settings).await?;
        if let Err(error) = started.call.set_processing(processing(&settings)) {
            warn!(%error, "cannot apply the audio processing settings");
        }
        // No call yet: the camera stays closed (and its light off) until one starts.
        if let Err(error) = started.call.set_camera_enabled(false).await {
            warn!(%error, "cannot turn the camera off");
        }
        self.call.send_replace(Some(started.call.clone()));
        let (url, warnings) = (started.server_url.clone(), started.warnings.clone());
        *engine = Some(started);
        drop(engine);
        self.update_view(app, |view| {
            view.signaling = crate::view::Signaling {
                server_url: Some(url),
                ..Default::default()
            };
            view.warnings = warnings;
            view.camera_on = false;
            view.mic_muted = false;
        });
        crate::forward::spawn(app.clone(), events);
        Ok(())
    }

    pub async fn stop_engine(&self) {
        let mut engine = self.engine.lock().await;
        if let Some(old) = engine.take() {
            self.call.send_replace(None);
            old.stop().await;
        }
    }
}

/// Sends the view, numbered, so the page can drop an older copy that
/// arrives late (a command's reply racing an event).
pub fn emit_view(app: &AppHandle, view: &mut View) {
    view.version += 1;
    let view = &*view;
    if let Err(error) = app.emit("kith", UiEvent::View { view }) {
        warn!(%error, "cannot send the view to the UI");
    }
}

pub fn processing(settings: &Settings) -> kith_media::processing::ProcessingSettings {
    kith_media::processing::ProcessingSettings {
        echo_cancellation: settings.echo_cancellation,
        noise_suppression: settings.noise_suppression,
        gain_control: settings.auto_gain,
        ..Default::default()
    }
}

/// Defaults for a first run; `KITH_CAMERA` and `KITH_MICROPHONE` pick the
/// sources on machines without devices (tests, bots, demos).
fn first_run_settings() -> Settings {
    let mut settings = Settings::default();
    if let Ok(camera) = std::env::var("KITH_CAMERA") {
        settings.camera = camera;
    }
    if let Ok(microphone) = std::env::var("KITH_MICROPHONE") {
        settings.microphone = microphone;
    }
    if let Some(port) = std::env::var("KITH_SERVER_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
    {
        settings.listen_port = port;
    }
    settings
}
