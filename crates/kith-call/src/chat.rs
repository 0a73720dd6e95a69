//! Chat bookkeeping on the `chat` data channel, sans-IO: which of our
//! messages each peer still owes an ack for (re-sent when its channel is back),
//! and which ids we have already shown (duplicates dropped). Peers are keyed by
//! user, so a message survives a peer reconnecting with a new connection.

use std::collections::{BTreeMap, HashMap, HashSet};

use kith_proto::{ChatFrame, UserId};
use serde::Serialize;

/// A chat message as the user sees it.
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
}

#[derive(Debug)]
struct Outgoing {
    text: String,
    waiting_for: HashSet<UserId>,
}

#[derive(Debug)]
pub struct ChatBook {
    me: UserId,
    /// Ours, in send order (the sequence number keeps the order for re-sends).
    outgoing: BTreeMap<u64, Outgoing>,
    ids: HashMap<String, u64>,
    next_seq: u64,
    seen: HashSet<String>,
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

impl ChatBook {
    pub fn new(me: UserId) -> Self {
        Self {
            me,
            outgoing: BTreeMap::new(),
            ids: HashMap::new(),
            next_seq: 0,
            seen: HashSet::new(),
            counts: ChatCounts::default(),
        }
    }

    pub fn counts(&self) -> ChatCounts {
        self.counts
    }

    /// Records a new message of ours addressed to `to`; returns the message
    /// and its wire text (to send on every open channel of those users).
    pub fn compose(
        &mut self,
        text: String,
        ts: u64,
        to: impl IntoIterator<Item = UserId>,
    ) -> (ChatMessage, String) {
        let message = ChatMessage {
            id: uuid::Uuid::new_v4().to_string(),
            from: self.me.clone(),
            ts,
            text,
        };
        let wire = wire_text(&message);
        let waiting_for: HashSet<UserId> = to.into_iter().collect();
        self.counts.sent += 1;
        if waiting_for.is_empty() {
            // Nobody to deliver to: it counts as sent, never as acked.
        } else {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.ids.insert(message.id.clone(), seq);
            self.outgoing.insert(
                seq,
                Outgoing {
                    text: wire.clone(),
                    waiting_for,
                },
            );
        }
        (message, wire)
    }

    /// Wire texts `user` has not acked yet, oldest first: send them when a
    /// channel to that user opens.
    pub fn unacked_for(&self, user: &UserId) -> Vec<String> {
        self.outgoing
            .values()
            .filter(|out| out.waiting_for.contains(user))
            .map(|out| out.text.clone())
            .collect()
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

    /// A text frame arrived from `user` on their chat channel.
    pub fn receive(&mut self, user: &UserId, frame: ChatFrame) -> Incoming {
        match frame {
            ChatFrame::Chat { id, from, ts, text } => {
                if !self.seen.insert(id.clone()) {
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

    #[test]
    fn a_message_is_acked_when_every_addressee_acks() {
        let mut alice = ChatBook::new(user("alice"));
        let (message, wire) = alice.compose("hi".into(), 1, [user("bob"), user("carol")]);
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
        assert_eq!(alice.unacked_for(&user("carol")), vec![wire.clone()]);
        assert!(alice.unacked_for(&user("bob")).is_empty());
        alice.receive(&user("carol"), parse(&ack));
        assert_eq!(
            alice.counts(),
            ChatCounts {
                sent: 1,
                acked: 1,
                received: 0,
                duplicates: 0
            }
        );
        // A late duplicate ack changes nothing.
        assert_eq!(
            alice.receive(&user("carol"), parse(&ack)),
            Incoming::Ignored
        );
    }

    #[test]
    fn duplicates_are_dropped_but_acked_again() {
        let mut alice = ChatBook::new(user("alice"));
        let (_, wire) = alice.compose("hi".into(), 1, [user("bob")]);
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
        let wires: Vec<String> = (0..5)
            .map(|n| alice.compose(format!("m{n}"), n, [user("bob")]).1)
            .collect();
        assert_eq!(alice.unacked_for(&user("bob")), wires);
        alice.forget_user(&user("bob"));
        assert!(alice.unacked_for(&user("bob")).is_empty());
        assert_eq!(alice.counts().acked, 0);
    }
}
