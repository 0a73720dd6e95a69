//! Links: creating, offering, answering, rebinding, closing.

use std::time::Instant;

use kith_proto::{IceCandidate, RoomId, Sdp, SessionId, UserId};
use tracing::{debug, info};

use super::CallCore;
use crate::events::{CallEvent, LeaveReason, ReconnectCause};
use crate::io::PeerOp;
use crate::link::{IceState, Link, LinkId, PeerState, Remote};
use crate::negotiation::{ice_ufrag, is_polite};

impl CallCore {
    pub(super) fn link_by_session(&self, room: &RoomId, session: &SessionId) -> Option<LinkId> {
        self.links
            .iter()
            .find(|(_, l)| &l.remote.room == room && &l.remote.session == session)
            .map(|(id, _)| *id)
    }

    /// Mesh rule, as the joiner: offer to a peer listed in `joined`, reusing
    /// a connection that survived a reconnect when there is one.
    pub(super) fn offer_to(&mut self, now: Instant, remote: Remote) {
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
        let (id, restart) = match existing {
            Some(id) => {
                self.rebind(now, id, remote.session);
                // Its path broke too (our address changed): restart ICE now,
                // with candidates that go out on the new signaling, rather
                // than offer the dead path and wait for the next attempt.
                let path_broken = self.links.get(&id).is_some_and(|l| {
                    !matches!(l.ice_state, IceState::Connected | IceState::Completed)
                });
                (id, path_broken)
            }
            None => match self.new_link(now, remote, true) {
                Some(id) => (id, false),
                None => return,
            },
        };
        self.make_offer(id, restart);
    }

    pub(super) fn make_offer(&mut self, id: LinkId, ice_restart: bool) {
        if let Some(link) = self.links.get_mut(&id) {
            link.making_offer = true;
            self.peer_op(id, PeerOp::CreateOffer { ice_restart });
        }
    }

    pub(super) fn new_link(
        &mut self,
        now: Instant,
        remote: Remote,
        offerer: bool,
    ) -> Option<LinkId> {
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

    pub(super) fn rebind(&mut self, now: Instant, id: LinkId, session: SessionId) {
        let mine = self.session.clone();
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.detached_since = None;
        if let Some(mine) = &mine {
            link.polite = is_polite(mine, &session);
        }
        if link.remote.session != session {
            let old = std::mem::replace(&mut link.remote.session, session.clone());
            info!(%id, old = old.as_str(), new = session.as_str(), "connection rebound to a new session");
            let user = link.remote.user.clone();
            self.emit(CallEvent::PeerRebound {
                old_session: old,
                session,
                user,
            });
        }
        self.maybe_reconnected(now, id);
    }

    /// A link shown as reconnecting that has its media and its signaling
    /// back is reconnected.
    pub(super) fn maybe_reconnected(&mut self, now: Instant, id: LinkId) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if link.detached_since.is_some() || link.state != PeerState::Connected {
            return;
        }
        let Some(since) = link.reconnecting_since.take() else {
            return;
        };
        let (session, user) = (link.remote.session.clone(), link.remote.user.clone());
        let after_ms = now.saturating_duration_since(since).as_millis() as u64;
        self.emit(CallEvent::PeerReconnected {
            session,
            user,
            after_ms,
        });
    }

    pub(super) fn remote_offer(
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
                // credentials, new session. Ours may still look attached:
                // a peer whose address changed reconnects before the
                // server notices its old session is dead.
                let survivor = self
                    .links
                    .iter()
                    .find(|(_, l)| {
                        (l.detached_since.is_some() || l.remote.user == from_user)
                            && l.remote.room == room
                            && l.remote_ufrag.is_some()
                            && l.remote_ufrag == ufrag
                    })
                    // Its ICE restart may have gone out on the dead
                    // connection and changed its credentials: then a
                    // connection to the same user whose path is broken is
                    // the one it is offering on.
                    .or_else(|| {
                        self.links.iter().find(|(_, l)| {
                            l.remote.room == room
                                && l.remote.user == from_user
                                && l.reconnecting_since.is_some()
                        })
                    })
                    .map(|(id, _)| *id);
                match survivor {
                    Some(id) => {
                        self.rebind(now, id, from);
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

    pub(super) fn remote_answer(&mut self, room: RoomId, from: SessionId, sdp: Sdp) {
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

    pub(super) fn remote_candidate(&mut self, id: LinkId, candidate: IceCandidate) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if link.remote_description_set {
            self.peer_op(id, PeerOp::AddCandidate(candidate));
        } else {
            link.queue_candidate(candidate);
        }
    }

    pub(super) fn maybe_start_sending(&mut self, id: LinkId) {
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

    pub(super) fn close_link(&mut self, id: LinkId, reason: LeaveReason) {
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

    pub(super) fn network_trouble(&mut self, now: Instant, id: LinkId) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if link.connected_once {
            link.ice.trouble(now);
        }
        if link.reconnecting_since.is_some() || !link.connected_once {
            return;
        }
        link.reconnecting_since = Some(now);
        let (session, user) = (link.remote.session.clone(), link.remote.user.clone());
        self.emit(CallEvent::PeerReconnecting {
            session,
            user,
            cause: ReconnectCause::Network,
        });
    }
}
