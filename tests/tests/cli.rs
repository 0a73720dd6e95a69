//! kith-cli's own failures: what a user gets for a bad source or no server.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use kith_e2e::*;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(binary("kith-cli"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_missing_video_file_is_a_clear_error() {
    let server = Server::start(&[]);
    let (code, stderr) = run(&[
        "--server",
        &server.url(),
        "--user",
        "alice",
        "join",
        "r1",
        "--video",
        "y4m:/nonexistent/clip.y4m",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("video file") && stderr.contains("/nonexistent/clip.y4m"),
        "{stderr}"
    );
}

#[test]
fn a_missing_camera_is_a_clear_error() {
    // No machine this runs on has camera 97.
    let server = Server::start(&[]);
    let (code, stderr) = run(&[
        "--server",
        &server.url(),
        "--user",
        "alice",
        "join",
        "r1",
        "--video",
        "camera:97",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("camera"), "{stderr}");
}

#[test]
fn no_server_is_a_clear_error_not_a_hang() {
    let port = free_port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let started = std::time::Instant::now();
    let (code, stderr) = run(&["--server", &url, "--user", "alice", "online"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("is it running"), "{stderr}");
    assert!(started.elapsed() < PATIENCE);
}

#[test]
fn online_lists_who_is_there() {
    let server = Server::start(&[]);
    let mut bob = Args::new(&["answer"]).spawn(&server.url(), "bob");
    bob.wait_for_line("signaling_connected", PATIENCE);
    let output = Command::new(binary("kith-cli"))
        .args(["--server", &server.url(), "--user", "alice", "online"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("\"online\":[{\"user\":\"bob\""), "{stdout}");
}
