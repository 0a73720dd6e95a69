//! The desktop app end to end, in its real window: first run, contacts with
//! live presence, calling a kith-cli bot and seeing its video move (on the
//! pixels of two screenshots), chat both ways with delivery ticks, hanging
//! up, an incoming call accepted, hostile names shown as text, and a restart
//! that keeps contacts and history.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::elements::Element;
use kith_e2e::desktop::{
    AttrAtLeast, AttrIs, Desktop, HasText, Present, Shown, add_contact, click, open, pixels,
    sign_up, type_into, video_call, wait_for,
};
use kith_e2e::{PATIENCE, Process, Scratch, kith_cli};

const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// Asserts the tile shows a picture (not one flat colour) that changes.
async fn assert_video_moves(desktop: &Desktop, tile: &Element) {
    let (w1, h1, first) = pixels(&desktop.display, tile).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (w2, h2, second) = pixels(&desktop.display, tile).await;
    assert!(w1 > 16 && h1 > 16, "the tile is {w1}x{h1}");
    assert_eq!((w1, h1), (w2, h2));
    let mean = first.iter().map(|&v| f64::from(v)).sum::<f64>() / first.len() as f64;
    let spread = first
        .iter()
        .map(|&v| (f64::from(v) - mean).abs())
        .sum::<f64>()
        / first.len() as f64;
    assert!(
        spread > 10.0,
        "the tile is flat (mean {mean:.0}, spread {spread:.1}): no picture"
    );
    let changed = first
        .chunks(3)
        .zip(second.chunks(3))
        .filter(|(a, b)| a.iter().zip(b.iter()).any(|(x, y)| x.abs_diff(*y) > 24))
        .count();
    let share = changed as f64 / (first.len() / 3) as f64;
    assert!(
        share > 0.005,
        "only {:.2}% of the tile changed in 1.2 s: the video is not moving",
        share * 100.0
    );
    println!(
        "tile {w1}x{h1}: spread {spread:.1}, {:.1}% of pixels changed in 1.2 s",
        share * 100.0
    );
}

fn bot(desktop: &Desktop, command: &[&str]) -> Process {
    bot_named(desktop, "bot", command)
}

fn bot_named(desktop: &Desktop, user: &str, command: &[&str]) -> Process {
    let mut args: Vec<String> = vec!["--name".into(), "Bot".into()];
    args.extend(command.iter().map(|s| s.to_string()));
    args.extend(
        [
            "--ice-loopback",
            "--width",
            "640",
            "--height",
            "360",
            "--expect-peers",
            "1",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    kith_cli(&desktop.server_url(), user, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_app_calls_chats_and_remembers() {
    let scratch = Scratch::new("desktop");
    let desktop = Desktop::start(&scratch);
    let client = open(&desktop).await;

    // First run: choose an id and a name.
    sign_up(&client, "alice", "Alice").await;

    // A contact with a hostile name shows it literally.
    add_contact(&client, "bot", HOSTILE).await;
    let contact = wait_for(
        &client,
        "li.contact[data-user='bot']",
        "the contact",
        HasText(HOSTILE),
    )
    .await;
    assert!(
        client
            .find_all(Locator::Css("#contacts img"))
            .await
            .unwrap()
            .is_empty(),
        "markup ran"
    );
    assert!(
        contact
            .attr("class")
            .await
            .unwrap()
            .unwrap_or_default()
            .contains("offline")
    );

    // The bot comes online: presence turns live; call it with video.
    let mut answering = bot(&desktop, &["answer", "--chat", "1", "--duration", "40"]);
    answering.wait_for_line("signaling_connected", PATIENCE);
    let tile = video_call(&client, "bot", 30).await;
    let renderer = tile
        .attr("data-renderer")
        .await
        .unwrap()
        .unwrap_or_default();
    println!("renderer in use: {renderer}");
    assert_video_moves(&desktop, &tile).await;

    // Chat both ways, with the delivery tick from the bot's ack.
    wait_for(
        &client,
        "#chat-messages li.theirs",
        "the bot's chat",
        HasText("message 1 of 1"),
    )
    .await;
    type_into(&client, "#chat-input", &format!("hi bot {HOSTILE}")).await;
    click(&client, "#chat-send").await;
    wait_for(
        &client,
        "#chat-messages li.mine",
        "our message acked",
        AttrIs("data-state", "acked"),
    )
    .await;
    assert!(
        client
            .find_all(Locator::Css("#chat-messages img"))
            .await
            .unwrap()
            .is_empty()
    );
    answering.wait_for_line("hi bot <img", PATIENCE);

    // Hang up: the call screen goes, the bot sees us leave.
    click(&client, "#hang-up").await;
    wait_for(&client, "#home", "back home", Shown).await;
    answering.wait_for_line("peer_left", PATIENCE);
    answering.kill();

    // An incoming call from the bot rings and is accepted.
    let mut calling = bot(&desktop, &["call", "alice", "--duration", "8"]);
    click(&client, "#incoming .invite .accept").await;
    wait_for(
        &client,
        "#grid .tile",
        "the caller's video",
        AttrAtLeast("data-painted", 10),
    )
    .await;
    calling.expect_exit(0, PATIENCE);
    // The bot hung up: our side ends too, and says why.
    wait_for(&client, "#banner", "the end reason", HasText("hung up")).await;

    // Restart: contacts and chat history are still there.
    client.close().await.unwrap();
    let client = open(&desktop).await;
    wait_for(
        &client,
        "#signaling-status",
        "signed in again",
        HasText("online"),
    )
    .await;
    wait_for(
        &client,
        "li.contact[data-user='bot']",
        "the contact kept",
        HasText(HOSTILE),
    )
    .await;
    click(&client, "li.contact[data-user='bot'] .contact-name").await;
    wait_for(
        &client,
        "#home #chat-messages li.mine",
        "our message kept",
        HasText("hi bot"),
    )
    .await;
    wait_for(
        &client,
        "#home #chat-messages li.theirs",
        "theirs kept",
        HasText("message 1 of 1"),
    )
    .await;
    wait_for(&client, "#missed li", "the call history", HasText("bot")).await;

    // Canvas 2D, forced in the settings, draws the video too.
    click(&client, "#open-settings").await;
    // The microphone (PulseAudio's null source here) has a live level meter.
    wait_for(
        &client,
        "#mic-meter",
        "the microphone level",
        AttrAtLeast("data-dbov", 0),
    )
    .await;
    click(&client, "#set-renderer option[value='canvas']").await;
    click(&client, "#settings-save").await;
    let mut answering = bot(&desktop, &["answer", "--duration", "40"]);
    answering.wait_for_line("signaling_connected", PATIENCE);
    let tile = video_call(&client, "bot", 10).await;
    assert_eq!(
        tile.attr("data-renderer").await.unwrap().as_deref(),
        Some("canvas")
    );
    assert_video_moves(&desktop, &tile).await;
    click(&client, "#hang-up").await;
    answering.wait_for_line("peer_left", PATIENCE);
    answering.kill();

    // A group call: tick two online contacts, ring both into one room,
    // both answer, and both tiles show video.
    add_contact(&client, "carol", "Carol").await;
    let mut first = bot_named(&desktop, "bot", &["answer", "--duration", "40"]);
    let mut second = bot_named(&desktop, "carol", &["answer", "--duration", "40"]);
    for (user, process) in [("bot", &mut first), ("carol", &mut second)] {
        process.wait_for_line("signaling_connected", PATIENCE);
        let online = format!("li.contact.online[data-user='{user}'] .pick");
        wait_for(&client, &online, "online to pick", Present).await;
        click(&client, &online).await;
    }
    click(&client, "#group-call").await;
    for user in ["bot", "carol"] {
        let tile = format!("#grid .tile[data-user='{user}']");
        wait_for(
            &client,
            &tile,
            "a group call tile",
            AttrAtLeast("data-painted", 10),
        )
        .await;
    }
    // The two bots meshed with each other too (their peer_connected events).
    first.wait_for_line("\"user\":\"carol\",\"candidate_type\"", PATIENCE);
    second.wait_for_line("\"user\":\"bot\",\"candidate_type\"", PATIENCE);
    click(&client, "#hang-up").await;
    first.wait_for_line("peer_left", PATIENCE);
    client.close().await.unwrap();
}
