//! Timers: stats ticks, grace, ring deadlines, keyframes, broken paths.

use std::time::Instant;

use tracing::info;

use super::{CallCore, DETACHED_GRACE, ESTIMATE_INTERVAL, STATS_INTERVAL};
use crate::events::{CallEvent, InviteEnd, LeaveReason, MissedReason, RingOutcome};
use crate::ice_recovery::Step;
use crate::io::MediaOp;
use crate::link::LinkId;

impl CallCore {
    // ------------------------------------------------------------ timers

    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_stats {
            self.next_stats = now + STATS_INTERVAL;
            if !self.links.is_empty() {
                self.media(MediaOp::SampleStats);
            }
        }
        if now >= self.next_estimates {
            self.next_estimates = now + ESTIMATE_INTERVAL;
            if self.config.video.is_some() && self.links.values().any(|l| l.sending_video.is_some())
            {
                self.media(MediaOp::SampleEstimates);
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
        self.resend_chat(now);
    }

    /// Sends unacked chat messages again on the open channels of the users
    /// that still owe the ack (see `chat::RESEND_AFTER` for why).
    fn resend_chat(&mut self, now: Instant) {
        for (wire, users) in self.chat.due_resends(now) {
            self.send_chat(&wire, |user| users.contains(user));
        }
    }

    /// Restarts ICE on connections whose path broke, or gives them up.
    pub(super) fn recover_paths(&mut self, now: Instant) {
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
