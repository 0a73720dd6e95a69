//! The hub's rules, driven directly: no sockets, no sleeps.

use kith_proto::{ServerMessage, parse_client_message, parse_server_message};
use serde_json::{Value, json};

use super::*;

fn hub(room_limit: usize) -> Hub {
    Hub::new(
        HubConfig {
            room_limit,
            stun_urls: vec!["stun:127.0.0.1:3478".into()],
            turn_urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            turn_secret: Some("s3cret".into()),
            turn_ttl_secs: 600,
        },
        Metrics::default(),
    )
}

fn hello(hub: &mut Hub, key: SessionKey, user: &str) {
    hub.hello(
        key,
        SessionId::new(format!("s{key}")).expect("valid"),
        UserId::new(user).expect("valid"),
        None,
        None,
        1_000,
    );
}

fn say(hub: &mut Hub, key: SessionKey, message: Value) {
    let request = parse_client_message(&message.to_string()).expect("valid test message");
    hub.handle(key, request);
}

/// Everything queued since the last call, as (session, typed message).
fn drain(hub: &mut Hub) -> Vec<(SessionKey, ServerMessage)> {
    hub.take_outbound()
        .into_iter()
        .map(|(key, frame)| match frame {
            Outbound::Text(text) => (
                key,
                parse_server_message(text.as_str()).expect("server sends valid messages"),
            ),
            Outbound::Close { code, .. } => panic!("unexpected close {code}"),
        })
        .collect()
}

fn types_for(out: &[(SessionKey, ServerMessage)], key: SessionKey) -> Vec<String> {
    out.iter()
        .filter(|(k, _)| *k == key)
        .map(|(_, m)| {
            serde_json::to_value(m).expect("serializes")["type"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn welcome_lists_others_and_carries_turn_credentials() {
    let mut hub = hub(8);
    hello(&mut hub, 1, "bob");
    drain(&mut hub);
    hello(&mut hub, 2, "alice");
    let out = drain(&mut hub);
    let welcome = out.iter().find(|(k, _)| *k == 2).map(|(_, m)| m.clone());
    let Some(ServerMessage::Welcome {
        online,
        ice_servers,
        ..
    }) = welcome
    else {
        panic!("no welcome: {out:?}")
    };
    assert_eq!(online.len(), 1);
    assert_eq!(online[0].user.as_str(), "bob");
    assert_eq!(ice_servers.len(), 2);
    assert_eq!(ice_servers[1].username.as_deref(), Some("1600:alice"));
    assert_eq!(types_for(&out, 1), ["presence"]);
}

#[test]
fn presence_only_for_first_and_last_session_of_a_user() {
    let mut hub = hub(8);
    hello(&mut hub, 1, "bob");
    drain(&mut hub);
    hello(&mut hub, 2, "alice");
    hello(&mut hub, 3, "alice");
    let out = drain(&mut hub);
    assert_eq!(
        types_for(&out, 1),
        ["presence"],
        "one presence for two sessions"
    );
    hub.disconnect(2);
    assert!(types_for(&drain(&mut hub), 1).is_empty());
    hub.disconnect(3);
    let out = drain(&mut hub);
    assert!(matches!(
        &out[..],
        [(1, ServerMessage::Presence { online: false, .. })]
    ));
}

#[test]
fn join_lists_earlier_members_and_announces_the_newcomer() {
    let mut hub = hub(8);
    for key in 1..=3 {
        hello(&mut hub, key, &format!("u{key}"));
    }
    drain(&mut hub);
    say(&mut hub, 1, json!({"type":"join","room":"r"}));
    say(&mut hub, 2, json!({"type":"join","room":"r"}));
    drain(&mut hub);
    say(&mut hub, 3, json!({"type":"join","room":"r","id":"j"}));
    let out = drain(&mut hub);
    let Some((_, ServerMessage::Joined { peers, re, .. })) = out.iter().find(|(k, _)| *k == 3)
    else {
        panic!("no joined: {out:?}")
    };
    let order: Vec<&str> = peers.iter().map(|p| p.session.as_str()).collect();
    assert_eq!(order, ["s1", "s2"]);
    assert_eq!(re.as_ref().map(RequestId::as_str), Some("j"));
    assert_eq!(types_for(&out, 1), ["peer_joined"]);
    assert_eq!(types_for(&out, 2), ["peer_joined"]);
}

#[test]
fn full_room_refuses_and_rejoin_is_idempotent() {
    let mut hub = hub(2);
    for key in 1..=3 {
        hello(&mut hub, key, &format!("u{key}"));
        say(&mut hub, key, json!({"type":"join","room":"r"}));
    }
    let out = drain(&mut hub);
    assert!(out.iter().any(|(k, m)| *k == 3
        && matches!(
            m,
            ServerMessage::Error {
                code: ErrorCode::RoomFull,
                ..
            }
        )));
    say(&mut hub, 2, json!({"type":"join","room":"r"}));
    let out = drain(&mut hub);
    assert_eq!(types_for(&out, 2), ["joined"]);
    assert!(types_for(&out, 1).is_empty(), "no second peer_joined");
}

#[test]
fn relay_stays_inside_a_shared_room() {
    let mut hub = hub(8);
    for key in 1..=3 {
        hello(&mut hub, key, &format!("u{key}"));
    }
    say(&mut hub, 1, json!({"type":"join","room":"a"}));
    say(&mut hub, 2, json!({"type":"join","room":"a"}));
    say(&mut hub, 3, json!({"type":"join","room":"b"}));
    drain(&mut hub);

    say(
        &mut hub,
        2,
        json!({"type":"offer","room":"a","to":"s1","sdp":"v=0","x":1}),
    );
    let out = drain(&mut hub);
    let [
        (
            1,
            ServerMessage::Offer {
                from, from_user, ..
            },
        ),
    ] = &out[..]
    else {
        panic!("offer not relayed: {out:?}")
    };
    assert_eq!((from.as_str(), from_user.as_str()), ("s2", "u2"));

    say(
        &mut hub,
        3,
        json!({"type":"offer","room":"a","to":"s1","sdp":"v=0"}),
    );
    say(
        &mut hub,
        1,
        json!({"type":"offer","room":"a","to":"s3","sdp":"v=0"}),
    );
    say(
        &mut hub,
        1,
        json!({"type":"offer","room":"a","to":"s99","sdp":"v=0"}),
    );
    let codes: Vec<(SessionKey, ErrorCode)> = drain(&mut hub)
        .into_iter()
        .filter_map(|(k, m)| match m {
            ServerMessage::Error { code, .. } => Some((k, code)),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        [
            (3, ErrorCode::NotInRoom),
            (1, ErrorCode::NoSuchPeer),
            (1, ErrorCode::NoSuchPeer)
        ]
    );
}

#[test]
fn relayed_frames_keep_unknown_fields() {
    let mut hub = hub(8);
    hello(&mut hub, 1, "a");
    hello(&mut hub, 2, "b");
    say(&mut hub, 1, json!({"type":"join","room":"r"}));
    say(&mut hub, 2, json!({"type":"join","room":"r"}));
    drain(&mut hub);
    say(
        &mut hub,
        2,
        json!({"type":"candidate","room":"r","to":"s1","candidate":null,"x-ext":[1]}),
    );
    let out = hub.take_outbound();
    let [(1, Outbound::Text(text))] = &out[..] else {
        panic!("{out:?}")
    };
    let value: Value = serde_json::from_str(text.as_str()).expect("json");
    assert_eq!(
        value,
        json!({"type":"candidate","room":"r","from":"s2","from_user":"b","candidate":null,"x-ext":[1]})
    );
}

#[test]
fn reply_on_one_device_cancels_the_others() {
    let mut hub = hub(8);
    hello(&mut hub, 1, "alice");
    hello(&mut hub, 2, "bob");
    hello(&mut hub, 3, "bob");
    drain(&mut hub);
    say(
        &mut hub,
        1,
        json!({"type":"invite","room":"r-7","to":"bob","media":"video"}),
    );
    let out = drain(&mut hub);
    assert_eq!(types_for(&out, 2), ["invite"]);
    assert_eq!(types_for(&out, 3), ["invite"]);
    say(
        &mut hub,
        2,
        json!({"type":"invite_reply","room":"r-7","to":"alice","answer":"accept"}),
    );
    let out = drain(&mut hub);
    assert!(matches!(
        &out.iter().find(|(k, _)| *k == 1).map(|(_, m)| m),
        Some(ServerMessage::InviteReply {
            answer: InviteAnswer::Accept,
            ..
        })
    ));
    assert!(matches!(
        &out.iter().find(|(k, _)| *k == 3).map(|(_, m)| m),
        Some(ServerMessage::InviteCancel { from, reason: Some(CancelReason::AnsweredElsewhere), .. })
            if from.as_str() == "alice"
    ));
    // Answered, so alice leaving rings nothing off.
    hub.disconnect(1);
    let out = drain(&mut hub);
    assert!(
        !out.iter()
            .any(|(_, m)| matches!(m, ServerMessage::InviteCancel { .. }))
    );
}

#[test]
fn a_caller_who_vanishes_stops_the_ringing() {
    let mut hub = hub(8);
    hello(&mut hub, 1, "alice");
    hello(&mut hub, 2, "bob");
    say(
        &mut hub,
        1,
        json!({"type":"invite","room":"r","to":"bob","media":"audio"}),
    );
    drain(&mut hub);
    hub.disconnect(1);
    let out = drain(&mut hub);
    assert_eq!(types_for(&out, 2), ["invite_cancel", "presence"]);
}

#[test]
fn inviting_an_offline_user_says_offline() {
    let mut hub = hub(8);
    hello(&mut hub, 1, "alice");
    drain(&mut hub);
    say(
        &mut hub,
        1,
        json!({"type":"invite","room":"r","to":"carol","media":"audio","id":"i"}),
    );
    say(
        &mut hub,
        1,
        json!({"type":"invite_cancel","room":"r","to":"carol"}),
    );
    say(
        &mut hub,
        1,
        json!({"type":"invite_reply","room":"r","to":"carol","answer":"busy"}),
    );
    let out = drain(&mut hub);
    assert_eq!(out.len(), 3);
    for (_, message) in out {
        assert!(matches!(
            message,
            ServerMessage::Error {
                code: ErrorCode::Offline,
                ..
            }
        ));
    }
}

#[test]
fn disconnect_leaves_every_room() {
    let mut hub = hub(8);
    for key in 1..=3 {
        hello(&mut hub, key, &format!("u{key}"));
    }
    for room in ["a", "b"] {
        say(&mut hub, 1, json!({"type":"join","room":room}));
    }
    say(&mut hub, 2, json!({"type":"join","room":"a"}));
    say(&mut hub, 3, json!({"type":"join","room":"b"}));
    drain(&mut hub);
    hub.disconnect(1);
    let out = drain(&mut hub);
    assert_eq!(types_for(&out, 2), ["peer_left", "presence"]);
    assert_eq!(types_for(&out, 3), ["peer_left", "presence"]);
    assert!(out.iter().any(|(_, m)| matches!(
        m,
        ServerMessage::PeerLeft {
            reason: Some(LeftReason::Disconnected),
            ..
        }
    )));
    say(&mut hub, 2, json!({"type":"leave","room":"a"}));
    say(&mut hub, 2, json!({"type":"leave","room":"a"}));
    let out = drain(&mut hub);
    assert!(matches!(
        &out[..],
        [(
            2,
            ServerMessage::Error {
                code: ErrorCode::NotInRoom,
                ..
            }
        )]
    ));
}
