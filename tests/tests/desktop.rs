//! The desktop app end to end, in its real window: first run, contacts with
//! live presence, calling a kith-cli bot and seeing its video move (on the
//! pixels of two screenshots), chat both ways with delivery ticks, hanging
//! up, an incoming call accepted, hostile names shown as text, and a restart
//! that keeps contacts and history.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use kith_e2e::desktop::Desktop;
use kith_e2e::{PATIENCE, Process, Scratch, kith_cli};
use serde_json::json;

/// The test's X display, for screenshots.
static DISPLAY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

const HOSTILE: &str = "<img src=x onerror=alert(1)>";

async fn open(desktop: &Desktop) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "tauri:options".into(),
        json!({ "application": Desktop::application() }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&desktop.driver_url)
        .await
        .expect("a WebDriver session on the Kith window")
}

/// The first element matching `css` for which `check` holds, polling.
async fn wait_for(client: &Client, css: &str, what: &str, check: impl AsyncCheck) -> Element {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(found) = client.find_all(Locator::Css(css)).await {
            for element in found {
                if check.holds(&element).await {
                    return element;
                }
            }
        }
        if Instant::now() > deadline {
            let mut texts = Vec::new();
            for element in client.find_all(Locator::Css(css)).await.unwrap_or_default() {
                texts.push(format!("{:?}", element.prop("textContent").await));
            }
            let page = client.source().await.unwrap_or_default();
            let shot = std::env::temp_dir().join("kith-desktop-failure.png");
            if std::fs::write(&shot, screen_png()).is_ok() {
                eprintln!("screenshot of the screen: {}", shot.display());
            }
            panic!(
                "{what}: nothing matched {css} in {PATIENCE:?}; its matches' texts: {texts:?}; the page:\n{page}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

trait AsyncCheck {
    async fn holds(&self, element: &Element) -> bool;
}

struct Shown;
impl AsyncCheck for Shown {
    async fn holds(&self, element: &Element) -> bool {
        element.is_displayed().await.unwrap_or(false)
    }
}

struct Present;
impl AsyncCheck for Present {
    async fn holds(&self, _element: &Element) -> bool {
        true
    }
}

struct HasText(&'static str);
impl AsyncCheck for HasText {
    async fn holds(&self, element: &Element) -> bool {
        // textContent, not the WebDriver text: WebKitWebDriver leaves out the
        // text of buttons, and a clipped name is still the name.
        element
            .prop("textContent")
            .await
            .ok()
            .flatten()
            .is_some_and(|text| text.contains(self.0))
    }
}

struct AttrAtLeast(&'static str, u64);
impl AsyncCheck for AttrAtLeast {
    async fn holds(&self, element: &Element) -> bool {
        element
            .attr(self.0)
            .await
            .ok()
            .flatten()
            .and_then(|value| value.parse::<u64>().ok())
            .is_some_and(|value| value >= self.1)
    }
}

struct AttrIs(&'static str, &'static str);
impl AsyncCheck for AttrIs {
    async fn holds(&self, element: &Element) -> bool {
        element.attr(self.0).await.ok().flatten().as_deref() == Some(self.1)
    }
}

async fn type_into(client: &Client, css: &str, text: &str) {
    let input = wait_for(client, css, "an input", Shown).await;
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

async fn click(client: &Client, css: &str) {
    let button = wait_for(client, css, "a button", Present).await;
    // WebKitWebDriver calls some visible buttons (a clipped name) hidden and
    // refuses to click them; the page's own click is the same to the app.
    if button.click().await.is_err() {
        client
            .execute(
                "arguments[0].click()",
                vec![serde_json::to_value(&button).unwrap()],
            )
            .await
            .unwrap();
    }
}

/// The X display as a PNG, as a person would see it (WebKitWebDriver's own
/// screenshots hang under Xvfb here). The window sits at the origin: Xvfb
/// runs no window manager.
fn screen_png() -> Vec<u8> {
    let display = DISPLAY.get().cloned().unwrap_or_default();
    let out = std::process::Command::new("import")
        .args(["-display", &display, "-window", "root", "png:-"])
        .output()
        .expect("ImageMagick's import for a screenshot");
    out.stdout
}

/// The RGB pixels of `element`, cut from a screenshot of the display.
async fn pixels(element: &Element) -> (u32, u32, Vec<u8>) {
    let (x, y, w, h) = element.rectangle().await.unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(screen_png()));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let channels = info.color_type.samples();
    let (x0, y0) = (x.max(0.0) as u32, y.max(0.0) as u32);
    let (x1, y1) = (
        ((x + w) as u32).min(info.width),
        ((y + h) as u32).min(info.height),
    );
    let mut rgb = Vec::new();
    for row in y0..y1 {
        for col in x0..x1 {
            let at = (row as usize * info.width as usize + col as usize) * channels;
            rgb.extend_from_slice(&buffer[at..at + 3]);
        }
    }
    (x1.saturating_sub(x0), y1.saturating_sub(y0), rgb)
}

/// Asserts the tile shows a picture (not one flat colour) that changes.
async fn assert_video_moves(tile: &Element) {
    let (w1, h1, first) = pixels(tile).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (w2, h2, second) = pixels(tile).await;
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
    kith_cli(&desktop.server_url(), "bot", &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_app_calls_chats_and_remembers() {
    let scratch = Scratch::new("desktop");
    let desktop = Desktop::start(&scratch);
    let _ = DISPLAY.set(desktop.display.clone());
    let client = open(&desktop).await;

    // First run: choose an id and a name.
    type_into(&client, "#setup-user", "alice").await;
    type_into(&client, "#setup-name", "Alice").await;
    click(&client, "#setup-done").await;
    wait_for(&client, "#signaling-status", "signed in", HasText("online")).await;

    // A contact with a hostile name shows it literally.
    type_into(&client, "#add-user", "bot").await;
    type_into(&client, "#add-name", HOSTILE).await;
    click(&client, "#add-contact-button").await;
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
    wait_for(
        &client,
        "li.contact.online[data-user='bot']",
        "bot online",
        Shown,
    )
    .await;
    click(&client, "li.contact[data-user='bot'] .call-video").await;
    let tile = wait_for(
        &client,
        "#grid .tile",
        "the remote tile",
        AttrAtLeast("data-painted", 30),
    )
    .await;
    let renderer = tile
        .attr("data-renderer")
        .await
        .unwrap()
        .unwrap_or_default();
    println!("renderer in use: {renderer}");
    assert_video_moves(&tile).await;

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
    click(&client, "#set-renderer option[value='canvas']").await;
    click(&client, "#settings-save").await;
    let mut answering = bot(&desktop, &["answer", "--duration", "40"]);
    answering.wait_for_line("signaling_connected", PATIENCE);
    wait_for(
        &client,
        "li.contact.online[data-user='bot']",
        "bot online again",
        Present,
    )
    .await;
    click(&client, "li.contact[data-user='bot'] .call-video").await;
    let tile = wait_for(
        &client,
        "#grid .tile[data-renderer='canvas']",
        "a canvas tile",
        AttrAtLeast("data-painted", 10),
    )
    .await;
    assert_video_moves(&tile).await;
    click(&client, "#hang-up").await;
    answering.wait_for_line("peer_left", PATIENCE);
    client.close().await.unwrap();
}
