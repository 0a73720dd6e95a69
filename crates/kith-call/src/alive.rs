//! How many peer connections are still in memory, closed or not.
//!
//! webrtc-rs has had reference cycles that kept a closed connection (its
//! sockets, tasks and buffers) alive for good (webrtc-rs issue 906, fixed in
//! 0.21.1). A count that stays above the open connections after a hang-up
//! is such a leak: the soak benchmark reads it after 100 joins and leaves.
//!
//! Counted by a guard inside our event handler, which webrtc-rs's
//! connection state owns to the end: the guard drops only when the whole
//! connection is freed. A process-wide counter because webrtc-rs frees the
//! connection on its own tasks, after our driver has let go of it.

use std::sync::atomic::{AtomicUsize, Ordering};

static ALIVE: AtomicUsize = AtomicUsize::new(0);

/// Peer connections of this process not yet freed, open or closed.
pub fn peer_connections_alive() -> usize {
    ALIVE.load(Ordering::Relaxed)
}

/// Counts one connection from its creation until webrtc-rs drops it.
#[derive(Debug)]
pub(crate) struct AliveGuard(());

impl AliveGuard {
    pub(crate) fn new() -> Self {
        ALIVE.fetch_add(1, Ordering::Relaxed);
        Self(())
    }
}

impl Drop for AliveGuard {
    fn drop(&mut self) {
        ALIVE.fetch_sub(1, Ordering::Relaxed);
    }
}
