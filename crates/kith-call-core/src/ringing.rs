//! Invites in both directions while they ring, with their deadlines. The
//! decisions (what ends a ring, what counts as missed) are the core's; this
//! keeps the books, bounded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kith_proto::{DisplayName, MediaKind, RequestId, RoomId, UserId};
use serde::Serialize;

/// Incoming invites kept ringing at once (the server controls how many come).
pub const MAX_INCOMING: usize = 16;
/// How long an incoming invite rings before it counts as missed.
pub const INCOMING_RING: Duration = Duration::from_secs(60);

/// Someone we are ringing.
#[derive(Debug, Clone, Serialize)]
pub struct OutgoingRing {
    pub room: RoomId,
    pub to: UserId,
    pub media: MediaKind,
    #[serde(skip)]
    pub deadline: Instant,
    #[serde(skip)]
    pub request: Option<RequestId>,
}

/// Someone ringing us.
#[derive(Debug, Clone, Serialize)]
pub struct IncomingRing {
    pub room: RoomId,
    pub from: UserId,
    pub from_name: DisplayName,
    pub media: MediaKind,
    #[serde(skip)]
    pub deadline: Instant,
}

#[derive(Debug, Default)]
pub struct Ringing {
    /// By room and callee: a group call rings several people into one room.
    pub outgoing: BTreeMap<(RoomId, UserId), OutgoingRing>,
    pub incoming: BTreeMap<RoomId, IncomingRing>,
}

impl Ringing {
    /// Adds an incoming invite; past the bound the one closest to its
    /// deadline is dropped (and returned, to be reported missed).
    pub fn add_incoming(&mut self, ring: IncomingRing) -> Option<IncomingRing> {
        self.incoming.insert(ring.room.clone(), ring);
        if self.incoming.len() <= MAX_INCOMING {
            return None;
        }
        let oldest = self
            .incoming
            .values()
            .min_by_key(|r| r.deadline)
            .map(|r| r.room.clone())?;
        self.incoming.remove(&oldest)
    }

    /// Takes every outgoing ring of `room`.
    pub fn take_outgoing_in(&mut self, room: &RoomId) -> Vec<OutgoingRing> {
        take_where(&mut self.outgoing, |r| r.room == *room)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let out = self.outgoing.values().map(|r| r.deadline);
        let inc = self.incoming.values().map(|r| r.deadline);
        out.chain(inc).min()
    }

    pub fn take_expired_outgoing(&mut self, now: Instant) -> Vec<OutgoingRing> {
        take_where(&mut self.outgoing, |r| r.deadline <= now)
    }

    pub fn take_expired_incoming(&mut self, now: Instant) -> Vec<IncomingRing> {
        take_where(&mut self.incoming, |r| r.deadline <= now)
    }
}

fn take_where<K: Ord + Clone, T>(map: &mut BTreeMap<K, T>, expired: impl Fn(&T) -> bool) -> Vec<T> {
    let keys: Vec<K> = map
        .iter()
        .filter(|(_, v)| expired(v))
        .map(|(k, _)| k.clone())
        .collect();
    keys.iter().filter_map(|key| map.remove(key)).collect()
}
