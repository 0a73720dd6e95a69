//! Parsing every message of protocol.md from its documented wire form.

use serde_json::json;

use crate::*;

fn parse(value: serde_json::Value) -> Result<Request, ParseError> {
    parse_client_message(&value.to_string())
}

#[test]
fn every_documented_client_message_parses() {
    let frames = [
        json!({"type":"hello","user":"alice","name":"Alice","token":"t"}),
        json!({"type":"join","room":"standup"}),
        json!({"type":"leave","room":"standup"}),
        json!({"type":"offer","room":"standup","to":"s1","sdp":"v=0\r\n"}),
        json!({"type":"answer","room":"standup","to":"s3f9","sdp":"v=0\r\n"}),
        json!({"type":"candidate","room":"standup","to":"s1",
               "candidate":{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host",
                            "sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}),
        json!({"type":"candidate","room":"standup","to":"s1","candidate":null}),
        json!({"type":"invite","room":"r-7","to":"bob","media":"video"}),
        json!({"type":"invite_reply","room":"r-7","to":"alice","answer":"accept"}),
        json!({"type":"invite_cancel","room":"r-7","to":"bob"}),
    ];
    for frame in frames {
        let request = parse(frame.clone()).unwrap_or_else(|e| panic!("{frame}: {e}"));
        assert_eq!(request.message.kind(), frame["type"]);
    }
}

#[test]
fn candidate_fields_keep_their_browser_names() {
    let request = parse(json!({"type":"candidate","room":"r","to":"s1",
        "candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":1}}))
    .expect("valid candidate");
    let ClientMessage::Candidate {
        candidate: Some(candidate),
        ..
    } = request.message
    else {
        panic!("not a candidate: {:?}", request.message)
    };
    assert_eq!(candidate.sdp_m_line_index, Some(1));
    let back = serde_json::to_value(&candidate).expect("serializes");
    assert_eq!(
        back,
        json!({"candidate":"c","sdpMid":"0","sdpMLineIndex":1})
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let request = parse(json!({"type":"join","room":"r","colour":"blue","id":"7"})).expect("valid");
    assert_eq!(request.id.as_ref().map(RequestId::as_str), Some("7"));
}

#[test]
fn unknown_type_is_distinct_from_malformed() {
    let err = parse(json!({"type":"dance","id":"x"})).expect_err("unknown");
    assert_eq!(err.code(), ErrorCode::UnknownType);
    assert_eq!(err.request_id().map(RequestId::as_str), Some("x"));

    for bad in [
        "not json",
        "[1,2]",
        "\"hello\"",
        r#"{"user":"alice"}"#,
        r#"{"type":7}"#,
        r#"{"type":"join"}"#,
        r#"{"type":"join","room":"has space"}"#,
        r#"{"type":"join","room":"r","id":5}"#,
        r#"{"type":"hello","user":"alice","name":""}"#,
        r#"{"type":"hello","user":"alice","name":"bell\u0007"}"#,
        r#"{"type":"offer","room":"r","to":"s1","sdp":""}"#,
        r#"{"type":"offer","room":"r","to":"","sdp":"v=0"}"#,
        r#"{"type":"invite","room":"r","to":"bob","media":"smell"}"#,
        r#"{"type":"invite_reply","room":"r","to":"bob","answer":"maybe"}"#,
        r#"{"type":"candidate","room":"r","to":"s1","candidate":{"sdpMid":"0"}}"#,
        r#"{"type":"candidate","room":"r","to":"s1","candidate":"text"}"#,
    ] {
        let err = parse_client_message(bad).expect_err(bad);
        assert_eq!(err.code(), ErrorCode::BadRequest, "{bad}: {err}");
    }
}

#[test]
fn malformed_with_id_keeps_the_id() {
    let err = parse(json!({"type":"join","room":"bad room","id":"r1"})).expect_err("bad room");
    assert_eq!(err.code(), ErrorCode::BadRequest);
    assert_eq!(err.request_id().map(RequestId::as_str), Some("r1"));
    assert!(err.to_string().contains("room"), "{err}");
}

#[test]
fn relayed_types_keep_their_raw_fields() {
    let request = parse(json!({"type":"offer","room":"r","to":"s1","sdp":"v=0","x-hint":1}))
        .expect("valid offer");
    let raw = request.relay_fields.expect("offers keep raw fields");
    assert_eq!(raw["x-hint"], 1);
    let join = parse(json!({"type":"join","room":"r"})).expect("valid join");
    assert!(join.relay_fields.is_none());
}

#[test]
fn oversized_frames_are_malformed() {
    let sdp = "a".repeat(MAX_FRAME_BYTES);
    let frame = json!({"type":"offer","room":"r","to":"s1","sdp":sdp}).to_string();
    assert_eq!(
        parse_client_message(&frame).expect_err("too big").code(),
        ErrorCode::BadRequest
    );
}

#[test]
fn server_messages_serialize_in_the_documented_shape() {
    let welcome = ServerMessage::Welcome {
        protocol: PROTOCOL_VERSION,
        session: SessionId::new("s1").expect("valid"),
        user: UserId::new("alice").expect("valid"),
        name: DisplayName::new("Alice").expect("valid"),
        ice_servers: vec![IceServer {
            urls: vec!["stun:127.0.0.1:3478".into()],
            username: None,
            credential: None,
        }],
        online: vec![OnlineUser {
            user: UserId::new("bob").expect("valid"),
            name: DisplayName::new("Bob").expect("valid"),
        }],
        re: None,
    };
    let value: serde_json::Value = serde_json::from_str(&welcome.to_json()).expect("valid json");
    assert_eq!(
        value,
        json!({"type":"welcome","protocol":1,"session":"s1","user":"alice","name":"Alice",
               "ice_servers":[{"urls":["stun:127.0.0.1:3478"]}],
               "online":[{"user":"bob","name":"Bob"}]})
    );

    let error = ServerMessage::error(
        ErrorCode::NoSuchPeer,
        "no session s9 in room r",
        Some(RequestId::new("q").expect("valid")),
    );
    let value: serde_json::Value = serde_json::from_str(&error.to_json()).expect("valid json");
    assert_eq!(value["type"], "error");
    assert_eq!(value["code"], "no_such_peer");
    assert_eq!(value["re"], "q");
}

#[test]
fn every_server_message_round_trips() {
    let samples = [
        json!({"type":"presence","user":"bob","name":"Bob","online":true}),
        json!({"type":"joined","room":"r","peers":[{"session":"s1","user":"bob","name":"Bob"}],"re":"1"}),
        json!({"type":"peer_joined","room":"r","peer":{"session":"s2","user":"al","name":"Al"}}),
        json!({"type":"peer_left","room":"r","session":"s2"}),
        json!({"type":"offer","room":"r","from":"s2","from_user":"al","sdp":"v=0"}),
        json!({"type":"answer","room":"r","from":"s2","from_user":"al","sdp":"v=0"}),
        json!({"type":"candidate","room":"r","from":"s2","from_user":"al","candidate":null}),
        json!({"type":"invite","room":"r","from":"al","from_name":"Al","media":"audio"}),
        json!({"type":"invite_reply","room":"r","from":"bob","answer":"busy"}),
        json!({"type":"invite_cancel","room":"r","from":"al"}),
        json!({"type":"error","code":"room_full","message":"full"}),
    ];
    for sample in samples {
        let parsed =
            parse_server_message(&sample.to_string()).unwrap_or_else(|e| panic!("{sample}: {e}"));
        let back = serde_json::to_value(&parsed).expect("serializes");
        assert_eq!(back, sample);
    }
    let unknown = parse_server_message(r#"{"type":"future_thing"}"#).expect_err("unknown");
    assert_eq!(unknown.code(), ErrorCode::UnknownType);
}

#[test]
fn error_codes_match_the_protocol_spelling() {
    for code in ErrorCode::ALL {
        let wire = serde_json::to_value(code).expect("serializes");
        assert_eq!(wire, code.as_str());
    }
}
