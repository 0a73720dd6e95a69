//! Ringing: invite accepted, declined, busy, to an offline user, cancelled.
#![allow(clippy::unwrap_used)]

use kith_e2e::*;

fn args(command: &[&str], extra: &[&str]) -> Args {
    Args::new(command)
        .media("VP8", 320, 180, 10)
        .flag("--ice-loopback")
        .extend(extra)
}

fn answer(url: &str, extra: &[&str]) -> Process {
    let mut bob = args(&["answer"], extra).spawn(url, "bob");
    bob.wait_for_line("signaling_connected", PATIENCE);
    bob
}

fn call(url: &str, to: &str, extra: &[&str]) -> Process {
    args(&["call", to], extra).spawn(url, "alice")
}

#[test]
fn an_accepted_invite_becomes_a_call() {
    let scratch = Scratch::new("accept");
    let server = Server::start(&[]);
    let bob_report = scratch.path("bob.json");
    let alice_report = scratch.path("alice.json");
    let mut bob = answer(
        &server.url(),
        &["--duration", "8", "--report", bob_report.to_str().unwrap()],
    );
    let mut alice = call(
        &server.url(),
        "bob",
        &[
            "--duration",
            "8",
            "--report",
            alice_report.to_str().unwrap(),
        ],
    );
    alice.expect_exit(0, PATIENCE);
    bob.expect_exit(0, PATIENCE);
    let invite = &bob.events("invite")[0];
    assert_eq!(invite["from"], "alice");
    assert_eq!(invite["media"], "video");
    assert!(
        peer(&report(&alice_report), "bob")["frames_decoded"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        peer(&report(&bob_report), "alice")["frames_decoded"]
            .as_u64()
            .unwrap()
            > 0
    );
}

/// Bob answers with `flag`; alice's call ends with `exit` and sees `answer`.
fn refused(flag: &str, exit: i32, answer_word: &str) {
    let server = Server::start(&[]);
    let mut bob = answer(&server.url(), &[flag]);
    let mut alice = call(&server.url(), "bob", &[]);
    alice.expect_exit(exit, PATIENCE);
    bob.expect_exit(0, PATIENCE);
    assert_eq!(alice.events("invite_reply")[0]["answer"], answer_word);
}

#[test]
fn a_declined_invite_ends_the_call_attempt() {
    refused("--decline", 3, "decline");
}

#[test]
fn a_busy_callee_says_so() {
    refused("--busy", 4, "busy");
}

#[test]
fn calling_an_offline_user_fails_at_once() {
    let server = Server::start(&[]);
    let mut alice = call(&server.url(), "nobody", &[]);
    alice.expect_exit(5, PATIENCE);
    let errors = alice.events("error");
    assert_eq!(
        errors[0]["error"]["detail"]["code"], "offline",
        "{errors:?}"
    );
}

#[test]
fn an_unanswered_invite_is_cancelled() {
    let server = Server::start(&[]);
    let mut bob = answer(&server.url(), &["--ignore"]);
    let mut alice = call(&server.url(), "bob", &["--ring-secs", "2"]);
    alice.expect_exit(6, PATIENCE);
    // Bob's phone stops ringing: he got the cancel and exits cleanly.
    bob.expect_exit(0, PATIENCE);
    assert_eq!(bob.events("invite_canceled")[0]["from"], "alice");
}
