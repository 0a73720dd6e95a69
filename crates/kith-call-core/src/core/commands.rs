//! The user's commands.

use std::collections::BTreeSet;
use std::time::Instant;

use kith_proto::{ClientMessage, InviteAnswer, UserId};

use super::CallCore;
use crate::error::CallError;
use crate::events::{CallEvent, LeaveReason, RingOutcome};
use crate::io::{Command, MediaOp, PeerOp};
use crate::link::LinkId;
use crate::ringing::OutgoingRing;

impl CallCore {
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
                    (room.clone(), to.clone()),
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
                let rings = self.ringing.take_outgoing_in(&room);
                if rings.is_empty() {
                    return Err(CallError::NoSuchInvite { room });
                }
                for ring in rings {
                    self.end_ring(ring, RingOutcome::Canceled);
                }
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
                let (message, wire) = self.chat.compose(now, id, text, ts, users);
                self.send_chat(&wire, |_| true);
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

    /// Sends `wire` on every open chat channel of the users `to` picks.
    pub(super) fn send_chat(&mut self, wire: &str, to: impl Fn(&UserId) -> bool) {
        let open: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.chat_open && to(&l.remote.user))
            .map(|(id, _)| *id)
            .collect();
        for link in open {
            self.peer_op(link, PeerOp::SendChat(wire.to_owned()));
        }
    }
}
