//! Chat bookkeeping on the `chat` data channel: which of our messages each
//! peer still owes an ack for (re-sent when its channel is back), and which
//! ids we have already shown (duplicates dropped). Peers are keyed by user,
//! so a message survives a peer reconnecting with a new connection.
//!
//! A message not acked within [`RESEND_AFTER`] is sent again on the open
//! channel, a few of the oldest at a time (see the constant for why SCTP's
//! own retransmission is not enough).
//!
//! Everything a peer controls is bounded: frames over [`MAX_CHAT_FRAME_BYTES`]
//! are refused unread, and the set of seen ids keeps the newest
//! [`SEEN_LIMIT`] (an id older than that shown again is the price).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use kith_proto::{ChatFrame, FieldError, UserId};
use serde::Serialize;

/// Largest data-channel text read as a chat frame: 16 KiB of text leaves
/// room for JSON escapes and the envelope.
pub const MAX_CHAT_FRAME_BYTES: usize = 64 * 1024;
/// Ids remembered for duplicate detection.
pub const SEEN_LIMIT: usize = 4096;
/// Our messages kept for re-sending while a peer has not acked them.
pub const UNACKED_LIMIT: usize = 1024;
/// How long a message waits for its ack before it is sent again on a channel
/// that is still open. The channel is reliable, but webrtc-rs's SCTP doubles
/// its retransmission timeout on every expiry up to 60 s and keeps it doubled
/// until it times a round trip on new data; a chat channel is quiet, so at
/// 20 % loss an ack waited more than 25 s. A copy sent again is new data:
/// its SACK resets the timeout, and three of them trigger a fast retransmit.
/// (libwebrtc caps the same backoff at 3 s; webrtc-rs has no such setting.)
/// Receivers drop the duplicate by id and ack it again (protocol.md).
pub const RESEND_AFTER: Duration = Duration::from_secs(2);
/// Messages sent again per round, oldest first: the oldest is the one that
/// holds up an ordered channel, and a few copies bring SACKs back. The
/// others wait for their next round, so a long backlog costs little.
pub const RESEND_BATCH: usize = 4;

/// A chat message as the user sees it.
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub id: String,
    pub from: UserId,
    /// Milliseconds since the Unix epoch, sender's clock.
    pub ts: u64,
    pub text: String,
}

/// Counters for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChatCounts {
    pub sent: u64,
    /// Our messages acked by every peer they were addressed to.
    pub acked: u64,
    pub received: u64,
    pub duplicates: u64,
    /// Frames from peers that were not chat frames or were too large.
    pub refused: u64,
}

#[derive(Debug)]
struct Outgoing {
    text: String,
    waiting_for: HashSet<UserId>,
    /// When it goes again if still not acked.
    resend_at: Instant,
}

#[derive(Debug)]
pub struct ChatBook {
    me: UserId,
    /// Ours, in send order (the sequence number keeps the order for re-sends).
    outgoing: BTreeMap<u64, Outgoing>,
    ids: HashMap<String, u64>,
    next_seq: u64,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    counts: ChatCounts,
}

/// What the receive side should do with an incoming frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A new message: show it, and send `ack` back.
    New { message: ChatMessage, ack: String },
    /// Seen before: send `ack` back again, show nothing.
    Duplicate { ack: String },
    /// One of ours was acked; `complete` when every addressee has acked it.
    Acked { id: String, complete: bool },
    /// An ack for something we do not have (already complete): nothing.
    Ignored,
}

/// Why a frame from a peer was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("a {bytes}-byte frame is over the {MAX_CHAT_FRAME_BYTES}-byte limit")]
    TooLarge { bytes: usize },
    #[error("not a chat frame: {0}")]
    Malformed(#[from] FieldError),
}

impl ChatBook {
    pub fn new(me: UserId) -> Self {
        Self {
            me,
            outgoing: BTreeMap::new(),
            ids: HashMap::new(),
            next_seq: 0,
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            counts: ChatCounts::default(),
        }
    }

    pub fn counts(&self) -> ChatCounts {
        self.counts
    }

    /// Records a new message of ours addressed to `to`, sent `now`; returns
    /// the message and its wire text (to send on every open channel of those
    /// users).
    pub fn compose(
        &mut self,
        now: Instant,
        id: String,
        text: String,
        ts: u64,
        to: impl IntoIterator<Item = UserId>,
    ) -> (ChatMessage, String) {
        let message = ChatMessage {
            id,
            from: self.me.clone(),
            ts,
            text,
        };
        let wire = wire_text(&message);
        let waiting_for: HashSet<UserId> = to.into_iter().collect();
        self.counts.sent += 1;
        // Nobody to deliver to: it counts as sent, never as acked.
        if !waiting_for.is_empty() {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.ids.insert(message.id.clone(), seq);
            self.outgoing.insert(
                seq,
                Outgoing {
                    text: wire.clone(),
                    waiting_for,
                    resend_at: now + RESEND_AFTER,
                },
            );
            while self.outgoing.len() > UNACKED_LIMIT {
                if let Some((_, dropped)) = self.outgoing.pop_first() {
                    tracing::warn!(
                        waiting_for = dropped.waiting_for.len(),
                        "too many unacked chat messages; the oldest will not be re-sent"
                    );
                }
                self.ids.retain(|_, seq| self.outgoing.contains_key(seq));
            }
        }
        (message, wire)
    }

    /// Wire texts `user` has not acked yet, oldest first, to send `now` that
    /// a channel to that user opened.
    pub fn unacked_for(&mut self, user: &UserId, now: Instant) -> Vec<String> {
        self.outgoing
            .values_mut()
            .filter(|out| out.waiting_for.contains(user))
            .map(|out| {
                out.resend_at = now + RESEND_AFTER;
                out.text.clone()
            })
            .collect()
    }

    /// The messages due to go again `now`, each with the users that still
    /// owe its ack: at most [`RESEND_BATCH`], oldest first. Every due message
    /// gets its next time, sent or not, so a backlog is not sent in a burst.
    pub fn due_resends(&mut self, now: Instant) -> Vec<(String, Vec<UserId>)> {
        let mut due = Vec::new();
        for out in self.outgoing.values_mut() {
            if out.resend_at > now {
                continue;
            }
            out.resend_at = now + RESEND_AFTER;
            if due.len() < RESEND_BATCH {
                due.push((out.text.clone(), out.waiting_for.iter().cloned().collect()));
            }
        }
        due
    }

    /// When the next message is due to go again, if any waits for an ack.
    pub fn next_resend(&self) -> Option<Instant> {
        self.outgoing.values().map(|out| out.resend_at).min()
    }

    /// A user left for good: stop waiting for their acks.
    pub fn forget_user(&mut self, user: &UserId) {
        let mut done = Vec::new();
        for (seq, out) in &mut self.outgoing {
            if out.waiting_for.remove(user) && out.waiting_for.is_empty() {
                done.push(*seq);
            }
        }
        for seq in done {
            self.outgoing.remove(&seq);
        }
        self.ids.retain(|_, seq| self.outgoing.contains_key(seq));
    }

    /// A text arrived from `user` on their chat channel.
    pub fn receive_text(&mut self, user: &UserId, text: &str) -> Result<Incoming, Refused> {
        if text.len() > MAX_CHAT_FRAME_BYTES {
            self.counts.refused += 1;
            return Err(Refused::TooLarge { bytes: text.len() });
        }
        match ChatFrame::parse(text) {
            Ok(frame) => Ok(self.receive(user, frame)),
            Err(err) => {
                self.counts.refused += 1;
                Err(err.into())
            }
        }
    }

    /// A parsed frame arrived from `user`.
    pub fn receive(&mut self, user: &UserId, frame: ChatFrame) -> Incoming {
        match frame {
            ChatFrame::Chat { id, from, ts, text } => {
                if !self.remember(&id) {
                    self.counts.duplicates += 1;
                    return Incoming::Duplicate { ack: ack_text(&id) };
                }
                self.counts.received += 1;
                Incoming::New {
                    ack: ack_text(&id),
                    message: ChatMessage { id, from, ts, text },
                }
            }
            ChatFrame::Ack { id } => {
                let Some(seq) = self.ids.get(&id).copied() else {
                    return Incoming::Ignored;
                };
                let Some(out) = self.outgoing.get_mut(&seq) else {
                    return Incoming::Ignored;
                };
                if !out.waiting_for.remove(user) {
                    return Incoming::Ignored;
                }
                let complete = out.waiting_for.is_empty();
                if complete {
                    self.outgoing.remove(&seq);
                    self.ids.remove(&id);
                    self.counts.acked += 1;
                }
                Incoming::Acked { id, complete }
            }
        }
    }

    /// Whether `id` is new; remembers it, forgetting the oldest past the limit.
    fn remember(&mut self, id: &str) -> bool {
        if !self.seen.insert(id.to_owned()) {
            return false;
        }
        self.seen_order.push_back(id.to_owned());
        while self.seen_order.len() > SEEN_LIMIT {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// Ids remembered for duplicate detection (for tests of the bound).
    pub fn seen_len(&self) -> usize {
        self.seen.len()
    }
}

fn wire_text(message: &ChatMessage) -> String {
    let frame = ChatFrame::Chat {
        id: message.id.clone(),
        from: message.from.clone(),
        ts: message.ts,
        text: message.text.clone(),
    };
    serde_json::to_string(&frame).unwrap_or_default()
}

fn ack_text(id: &str) -> String {
    serde_json::to_string(&ChatFrame::Ack { id: id.to_owned() }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::new(name).expect("valid user")
    }

    fn parse(text: &str) -> ChatFrame {
        ChatFrame::parse(text).expect("a chat frame")
    }

    /// The clock every test starts from.
    fn start() -> Instant {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *START.get_or_init(Instant::now)
    }

    fn compose(book: &mut ChatBook, text: &str, to: &[&str]) -> (ChatMessage, String) {
        let id = uuid::Uuid::new_v4().to_string();
        book.compose(start(), id, text.into(), 1, to.iter().map(|u| user(u)))
    }

    /// `count` messages to bob; their wire texts.
    fn compose_to_bob(book: &mut ChatBook, count: usize) -> Vec<String> {
        (0..count)
            .map(|n| compose(book, &format!("m{n}"), &["bob"]).1)
            .collect()
    }

    #[test]
    fn a_message_is_acked_when_every_addressee_acks() {
        let mut alice = ChatBook::new(user("alice"));
        let (message, wire) = compose(&mut alice, "hi", &["bob", "carol"]);
        let mut bob = ChatBook::new(user("bob"));
        let Incoming::New { ack, message: got } = bob.receive(&user("alice"), parse(&wire)) else {
            panic!("bob should see a new message");
        };
        assert_eq!(got, message);
        assert_eq!(
            alice.receive(&user("bob"), parse(&ack)),
            Incoming::Acked {
                id: message.id.clone(),
                complete: false
            }
        );
        assert_eq!(alice.counts().acked, 0);
        assert_eq!(
            alice.unacked_for(&user("carol"), start()),
            vec![wire.clone()]
        );
        assert!(alice.unacked_for(&user("bob"), start()).is_empty());
        alice.receive(&user("carol"), parse(&ack));
        assert_eq!(alice.counts().acked, 1);
        // A late duplicate ack changes nothing.
        assert_eq!(
            alice.receive(&user("carol"), parse(&ack)),
            Incoming::Ignored
        );
    }

    #[test]
    fn duplicates_are_dropped_but_acked_again() {
        let mut alice = ChatBook::new(user("alice"));
        let (_, wire) = compose(&mut alice, "hi", &["bob"]);
        let mut bob = ChatBook::new(user("bob"));
        assert!(matches!(
            bob.receive(&user("alice"), parse(&wire)),
            Incoming::New { .. }
        ));
        assert!(matches!(
            bob.receive(&user("alice"), parse(&wire)),
            Incoming::Duplicate { .. }
        ));
        assert_eq!(bob.counts().received, 1);
        assert_eq!(bob.counts().duplicates, 1);
    }

    #[test]
    fn unacked_messages_come_back_in_order_and_stop_when_the_user_is_forgotten() {
        let mut alice = ChatBook::new(user("alice"));
        let wires = compose_to_bob(&mut alice, 5);
        assert_eq!(alice.unacked_for(&user("bob"), start()), wires);
        alice.forget_user(&user("bob"));
        assert!(alice.unacked_for(&user("bob"), start()).is_empty());
        assert_eq!(alice.counts().acked, 0);
    }

    #[test]
    fn the_seen_set_stays_bounded_under_a_flood_of_new_ids() {
        let mut bob = ChatBook::new(user("bob"));
        for n in 0..(SEEN_LIMIT * 3) {
            let frame = ChatFrame::Chat {
                id: format!("id-{n}"),
                from: user("mallory"),
                ts: 0,
                text: "x".into(),
            };
            bob.receive(&user("mallory"), frame);
        }
        assert_eq!(bob.seen_len(), SEEN_LIMIT);
        assert_eq!(bob.counts().received, (SEEN_LIMIT * 3) as u64);
    }

    #[test]
    fn oversized_and_malformed_frames_are_refused_and_counted() {
        let mut bob = ChatBook::new(user("bob"));
        let huge = "x".repeat(MAX_CHAT_FRAME_BYTES + 1);
        assert!(matches!(
            bob.receive_text(&user("mallory"), &huge),
            Err(Refused::TooLarge { .. })
        ));
        assert!(matches!(
            bob.receive_text(&user("mallory"), "{\"type\":\"nope\"}"),
            Err(Refused::Malformed(_))
        ));
        let long_text = format!(
            "{{\"type\":\"chat\",\"id\":\"a\",\"from\":\"m\",\"ts\":0,\"text\":\"{}\"}}",
            "y".repeat(kith_proto::MAX_CHAT_TEXT_BYTES + 1)
        );
        assert!(bob.receive_text(&user("mallory"), &long_text).is_err());
        assert_eq!(bob.counts().refused, 3);
        // The book still works afterwards.
        let ok = r#"{"type":"chat","id":"b","from":"m","ts":0,"text":"hi"}"#;
        assert!(matches!(
            bob.receive_text(&user("mallory"), ok),
            Ok(Incoming::New { .. })
        ));
    }

    #[test]
    fn unacked_messages_are_bounded() {
        let mut alice = ChatBook::new(user("alice"));
        compose_to_bob(&mut alice, UNACKED_LIMIT + 10);
        assert_eq!(
            alice.unacked_for(&user("bob"), start()).len(),
            UNACKED_LIMIT
        );
    }

    #[test]
    fn an_unacked_message_goes_again_every_resend_interval_until_acked() {
        let mut alice = ChatBook::new(user("alice"));
        let (message, wire) = compose(&mut alice, "hi", &["bob"]);
        assert_eq!(alice.next_resend(), Some(start() + RESEND_AFTER));
        let early = start() + RESEND_AFTER - Duration::from_millis(1);
        assert!(alice.due_resends(early).is_empty());
        let first = start() + RESEND_AFTER;
        assert_eq!(
            alice.due_resends(first),
            vec![(wire.clone(), vec![user("bob")])]
        );
        assert!(
            alice.due_resends(first).is_empty(),
            "not twice in one round"
        );
        assert_eq!(alice.next_resend(), Some(first + RESEND_AFTER));
        assert_eq!(alice.due_resends(first + RESEND_AFTER).len(), 1);
        alice.receive(&user("bob"), parse(&ack_text(&message.id)));
        assert_eq!(alice.next_resend(), None);
        assert!(alice.due_resends(first + 10 * RESEND_AFTER).is_empty());
    }

    #[test]
    fn only_the_oldest_few_go_again_per_round_and_the_rest_wait_a_round() {
        let mut alice = ChatBook::new(user("alice"));
        let wires = compose_to_bob(&mut alice, 10);
        let round = start() + RESEND_AFTER;
        let sent: Vec<String> = alice
            .due_resends(round)
            .into_iter()
            .map(|(w, _)| w)
            .collect();
        assert_eq!(sent, wires[..RESEND_BATCH]);
        // The others were due too: they are not sent in a burst right after.
        assert!(
            alice
                .due_resends(round + Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(alice.next_resend(), Some(round + RESEND_AFTER));
    }

    #[test]
    fn a_message_sent_again_on_a_new_channel_waits_a_full_interval() {
        let mut alice = ChatBook::new(user("alice"));
        compose(&mut alice, "hi", &["bob"]);
        let reopened = start() + Duration::from_millis(1500);
        assert_eq!(alice.unacked_for(&user("bob"), reopened).len(), 1);
        assert!(alice.due_resends(start() + RESEND_AFTER).is_empty());
        assert_eq!(alice.next_resend(), Some(reopened + RESEND_AFTER));
    }
}
