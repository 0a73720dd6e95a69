//! What the user chose, as stored in kith-store under two keys.

use serde::{Deserialize, Serialize};

pub const PROFILE_KEY: &str = "profile";
pub const SETTINGS_KEY: &str = "settings";

/// Who this user is on the signaling server.
#[derive(ts_rs::TS, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub user: String,
    pub name: String,
}

#[derive(ts_rs::TS, Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Renderer {
    /// WebGL when the webview has it, canvas 2D otherwise.
    #[default]
    Auto,
    Webgl,
    Canvas,
}

#[derive(ts_rs::TS, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Another signaling server (`ws://host:port/ws`); `None`: the bundled one.
    pub server_url: Option<String>,
    pub token: Option<String>,
    /// Let the bundled server listen on every interface, not only loopback.
    pub listen_on_lan: bool,
    /// Port of the bundled server.
    pub listen_port: u16,
    /// `synthetic`, `camera`, `camera:N`, `y4m:PATH` or `none`.
    pub camera: String,
    /// `mic`, `tone`, `wav:PATH` or `none`.
    pub microphone: String,
    /// Output device index; `None`: the system default.
    pub speaker: Option<usize>,
    /// `AV1`, `VP9`, `VP8`, `H264`; `None`: Kith's order.
    pub codec: Option<String>,
    /// Cap video at 360p and 500 kbit/s.
    pub low_bandwidth: bool,
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub auto_gain: bool,
    pub renderer: Renderer,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server_url: None,
            token: None,
            listen_on_lan: false,
            listen_port: 8787,
            camera: "camera".into(),
            microphone: "mic".into(),
            speaker: None,
            codec: None,
            low_bandwidth: false,
            echo_cancellation: true,
            noise_suppression: true,
            auto_gain: true,
            renderer: Renderer::Auto,
        }
    }
}
