//! Every rule of the call core on simulated time: two and three cores wired
//! through signaling-dev's real `Hub`, with fake peer connections. No
//! sockets, no sleeps; the whole suite runs in well under a second.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use kith_call_core::chat::RESEND_AFTER;
use kith_call_core::{
    CallEvent, Command, CoreConfig, DETACHED_GRACE, IceState, InviteEnd, LeaveReason, MediaOp,
    MissedReason, PeerFact, PeerOp, RingOutcome,
};
use kith_proto::{ClientMessage, IceCandidate, InviteAnswer, MediaKind, ServerMessage};
use support::{Net, STEP, room, user};

const SECOND: Duration = Duration::from_secs(1);

fn join(net: &mut Net, name: &str, room_name: &str) {
    net.command(name, Command::Join(room(room_name))).unwrap();
}

/// Two (or more) clients in `r1`, joined in the order given, connected.
fn call(names: &[&str]) -> Net {
    let mut net = Net::new();
    for name in names {
        net.add(name);
    }
    net.settle();
    for name in names {
        join(&mut net, name, "r1");
    }
    let peers = names.len() - 1;
    assert!(
        net.run_until(5 * SECOND, |net| net
            .clients
            .iter()
            .all(|c| c.connected_pcs() == peers)),
        "the call did not connect"
    );
    net
}

fn offers_sent(net: &Net, name: &str) -> usize {
    net.client(name)
        .sent
        .iter()
        .filter(|o| matches!(o.message, ClientMessage::Offer { .. }))
        .count()
}

/// Nobody saw a connection torn down.
fn nobody_left(net: &Net, names: &[&str]) -> bool {
    names.iter().all(|name| {
        !net.client(name)
            .has(|e| matches!(e, CallEvent::PeerLeft { .. }))
    })
}

fn creates(net: &Net, name: &str) -> usize {
    net.client(name).pcs.len()
}

#[test]
fn the_joiner_offers_and_both_sides_connect_chat_and_send() {
    let net = call(&["alice", "bob"]);
    assert_eq!(offers_sent(&net, "bob"), 1, "bob joined second: he offers");
    assert_eq!(
        offers_sent(&net, "alice"),
        0,
        "members never offer to a newcomer"
    );
    for name in ["alice", "bob"] {
        let client = net.client(name);
        assert!(
            client.has(|e| matches!(e, CallEvent::PeerConnected { .. })),
            "{name}"
        );
        let pc = client.pcs.values().next().unwrap();
        assert!(pc.sending, "{name} started sending once connected");
        assert!(pc.chat_open, "{name}'s chat channel opened");
        // The new writer's keyframe request reached the encoder.
        assert!(client.keyframes() >= 1, "{name}");
    }
    // The offerer created the chat channel.
    assert!(net.client("bob").pcs.values().next().unwrap().offerer);
}

#[test]
fn three_peers_make_a_full_mesh_with_each_newcomer_offering() {
    let net = call(&["alice", "bob", "carol"]);
    assert_eq!(offers_sent(&net, "alice"), 0);
    assert_eq!(offers_sent(&net, "bob"), 1);
    assert_eq!(offers_sent(&net, "carol"), 2);
    for name in ["alice", "bob", "carol"] {
        assert_eq!(net.client(name).connected_pcs(), 2, "{name}");
    }
}

#[test]
fn candidates_before_any_connection_wait_for_it() {
    let mut net = Net::new();
    net.add("alice");
    net.add("bob");
    net.settle();
    join(&mut net, "alice", "r1");
    let bob_session = net.client("bob").session().unwrap();
    // A candidate from bob arrives before bob's offer (trickle ICE).
    let early = IceCandidate {
        candidate: "candidate:9 1 udp 1 127.0.0.1 9999 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    };
    let now = net.now;
    net.client_mut("alice").core.handle_input(
        now,
        kith_call_core::Input::Server(ServerMessage::Candidate {
            room: room("r1"),
            from: bob_session,
            from_user: user("bob"),
            candidate: Some(early.clone()),
        }),
    );
    join(&mut net, "bob", "r1");
    net.run_for(SECOND);
    let pc = net.client("alice").pcs.values().next().unwrap();
    assert!(pc.added.iter().any(|(c, _)| *c == early), "{:?}", pc.added);
    assert!(
        pc.added.iter().all(|(_, described)| *described),
        "a candidate was added before the remote description: {:?}",
        pc.added
    );
}

#[test]
fn candidates_before_the_answer_are_queued_on_the_link() {
    let mut net = Net::new();
    net.add("alice");
    net.add("bob");
    net.settle();
    join(&mut net, "alice", "r1");
    let alice_session = net.client("alice").session().unwrap();
    let now = net.now;
    net.client_mut("bob")
        .core
        .command(now, Command::Join(room("r1")))
        .unwrap();
    // Step until bob has made his connection, before alice has answered.
    while net.client("bob").pcs.is_empty() {
        assert!(net.step_once());
    }
    let early = IceCandidate {
        candidate: "candidate:7 1 udp 1 127.0.0.1 7777 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    };
    net.client_mut("bob").core.handle_input(
        now,
        kith_call_core::Input::Server(ServerMessage::Candidate {
            room: room("r1"),
            from: alice_session,
            from_user: user("alice"),
            candidate: Some(early.clone()),
        }),
    );
    assert!(
        net.client("bob")
            .pcs
            .values()
            .next()
            .unwrap()
            .added
            .is_empty()
    );
    net.run_for(SECOND);
    let pc = net.client("bob").pcs.values().next().unwrap();
    assert!(pc.added.iter().any(|(c, _)| *c == early));
    assert!(pc.added.iter().all(|(_, described)| *described));
    assert!(pc.connected);
}

/// Both renegotiate at the same instant (an ICE restart on both sides):
/// the offers cross in the hub.
fn glare(polite: &str, impolite: &str) {
    let mut net = Net::new();
    net.session_prefix.insert(polite.into(), "a".into());
    net.session_prefix.insert(impolite.into(), "b".into());
    net.add("alice");
    net.add("bob");
    net.settle();
    join(&mut net, "alice", "r1");
    join(&mut net, "bob", "r1");
    assert!(net.run_until(5 * SECOND, |n| {
        n.clients.iter().all(|c| c.connected_pcs() == 1)
    }));
    let now = net.now;
    for name in ["alice", "bob"] {
        net.client_mut(name)
            .core
            .command(now, Command::RestartIce)
            .unwrap();
    }
    net.run_for(SECOND);
    let polite_pc = net.client(polite).pcs.values().next().unwrap();
    let impolite_pc = net.client(impolite).pcs.values().next().unwrap();
    assert_eq!(polite_pc.rollbacks, 1, "the polite side rolls back");
    assert_eq!(impolite_pc.rollbacks, 0, "the impolite side wins");
    // The impolite side's restart went through: both ends agree on its new
    // credentials, and the polite side's offer was dropped.
    assert_eq!(
        impolite_pc.local.as_deref(),
        Some(format!("{impolite}0g1").as_str())
    );
    assert_eq!(polite_pc.remote, impolite_pc.local);
    assert_eq!(impolite_pc.remote, polite_pc.local);
    // No connection was torn down over it.
    assert!(nobody_left(&net, &["alice", "bob"]));
}

#[test]
fn glare_alice_polite() {
    glare("alice", "bob");
}

#[test]
fn glare_bob_polite() {
    glare("bob", "alice");
}

/// The server restarts; `first` comes back before `second`.
fn server_restart(first: &str, second: &str) {
    let mut net = call(&["alice", "bob"]);
    let offers_before = offers_sent(&net, second);
    net.restart_server();
    net.run_for(SECOND);
    for name in ["alice", "bob"] {
        assert!(
            net.client(name)
                .has(|e| matches!(e, CallEvent::SignalingLost { .. }))
        );
        assert!(
            net.client(name)
                .has(|e| matches!(e, CallEvent::PeerReconnecting { .. }))
        );
    }
    net.restore_signaling(first);
    net.run_for(SECOND);
    net.restore_signaling(second);
    net.run_for(2 * SECOND);
    for name in ["alice", "bob"] {
        let client = net.client(name);
        assert_eq!(creates(&net, name), 1, "{name} kept its one connection");
        assert!(
            client.has(|e| matches!(e, CallEvent::PeerRebound { .. })),
            "{name} rebound the connection: {:?}",
            client.events
        );
        // Back once both have their signaling again, 2 s after it went,
        // and the event says how long that took.
        let after_ms = client.events.iter().find_map(|(_, e)| match e {
            CallEvent::PeerReconnected { after_ms, .. } => Some(*after_ms),
            _ => None,
        });
        assert!(
            after_ms.is_some_and(|ms| (2_000..4_000).contains(&ms)),
            "{name}: reconnected after {after_ms:?} ms: {:?}",
            client.events
        );
        assert!(
            !client.has(|e| matches!(e, CallEvent::PeerLeft { .. })),
            "{name}"
        );
    }
    // The one who came back second saw the other in `joined`: it offered
    // again on the old connection (rebound by user); the other matched
    // that offer by its ICE ufrag.
    assert_eq!(offers_sent(&net, second), offers_before + 1);
    net.run_for(DETACHED_GRACE + SECOND);
    for name in ["alice", "bob"] {
        assert!(
            !net.client(name)
                .has(|e| matches!(e, CallEvent::PeerLeft { .. }))
        );
    }
}

/// Bob's address changes: his media path and his signaling connection die
/// together, and the server keeps his old session in the room until its
/// pings time out. He must not call his own ghost, alice must take his
/// offer from the new session as the old connection's, and an ICE restart
/// must bring that connection back.
fn address_change(mover: &str, other: &str) {
    let mut net = call(&["alice", "bob"]);
    net.break_path("alice", "bob", false);
    net.lose_signaling_unnoticed(mover);
    net.run_for(SECOND);
    net.restore_signaling(mover);
    net.run_for(15 * SECOND);
    for name in [mover, other] {
        let client = net.client(name);
        assert_eq!(creates(&net, name), 1, "{name}: {:?}", client.events);
        assert!(
            client.has(|e| matches!(e, CallEvent::PeerReconnected { .. })),
            "{name}: {:?}",
            client.events
        );
        assert!(
            !client.has(|e| matches!(e, CallEvent::PeerLeft { .. })),
            "{name}: {:?}",
            client.events
        );
    }
}

#[test]
fn the_joiner_changes_its_address_and_comes_back_on_its_connection() {
    address_change("bob", "alice");
}

#[test]
fn the_first_in_the_room_changes_its_address_and_comes_back_on_its_connection() {
    address_change("alice", "bob");
}

#[test]
fn links_are_rebound_after_a_server_restart_joiner_back_first() {
    server_restart("bob", "alice");
}

#[test]
fn links_are_rebound_after_a_server_restart_member_back_first() {
    server_restart("alice", "bob");
}

#[test]
fn a_peer_whose_signaling_never_comes_back_is_dropped_after_the_grace() {
    let mut net = call(&["alice", "bob"]);
    net.drop_signaling("bob");
    net.run_for(DETACHED_GRACE - SECOND);
    assert!(
        !net.client("alice")
            .has(|e| matches!(e, CallEvent::PeerLeft { .. })),
        "media still flows: the link is kept"
    );
    net.run_for(2 * SECOND);
    let left = net
        .client("alice")
        .events_of(|e| matches!(e, CallEvent::PeerLeft { .. }));
    // Bob's own grace ends at the same moment and he closes his end, so
    // alice may see his media stop first.
    assert!(
        matches!(
            left.as_slice(),
            [CallEvent::PeerLeft {
                reason: LeaveReason::DidNotComeBack | LeaveReason::Gone,
                ..
            }]
        ),
        "{left:?}"
    );
}

#[test]
fn a_detached_peer_whose_media_stops_is_dropped_at_once() {
    let mut net = call(&["alice", "bob"]);
    net.drop_signaling("bob");
    net.run_for(SECOND);
    let link = *net.client("alice").pcs.keys().next().unwrap();
    net.fact("alice", link, PeerFact::Ice(IceState::Disconnected));
    assert!(net.client("alice").has(|e| matches!(
        e,
        CallEvent::PeerLeft {
            reason: LeaveReason::Gone,
            ..
        }
    )));
}

#[test]
fn leaving_closes_the_connection_on_both_sides() {
    let mut net = call(&["alice", "bob"]);
    net.command("alice", Command::Leave(room("r1"))).unwrap();
    net.run_for(SECOND);
    assert!(net.client("alice").pcs.is_empty());
    // The server says alice hung up: bob does not wait for her to come back.
    assert!(net.client("bob").has(|e| matches!(
        e,
        CallEvent::PeerLeft {
            reason: LeaveReason::Left,
            ..
        }
    )));
    assert!(net.client("bob").pcs.is_empty());
}

// ---------------------------------------------------------------- invites

fn ringing() -> Net {
    signed_in(&["alice", "bob"])
}

fn ring(net: &mut Net, patience: Duration) {
    ring_into(net, "bob", MediaKind::Video, patience);
}

/// Alice rings `callee` into `call-1`.
fn ring_into(net: &mut Net, callee: &str, media: MediaKind, patience: Duration) {
    net.command(
        "alice",
        Command::Ring {
            room: room("call-1"),
            to: user(callee),
            media,
            patience,
        },
    )
    .unwrap();
}

/// These users signed in; no call yet.
fn signed_in(names: &[&str]) -> Net {
    let mut net = Net::new();
    for name in names {
        net.add(name);
    }
    net.settle();
    net
}

/// `name` answers the invite ringing for `call-1`.
fn answer(net: &mut Net, name: &str, answer: InviteAnswer) {
    net.command(
        name,
        Command::Answer {
            room: room("call-1"),
            answer,
        },
    )
    .unwrap();
}

fn ring_outcome(net: &Net) -> Vec<RingOutcome> {
    net.client("alice")
        .events_of(|e| matches!(e, CallEvent::RingEnded { .. }))
        .into_iter()
        .filter_map(|e| match e {
            CallEvent::RingEnded { outcome, .. } => Some(outcome),
            _ => None,
        })
        .collect()
}

#[test]
fn an_accepted_invite_joins_both_and_connects() {
    let mut net = ringing();
    ring(&mut net, 30 * SECOND);
    assert!(net.client("bob").has(|e| matches!(
        e,
        CallEvent::Invite {
            media: MediaKind::Video,
            ..
        }
    )));
    answer(&mut net, "bob", InviteAnswer::Accept);
    assert!(net.run_until(5 * SECOND, |n| {
        n.clients.iter().all(|c| c.connected_pcs() == 1)
    }));
    assert_eq!(ring_outcome(&net), vec![RingOutcome::Accepted]);
}

#[test]
fn a_group_call_rings_several_into_one_room_and_meshes() {
    let mut net = signed_in(&["alice", "bob", "carol"]);
    net.command("alice", Command::Join(room("call-1"))).unwrap();
    for callee in ["bob", "carol"] {
        ring_into(&mut net, callee, MediaKind::Video, 30 * SECOND);
    }
    net.settle();
    // Both ring at once: the second ring did not replace the first.
    for callee in ["bob", "carol"] {
        assert!(
            net.client(callee)
                .has(|e| matches!(e, CallEvent::Invite { .. }))
        );
    }
    answer(&mut net, "bob", InviteAnswer::Accept);
    answer(&mut net, "carol", InviteAnswer::Accept);
    assert!(net.run_until(5 * SECOND, |n| {
        n.clients.iter().all(|c| c.connected_pcs() == 2)
    }));
    assert_eq!(
        ring_outcome(&net),
        vec![RingOutcome::Accepted, RingOutcome::Accepted]
    );
}

#[test]
fn cancelling_a_group_ring_stops_every_invite_of_the_room() {
    let mut net = signed_in(&["alice", "bob", "carol"]);
    for callee in ["bob", "carol"] {
        ring_into(&mut net, callee, MediaKind::Audio, 30 * SECOND);
    }
    net.settle();
    net.command("alice", Command::CancelRing(room("call-1")))
        .unwrap();
    net.settle();
    for callee in ["bob", "carol"] {
        assert!(
            net.client(callee)
                .has(|e| matches!(e, CallEvent::InviteCanceled { .. }))
        );
    }
    assert_eq!(
        ring_outcome(&net),
        vec![RingOutcome::Canceled, RingOutcome::Canceled]
    );
}

#[test]
fn declined_and_busy_answers_end_the_ring() {
    for (reply, outcome) in [
        (InviteAnswer::Decline, RingOutcome::Declined),
        (InviteAnswer::Busy, RingOutcome::Busy),
    ] {
        let mut net = ringing();
        ring(&mut net, 30 * SECOND);
        answer(&mut net, "bob", reply);
        assert_eq!(ring_outcome(&net), vec![outcome]);
        assert!(net.client("alice").pcs.is_empty());
        assert!(net.client("alice").core.snapshot().rooms.is_empty());
    }
}

#[test]
fn an_invite_while_in_a_call_is_answered_busy_and_listed_missed() {
    let mut net = call(&["bob", "carol"]);
    net.add("alice");
    net.settle();
    ring(&mut net, 30 * SECOND);
    assert_eq!(ring_outcome(&net), vec![RingOutcome::Busy]);
    assert!(net.client("bob").has(|e| matches!(
        e,
        CallEvent::MissedCall {
            reason: MissedReason::Busy,
            ..
        }
    )));
    assert!(
        !net.client("bob")
            .has(|e| matches!(e, CallEvent::Invite { .. }))
    );
}

#[test]
fn a_cancelled_invite_stops_ringing_and_is_missed() {
    let mut net = ringing();
    ring(&mut net, 30 * SECOND);
    net.command("alice", Command::CancelRing(room("call-1")))
        .unwrap();
    assert_eq!(ring_outcome(&net), vec![RingOutcome::Canceled]);
    let bob = net.client("bob");
    assert!(bob.has(|e| matches!(
        e,
        CallEvent::InviteCanceled {
            reason: InviteEnd::Canceled,
            ..
        }
    )));
    assert!(bob.has(|e| matches!(
        e,
        CallEvent::MissedCall {
            reason: MissedReason::Canceled,
            ..
        }
    )));
    // Answering it now is an error, and nothing is sent.
    assert!(
        net.command(
            "bob",
            Command::Answer {
                room: room("call-1"),
                answer: InviteAnswer::Accept
            }
        )
        .is_err()
    );
}

#[test]
fn an_unanswered_invite_is_cancelled_after_the_ring_time() {
    let mut net = ringing();
    ring(&mut net, 5 * SECOND);
    net.run_for(4 * SECOND);
    assert!(ring_outcome(&net).is_empty());
    net.run_for(2 * SECOND);
    assert_eq!(ring_outcome(&net), vec![RingOutcome::NoAnswer]);
    assert!(
        net.client("bob")
            .has(|e| matches!(e, CallEvent::InviteCanceled { .. }))
    );
}

#[test]
fn an_invite_nobody_answers_here_expires_as_missed() {
    let mut net = ringing();
    ring(&mut net, 600 * SECOND);
    net.run_for(61 * SECOND);
    assert!(net.client("bob").has(|e| matches!(
        e,
        CallEvent::InviteCanceled {
            reason: InviteEnd::Expired,
            ..
        }
    )));
    assert!(net.client("bob").core.snapshot().invites.is_empty());
}

#[test]
fn ringing_an_offline_user_fails_at_once() {
    let mut net = ringing();
    net.command(
        "alice",
        Command::Ring {
            room: room("call-1"),
            to: user("nobody"),
            media: MediaKind::Audio,
            patience: 30 * SECOND,
        },
    )
    .unwrap();
    assert_eq!(ring_outcome(&net), vec![RingOutcome::Offline]);
    assert!(net.client("alice").has(|e| matches!(
        e,
        CallEvent::Error {
            error: kith_call_core::CallError::Server {
                code: kith_proto::ErrorCode::Offline,
                ..
            }
        }
    )));
}

#[test]
fn an_invite_answered_on_another_device_stops_ringing_there() {
    let mut net = Net::new();
    net.add("alice");
    net.add("bob");
    let mut phone = CoreConfig::new(user("bob"));
    phone.video = Some(support::video_plan());
    net.add_with("bob-phone", phone);
    net.settle();
    ring(&mut net, 30 * SECOND);
    assert!(
        net.client("bob-phone")
            .has(|e| matches!(e, CallEvent::Invite { .. }))
    );
    answer(&mut net, "bob", InviteAnswer::Accept);
    let phone = net.client("bob-phone");
    assert!(phone.has(|e| matches!(
        e,
        CallEvent::InviteCanceled {
            reason: InviteEnd::AnsweredElsewhere,
            ..
        }
    )));
    assert!(
        !phone.has(|e| matches!(e, CallEvent::MissedCall { .. })),
        "not missed"
    );
    assert!(net.run_until(5 * SECOND, |n| n.client("alice").connected_pcs() == 1));
    assert_eq!(net.client("bob-phone").pcs.len(), 0);
}

#[test]
fn hanging_up_while_ringing_cancels_the_invite() {
    let mut net = ringing();
    ring(&mut net, 30 * SECOND);
    net.command("alice", Command::Hangup).unwrap();
    assert_eq!(ring_outcome(&net), vec![RingOutcome::Canceled]);
    assert!(
        net.client("bob")
            .has(|e| matches!(e, CallEvent::InviteCanceled { .. }))
    );
}

// ---------------------------------------------------------------- chat

fn chat(net: &mut Net, name: &str, text: &str) {
    let id = uuid::Uuid::new_v4().to_string();
    net.command(
        name,
        Command::SendChat {
            id,
            text: text.into(),
            ts: 1,
        },
    )
    .unwrap();
}

/// Whether what `name` sends on its chat channels reaches the far end: the
/// fake channel drops it while the core still holds the channel open.
fn chat_delivery(net: &mut Net, name: &str, delivered: bool) {
    for pc in net.client_mut(name).pcs.values_mut() {
        pc.chat_open = delivered;
    }
}

fn count(net: &Net, name: &str, pred: impl Fn(&CallEvent) -> bool) -> usize {
    net.client(name).events_of(pred).len()
}

fn received(net: &Net, name: &str) -> usize {
    count(net, name, |e| matches!(e, CallEvent::ChatReceived { .. }))
}

fn acked(net: &Net, name: &str) -> usize {
    count(net, name, |e| matches!(e, CallEvent::ChatAcked { .. }))
}

#[test]
fn chat_is_delivered_and_acked() {
    let mut net = call(&["alice", "bob"]);
    for n in 0..5 {
        chat(&mut net, "alice", &format!("m{n}"));
    }
    net.settle();
    assert_eq!(received(&net, "bob"), 5);
    assert_eq!(acked(&net, "alice"), 5);
}

#[test]
fn chat_is_re_sent_when_the_channel_is_back_and_duplicates_are_dropped() {
    let mut net = call(&["alice", "bob"]);
    let alice_link = *net.client("alice").pcs.keys().next().unwrap();
    // Bob's acks get lost: his channel toward alice is down for sending.
    chat_delivery(&mut net, "bob", false);
    chat(&mut net, "alice", "hello");
    net.settle();
    assert_eq!(received(&net, "bob"), 1);
    assert_eq!(acked(&net, "alice"), 0);
    // A new channel: alice re-sends what was not acked.
    chat_delivery(&mut net, "bob", true);
    net.fact("alice", alice_link, PeerFact::ChatClosed);
    net.fact("alice", alice_link, PeerFact::ChatOpen);
    assert_eq!(received(&net, "bob"), 1, "the duplicate is not shown again");
    assert_eq!(acked(&net, "alice"), 1);
    assert_eq!(net.client("bob").core.chat_counts().duplicates, 1);
    // Acked now: another reopening re-sends nothing.
    net.fact("alice", alice_link, PeerFact::ChatClosed);
    net.fact("alice", alice_link, PeerFact::ChatOpen);
    assert_eq!(net.client("bob").core.chat_counts().duplicates, 1);
}

#[test]
fn a_chat_message_lost_on_an_open_channel_goes_again_after_the_resend_interval() {
    let mut net = call(&["alice", "bob"]);
    // The channel stays open on both sides; alice's copy is lost on the way.
    chat_delivery(&mut net, "alice", false);
    chat(&mut net, "alice", "hello");
    net.settle();
    assert_eq!(received(&net, "bob"), 0);
    chat_delivery(&mut net, "alice", true);
    net.run_for(RESEND_AFTER - 10 * STEP);
    assert_eq!(received(&net, "bob"), 0, "not before the interval");
    net.run_for(20 * STEP);
    assert_eq!(received(&net, "bob"), 1);
    assert_eq!(acked(&net, "alice"), 1);
    // Acked: nothing goes again.
    net.run_for(3 * RESEND_AFTER);
    assert_eq!(net.client("bob").core.chat_counts().duplicates, 0);
}

#[test]
fn a_lost_chat_ack_is_answered_again_when_the_message_goes_again() {
    let mut net = call(&["alice", "bob"]);
    // Bob's acks are lost on the way while his channel stays open.
    chat_delivery(&mut net, "bob", false);
    chat(&mut net, "alice", "hello");
    net.run_for(RESEND_AFTER + 10 * STEP);
    assert_eq!(received(&net, "bob"), 1);
    assert_eq!(acked(&net, "alice"), 0);
    assert_eq!(net.client("bob").core.chat_counts().duplicates, 1);
    chat_delivery(&mut net, "bob", true);
    net.run_for(RESEND_AFTER);
    assert_eq!(received(&net, "bob"), 1, "the copy is not shown twice");
    assert_eq!(acked(&net, "alice"), 1);
}

#[test]
fn chat_survives_a_rebind_after_a_server_restart() {
    let mut net = call(&["alice", "bob"]);
    net.restart_server();
    // Typed while the server is down: nothing can reach bob's channel? It
    // can: the connection lives on, so it is delivered at once.
    chat(&mut net, "alice", "during the outage");
    net.restore_signaling("alice");
    net.restore_signaling("bob");
    net.run_for(2 * SECOND);
    assert_eq!(received(&net, "bob"), 1);
    assert_eq!(acked(&net, "alice"), 1);
}

#[test]
fn a_malformed_or_oversized_chat_frame_is_refused_and_the_channel_kept() {
    let mut net = call(&["alice", "bob"]);
    let link = *net.client("bob").pcs.keys().next().unwrap();
    net.fact("bob", link, PeerFact::ChatText("not json".into()));
    net.fact("bob", link, PeerFact::ChatText("x".repeat(200_000)));
    assert_eq!(net.client("bob").core.chat_counts().refused, 2);
    chat(&mut net, "alice", "still works");
    net.settle();
    assert_eq!(received(&net, "bob"), 1);
}

#[test]
fn a_chat_message_of_the_wrong_size_is_an_error_and_nothing_is_sent() {
    let mut net = call(&["alice", "bob"]);
    let result = net.command(
        "alice",
        Command::SendChat {
            id: "x".into(),
            text: "y".repeat(kith_proto::MAX_CHAT_TEXT_BYTES + 1),
            ts: 1,
        },
    );
    assert!(matches!(
        result,
        Err(kith_call_core::CallError::ChatSize { .. })
    ));
    assert_eq!(net.client("alice").core.chat_counts().sent, 0);
}

// ---------------------------------------------------------------- media policy

fn resolutions(net: &Net, name: &str) -> Vec<(u32, u32)> {
    net.client(name)
        .media
        .iter()
        .filter_map(|(_, op)| match op {
            MediaOp::Resolution(_, w, h) => Some((*w, *h)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_see_sawing_estimate_does_not_make_the_size_ladder_oscillate() {
    let mut net = call(&["alice", "bob"]);
    for second in 0..60 {
        net.client_mut("alice").estimate_bps = if second % 2 == 0 {
            600_000.0
        } else {
            2_500_000.0
        };
        net.run_for(SECOND);
    }
    // Down once for 600 kbit/s, once more when the first fall from
    // 2.5 Mbit/s is met warily (each later fall too), and never back up.
    assert_eq!(resolutions(&net, "alice"), vec![(960, 540), (320, 180)]);
}

#[test]
fn a_drop_in_the_estimate_steps_the_size_down_and_a_lasting_recovery_climbs_back() {
    let mut net = call(&["alice", "bob"]);
    net.client_mut("alice").estimate_bps = 200_000.0;
    net.run_for(3 * SECOND);
    assert_eq!(resolutions(&net, "alice"), vec![(320, 180)]);
    net.client_mut("alice").estimate_bps = 3_000_000.0;
    net.run_for(40 * SECOND);
    assert_eq!(
        resolutions(&net, "alice").last().copied(),
        Some((1280, 720)),
        "{:?}",
        resolutions(&net, "alice")
    );
}

#[test]
fn a_collapsing_estimate_reaches_the_encoder_within_a_fifth_of_a_second() {
    let mut net = call(&["alice", "bob"]);
    net.run_for(3 * SECOND);
    let before = net.client("alice").media.len();
    net.client_mut("alice").estimate_bps = 400_000.0;
    net.run_for(Duration::from_millis(200));
    let told: Vec<MediaOp> = net.client("alice").media[before..]
        .iter()
        .map(|(_, op)| *op)
        .collect();
    assert!(
        told.iter()
            .any(|op| matches!(op, MediaOp::Bitrate(_, bps) if *bps < 400_000)),
        "{told:?}"
    );
    // A fall this sharp is met warily: the size for a quarter of the
    // target (640x360 would suit 400 kbit/s once the link has settled).
    assert!(
        told.iter()
            .any(|op| matches!(op, MediaOp::Resolution(_, 320, 180))),
        "{told:?}"
    );
}

#[test]
fn the_group_encoder_follows_the_weakest_peer() {
    let mut net = call(&["alice", "bob", "carol"]);
    // The harness reports one estimate for every link of a client, so make
    // one of alice's links weak by feeding estimates by hand.
    let links: Vec<_> = net.client("alice").pcs.keys().copied().collect();
    for _ in 0..3 {
        let now = net.now;
        let estimates = links
            .iter()
            .enumerate()
            .map(|(n, link)| (*link, if n == 0 { 400_000.0 } else { 3_000_000.0 }))
            .collect();
        net.client_mut("alice").core.handle_input(
            now,
            kith_call_core::Input::Estimates {
                estimates,
                encoded: Vec::new(),
            },
        );
        net.settle();
    }
    assert_eq!(resolutions(&net, "alice"), vec![(640, 360)]);
}

#[test]
fn a_keyframe_storm_from_one_peer_is_throttled_for_the_whole_mesh() {
    let mut net = call(&["alice", "bob", "carol"]);
    let before = net.client("alice").keyframes();
    let storm_link = *net.client("alice").pcs.keys().next().unwrap();
    // 1,000 PLI a second for 10 s from one peer.
    for _ in 0..1000 {
        for _ in 0..10 {
            net.fact("alice", storm_link, PeerFact::KeyframeRequest);
        }
        net.run_for(Duration::from_millis(10));
    }
    let keyframes = net.client("alice").keyframes() - before;
    assert!(keyframes <= 21, "{keyframes} keyframes in 10 s");
    assert!(keyframes >= 5, "the peer is still served: {keyframes}");
}

#[test]
fn stats_are_sampled_every_second_and_published_per_peer() {
    let mut net = call(&["alice", "bob"]);
    let before = count(&net, "alice", |e| matches!(e, CallEvent::Stats { .. }));
    net.run_for(5 * SECOND);
    let after = count(&net, "alice", |e| matches!(e, CallEvent::Stats { .. }));
    assert!((4..=6).contains(&(after - before)), "{before} → {after}");
    let stats = net
        .client("alice")
        .events_of(|e| matches!(e, CallEvent::Stats { .. }));
    let Some(CallEvent::Stats { peers }) = stats.last() else {
        panic!("stats")
    };
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].user.as_str(), "bob");
    assert!(peers[0].connected);
    assert_eq!(peers[0].ice_state, IceState::Connected);
    let json = serde_json::to_value(&peers[0]).unwrap();
    assert_eq!(json["ice_state"], "connected");
    assert_eq!(json["ice_restarts"], 0);
}

#[test]
fn the_snapshot_tells_a_reloading_ui_where_the_call_stands() {
    let mut net = call(&["alice", "bob"]);
    net.command("alice", Command::SetMicMuted(true)).unwrap();
    let snapshot = net.client("alice").core.snapshot();
    assert_eq!(snapshot.rooms, vec![room("r1")]);
    assert_eq!(snapshot.peers.len(), 1);
    assert_eq!(snapshot.peers[0].user.as_str(), "bob");
    assert!(snapshot.mic_muted);
    let json = serde_json::to_value(&snapshot).unwrap();
    assert_eq!(json["peers"][0]["state"], "connected");
}

#[test]
fn ops_for_a_link_are_never_issued_before_it_is_created() {
    // Every peer op of a run must name a link the harness already built:
    // the fake panics (unwrap) on ops for unknown links, so a full mesh
    // with a restart in the middle running clean is the check.
    let mut net = call(&["alice", "bob", "carol"]);
    net.restart_server();
    for name in ["carol", "alice", "bob"] {
        net.restore_signaling(name);
        net.run_for(SECOND);
    }
    for name in ["alice", "bob", "carol"] {
        assert_eq!(net.client(name).connected_pcs(), 2, "{name}");
    }
    let _ = PeerOp::Close;
}

// ---------------------------------------------------------------- broken paths

fn restarts(net: &Net, name: &str) -> usize {
    net.client(name)
        .sent
        .iter()
        .filter(|o| matches!(o.message, ClientMessage::Offer { .. }))
        .count()
}

#[test]
fn a_broken_path_is_restarted_after_a_pause_and_the_call_recovers() {
    let mut net = call(&["alice", "bob"]);
    let offers = restarts(&net, "alice") + restarts(&net, "bob");
    net.break_path("alice", "bob", false);
    for name in ["alice", "bob"] {
        assert!(net.client(name).has(|e| matches!(
            e,
            CallEvent::PeerReconnecting {
                cause: kith_call_core::ReconnectCause::Network,
                ..
            }
        )));
    }
    net.run_for(SECOND);
    assert_eq!(
        restarts(&net, "alice") + restarts(&net, "bob"),
        offers,
        "a blip is given time to heal by itself"
    );
    net.run_for(2 * SECOND);
    assert!(
        restarts(&net, "alice") + restarts(&net, "bob") > offers,
        "an ICE restart was offered"
    );
    assert!(net.run_until(5 * SECOND, |n| {
        n.clients.iter().all(|c| c.connected_pcs() == 1)
    }));
    for name in ["alice", "bob"] {
        let client = net.client(name);
        assert!(
            client.has(|e| matches!(e, CallEvent::PeerReconnected { .. })),
            "{name}"
        );
        assert!(
            !client.has(|e| matches!(e, CallEvent::PeerLeft { .. })),
            "{name}"
        );
        assert_eq!(
            creates(&net, name),
            1,
            "{name}: the same connection, restarted"
        );
    }
    // The restart shows in the stats.
    net.run_for(2 * SECOND);
    let stats = net
        .client("alice")
        .events_of(|e| matches!(e, CallEvent::Stats { .. }));
    let Some(CallEvent::Stats { peers }) = stats.last() else {
        panic!("stats")
    };
    let both = peers[0].ice_restarts
        + net
            .client("bob")
            .events_of(|e| matches!(e, CallEvent::Stats { .. }))
            .last()
            .map_or(0, |e| match e {
                CallEvent::Stats { peers } => peers[0].ice_restarts,
                _ => 0,
            });
    assert!(both >= 1, "restarts counted: {both}");
}

#[test]
fn a_blip_that_heals_by_itself_needs_no_restart() {
    let mut net = call(&["alice", "bob"]);
    let offers = restarts(&net, "alice") + restarts(&net, "bob");
    let links: Vec<_> = ["alice", "bob"]
        .iter()
        .map(|n| (*n, *net.client(n).pcs.keys().next().unwrap()))
        .collect();
    for (name, link) in &links {
        net.fact(name, *link, PeerFact::Ice(IceState::Disconnected));
    }
    net.run_for(Duration::from_millis(800));
    for (name, link) in &links {
        net.fact(name, *link, PeerFact::Ice(IceState::Connected));
    }
    net.run_for(10 * SECOND);
    assert_eq!(restarts(&net, "alice") + restarts(&net, "bob"), offers);
    assert!(
        net.client("alice")
            .has(|e| matches!(e, CallEvent::PeerReconnected { .. }))
    );
}

#[test]
fn a_path_that_never_comes_back_is_given_up() {
    let mut net = call(&["alice", "bob"]);
    let offers = restarts(&net, "alice") + restarts(&net, "bob");
    net.break_path("alice", "bob", true);
    net.run_for(25 * SECOND);
    assert!(
        !net.client("alice")
            .has(|e| matches!(e, CallEvent::PeerLeft { .. }))
    );
    assert!(
        restarts(&net, "alice") + restarts(&net, "bob") >= offers + 3,
        "restarts are retried"
    );
    net.run_for(6 * SECOND);
    assert!(net.client("alice").has(|e| matches!(
        e,
        CallEvent::PeerLeft {
            reason: LeaveReason::Failed,
            ..
        }
    )));
}
