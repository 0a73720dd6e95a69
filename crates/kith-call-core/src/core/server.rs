//! Signaling up and down, and what the server tells us.

use std::time::Instant;

use kith_proto::{
    CancelReason, ClientMessage, ErrorCode, IceServer, InviteAnswer, RequestId, RoomId,
    ServerMessage, SessionId, UserId,
};
use tracing::{debug, warn};

use super::CallCore;
use crate::error::CallError;
use crate::events::{CallEvent, InviteEnd, LeaveReason, MissedReason, ReconnectCause, RingOutcome};
use crate::link::{PeerState, Remote};

impl CallCore {
    pub(super) fn signaling_up(
        &mut self,
        now: Instant,
        session: SessionId,
        ice_servers: Vec<IceServer>,
        online: Vec<kith_proto::OnlineUser>,
    ) {
        self.forget_session();
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

    pub(super) fn detach_all(&mut self, now: Instant) {
        let mut reconnecting = Vec::new();
        for link in self.links.values_mut() {
            link.detached_since.get_or_insert(now);
            if link.reconnecting_since.is_none() && link.connected_once {
                link.reconnecting_since = Some(now);
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

    pub(super) fn server_message(&mut self, now: Instant, message: ServerMessage) {
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
                    if self.past_sessions.contains(&info.session) {
                        debug!(
                            session = info.session.as_str(),
                            "skipping a past session of ours"
                        );
                        continue;
                    }
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
            ServerMessage::PeerLeft {
                room,
                session,
                reason,
            } => {
                let Some(id) = self.link_by_session(&room, &session) else {
                    return;
                };
                // It hung up: nothing to wait for.
                if reason == Some(kith_proto::LeftReason::Left) {
                    self.close_link(id, LeaveReason::Left);
                    return;
                }
                // Media still flowing means it may be reconnecting its
                // signaling; media already broken too means it is gone.
                let media_flows = self.links.get(&id).is_some_and(|l| {
                    l.state == PeerState::Connected && l.reconnecting_since.is_none()
                });
                if media_flows {
                    // It may be reconnecting; keep the media until it comes
                    // back, the connection itself dies or the grace runs out.
                    if let Some(link) = self.links.get_mut(&id) {
                        link.detached_since.get_or_insert(now);
                        if link.reconnecting_since.is_none() {
                            link.reconnecting_since = Some(now);
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
                if self
                    .ringing
                    .outgoing
                    .remove(&(room.clone(), from.clone()))
                    .is_none()
                {
                    debug!(
                        room = room.as_str(),
                        "a reply to an invite no longer ringing"
                    );
                    return;
                }
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
                        .iter()
                        .find(|(_, r)| r.request.as_ref() == Some(re))
                        .map(|(key, _)| key.clone())
                });
                if let (Some(key), ErrorCode::Offline) = (&ring, code)
                    && let Some(ring) = self.ringing.outgoing.remove(key)
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
}
