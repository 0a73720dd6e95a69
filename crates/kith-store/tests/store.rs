//! Round trips through a real database file, and durability under SIGKILL.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};

use kith_store::{CallDirection, MessageState, NewCall, Store, StoreError, StoredMessage};

fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_in(dir.path()).expect("open");
    (dir, store)
}

fn message(id: &str, conversation: &str, outgoing: bool) -> StoredMessage {
    StoredMessage {
        id: id.into(),
        conversation: conversation.into(),
        from: if outgoing {
            "me".into()
        } else {
            conversation.into()
        },
        text: format!("text of {id}"),
        sent_ms: 1,
        outgoing,
        state: if outgoing {
            MessageState::Sent
        } else {
            MessageState::Received
        },
    }
}

#[test]
fn migrates_from_empty_and_reopens_at_the_same_version() {
    let (dir, store) = fresh();
    assert_eq!(store.schema_version().unwrap(), 1);
    drop(store);
    let again = Store::open_in(dir.path()).unwrap();
    assert_eq!(again.schema_version().unwrap(), 1);
}

#[test]
fn refuses_a_database_from_a_newer_kith() {
    let (_dir, store) = fresh();
    let path = store.path().to_path_buf();
    drop(store);
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", 99).unwrap();
    drop(raw);
    match Store::open(&path) {
        Err(StoreError::NewerSchema {
            found: 99,
            known: 1,
        }) => {}
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

#[test]
fn contacts_round_trip() {
    let (_dir, store) = fresh();
    store.add_contact("bob", "Bob").unwrap();
    store.add_contact("alice", "Alice").unwrap();
    assert!(matches!(
        store.add_contact("bob", "Robert"),
        Err(StoreError::ContactExists { .. })
    ));
    let names: Vec<_> = store
        .contacts()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["Alice", "Bob"]);
    store.rename_contact("bob", "Robert").unwrap();
    assert_eq!(store.contact("bob").unwrap().unwrap().name, "Robert");
    assert_eq!(store.search_contacts("ROB").unwrap().len(), 1);
    assert_eq!(store.search_contacts("%").unwrap().len(), 0, "% is literal");
    store.remove_contact("bob").unwrap();
    assert!(store.contact("bob").unwrap().is_none());
    assert!(matches!(
        store.remove_contact("bob"),
        Err(StoreError::NoSuchContact { .. })
    ));
    let odd = "<img src=x onerror=alert(1)>";
    store.add_contact("x", odd).unwrap();
    assert_eq!(store.contact("x").unwrap().unwrap().name, odd);
}

#[test]
fn messages_round_trip_once_each_with_acks() {
    let (_dir, store) = fresh();
    store.save_message(&message("1", "bob", true)).unwrap();
    store.save_message(&message("2", "bob", false)).unwrap();
    store.save_message(&message("2", "bob", false)).unwrap();
    store.save_message(&message("3", "carol", false)).unwrap();
    assert!(store.mark_acked("1").unwrap());
    assert!(
        !store.mark_acked("2").unwrap(),
        "only our own messages are acked"
    );
    let history = store.history("bob", 100).unwrap();
    let ids: Vec<_> = history.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["1", "2"]);
    assert_eq!(history[0].state, MessageState::Acked);
    assert_eq!(history[1].state, MessageState::Received);
    let newest = store.history("bob", 1).unwrap();
    assert_eq!(newest[0].id, "2", "a limit keeps the newest");
}

#[test]
fn calls_and_settings_round_trip() {
    let (_dir, store) = fresh();
    let peers = vec!["bob".to_string()];
    let call = NewCall {
        room: "r1",
        peers: &peers,
        direction: CallDirection::Outgoing,
        media: "video",
    };
    let id = store.start_call(&call).unwrap();
    store.end_call(id, "ended").unwrap();
    store
        .log_call(
            &NewCall {
                direction: CallDirection::Incoming,
                ..call
            },
            "missed",
        )
        .unwrap();
    let calls = store.calls(10).unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].outcome.as_deref(), Some("missed"));
    assert_eq!(calls[1].peers, peers);
    assert!(matches!(
        store.end_call(999, "x"),
        Err(StoreError::NoSuchCall { id: 999 })
    ));

    assert_eq!(store.setting::<u32>("volume").unwrap(), None);
    store.set_setting("volume", &7u32).unwrap();
    store.set_setting("volume", &8u32).unwrap();
    assert_eq!(store.setting::<u32>("volume").unwrap(), Some(8));
    assert!(matches!(
        store.setting::<Vec<u8>>("volume"),
        Err(StoreError::Setting { .. })
    ));
}

/// The child half of the kill test: saves messages and prints each id once
/// `save_message` has returned, i.e. once it is acknowledged.
#[test]
fn writer_child() {
    let Ok(dir) = std::env::var("KITH_STORE_WRITER_DIR") else {
        return;
    };
    let store = Store::open_in(std::path::Path::new(&dir)).unwrap();
    let mut out = std::io::stdout().lock();
    for n in 0..1_000_000u64 {
        store
            .save_message(&message(&n.to_string(), "bob", false))
            .unwrap();
        writeln!(out, "saved {n}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn a_killed_writer_loses_no_acknowledged_message() {
    for kill_after in [1usize, 37, 400] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
            .env("KITH_STORE_WRITER_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acknowledged = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(id) = line.strip_prefix("saved ") {
                acknowledged.push(id.to_string());
                if acknowledged.len() == kill_after {
                    break;
                }
            }
        }
        // SIGKILL: no destructor, no flush, no checkpoint.
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(acknowledged.len(), kill_after, "the writer died early");
        let store = Store::open_in(dir.path()).unwrap();
        let kept: std::collections::HashSet<_> = store
            .history("bob", usize::MAX)
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        for id in &acknowledged {
            assert!(
                kept.contains(id),
                "message {id} was acknowledged, then lost"
            );
        }
    }
}
