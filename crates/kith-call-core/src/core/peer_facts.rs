//! What the driver reports about each peer connection.

use std::time::Instant;

use kith_proto::ClientMessage;
use tracing::{debug, warn};

use super::CallCore;
use crate::chat::Incoming;
use crate::error::CallError;
use crate::events::{CallEvent, LeaveReason};
use crate::io::{MediaOp, PeerFact, PeerOp};
use crate::link::{IceState, LinkId, PeerState};

impl CallCore {
    pub(super) fn peer_fact(&mut self, now: Instant, id: LinkId, fact: PeerFact) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if let PeerFact::Ice(state) = &fact {
            link.ice_state = *state;
        }
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
                if !link.connected_once {
                    link.connected_once = true;
                    let (session, user) = (link.remote.session.clone(), link.remote.user.clone());
                    let connect_ms = now.duration_since(link.created_at).as_millis() as u64;
                    self.emit(CallEvent::PeerConnected {
                        session,
                        user,
                        candidate_type,
                        connect_ms,
                    });
                } else {
                    self.maybe_reconnected(now, id);
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
                    self.maybe_reconnected(now, id);
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
                for wire in self.chat.unacked_for(&user, now) {
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
}
