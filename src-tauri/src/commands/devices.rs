use std::str::FromStr as _;

use kith_call::{AudioSourceSpec, VideoSourceSpec};
use kith_media::audio_io::DeviceChoice;
use serde::{Deserialize, Serialize};
use tauri::State;

use crate::error::AppResult;
use crate::settings::SETTINGS_KEY;
use crate::state::AppState;

#[derive(ts_rs::TS, Debug, Clone, Serialize)]
pub struct Device {
    /// What the settings store: `camera:N`, `mic`, a speaker index.
    pub id: String,
    pub label: String,
}

impl Device {
    /// One of the choices that is not a device (test sources, none, default).
    fn fixed(id: &str, label: &str) -> Self {
        Device {
            id: id.into(),
            label: label.into(),
        }
    }
}

#[derive(ts_rs::TS, Debug, Clone, Serialize, Default)]
pub struct Devices {
    pub cameras: Vec<Device>,
    pub microphones: Vec<Device>,
    pub speakers: Vec<Device>,
    /// Why a list is empty when it is (no camera backend, no sound server…).
    pub problems: Vec<String>,
}

/// Cameras, microphones and speakers, plus the synthetic sources.
#[tauri::command]
pub async fn devices_list() -> AppResult<Devices> {
    // Device enumeration may block on the sound server or V4L: off the runtime's threads.
    let devices = tauri::async_runtime::spawn_blocking(list).await;
    Ok(devices.unwrap_or_default())
}

fn list() -> Devices {
    let mut devices = Devices::default();
    match kith_media::camera::list_cameras() {
        Ok(cameras) => devices
            .cameras
            .extend(cameras.into_iter().map(|camera| Device {
                id: format!("camera:{}", camera.index),
                label: camera.name,
            })),
        Err(error) => devices.problems.push(format!("cameras: {error}")),
    }
    devices
        .cameras
        .push(Device::fixed("synthetic", "Test pattern"));
    devices.cameras.push(Device::fixed("none", "No video"));
    match kith_media::audio_io::input_devices() {
        Ok(inputs) if !inputs.is_empty() => {
            devices
                .microphones
                .push(Device::fixed("mic", "Default microphone"));
        }
        Ok(_) => devices.problems.push("no microphone found".into()),
        Err(error) => devices.problems.push(format!("microphones: {error}")),
    }
    devices.microphones.push(Device::fixed("tone", "Test tone"));
    devices.microphones.push(Device::fixed("none", "No audio"));
    devices
        .speakers
        .push(Device::fixed("default", "System default"));
    match kith_media::audio_io::output_devices() {
        Ok(outputs) => devices
            .speakers
            .extend(outputs.into_iter().map(|out| Device {
                id: out.index.to_string(),
                label: out.description,
            })),
        Err(error) => devices.problems.push(format!("speakers: {error}")),
    }
    devices
}

#[derive(ts_rs::TS, Debug, Clone, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Switch {
    Camera(String),
    Microphone(String),
    Speaker(String),
}

/// Changes a device during (or before) a call and remembers the choice.
#[tauri::command]
pub async fn devices_switch(state: State<'_, AppState>, switch: Switch) -> AppResult<()> {
    let call = state.call()?;
    let mut settings = state.settings()?;
    match switch {
        Switch::Camera(id) => {
            call.switch_camera(VideoSourceSpec::from_str(&id)?).await?;
            settings.camera = id;
        }
        Switch::Microphone(id) => {
            call.switch_microphone(AudioSourceSpec::from_str(&id)?)
                .await?;
            settings.microphone = id;
        }
        Switch::Speaker(id) => {
            let index = id.parse::<usize>().ok();
            call.switch_speaker(index.map_or(DeviceChoice::Default, DeviceChoice::Index))
                .await?;
            settings.speaker = index;
        }
    }
    state.store().set_setting(SETTINGS_KEY, &settings)?;
    Ok(())
}

/// Our microphone's level now, 0 (loudest) to 127 (silence); `None` without one.
#[tauri::command]
pub async fn devices_mic_level(state: State<'_, AppState>) -> AppResult<Option<u8>> {
    Ok(state.call()?.microphone_level().map(|level| level.dbov()))
}
