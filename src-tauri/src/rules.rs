//! How each engine event changes the view, and what else it asks for
//! (storage, ringing, leaving): a pure function, so every rule has a test
//! and the forwarder only carries the effects out.

use kith_call::CallEvent;
use kith_call_core::{LeaveReason, RingOutcome};
use kith_proto::MediaKind;

use crate::view::{CurrentCall, IncomingRing, OutgoingRing, Peer, View, conversation_of_room};

/// Something to do besides updating the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A chat message to keep; ours (`outgoing`) come before their acks.
    SaveMessage {
        outgoing: bool,
        conversation: String,
        id: String,
        from: String,
        text: String,
        sent_ms: u64,
    },
    MarkAcked {
        id: String,
    },
    /// A call began: record it and give its record id to `set_record`.
    RecordStart {
        room: String,
        peers: Vec<String>,
        incoming: bool,
        media: MediaKind,
    },
    RecordEnd {
        record: i64,
        outcome: String,
    },
    /// A call that never began (declined, missed, no answer).
    RecordNotStarted {
        room: String,
        peer: String,
        incoming: bool,
        media: MediaKind,
        outcome: String,
    },
    /// The other side of a 1:1 call is gone for good: hang up too.
    Leave {
        room: String,
    },
    /// Start or stop the ring tone.
    RingTone(bool),
    /// Close the camera: the call it was opened for did not happen.
    CameraOff,
    /// Tell the user (a desktop notification when the window is not focused).
    Notify {
        title: String,
        body: String,
    },
}

/// Whether the event changes the view (the UI gets it anew) .
pub fn apply(view: &mut View, event: &CallEvent) -> (bool, Vec<Effect>) {
    let mut effects = Vec::new();
    let changed = match event {
        CallEvent::SignalingConnected { session, online } => {
            view.signaling.connected = true;
            view.signaling.session = Some(session.as_str().into());
            view.signaling.error = None;
            view.online = online
                .iter()
                .map(|u| (u.user.as_str().to_string(), u.name.as_str().to_string()))
                .collect();
            true
        }
        CallEvent::SignalingLost { reason } => {
            view.signaling.connected = false;
            view.signaling.session = None;
            view.signaling.error = Some(reason.clone());
            view.online.clear();
            true
        }
        CallEvent::Presence { user, name, online } => {
            if *online {
                view.online
                    .insert(user.as_str().into(), name.as_str().into());
            } else {
                view.online.remove(user.as_str());
            }
            true
        }
        CallEvent::Ringing { room, to, media } => {
            let known = view
                .ringing
                .iter()
                .any(|r| r.room == room.as_str() && r.to == to.as_str());
            if !known && view.ringing.len() < MAX_RINGS_SHOWN {
                view.ringing.push(OutgoingRing {
                    room: room.as_str().into(),
                    to: to.as_str().into(),
                    media: *media,
                });
            }
            true
        }
        CallEvent::RingEnded { room, to, outcome } => {
            let position = view
                .ringing
                .iter()
                .position(|r| r.room == room.as_str() && r.to == to.as_str());
            let media = position
                .map(|index| view.ringing.remove(index))
                .map_or(MediaKind::Video, |ring| ring.media);
            let in_that_room = view.call.as_ref().is_some_and(|c| c.room == room.as_str());
            if *outcome != RingOutcome::Accepted {
                effects.push(Effect::RecordNotStarted {
                    room: room.as_str().into(),
                    peer: to.as_str().into(),
                    incoming: false,
                    media,
                    outcome: ring_outcome_word(*outcome).into(),
                });
                view.last_end = Some(format!("{to}: {}", ring_outcome_text(*outcome)));
                if view.call.is_none() && view.ringing.is_empty() {
                    view.camera_on = false;
                    effects.push(Effect::CameraOff);
                }
            } else if !in_that_room {
                // Joined comes next; remember whom this room is with.
                view.answered = Some(OutgoingRing {
                    room: room.as_str().into(),
                    to: to.as_str().into(),
                    media,
                });
            }
            true
        }
        CallEvent::Invite {
            room,
            from,
            from_name,
            media,
        } => {
            if view.invites.len() < MAX_INVITES_SHOWN {
                view.invites.push(IncomingRing {
                    room: room.as_str().into(),
                    from: from.as_str().into(),
                    from_name: from_name.as_str().into(),
                    media: *media,
                });
            }
            effects.push(Effect::RingTone(true));
            effects.push(Effect::Notify {
                title: format!("{from_name} is calling"),
                body: match media {
                    MediaKind::Audio => "audio call".into(),
                    MediaKind::Video => "video call".into(),
                },
            });
            true
        }
        CallEvent::InviteCanceled { room, .. } => {
            remove_invite(view, room.as_str(), &mut effects);
            true
        }
        CallEvent::MissedCall {
            room,
            from,
            media,
            reason,
            ..
        } => {
            remove_invite(view, room.as_str(), &mut effects);
            effects.push(Effect::RecordNotStarted {
                room: room.as_str().into(),
                peer: from.as_str().into(),
                incoming: true,
                media: *media,
                outcome: format!("missed ({})", serde_plain(reason)),
            });
            true
        }
        CallEvent::Joined { room, peers } => {
            let room_text = room.as_str().to_string();
            let rang = view
                .answered
                .take()
                .filter(|ring| ring.room == room_text)
                .or_else(|| {
                    // Joined before the reply's RingEnded: the one rung is who it is with.
                    let here: Vec<usize> = (0..view.ringing.len())
                        .filter(|&i| view.ringing[i].room == room_text)
                        .collect();
                    match here.as_slice() {
                        [only] => Some(view.ringing.remove(*only)),
                        _ => None,
                    }
                });
            let answered = view.invites.iter().position(|inv| inv.room == room_text);
            let answered = answered.map(|index| view.invites.remove(index));
            if answered.is_some() && view.invites.is_empty() {
                effects.push(Effect::RingTone(false));
            }
            let (conversation, media, incoming) = match (&rang, &answered) {
                (Some(ring), _) => (ring.to.clone(), ring.media, false),
                (None, Some(invite)) => (invite.from.clone(), invite.media, true),
                (None, None) => (conversation_of_room(&room_text), MediaKind::Video, false),
            };
            let mut call = CurrentCall {
                room: room_text.clone(),
                conversation,
                media,
                record: None,
                peers: Default::default(),
            };
            for peer in peers.iter().take(MAX_PEERS_SHOWN) {
                call.peers
                    .insert(peer.session.as_str().into(), new_peer(peer));
            }
            // A 1:1 call is with the one rung (or ringing); a room, with whoever is there.
            let with = match (&rang, &answered) {
                (Some(ring), _) => vec![ring.to.clone()],
                (None, Some(invite)) => vec![invite.from.clone()],
                (None, None) => peers.iter().map(|p| p.user.as_str().to_string()).collect(),
            };
            effects.push(Effect::RecordStart {
                room: room_text,
                peers: with,
                incoming,
                media,
            });
            view.call = Some(call);
            view.last_end = None;
            true
        }
        CallEvent::PeerJoined { room, peer } => match &mut view.call {
            Some(call) if call.room == room.as_str() && call.peers.len() < MAX_PEERS_SHOWN => {
                call.peers
                    .insert(peer.session.as_str().into(), new_peer(peer));
                true
            }
            _ => false,
        },
        CallEvent::PeerConnected {
            session,
            candidate_type,
            ..
        } => with_peer(view, session.as_str(), |peer| {
            peer.connected = true;
            peer.reconnecting = false;
            peer.candidate_type.clone_from(candidate_type);
        }),
        CallEvent::PeerReconnecting { session, .. } => {
            with_peer(view, session.as_str(), |peer| peer.reconnecting = true)
        }
        CallEvent::PeerReconnected { session, .. } => {
            with_peer(view, session.as_str(), |peer| peer.reconnecting = false)
        }
        CallEvent::PeerRebound {
            old_session,
            session,
            ..
        } => match &mut view.call {
            Some(call) => match call.peers.remove(old_session.as_str()) {
                Some(peer) => {
                    call.peers.insert(session.as_str().into(), peer);
                    true
                }
                None => false,
            },
            None => false,
        },
        CallEvent::TrackStarted {
            session,
            kind,
            codec,
            ..
        } => with_peer(view, session.as_str(), |peer| match kind {
            kith_call_core::TrackKind::Video => peer.video_codec = Some(codec.clone()),
            kith_call_core::TrackKind::Audio => peer.audio_codec = Some(codec.clone()),
        }),
        CallEvent::PeerLeft {
            session,
            user,
            reason,
        } => {
            let Some(call) = &mut view.call else {
                return (false, effects);
            };
            if call.peers.remove(session.as_str()).is_none() {
                return (false, effects);
            }
            let one_to_one = !call.conversation.starts_with("room:");
            if one_to_one && call.peers.is_empty() && *reason != LeaveReason::WeLeft {
                effects.push(Effect::Leave {
                    room: call.room.clone(),
                });
                view.last_end = Some(format!("{user} {}", leave_text(*reason)));
            }
            true
        }
        CallEvent::ChatReceived { message } | CallEvent::ChatSent { message } => {
            let outgoing = matches!(event, CallEvent::ChatSent { .. });
            let conversation = view.call.as_ref().map_or_else(
                || message.from.as_str().to_string(),
                |c| c.conversation.clone(),
            );
            effects.push(Effect::SaveMessage {
                outgoing,
                conversation,
                id: message.id.clone(),
                from: message.from.as_str().into(),
                text: message.text.clone(),
                sent_ms: message.ts,
            });
            false
        }
        CallEvent::ChatAcked { id } => {
            effects.push(Effect::MarkAcked { id: id.clone() });
            false
        }
        CallEvent::InviteReply { .. } | CallEvent::Stats { .. } | CallEvent::Error { .. } => false,
    };
    (changed, effects)
}

/// The view after we hung up (or the call ended otherwise).
pub fn end_call(view: &mut View, outcome: &str) -> Option<Effect> {
    let call = view.call.take()?;
    view.last_end.get_or_insert_with(|| "call ended".into());
    call.record.map(|record| Effect::RecordEnd {
        record,
        outcome: outcome.into(),
    })
}

/// A group call rings at most the mesh limit.
const MAX_RINGS_SHOWN: usize = 8;
/// Someone hostile could ring us from many rooms at once; show a few.
const MAX_INVITES_SHOWN: usize = 8;
/// The mesh limit of a room is far below this; it only bounds the map.
const MAX_PEERS_SHOWN: usize = 32;

fn new_peer(peer: &kith_proto::PeerInfo) -> Peer {
    Peer {
        user: peer.user.as_str().into(),
        name: peer.name.as_str().into(),
        connected: false,
        reconnecting: false,
        video_codec: None,
        audio_codec: None,
        candidate_type: None,
    }
}

fn with_peer(view: &mut View, session: &str, change: impl FnOnce(&mut Peer)) -> bool {
    match view
        .call
        .as_mut()
        .and_then(|call| call.peers.get_mut(session))
    {
        Some(peer) => {
            change(peer);
            true
        }
        None => false,
    }
}

fn remove_invite(view: &mut View, room: &str, effects: &mut Vec<Effect>) {
    let before = view.invites.len();
    view.invites.retain(|invite| invite.room != room);
    if before != view.invites.len() && view.invites.is_empty() {
        effects.push(Effect::RingTone(false));
    }
}

fn serde_plain<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn ring_outcome_word(outcome: RingOutcome) -> &'static str {
    match outcome {
        RingOutcome::Accepted => "accepted",
        RingOutcome::Declined => "declined",
        RingOutcome::Busy => "busy",
        RingOutcome::Offline => "offline",
        RingOutcome::NoAnswer => "no answer",
        RingOutcome::Canceled => "canceled",
    }
}

fn ring_outcome_text(outcome: RingOutcome) -> &'static str {
    match outcome {
        RingOutcome::Accepted => "accepted",
        RingOutcome::Declined => "declined the call",
        RingOutcome::Busy => "is busy",
        RingOutcome::Offline => "is offline",
        RingOutcome::NoAnswer => "did not answer",
        RingOutcome::Canceled => "call canceled",
    }
}

fn leave_text(reason: LeaveReason) -> &'static str {
    match reason {
        LeaveReason::Left | LeaveReason::CallEnded | LeaveReason::Closed => "hung up",
        LeaveReason::WeLeft => "call ended",
        LeaveReason::Failed | LeaveReason::CouldNotConnect => "could not be reached",
        LeaveReason::DidNotComeBack | LeaveReason::Gone => "was disconnected",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use kith_call_core::ChatMessage;
    use kith_proto::{DisplayName, PeerInfo, RoomId, SessionId, UserId};

    use super::*;

    fn room() -> RoomId {
        RoomId::new("call-a-1").unwrap()
    }
    fn bob() -> UserId {
        UserId::new("bob").unwrap()
    }
    fn bob_peer() -> PeerInfo {
        PeerInfo {
            session: SessionId::new("s-bob").unwrap(),
            user: bob(),
            name: DisplayName::new("Bob").unwrap(),
        }
    }

    fn ring_bob(view: &mut View, media: MediaKind) {
        apply(
            view,
            &CallEvent::Ringing {
                room: room(),
                to: bob(),
                media,
            },
        );
    }

    fn join_with_bob(view: &mut View) -> Vec<Effect> {
        joined(view, room(), vec![bob_peer()])
    }

    fn joined(view: &mut View, room: RoomId, peers: Vec<PeerInfo>) -> Vec<Effect> {
        apply(view, &CallEvent::Joined { room, peers }).1
    }

    fn bob_left(view: &mut View) -> Vec<Effect> {
        let left = CallEvent::PeerLeft {
            session: bob_peer().session,
            user: bob(),
            reason: LeaveReason::Left,
        };
        apply(view, &left).1
    }

    #[test]
    fn an_accepted_ring_becomes_a_one_to_one_call_keyed_by_the_callee() {
        let mut view = View::default();
        ring_bob(&mut view, MediaKind::Video);
        apply(
            &mut view,
            &CallEvent::RingEnded {
                room: room(),
                to: bob(),
                outcome: RingOutcome::Accepted,
            },
        );
        let effects = join_with_bob(&mut view);
        let call = view.call.as_ref().unwrap();
        assert_eq!(call.conversation, "bob");
        assert_eq!(call.peers.len(), 1);
        assert!(view.ringing.is_empty());
        assert!(
            matches!(&effects[0], Effect::RecordStart { incoming: false, peers, .. } if peers == &["bob"])
        );
    }

    #[test]
    fn a_declined_ring_is_recorded_and_said() {
        let mut view = View::default();
        ring_bob(&mut view, MediaKind::Audio);
        let (_, effects) = apply(
            &mut view,
            &CallEvent::RingEnded {
                room: room(),
                to: bob(),
                outcome: RingOutcome::Declined,
            },
        );
        assert!(view.ringing.is_empty());
        assert_eq!(view.last_end.as_deref(), Some("bob: declined the call"));
        assert!(
            matches!(&effects[0], Effect::RecordNotStarted { outcome, media: MediaKind::Audio, .. } if outcome == "declined")
        );
    }

    #[test]
    fn an_answered_invite_stops_the_ring_tone_and_keys_the_call_by_the_caller() {
        let mut view = View::default();
        let (_, effects) = apply(
            &mut view,
            &CallEvent::Invite {
                room: room(),
                from: bob(),
                from_name: DisplayName::new("Bob").unwrap(),
                media: MediaKind::Video,
            },
        );
        assert!(effects.contains(&Effect::RingTone(true)));
        let effects = join_with_bob(&mut view);
        assert!(effects.contains(&Effect::RingTone(false)));
        assert_eq!(view.call.as_ref().unwrap().conversation, "bob");
        assert!(view.invites.is_empty());
    }

    #[test]
    fn the_other_side_hanging_up_a_one_to_one_call_ends_ours() {
        let mut view = View::default();
        ring_bob(&mut view, MediaKind::Video);
        join_with_bob(&mut view);
        let effects = bob_left(&mut view);
        assert_eq!(
            effects,
            vec![Effect::Leave {
                room: room().as_str().into()
            }]
        );
        assert_eq!(view.last_end.as_deref(), Some("bob hung up"));
    }

    #[test]
    fn a_group_room_stays_when_everyone_else_leaves() {
        let mut view = View::default();
        let group = RoomId::new("team").unwrap();
        joined(&mut view, group.clone(), vec![bob_peer()]);
        assert_eq!(view.call.as_ref().unwrap().conversation, "room:team");
        let effects = bob_left(&mut view);
        assert!(effects.is_empty());
        assert!(view.call.is_some());
    }

    #[test]
    fn chat_lands_in_the_call_conversation_and_invites_are_bounded() {
        let mut view = View::default();
        joined(&mut view, RoomId::new("team").unwrap(), vec![]);
        let message = ChatMessage {
            id: "m1".into(),
            from: bob(),
            ts: 5,
            text: "<b>hi</b>".into(),
        };
        let (_, effects) = apply(&mut view, &CallEvent::ChatReceived { message });
        assert!(
            matches!(&effects[0], Effect::SaveMessage { outgoing: false, conversation, text, .. } if conversation == "room:team" && text == "<b>hi</b>")
        );
        for n in 0..100 {
            apply(
                &mut view,
                &CallEvent::Invite {
                    room: RoomId::new(format!("r{n}")).unwrap(),
                    from: bob(),
                    from_name: DisplayName::new("Bob").unwrap(),
                    media: MediaKind::Video,
                },
            );
        }
        assert_eq!(view.invites.len(), MAX_INVITES_SHOWN);
    }

    #[test]
    fn a_group_call_keys_chat_by_room_and_drops_each_ring_as_it_ends() {
        let mut view = View::default();
        let group = RoomId::new("group-a-1").unwrap();
        joined(&mut view, group.clone(), vec![]);
        let carol = UserId::new("carol").unwrap();
        for to in [bob(), carol.clone()] {
            apply(
                &mut view,
                &CallEvent::Ringing {
                    room: group.clone(),
                    to,
                    media: MediaKind::Video,
                },
            );
        }
        assert_eq!(view.ringing.len(), 2);
        apply(
            &mut view,
            &CallEvent::RingEnded {
                room: group.clone(),
                to: bob(),
                outcome: RingOutcome::Accepted,
            },
        );
        apply(
            &mut view,
            &CallEvent::RingEnded {
                room: group.clone(),
                to: carol,
                outcome: RingOutcome::Declined,
            },
        );
        assert!(view.ringing.is_empty());
        assert!(
            view.answered.is_none(),
            "already in that room: nothing to wait for"
        );
        assert_eq!(view.call.as_ref().unwrap().conversation, "room:group-a-1");
    }

    #[test]
    fn presence_follows_the_server() {
        let mut view = View::default();
        apply(
            &mut view,
            &CallEvent::Presence {
                user: bob(),
                name: DisplayName::new("Bob").unwrap(),
                online: true,
            },
        );
        assert_eq!(view.online.get("bob").map(String::as_str), Some("Bob"));
        apply(
            &mut view,
            &CallEvent::Presence {
                user: bob(),
                name: DisplayName::new("Bob").unwrap(),
                online: false,
            },
        );
        assert!(view.online.is_empty());
    }
}
