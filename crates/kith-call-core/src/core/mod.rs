//! [`CallCore`]: every decision of a call, with no I/O. Feed it inputs and
//! commands with the time, carry out what [`CallCore::poll_output`] returns,
//! and call [`CallCore::handle_timeout`] at [`CallCore::poll_timeout`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use kith_media::codec::VideoCodec;
use kith_proto::{ClientMessage, IceServer, RequestId, RoomId, SessionId, UserId};
use tracing::debug;

use crate::bandwidth::BandwidthPolicy;
use crate::chat::ChatBook;
use crate::error::CallError;
use crate::events::CallEvent;
use crate::io::{Input, MediaOp, Outgoing, Output, PeerOp};
use crate::keyframes::KeyframeThrottle;
use crate::link::{Link, LinkId, Remote};
use crate::orphans::OrphanCandidates;
use crate::ringing::{INCOMING_RING, Ringing};
use crate::snapshot::{CallSnapshot, PeerSnapshot};

mod commands;
mod invites;
mod links;
mod peer_facts;
mod samples;
mod server;
mod timers;

/// How long a connection whose peer's signaling session vanished keeps
/// running, waiting for that peer to come back (reconnect, server restart).
pub const DETACHED_GRACE: Duration = Duration::from_secs(20);
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// How often the encoder policy reads the bandwidth estimates: about as
/// often as transport feedback changes them. A cap fills a link's queue in
/// a tenth of a second; an encoder told a second later has lost frames to
/// it for that second.
pub const ESTIMATE_INTERVAL: Duration = Duration::from_millis(100);

/// What the outgoing video asks of the bandwidth policy.
#[derive(Debug, Clone, Copy)]
pub struct VideoPlan {
    pub width: u32,
    pub height: u32,
    pub start_bitrate_bps: u32,
    pub max_bitrate_bps: u32,
}

#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub user: UserId,
    /// Video codecs in our order of preference.
    pub video_codecs: Vec<VideoCodec>,
    /// `None` when we send no video.
    pub video: Option<VideoPlan>,
    /// Answer "busy" on our own to invites that come while we are in a call.
    pub auto_busy: bool,
    /// How long an incoming invite rings before it counts as missed.
    pub incoming_ring: Duration,
}

impl CoreConfig {
    pub fn new(user: UserId) -> Self {
        Self {
            user,
            video_codecs: vec![
                VideoCodec::Av1,
                VideoCodec::Vp9,
                VideoCodec::Vp8,
                VideoCodec::H264,
            ],
            video: None,
            auto_busy: true,
            incoming_ring: INCOMING_RING,
        }
    }
}

/// The state machine of one call client.
#[derive(Debug)]
pub struct CallCore {
    config: CoreConfig,
    session: Option<SessionId>,
    /// Our sessions before the current one. One whose connection died
    /// without the server noticing (our address changed) stays listed in
    /// rooms for up to a minute; it is a ghost of us, not a peer.
    past_sessions: VecDeque<SessionId>,
    ice_servers: Vec<IceServer>,
    rooms: BTreeSet<RoomId>,
    links: BTreeMap<LinkId, Link>,
    next_link: u64,
    next_request: u64,
    orphans: OrphanCandidates,
    ringing: Ringing,
    chat: ChatBook,
    bandwidth: HashMap<VideoCodec, BandwidthPolicy>,
    keyframes: KeyframeThrottle,
    mic_muted: bool,
    camera_on: bool,
    next_stats: Instant,
    next_estimates: Instant,
    out: VecDeque<Output>,
}

/// Past sessions of ours remembered (each connection is one; a flapping
/// network makes a few a minute).
const PAST_SESSIONS: usize = 16;

impl CallCore {
    /// The current session is over; remember it as ours.
    fn forget_session(&mut self) {
        if let Some(old) = self.session.take() {
            if self.past_sessions.len() == PAST_SESSIONS {
                self.past_sessions.pop_front();
            }
            self.past_sessions.push_back(old);
        }
    }

    pub fn new(config: CoreConfig, now: Instant) -> Self {
        Self {
            chat: ChatBook::new(config.user.clone()),
            config,
            session: None,
            past_sessions: VecDeque::new(),
            ice_servers: Vec::new(),
            rooms: BTreeSet::new(),
            links: BTreeMap::new(),
            next_link: 0,
            next_request: 0,
            orphans: OrphanCandidates::default(),
            ringing: Ringing::default(),
            bandwidth: HashMap::new(),
            keyframes: KeyframeThrottle::default(),
            mic_muted: false,
            camera_on: true,
            next_stats: now + STATS_INTERVAL,
            next_estimates: now + ESTIMATE_INTERVAL,
            out: VecDeque::new(),
        }
    }

    pub fn user(&self) -> &UserId {
        &self.config.user
    }

    pub fn session(&self) -> Option<&SessionId> {
        self.session.as_ref()
    }

    /// The next thing for the driver to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    pub fn poll_timeout(&self) -> Instant {
        let detached = self
            .links
            .values()
            .filter_map(|l| l.detached_since.map(|since| since + DETACHED_GRACE));
        let broken = self.links.values().filter_map(|l| l.ice.next_deadline());
        [
            Some(self.next_stats),
            Some(self.next_estimates),
            self.ringing.next_deadline(),
            self.keyframes.next_due(),
            self.orphans.next_expiry(),
            self.chat.next_resend(),
        ]
        .into_iter()
        .flatten()
        .chain(detached)
        .chain(broken)
        .min()
        .unwrap_or(self.next_stats)
    }

    pub fn remote(&self, link: LinkId) -> Option<&Remote> {
        self.links.get(&link).map(|l| &l.remote)
    }

    pub fn chat_counts(&self) -> crate::chat::ChatCounts {
        self.chat.counts()
    }

    /// Everything a UI that reloads needs to draw the call again.
    pub fn snapshot(&self) -> CallSnapshot {
        CallSnapshot {
            user: self.config.user.clone(),
            session: self.session.clone(),
            rooms: self.rooms.iter().cloned().collect(),
            peers: self
                .links
                .iter()
                .map(|(id, link)| PeerSnapshot {
                    link: *id,
                    room: link.remote.room.clone(),
                    session: link.remote.session.clone(),
                    user: link.remote.user.clone(),
                    state: link.state,
                    reconnecting: link.reconnecting_since.is_some()
                        || link.detached_since.is_some(),
                    video_codec: link.sending_video.map(|c| c.sdp_name().to_owned()),
                })
                .collect(),
            ringing: self.ringing.outgoing.values().cloned().collect(),
            invites: self.ringing.incoming.values().cloned().collect(),
            mic_muted: self.mic_muted,
            camera_on: self.camera_on,
            chat: self.chat.counts(),
        }
    }

    // ------------------------------------------------------------ outputs

    fn emit(&mut self, event: CallEvent) {
        self.out.push_back(Output::Event(event));
    }

    fn signal(&mut self, message: ClientMessage) {
        self.signal_with_id(message, None);
    }

    fn signal_with_id(&mut self, message: ClientMessage, id: Option<RequestId>) {
        if self.session.is_none() {
            // Nothing but hello may go out before welcome; what matters is
            // restated after the next `SignalingUp`.
            debug!(kind = message.kind(), "signaling down; message dropped");
            return;
        }
        self.out.push_back(Output::Signal(Outgoing { message, id }));
    }

    fn peer_op(&mut self, link: LinkId, op: PeerOp) {
        self.out.push_back(Output::Peer(link, op));
    }

    fn media(&mut self, op: MediaOp) {
        self.out.push_back(Output::Media(op));
    }

    fn request_id(&mut self) -> Option<RequestId> {
        self.next_request += 1;
        RequestId::new(format!("k{}", self.next_request)).ok()
    }

    // ------------------------------------------------------------ inputs

    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::SignalingUp {
                session,
                ice_servers,
                online,
                ..
            } => self.signaling_up(now, session, ice_servers, online),
            Input::SignalingDown { reason } => {
                self.forget_session();
                self.detach_all(now);
                self.emit(CallEvent::SignalingLost { reason });
            }
            Input::SignalingRefused { message } => {
                self.session = None;
                self.emit(CallEvent::Error {
                    error: CallError::TokenRefused { message },
                });
            }
            Input::Server(message) => self.server_message(now, message),
            Input::Peer(link, fact) => self.peer_fact(now, link, fact),
            Input::Stats(samples) => self.stats(samples),
            Input::Estimates { estimates, encoded } => self.estimates(now, estimates, &encoded),
        }
    }
}
