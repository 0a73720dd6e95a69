//! Ringing in both directions.

use std::time::Instant;

use kith_proto::{ClientMessage, InviteAnswer, RoomId, UserId};
use tracing::info;

use super::CallCore;
use crate::events::{CallEvent, MissedReason, RingOutcome};
use crate::ringing::{IncomingRing, OutgoingRing};

impl CallCore {
    // ------------------------------------------------------------ invites

    pub(super) fn in_call(&self) -> bool {
        !self.links.is_empty() || !self.rooms.is_empty() || !self.ringing.outgoing.is_empty()
    }

    pub(super) fn incoming_invite(
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

    pub(super) fn missed(&mut self, ring: IncomingRing, reason: MissedReason) {
        self.emit(CallEvent::MissedCall {
            room: ring.room,
            from: ring.from,
            from_name: ring.from_name,
            media: ring.media,
            reason,
        });
    }

    pub(super) fn join(&mut self, room: RoomId) {
        if self.rooms.insert(room.clone()) {
            self.signal(ClientMessage::Join { room });
        }
    }

    pub(super) fn end_ring(&mut self, ring: OutgoingRing, outcome: RingOutcome) {
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
}
