//! Kith call engine: peer connections, signaling client, rooms, chat, stats. Filled in by its own issue.
