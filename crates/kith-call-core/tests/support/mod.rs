//! Call cores wired through a real `signaling_dev::Hub` on simulated time,
//! with a fake peer connection per link that behaves like webrtc-rs where
//! the core can tell: descriptions, candidates, connecting once both sides
//! have both descriptions, the offerer's chat channel opening, closing.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use kith_call_core::{
    CallCore, CallEvent, Command, CoreConfig, IceState, Input, LinkId, LinkSample, MediaOp,
    Outgoing, Output, PeerFact, PeerOp, PeerState, VideoPlan,
};
use kith_media::codec::{AudioCodec, VideoCodec};
use kith_proto::{
    DisplayName, IceCandidate, RoomId, Sdp, SessionId, UserId, parse_client_message,
    parse_server_message,
};
use signaling_dev::{Hub, HubConfig, Metrics, Outbound, SessionKey};

pub const STEP: Duration = Duration::from_millis(10);

pub fn room(name: &str) -> RoomId {
    RoomId::new(name).unwrap()
}

pub fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

/// One side of a fake connection.
#[derive(Debug)]
pub struct FakePc {
    pub ufrag: String,
    pub generation: u32,
    pub local: Option<String>,
    pub remote: Option<String>,
    /// Candidates the core added, and whether a remote description was set then.
    pub added: Vec<(IceCandidate, bool)>,
    pub offerer: bool,
    pub connected: bool,
    pub chat_open: bool,
    pub sending: bool,
    pub rollbacks: u32,
    pub closed: bool,
    /// The path broke while this end had this local ufrag: it stays down
    /// until an ICE restart brings new credentials (or for good if `dead`).
    pub broken: Option<String>,
    pub dead: bool,
}

#[derive(Debug)]
pub struct Client {
    pub name: String,
    pub user: UserId,
    pub core: CallCore,
    pub key: Option<SessionKey>,
    pub pcs: BTreeMap<LinkId, FakePc>,
    pub events: Vec<(Instant, CallEvent)>,
    pub media: Vec<(Instant, MediaOp)>,
    pub sent: Vec<Outgoing>,
    /// What the fake bandwidth estimator says toward every peer.
    pub estimate_bps: f64,
    facts: VecDeque<(LinkId, PeerFact)>,
}

impl Client {
    pub fn events_of(&self, pred: impl Fn(&CallEvent) -> bool) -> Vec<CallEvent> {
        self.events
            .iter()
            .filter(|(_, e)| pred(e))
            .map(|(_, e)| e.clone())
            .collect()
    }

    pub fn has(&self, pred: impl Fn(&CallEvent) -> bool) -> bool {
        self.events.iter().any(|(_, e)| pred(e))
    }

    pub fn connected_pcs(&self) -> usize {
        self.pcs.values().filter(|pc| pc.connected).count()
    }

    pub fn session(&self) -> Option<SessionId> {
        self.core.session().cloned()
    }

    pub fn keyframes(&self) -> usize {
        self.media
            .iter()
            .filter(|(_, op)| matches!(op, MediaOp::Keyframe(_)))
            .count()
    }
}

#[derive(Debug)]
pub struct Net {
    pub hub: Hub,
    pub clients: Vec<Client>,
    pub now: Instant,
    next_key: SessionKey,
    next_session: u64,
    /// Session id prefixes, so tests can choose who is polite (smaller is).
    pub session_prefix: BTreeMap<String, String>,
}

fn hub() -> Hub {
    Hub::new(
        HubConfig {
            room_limit: 8,
            stun_urls: vec!["stun:127.0.0.1:3478".into()],
            turn_urls: Vec::new(),
            turn_secret: None,
            turn_ttl_secs: 600,
        },
        Metrics::default(),
    )
}

pub fn video_plan() -> VideoPlan {
    VideoPlan {
        width: 1280,
        height: 720,
        start_bitrate_bps: 2_500_000,
        max_bitrate_bps: 4_000_000,
    }
}

impl Net {
    pub fn new() -> Self {
        Self {
            hub: hub(),
            clients: Vec::new(),
            now: Instant::now(),
            next_key: 1,
            next_session: 0,
            session_prefix: BTreeMap::new(),
        }
    }

    /// A client for `name`, connected to the hub at once.
    pub fn add(&mut self, name: &str) -> usize {
        let mut config = CoreConfig::new(user(name));
        config.video = Some(video_plan());
        self.add_with(name, config)
    }

    pub fn add_with(&mut self, name: &str, config: CoreConfig) -> usize {
        let user = config.user.clone();
        let core = CallCore::new(config, self.now);
        self.clients.push(Client {
            name: name.to_owned(),
            user,
            core,
            key: None,
            pcs: BTreeMap::new(),
            events: Vec::new(),
            media: Vec::new(),
            sent: Vec::new(),
            estimate_bps: 3_000_000.0,
            facts: VecDeque::new(),
        });
        let index = self.clients.len() - 1;
        self.connect(index);
        index
    }

    pub fn index(&self, name: &str) -> usize {
        self.clients.iter().position(|c| c.name == name).unwrap()
    }

    pub fn client(&self, name: &str) -> &Client {
        &self.clients[self.index(name)]
    }

    pub fn client_mut(&mut self, name: &str) -> &mut Client {
        let index = self.index(name);
        &mut self.clients[index]
    }

    /// Says hello to the hub as a new session.
    pub fn connect(&mut self, index: usize) {
        let key = self.next_key;
        self.next_key += 1;
        self.next_session += 1;
        let name = self.clients[index].name.clone();
        let user = self.clients[index].user.clone();
        let prefix = self
            .session_prefix
            .get(&name)
            .cloned()
            .unwrap_or_else(|| "s".to_owned());
        let session = SessionId::new(format!("{prefix}{:04}", self.next_session)).unwrap();
        self.clients[index].key = Some(key);
        self.hub.hello(
            key,
            session,
            user.clone(),
            Some(DisplayName::new(user.as_str().to_uppercase()).unwrap()),
            None,
            1_767_225_600,
        );
    }

    /// The client's signaling connection drops (the server notices too).
    pub fn drop_signaling(&mut self, name: &str) {
        let index = self.index(name);
        if let Some(key) = self.clients[index].key.take() {
            self.hub.disconnect(key);
        }
        let now = self.now;
        self.clients[index].core.handle_input(
            now,
            Input::SignalingDown {
                reason: "test".into(),
            },
        );
    }

    /// The client's connection dies and the server does not notice (the
    /// client's address changed): the client reconnects while its old
    /// session stays in its rooms, and what is sent to that session goes
    /// nowhere.
    pub fn lose_signaling_unnoticed(&mut self, name: &str) {
        let index = self.index(name);
        self.clients[index].key = None;
        let now = self.now;
        self.clients[index].core.handle_input(
            now,
            Input::SignalingDown {
                reason: "test".into(),
            },
        );
    }

    pub fn restore_signaling(&mut self, name: &str) {
        let index = self.index(name);
        self.connect(index);
    }

    /// The server restarts: everyone loses it, and it comes back empty.
    pub fn restart_server(&mut self) {
        let names: Vec<String> = self.clients.iter().map(|c| c.name.clone()).collect();
        for name in &names {
            self.drop_signaling(name);
        }
        self.hub = hub();
    }

    pub fn command(
        &mut self,
        name: &str,
        command: Command,
    ) -> Result<(), kith_call_core::CallError> {
        let now = self.now;
        let result = self.client_mut(name).core.command(now, command);
        self.settle();
        result
    }

    /// A peer fact from outside (a PLI arriving, ICE breaking).
    pub fn fact(&mut self, name: &str, link: LinkId, fact: PeerFact) {
        let now = self.now;
        self.client_mut(name)
            .core
            .handle_input(now, Input::Peer(link, fact));
        self.settle();
    }

    /// Delivers everything in flight without moving the clock.
    pub fn settle(&mut self) {
        for _ in 0..1000 {
            if !self.pump_once() {
                return;
            }
        }
        panic!("the network did not settle in 1000 rounds");
    }

    /// Moves the clock in small steps for `duration`, settling at each.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.now += STEP;
            let now = self.now;
            for client in &mut self.clients {
                if client.core.poll_timeout() <= now {
                    client.core.handle_timeout(now);
                }
            }
            self.settle();
        }
    }

    /// Runs until `done` holds or `limit` passes; true if it held.
    pub fn run_until(&mut self, limit: Duration, done: impl Fn(&Net) -> bool) -> bool {
        let end = self.now + limit;
        self.settle();
        while self.now < end {
            if done(self) {
                return true;
            }
            self.run_for(STEP);
        }
        done(self)
    }

    /// One round of delivery (for tests that need to act mid-flight).
    pub fn step_once(&mut self) -> bool {
        self.pump_once()
    }

    fn pump_once(&mut self) -> bool {
        let mut moved = false;
        let now = self.now;
        // Outputs of every core.
        for index in 0..self.clients.len() {
            while let Some((link, fact)) = self.clients[index].facts.pop_front() {
                moved = true;
                self.clients[index]
                    .core
                    .handle_input(now, Input::Peer(link, fact));
            }
            while let Some(output) = self.clients[index].core.poll_output() {
                moved = true;
                self.carry_out(index, output);
            }
        }
        // Frames the hub queued.
        for (key, frame) in self.hub.take_outbound() {
            moved = true;
            let Some(index) = self.clients.iter().position(|c| c.key == Some(key)) else {
                continue;
            };
            let Outbound::Text(text) = frame else {
                continue;
            };
            let message = parse_server_message(text.as_str()).unwrap();
            self.clients[index]
                .core
                .handle_input(now, Input::from(message));
        }
        // Connections whose both ends have both descriptions come up.
        moved |= self.connect_pairs();
        moved
    }

    fn carry_out(&mut self, index: usize, output: Output) {
        let now = self.now;
        match output {
            Output::Signal(outgoing) => {
                let client = &mut self.clients[index];
                client.sent.push(outgoing.clone());
                let Some(key) = client.key else { return };
                let mut json = serde_json::to_value(&outgoing.message).unwrap();
                if let Some(id) = &outgoing.id {
                    json["id"] = serde_json::Value::String(id.as_str().to_owned());
                }
                let request = parse_client_message(&json.to_string()).unwrap();
                self.hub.handle(key, request);
            }
            Output::Event(event) => self.clients[index].events.push((now, event)),
            Output::Media(op) => {
                let client = &mut self.clients[index];
                client.media.push((now, op));
                if op == MediaOp::SampleStats {
                    let samples = client
                        .pcs
                        .keys()
                        .map(|link| (*link, LinkSample::default()))
                        .collect();
                    client.core.handle_input(now, Input::Stats(samples));
                }
                if op == MediaOp::SampleEstimates {
                    let estimates = client
                        .pcs
                        .keys()
                        .map(|link| (*link, client.estimate_bps))
                        .collect();
                    client.core.handle_input(
                        now,
                        Input::Estimates {
                            estimates,
                            encoded: Vec::new(),
                        },
                    );
                }
            }
            Output::Peer(link, op) => self.peer_op(index, link, op),
        }
    }

    fn peer_op(&mut self, index: usize, link: LinkId, op: PeerOp) {
        let client = &mut self.clients[index];
        let name = client.name.clone();
        match op {
            PeerOp::Create { offerer, .. } => {
                client.pcs.insert(
                    link,
                    FakePc {
                        ufrag: format!("{name}{}", link.0),
                        generation: 0,
                        local: None,
                        remote: None,
                        added: Vec::new(),
                        offerer,
                        connected: false,
                        chat_open: false,
                        sending: false,
                        rollbacks: 0,
                        closed: false,
                        broken: None,
                        dead: false,
                    },
                );
            }
            PeerOp::CreateOffer { ice_restart } => {
                let pc = client.pcs.get_mut(&link).unwrap();
                if ice_restart {
                    pc.generation += 1;
                }
                describe(client, link, "offer", 5000);
            }
            PeerOp::AcceptOffer {
                sdp: offer,
                rollback,
            } => {
                let pc = client.pcs.get_mut(&link).unwrap();
                if rollback {
                    pc.rollbacks += 1;
                }
                let remote = ufrag_of(&offer);
                // The remote restarted ICE: answer with fresh credentials too.
                if pc.remote.is_some() && pc.remote != remote {
                    pc.generation += 1;
                }
                pc.remote = remote;
                describe(client, link, "answer", 6000);
            }
            PeerOp::AcceptAnswer { sdp: answer } => {
                let pc = client.pcs.get_mut(&link).unwrap();
                pc.remote = ufrag_of(&answer);
            }
            PeerOp::AddCandidate(candidate) => {
                let pc = client.pcs.get_mut(&link).unwrap();
                let described = pc.remote.is_some();
                pc.added.push((candidate, described));
            }
            PeerOp::StartSending => {
                let pc = client.pcs.get_mut(&link).unwrap();
                pc.sending = true;
                client.facts.push_back((
                    link,
                    PeerFact::Sending {
                        video: Some(VideoCodec::Vp8),
                        audio: Some(AudioCodec::Opus),
                    },
                ));
                // The new writer asks for a keyframe to start from.
                client.facts.push_back((link, PeerFact::KeyframeRequest));
            }
            PeerOp::SendChat(text) => {
                let Some(pc) = client.pcs.get(&link) else {
                    return;
                };
                if !pc.chat_open {
                    return;
                }
                if let Some((other, other_link)) = self.far_end(index, link) {
                    self.clients[other]
                        .facts
                        .push_back((other_link, PeerFact::ChatText(text)));
                }
            }
            PeerOp::Close => {
                let far = self.far_end(index, link);
                let client = &mut self.clients[index];
                if let Some(mut pc) = client.pcs.remove(&link) {
                    pc.closed = true;
                }
                // The other end notices the media stop.
                if let Some((other, other_link)) = far {
                    let pc = self.clients[other].pcs.get_mut(&other_link);
                    if let Some(pc) = pc {
                        pc.connected = false;
                    }
                    let facts = &mut self.clients[other].facts;
                    facts.push_back((other_link, PeerFact::Ice(IceState::Disconnected)));
                }
            }
        }
    }

    /// The path between two connected peers breaks (both ends see ICE
    /// disconnected); it comes back only with new ICE credentials, or
    /// never when `for_good`.
    pub fn break_path(&mut self, a: &str, b: &str, for_good: bool) {
        let (ia, ib) = (self.index(a), self.index(b));
        for (me, other) in [(ia, ib), (ib, ia)] {
            let links: Vec<LinkId> = self.clients[me].pcs.keys().copied().collect();
            for link in links {
                if self.far_end(me, link).map(|(o, _)| o) != Some(other) {
                    continue;
                }
                let pc = self.clients[me].pcs.get_mut(&link).unwrap();
                pc.connected = false;
                pc.broken = pc.local.clone();
                pc.dead = for_good;
                self.clients[me]
                    .facts
                    .push_back((link, PeerFact::Ice(IceState::Disconnected)));
            }
        }
        self.settle();
    }

    /// The client and link at the other end of `(index, link)`.
    fn far_end(&self, index: usize, link: LinkId) -> Option<(usize, LinkId)> {
        let pc = self.clients[index].pcs.get(&link)?;
        let (local, remote) = (pc.local.as_ref()?, pc.remote.as_ref()?);
        for (other, client) in self.clients.iter().enumerate() {
            if other == index {
                continue;
            }
            for (other_link, other_pc) in &client.pcs {
                if other_pc.local.as_ref() == Some(remote)
                    && other_pc.remote.as_ref() == Some(local)
                {
                    return Some((other, *other_link));
                }
            }
        }
        None
    }

    fn connect_pairs(&mut self) -> bool {
        let mut moved = false;
        for index in 0..self.clients.len() {
            let links: Vec<LinkId> = self.clients[index].pcs.keys().copied().collect();
            for link in links {
                let Some((other, other_link)) = self.far_end(index, link) else {
                    continue;
                };
                let pc = self.clients[index].pcs.get_mut(&link).unwrap();
                if pc.connected || pc.dead || (pc.broken.is_some() && pc.broken == pc.local) {
                    continue;
                }
                pc.connected = true;
                let chat = pc.offerer || self.clients[other].pcs[&other_link].offerer;
                moved = true;
                let facts = &mut self.clients[index].facts;
                facts.push_back((link, PeerFact::State(PeerState::Connecting)));
                facts.push_back((
                    link,
                    PeerFact::Connected {
                        candidate_type: Some("host".into()),
                    },
                ));
                facts.push_back((link, PeerFact::Ice(IceState::Connected)));
                if chat {
                    let pc = self.clients[index].pcs.get_mut(&link).unwrap();
                    if !pc.chat_open {
                        pc.chat_open = true;
                        self.clients[index]
                            .facts
                            .push_back((link, PeerFact::ChatOpen));
                    }
                }
            }
        }
        moved
    }
}

/// The fake connection sets a local description of `kind` with its current
/// ICE credentials and gathers one host candidate, as webrtc-rs would.
fn describe(client: &mut Client, link: LinkId, kind: &str, port_base: u64) {
    let Some(pc) = client.pcs.get_mut(&link) else {
        return;
    };
    let ufrag = format!("{}g{}", pc.ufrag, pc.generation);
    pc.local = Some(ufrag.clone());
    let candidate = IceCandidate {
        candidate: format!(
            "candidate:1 1 udp 1 127.0.0.1 {} typ host",
            port_base + link.0
        ),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: Some(ufrag.clone()),
    };
    client
        .facts
        .push_back((link, PeerFact::LocalDescription(sdp(kind, &ufrag))));
    client
        .facts
        .push_back((link, PeerFact::LocalCandidate(candidate)));
}

fn sdp(kind: &str, ufrag: &str) -> Sdp {
    Sdp::new(format!(
        "v=0\r\ns={kind}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:x\r\n"
    ))
    .unwrap()
}

fn ufrag_of(sdp: &Sdp) -> Option<String> {
    kith_call_core::negotiation::ice_ufrag(sdp.as_str()).map(str::to_owned)
}
