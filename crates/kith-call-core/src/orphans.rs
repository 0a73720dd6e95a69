//! Remote candidates that arrive before any connection to their session
//! exists (trickle ICE makes that normal). Bounded in sessions, candidates
//! per session and age, since a peer controls how many it sends.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kith_proto::{IceCandidate, SessionId};

pub const MAX_SESSIONS: usize = 16;
pub const MAX_PER_SESSION: usize = 32;
pub const MAX_AGE: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct OrphanCandidates {
    by_session: HashMap<SessionId, (Instant, Vec<IceCandidate>)>,
}

impl OrphanCandidates {
    pub fn push(&mut self, now: Instant, session: SessionId, candidate: IceCandidate) {
        if !self.by_session.contains_key(&session) && self.by_session.len() >= MAX_SESSIONS {
            let oldest = self
                .by_session
                .iter()
                .min_by_key(|(_, (since, _))| *since)
                .map(|(s, _)| s.clone());
            if let Some(oldest) = oldest {
                self.by_session.remove(&oldest);
            }
        }
        let (_, list) = self
            .by_session
            .entry(session)
            .or_insert_with(|| (now, Vec::new()));
        if list.len() < MAX_PER_SESSION {
            list.push(candidate);
        }
    }

    pub fn take(&mut self, session: &SessionId) -> Vec<IceCandidate> {
        self.by_session
            .remove(session)
            .map(|(_, list)| list)
            .unwrap_or_default()
    }

    pub fn expire(&mut self, now: Instant) {
        self.by_session
            .retain(|_, (since, _)| now.duration_since(*since) < MAX_AGE);
    }

    pub fn next_expiry(&self) -> Option<Instant> {
        self.by_session
            .values()
            .map(|(since, _)| *since + MAX_AGE)
            .min()
    }

    /// Sessions and candidates held.
    #[cfg(test)]
    pub fn counts(&self) -> (usize, usize) {
        let candidates = self.by_session.values().map(|(_, l)| l.len()).sum();
        (self.by_session.len(), candidates)
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_session.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_candidates_for_unknown_sessions_stays_bounded_and_expires() {
        let mut orphans = OrphanCandidates::default();
        let start = Instant::now();
        for n in 0..10_000u32 {
            let session = SessionId::new(format!("s{}", n % 100)).expect("session");
            let candidate = IceCandidate {
                candidate: format!("candidate:{n} 1 udp 1 127.0.0.1 {n} typ host"),
                sdp_mid: None,
                sdp_m_line_index: None,
                username_fragment: None,
            };
            orphans.push(start, session, candidate);
        }
        let (sessions, candidates) = orphans.counts();
        assert!(sessions <= MAX_SESSIONS);
        assert!(candidates <= MAX_SESSIONS * MAX_PER_SESSION);
        orphans.expire(start + MAX_AGE);
        assert!(orphans.is_empty());
    }
}
