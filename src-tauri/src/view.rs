//! What the UI shows, kept by the app from the engine's events and pushed
//! whole to the webview on every change, so a reloaded page is current at once.

use std::collections::BTreeMap;

use kith_call::CallEvent;
use kith_proto::MediaKind;
use serde::Serialize;

#[derive(ts_rs::TS, Debug, Clone, Default, Serialize)]
pub struct View {
    /// Grows with every change sent to the page.
    pub version: u64,
    pub profile: Option<crate::settings::Profile>,
    pub signaling: Signaling,
    /// Online users: id → display name.
    pub online: BTreeMap<String, String>,
    pub call: Option<CurrentCall>,
    /// Our outgoing rings, while they ring (several for a group call).
    pub ringing: Vec<OutgoingRing>,
    /// The ring just accepted, until its room's `Joined` says whom the call is with.
    #[serde(skip)]
    #[ts(skip)]
    pub answered: Option<OutgoingRing>,
    /// Invites ringing us.
    pub invites: Vec<IncomingRing>,
    pub mic_muted: bool,
    pub camera_on: bool,
    /// Problems worth telling the user that did not stop anything.
    pub warnings: Vec<String>,
    /// The last call's end, for "call ended: …".
    pub last_end: Option<String>,
}

#[derive(ts_rs::TS, Debug, Clone, Default, Serialize)]
pub struct Signaling {
    pub connected: bool,
    pub server_url: Option<String>,
    pub session: Option<String>,
    pub error: Option<String>,
}

#[derive(ts_rs::TS, Debug, Clone, Serialize)]
pub struct OutgoingRing {
    pub room: String,
    pub to: String,
    pub media: MediaKind,
}

#[derive(ts_rs::TS, Debug, Clone, Serialize)]
pub struct IncomingRing {
    pub room: String,
    pub from: String,
    pub from_name: String,
    pub media: MediaKind,
}

#[derive(ts_rs::TS, Debug, Clone, Serialize)]
pub struct CurrentCall {
    pub room: String,
    /// Where its chat is kept: the other user's id for a 1:1 call, `room:NAME` otherwise.
    pub conversation: String,
    pub media: MediaKind,
    #[serde(skip)]
    pub record: Option<i64>,
    /// By session id.
    pub peers: BTreeMap<String, Peer>,
}

#[derive(ts_rs::TS, Debug, Clone, Serialize)]
pub struct Peer {
    pub user: String,
    pub name: String,
    pub connected: bool,
    pub reconnecting: bool,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub candidate_type: Option<String>,
}

/// What the webview hears, on the one event channel `kith`.
#[derive(ts_rs::TS, Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UiEvent<'a> {
    View {
        view: &'a View,
    },
    Call {
        event: &'a CallEvent,
    },
    /// Something went wrong that the user should read (a device failed…).
    Problem {
        message: String,
    },
}

pub fn conversation_of_room(room: &str) -> String {
    format!("room:{room}")
}
