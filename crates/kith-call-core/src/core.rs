//! [`CallCore`]: every decision of a call, with no I/O. Feed it inputs and
//! commands with the time, carry out what [`CallCore::poll_output`] returns,
//! and call [`CallCore::handle_timeout`] at [`CallCore::poll_timeout`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use kith_media::codec::VideoCodec;
use kith_proto::{
    CancelReason, ClientMessage, ErrorCode, IceCandidate, IceServer, InviteAnswer, RequestId,
    RoomId, Sdp, ServerMessage, SessionId, UserId,
};
use tracing::{debug, info, warn};

use crate::bandwidth::BandwidthPolicy;
use crate::chat::{ChatBook, Incoming};
use crate::error::CallError;
use crate::events::{CallEvent, InviteEnd, LeaveReason, MissedReason, ReconnectCause, RingOutcome};
use crate::ice_recovery::Step;
use crate::io::{Command, Input, LinkSample, MediaOp, Outgoing, Output, PeerFact, PeerOp};
use crate::keyframes::KeyframeThrottle;
use crate::link::{IceState, Link, LinkId, PeerState, Remote};
use crate::negotiation::{ice_ufrag, is_polite};
use crate::orphans::OrphanCandidates;
use crate::ringing::{INCOMING_RING, IncomingRing, OutgoingRing, Ringing};
use crate::snapshot::{CallSnapshot, PeerSnapshot};
use crate::stats::PeerStats;

/// How long a connection whose peer's signaling session vanished keeps
/// running, waiting for that peer to come back (reconnect, server restart).
pub const DETACHED_GRACE: Duration = Duration::from_secs(20);
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);

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
    out: VecDeque<Output>,
}

impl CallCore {
    pub fn new(config: CoreConfig, now: Instant) -> Self {
        Self {
            chat: ChatBook::new(config.user.clone()),
            config,
            session: None,
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
            self.ringing.next_deadline(),
            self.keyframes.next_due(),
            self.orphans.next_expiry(),
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
                    reconnecting: link.reconnecting || link.detached_since.is_some(),
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
                self.session = None;
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
            Input::Stats(samples) => self.stats(now, samples),
        }
    }

    fn signaling_up(
        &mut self,
        now: Instant,
        session: SessionId,
        ice_servers: Vec<IceServer>,
        online: Vec<kith_proto::OnlineUser>,
    ) {
        self.session = Some(session.clone());
        self.ice_servers = ice_servers;
        // Every remote session we knew is gone from the server's view of us;
        // connections live on until they are rebound.
        self.detach_all(now);
        self.emit(CallEvent::SignalingConnected { session, online });
        let rooms: Vec<RoomId> = self.rooms.iter().cloned().collect();
        for room in rooms {
            self.signal(ClientMessage::Join { room });
        }
        // The server forgot our invites with our old session: ring again.
        let rings: Vec<(RoomId, UserId, kith_proto::MediaKind, Option<RequestId>)> = self
            .ringing
            .outgoing
            .values()
            .map(|r| (r.room.clone(), r.to.clone(), r.media, r.request.clone()))
            .collect();
        for (room, to, media, request) in rings {
            self.signal_with_id(ClientMessage::Invite { room, to, media }, request);
        }
    }

    fn detach_all(&mut self, now: Instant) {
        let mut reconnecting = Vec::new();
        for link in self.links.values_mut() {
            link.detached_since.get_or_insert(now);
            if !link.reconnecting && link.connected_once {
                link.reconnecting = true;
                reconnecting.push((link.remote.session.clone(), link.remote.user.clone()));
            }
        }
        for (session, user) in reconnecting {
            self.emit(CallEvent::PeerReconnecting {
                session,
                user,
                cause: ReconnectCause::Signaling,
            });
        }
    }

    fn server_message(&mut self, now: Instant, message: ServerMessage) {
        match message {
            ServerMessage::Welcome { .. } => {}
            ServerMessage::Presence { user, name, online } => {
                self.emit(CallEvent::Presence { user, name, online });
            }
            ServerMessage::Joined { room, peers, .. } => {
                if !self.rooms.contains(&room) {
                    debug!(room = room.as_str(), "joined a room we have left since");
                    return;
                }
                self.emit(CallEvent::Joined {
                    room: room.clone(),
                    peers: peers.clone(),
                });
                for info in peers {
                    let remote = Remote {
                        room: room.clone(),
                        session: info.session,
                        user: info.user,
                    };
                    self.offer_to(now, remote);
                }
            }
            // The newcomer sends the first offer (mesh rule); wait for it.
            ServerMessage::PeerJoined { room, peer } => {
                self.emit(CallEvent::PeerJoined { room, peer });
            }
            ServerMessage::PeerLeft { room, session } => {
                let Some(id) = self.link_by_session(&room, &session) else {
                    return;
                };
                // Media still flowing means it may be reconnecting its
                // signaling; media already broken too means it is gone.
                let media_flows = self
                    .links
                    .get(&id)
                    .is_some_and(|l| l.state == PeerState::Connected && !l.reconnecting);
                if media_flows {
                    // It may be reconnecting; keep the media until it comes
                    // back, the connection itself dies or the grace runs out.
                    if let Some(link) = self.links.get_mut(&id) {
                        link.detached_since.get_or_insert(now);
                        if !link.reconnecting {
                            link.reconnecting = true;
                            let (session, user) =
                                (link.remote.session.clone(), link.remote.user.clone());
                            self.emit(CallEvent::PeerReconnecting {
                                session,
                                user,
                                cause: ReconnectCause::Signaling,
                            });
                        }
                    }
                } else {
                    self.close_link(id, LeaveReason::Left);
                }
            }
            ServerMessage::Offer {
                room,
                from,
                from_user,
                sdp,
            } => self.remote_offer(now, room, from, from_user, sdp),
            ServerMessage::Answer {
                room, from, sdp, ..
            } => self.remote_answer(room, from, sdp),
            ServerMessage::Candidate {
                room,
                from,
                candidate,
                ..
            } => {
                let Some(candidate) = candidate else { return };
                match self.link_by_session(&room, &from) {
                    Some(id) => self.remote_candidate(id, candidate),
                    None => self.orphans.push(now, from, candidate),
                }
            }
            ServerMessage::Invite {
                room,
                from,
                from_name,
                media,
            } => self.incoming_invite(now, room, from, from_name, media),
            ServerMessage::InviteReply { room, from, answer } => {
                let matches = self
                    .ringing
                    .outgoing
                    .get(&room)
                    .is_some_and(|r| r.to == from);
                if !matches {
                    debug!(
                        room = room.as_str(),
                        "a reply to an invite no longer ringing"
                    );
                    return;
                }
                self.ringing.outgoing.remove(&room);
                self.emit(CallEvent::InviteReply {
                    room: room.clone(),
                    from: from.clone(),
                    answer,
                });
                self.emit(CallEvent::RingEnded {
                    room: room.clone(),
                    to: from,
                    outcome: RingOutcome::of_answer(answer),
                });
                if answer == InviteAnswer::Accept {
                    self.join(room);
                }
            }
            ServerMessage::InviteCancel { room, from, reason } => {
                let Some(ring) = self.ringing.incoming.get(&room) else {
                    return;
                };
                if ring.from != from {
                    return;
                }
                let Some(ring) = self.ringing.incoming.remove(&room) else {
                    return;
                };
                let answered_elsewhere = reason == Some(CancelReason::AnsweredElsewhere);
                self.emit(CallEvent::InviteCanceled {
                    room: room.clone(),
                    from,
                    reason: if answered_elsewhere {
                        InviteEnd::AnsweredElsewhere
                    } else {
                        InviteEnd::Canceled
                    },
                });
                if !answered_elsewhere {
                    self.missed(ring, MissedReason::Canceled);
                }
            }
            ServerMessage::Error { code, message, re } => {
                let ring = re.as_ref().and_then(|re| {
                    self.ringing
                        .outgoing
                        .values()
                        .find(|r| r.request.as_ref() == Some(re))
                        .map(|r| r.room.clone())
                });
                if let (Some(room), ErrorCode::Offline) = (&ring, code)
                    && let Some(ring) = self.ringing.outgoing.remove(room)
                {
                    self.emit(CallEvent::Error {
                        error: CallError::Server { code, message },
                    });
                    self.emit(CallEvent::RingEnded {
                        room: ring.room,
                        to: ring.to,
                        outcome: RingOutcome::Offline,
                    });
                    return;
                }
                warn!(%code, %message, "the server reported an error");
                self.emit(CallEvent::Error {
                    error: CallError::Server { code, message },
                });
            }
        }
    }

    fn link_by_session(&self, room: &RoomId, session: &SessionId) -> Option<LinkId> {
        self.links
            .iter()
            .find(|(_, l)| &l.remote.room == room && &l.remote.session == session)
            .map(|(id, _)| *id)
    }

    /// Mesh rule, as the joiner: offer to a peer listed in `joined`, reusing
    /// a connection that survived a reconnect when there is one.
    fn offer_to(&mut self, now: Instant, remote: Remote) {
        let existing = self
            .link_by_session(&remote.room, &remote.session)
            .or_else(|| {
                self.links
                    .iter()
                    .find(|(_, l)| {
                        l.detached_since.is_some()
                            && l.remote.room == remote.room
                            && l.remote.user == remote.user
                    })
                    .map(|(id, _)| *id)
            });
        let id = match existing {
            Some(id) => {
                self.rebind(id, remote.session);
                id
            }
            None => match self.new_link(now, remote, true) {
                Some(id) => id,
                None => return,
            },
        };
        self.make_offer(id, false);
    }

    fn make_offer(&mut self, id: LinkId, ice_restart: bool) {
        if let Some(link) = self.links.get_mut(&id) {
            link.making_offer = true;
            self.peer_op(id, PeerOp::CreateOffer { ice_restart });
        }
    }

    fn new_link(&mut self, now: Instant, remote: Remote, offerer: bool) -> Option<LinkId> {
        let mine = self.session.clone()?;
        let id = LinkId(self.next_link);
        self.next_link += 1;
        let polite = is_polite(&mine, &remote.session);
        let mut link = Link::new(remote.clone(), polite, now);
        for candidate in self.orphans.take(&remote.session) {
            link.queue_candidate(candidate);
        }
        info!(
            %id,
            user = remote.user.as_str(),
            session = remote.session.as_str(),
            offerer,
            "new peer connection"
        );
        self.links.insert(id, link);
        let op = PeerOp::Create {
            remote,
            offerer,
            ice_servers: self.ice_servers.clone(),
            video_codecs: self.config.video_codecs.clone(),
        };
        self.peer_op(id, op);
        Some(id)
    }

    fn rebind(&mut self, id: LinkId, session: SessionId) {
        let mine = self.session.clone();
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.detached_since = None;
        if let Some(mine) = &mine {
            link.polite = is_polite(mine, &session);
        }
        let mut events = Vec::new();
        if link.remote.session != session {
            let old = std::mem::replace(&mut link.remote.session, session.clone());
            info!(%id, old = old.as_str(), new = session.as_str(), "connection rebound to a new session");
            events.push(CallEvent::PeerRebound {
                old_session: old,
                session: session.clone(),
                user: link.remote.user.clone(),
            });
        }
        if link.reconnecting && link.state == PeerState::Connected {
            link.reconnecting = false;
            events.push(CallEvent::PeerReconnected {
                session,
                user: link.remote.user.clone(),
            });
        }
        for event in events {
            self.emit(event);
        }
    }

    fn remote_offer(
        &mut self,
        now: Instant,
        room: RoomId,
        from: SessionId,
        from_user: UserId,
        sdp: Sdp,
    ) {
        if !self.rooms.contains(&room) {
            debug!(room = room.as_str(), "an offer for a room we are not in");
            return;
        }
        let ufrag = ice_ufrag(sdp.as_str()).map(str::to_owned);
        let id = match self.link_by_session(&room, &from) {
            Some(id) => id,
            None => {
                // A connection that survived its peer's reconnect: same ICE
                // credentials, new session.
                let survivor = self
                    .links
                    .iter()
                    .find(|(_, l)| {
                        l.detached_since.is_some()
                            && l.remote.room == room
                            && l.remote_ufrag.is_some()
                            && l.remote_ufrag == ufrag
                    })
                    .map(|(id, _)| *id);
                match survivor {
                    Some(id) => {
                        self.rebind(id, from);
                        id
                    }
                    None => {
                        let remote = Remote {
                            room,
                            session: from,
                            user: from_user,
                        };
                        match self.new_link(now, remote, false) {
                            Some(id) => id,
                            None => return,
                        }
                    }
                }
            }
        };
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let collision = link.making_offer || link.have_local_offer;
        if collision && !link.polite {
            debug!(%id, "glare: we are impolite, ignoring their offer");
            return;
        }
        if collision {
            debug!(%id, "glare: we are polite, rolling back our offer");
        }
        link.making_offer = false;
        link.have_local_offer = false;
        link.answering = true;
        link.remote_description_set = true;
        if ufrag.is_some() {
            link.remote_ufrag = ufrag;
        }
        let pending = std::mem::take(&mut link.pending_candidates);
        self.peer_op(
            id,
            PeerOp::AcceptOffer {
                sdp,
                rollback: collision,
            },
        );
        for candidate in pending {
            self.peer_op(id, PeerOp::AddCandidate(candidate));
        }
        self.maybe_start_sending(id);
    }

    fn remote_answer(&mut self, room: RoomId, from: SessionId, sdp: Sdp) {
        let Some(id) = self.link_by_session(&room, &from) else {
            debug!(
                from = from.as_str(),
                "an answer from a session we did not offer to"
            );
            return;
        };
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if !link.have_local_offer {
            debug!(%id, "an answer without a pending offer, ignored");
            return;
        }
        link.have_local_offer = false;
        link.remote_description_set = true;
        if let Some(ufrag) = ice_ufrag(sdp.as_str()) {
            link.remote_ufrag = Some(ufrag.to_owned());
        }
        let pending = std::mem::take(&mut link.pending_candidates);
        self.peer_op(id, PeerOp::AcceptAnswer { sdp });
        for candidate in pending {
            self.peer_op(id, PeerOp::AddCandidate(candidate));
        }
        self.maybe_start_sending(id);
    }

    fn remote_candidate(&mut self, id: LinkId, candidate: IceCandidate) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if link.remote_description_set {
            self.peer_op(id, PeerOp::AddCandidate(candidate));
        } else {
            link.queue_candidate(candidate);
        }
    }

    fn maybe_start_sending(&mut self, id: LinkId) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        // Packets written before DTLS-SRTP is up are dropped, and a lost
        // first keyframe would leave the peer waiting for a PLI.
        if link.state != PeerState::Connected
            || !link.remote_description_set
            || link.sending_requested
        {
            return;
        }
        link.sending_requested = true;
        self.peer_op(id, PeerOp::StartSending);
    }

    fn close_link(&mut self, id: LinkId, reason: LeaveReason) {
        let Some(link) = self.links.remove(&id) else {
            return;
        };
        info!(%id, ?reason, user = link.remote.user.as_str(), "peer connection closed");
        self.peer_op(id, PeerOp::Close);
        self.keyframes.forget(id);
        if !self
            .links
            .values()
            .any(|l| l.remote.user == link.remote.user)
        {
            self.chat.forget_user(&link.remote.user);
        }
        self.emit(CallEvent::PeerLeft {
            session: link.remote.session,
            user: link.remote.user,
            reason,
        });
    }

    fn peer_fact(&mut self, now: Instant, id: LinkId, fact: PeerFact) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        match fact {
            PeerFact::LocalDescription(sdp) => {
                let (room, to) = (link.remote.room.clone(), link.remote.session.clone());
                let attached = link.detached_since.is_none();
                if link.making_offer {
                    link.making_offer = false;
                    link.have_local_offer = true;
                    if attached {
                        self.signal(ClientMessage::Offer { room, to, sdp });
                    }
                } else if link.answering {
                    link.answering = false;
                    self.signal(ClientMessage::Answer { room, to, sdp });
                } else {
                    debug!(%id, "a local description nobody asked for");
                }
            }
            PeerFact::LocalCandidate(candidate) => {
                if link.detached_since.is_none() {
                    let message = ClientMessage::Candidate {
                        room: link.remote.room.clone(),
                        to: link.remote.session.clone(),
                        candidate: Some(candidate),
                    };
                    self.signal(message);
                }
            }
            PeerFact::GatheringComplete => {
                if link.detached_since.is_none() {
                    let message = ClientMessage::Candidate {
                        room: link.remote.room.clone(),
                        to: link.remote.session.clone(),
                        candidate: None,
                    };
                    self.signal(message);
                }
            }
            PeerFact::Connected { candidate_type } => {
                link.state = PeerState::Connected;
                link.ice.healthy();
                let (session, user) = (link.remote.session.clone(), link.remote.user.clone());
                if !link.connected_once {
                    link.connected_once = true;
                    let connect_ms = now.duration_since(link.created_at).as_millis() as u64;
                    self.emit(CallEvent::PeerConnected {
                        session,
                        user,
                        candidate_type,
                        connect_ms,
                    });
                } else if link.reconnecting && link.detached_since.is_none() {
                    link.reconnecting = false;
                    self.emit(CallEvent::PeerReconnected { session, user });
                }
                self.maybe_start_sending(id);
            }
            PeerFact::State(state) => {
                link.state = state;
                match state {
                    // Without signaling nothing can be renegotiated.
                    PeerState::Failed if link.detached_since.is_some() || !link.connected_once => {
                        self.close_link(id, LeaveReason::Failed);
                    }
                    // An ICE restart may bring it back (see `ice_recovery`).
                    PeerState::Failed | PeerState::Disconnected => self.network_trouble(now, id),
                    PeerState::Closed => self.close_link(id, LeaveReason::Closed),
                    _ => {}
                }
            }
            PeerFact::Ice(state) => match state {
                IceState::Disconnected | IceState::Failed if link.detached_since.is_some() => {
                    self.close_link(id, LeaveReason::Gone);
                }
                IceState::Disconnected | IceState::Failed => self.network_trouble(now, id),
                IceState::Connected | IceState::Completed => {
                    link.ice.healthy();
                    if !(link.reconnecting
                        && link.detached_since.is_none()
                        && link.state == PeerState::Connected)
                    {
                        return;
                    }
                    link.reconnecting = false;
                    let (session, user) = (link.remote.session.clone(), link.remote.user.clone());
                    self.emit(CallEvent::PeerReconnected { session, user });
                }
                _ => {}
            },
            PeerFact::Sending { video, audio } => {
                link.sending_video = video;
                link.sending_audio = audio;
            }
            PeerFact::Track { kind, codec } => {
                let (session, user) = (link.remote.session.clone(), link.remote.user.clone());
                self.emit(CallEvent::TrackStarted {
                    session,
                    user,
                    kind,
                    codec,
                });
            }
            PeerFact::ChatOpen => {
                if link.chat_open {
                    return;
                }
                link.chat_open = true;
                let user = link.remote.user.clone();
                for wire in self.chat.unacked_for(&user) {
                    self.peer_op(id, PeerOp::SendChat(wire));
                }
            }
            PeerFact::ChatClosed => link.chat_open = false,
            PeerFact::ChatText(text) => {
                let user = link.remote.user.clone();
                match self.chat.receive_text(&user, &text) {
                    Ok(Incoming::New { message, ack }) => {
                        self.peer_op(id, PeerOp::SendChat(ack));
                        self.emit(CallEvent::ChatReceived { message });
                    }
                    Ok(Incoming::Duplicate { ack }) => self.peer_op(id, PeerOp::SendChat(ack)),
                    Ok(Incoming::Acked { id, complete: true }) => {
                        self.emit(CallEvent::ChatAcked { id });
                    }
                    Ok(Incoming::Acked { .. } | Incoming::Ignored) => {}
                    Err(refused) => {
                        warn!(%id, user = user.as_str(), %refused, "chat frame refused; the channel stays open");
                    }
                }
            }
            PeerFact::KeyframeRequest => {
                let Some(codec) = link.sending_video else {
                    return;
                };
                if self.keyframes.request(now, id, codec) {
                    self.media(MediaOp::Keyframe(codec));
                }
            }
            PeerFact::Failed { context, reason } => {
                self.emit(CallEvent::Error {
                    error: CallError::WebRtc { context, reason },
                });
                self.close_link(id, LeaveReason::CouldNotConnect);
            }
        }
    }

    fn network_trouble(&mut self, now: Instant, id: LinkId) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if link.connected_once {
            link.ice.trouble(now);
        }
        if link.reconnecting || !link.connected_once {
            return;
        }
        link.reconnecting = true;
        let (session, user) = (link.remote.session.clone(), link.remote.user.clone());
        self.emit(CallEvent::PeerReconnecting {
            session,
            user,
            cause: ReconnectCause::Network,
        });
    }

    fn stats(&mut self, now: Instant, samples: Vec<(LinkId, LinkSample)>) {
        let mut peers = Vec::new();
        let mut weakest: BTreeMap<u8, (VideoCodec, f64)> = BTreeMap::new();
        for (id, sample) in samples {
            let Some(link) = self.links.get(&id) else {
                continue;
            };
            if let (Some(codec), Some(estimate)) = (link.sending_video, sample.estimate_bps) {
                let key = codec_key(codec);
                let entry = weakest.entry(key).or_insert((codec, f64::MAX));
                entry.1 = entry.1.min(estimate);
            }
            peers.push(PeerStats {
                session: link.remote.session.clone(),
                user: link.remote.user.clone(),
                connected: link.state == PeerState::Connected,
                ice_restarts: link.ice.restarts(),
                measure: sample.measure,
            });
        }
        if let Some(plan) = self.config.video {
            for (codec, estimate) in weakest.into_values() {
                let policy = self.bandwidth.entry(codec).or_insert_with(|| {
                    BandwidthPolicy::new(
                        (plan.width, plan.height),
                        plan.start_bitrate_bps,
                        plan.max_bitrate_bps,
                    )
                });
                let change = policy.on_estimate(now, estimate);
                if let Some(bps) = change.bitrate_bps {
                    self.media(MediaOp::Bitrate(codec, bps));
                }
                if let Some((width, height)) = change.size {
                    info!(
                        codec = codec.sdp_name(),
                        width, height, estimate, "video size follows the bandwidth estimate"
                    );
                    self.media(MediaOp::Resolution(codec, width, height));
                }
            }
        }
        if !peers.is_empty() {
            self.emit(CallEvent::Stats { peers });
        }
    }

    // ------------------------------------------------------------ invites

    fn in_call(&self) -> bool {
        !self.links.is_empty() || !self.rooms.is_empty() || !self.ringing.outgoing.is_empty()
    }

    fn incoming_invite(
        &mut self,
        now: Instant,
        room: RoomId,
        from: UserId,
        from_name: kith_proto::DisplayName,
        media: kith_proto::MediaKind,
    ) {
        let ring = IncomingRing {
            room: room.clone(),
            from: from.clone(),
            from_name: from_name.clone(),
            media,
            deadline: now + self.config.incoming_ring,
        };
        if self.config.auto_busy && self.in_call() {
            info!(from = from.as_str(), "an invite while in a call: busy");
            self.signal(ClientMessage::InviteReply {
                room,
                to: from,
                answer: InviteAnswer::Busy,
            });
            self.missed(ring, MissedReason::Busy);
            return;
        }
        self.emit(CallEvent::Invite {
            room,
            from,
            from_name,
            media,
        });
        if let Some(dropped) = self.ringing.add_incoming(ring) {
            self.missed(dropped, MissedReason::Unanswered);
        }
    }

    fn missed(&mut self, ring: IncomingRing, reason: MissedReason) {
        self.emit(CallEvent::MissedCall {
            room: ring.room,
            from: ring.from,
            from_name: ring.from_name,
            media: ring.media,
            reason,
        });
    }

    fn join(&mut self, room: RoomId) {
        if self.rooms.insert(room.clone()) {
            self.signal(ClientMessage::Join { room });
        }
    }

    // ------------------------------------------------------------ commands

    /// Carries out a user's command; an error says why it cannot be done
    /// (and nothing changed).
    pub fn command(&mut self, now: Instant, command: Command) -> Result<(), CallError> {
        match command {
            Command::Join(room) => self.join(room),
            Command::Leave(room) => {
                if self.rooms.remove(&room) {
                    self.signal(ClientMessage::Leave { room: room.clone() });
                }
                let ids: Vec<LinkId> = self
                    .links
                    .iter()
                    .filter(|(_, l)| l.remote.room == room)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.close_link(id, LeaveReason::WeLeft);
                }
            }
            Command::Ring {
                room,
                to,
                media,
                patience,
            } => {
                if self.session.is_none() {
                    return Err(CallError::NotConnected);
                }
                let request = self.request_id();
                self.signal_with_id(
                    ClientMessage::Invite {
                        room: room.clone(),
                        to: to.clone(),
                        media,
                    },
                    request.clone(),
                );
                self.ringing.outgoing.insert(
                    room.clone(),
                    OutgoingRing {
                        room: room.clone(),
                        to: to.clone(),
                        media,
                        deadline: now + patience,
                        request,
                    },
                );
                self.emit(CallEvent::Ringing { room, to, media });
            }
            Command::CancelRing(room) => {
                let Some(ring) = self.ringing.outgoing.remove(&room) else {
                    return Err(CallError::NoSuchInvite { room });
                };
                self.end_ring(ring, RingOutcome::Canceled);
            }
            Command::Answer { room, answer } => {
                let Some(ring) = self.ringing.incoming.remove(&room) else {
                    return Err(CallError::NoSuchInvite { room });
                };
                self.signal(ClientMessage::InviteReply {
                    room: room.clone(),
                    to: ring.from,
                    answer,
                });
                if answer == InviteAnswer::Accept {
                    self.join(room);
                }
            }
            Command::SendChat { id, text, ts } => {
                if text.is_empty() || text.len() > kith_proto::MAX_CHAT_TEXT_BYTES {
                    return Err(CallError::ChatSize {
                        bytes: text.len(),
                        max: kith_proto::MAX_CHAT_TEXT_BYTES,
                    });
                }
                let users: BTreeSet<UserId> =
                    self.links.values().map(|l| l.remote.user.clone()).collect();
                let (message, wire) = self.chat.compose(id, text, ts, users);
                let open: Vec<LinkId> = self
                    .links
                    .iter()
                    .filter(|(_, l)| l.chat_open)
                    .map(|(id, _)| *id)
                    .collect();
                for link in open {
                    self.peer_op(link, PeerOp::SendChat(wire.clone()));
                }
                self.emit(CallEvent::ChatSent { message });
            }
            Command::SetMicMuted(muted) => {
                self.mic_muted = muted;
                self.media(MediaOp::MicMuted(muted));
            }
            Command::SetCamera(on) => {
                self.camera_on = on;
                self.media(MediaOp::Camera(on));
            }
            Command::SetPreferredCodec(codec) => {
                if let Some(codec) = codec {
                    self.config.video_codecs.retain(|c| *c != codec);
                    self.config.video_codecs.insert(0, codec);
                }
            }
            Command::RestartIce => {
                let ids: Vec<LinkId> = self
                    .links
                    .iter()
                    .filter(|(_, l)| l.remote_description_set && l.detached_since.is_none())
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.make_offer(id, true);
                }
            }
            Command::Hangup => {
                let rings: Vec<OutgoingRing> = std::mem::take(&mut self.ringing.outgoing)
                    .into_values()
                    .collect();
                for ring in rings {
                    self.end_ring(ring, RingOutcome::Canceled);
                }
                for room in std::mem::take(&mut self.rooms) {
                    self.signal(ClientMessage::Leave { room });
                }
                let ids: Vec<LinkId> = self.links.keys().copied().collect();
                for id in ids {
                    self.close_link(id, LeaveReason::CallEnded);
                }
            }
        }
        Ok(())
    }

    fn end_ring(&mut self, ring: OutgoingRing, outcome: RingOutcome) {
        self.signal(ClientMessage::InviteCancel {
            room: ring.room.clone(),
            to: ring.to.clone(),
        });
        self.emit(CallEvent::RingEnded {
            room: ring.room,
            to: ring.to,
            outcome,
        });
    }

    // ------------------------------------------------------------ timers

    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_stats {
            self.next_stats = now + STATS_INTERVAL;
            if !self.links.is_empty() {
                self.media(MediaOp::SampleStats);
            }
        }
        let stale: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.detached_since.is_some_and(|s| now >= s + DETACHED_GRACE))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.close_link(id, LeaveReason::DidNotComeBack);
        }
        self.recover_paths(now);
        for ring in self.ringing.take_expired_outgoing(now) {
            self.end_ring(ring, RingOutcome::NoAnswer);
        }
        for ring in self.ringing.take_expired_incoming(now) {
            self.emit(CallEvent::InviteCanceled {
                room: ring.room.clone(),
                from: ring.from.clone(),
                reason: InviteEnd::Expired,
            });
            self.missed(ring, MissedReason::Unanswered);
        }
        for codec in self.keyframes.due(now) {
            self.media(MediaOp::Keyframe(codec));
        }
        self.orphans.expire(now);
    }
}

impl CallCore {
    /// Restarts ICE on connections whose path broke, or gives them up.
    fn recover_paths(&mut self, now: Instant) {
        let signaling_up = self.session.is_some();
        let mut restart = Vec::new();
        let mut give_up = Vec::new();
        for (id, link) in &mut self.links {
            let can_restart = signaling_up
                && link.detached_since.is_none()
                && link.remote_description_set
                && !link.making_offer
                && !link.have_local_offer;
            match link.ice.step(now, can_restart) {
                Step::Wait => {}
                Step::Restart => restart.push(*id),
                Step::GiveUp => give_up.push(*id),
            }
        }
        for id in restart {
            info!(%id, "the path broke: restarting ICE");
            self.make_offer(id, true);
        }
        for id in give_up {
            self.close_link(id, LeaveReason::Failed);
        }
    }
}

/// A stable order for codecs (they have no `Ord`).
fn codec_key(codec: VideoCodec) -> u8 {
    match codec {
        VideoCodec::Av1 => 0,
        VideoCodec::Vp9 => 1,
        VideoCodec::Vp8 => 2,
        VideoCodec::H264 => 3,
    }
}
