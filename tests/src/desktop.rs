//! The desktop app under test: a virtual display (Xvfb), a PulseAudio
//! daemon with a null sink for speakers and microphone, and tauri-driver
//! with WebKitWebDriver driving the real Kith window, all inside one
//! D-Bus session so the daemons WebKit starts end with it.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::{PATIENCE, Scratch, binary, free_port};

/// The display of the desktop started last, for a failing wait's screenshot.
static LAST_DISPLAY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// A child in its own process group, stopped (group and all) when dropped.
#[derive(Debug)]
pub struct Group {
    name: &'static str,
    child: Child,
}

impl Group {
    pub(crate) fn spawn(name: &'static str, command: &mut Command) -> Self {
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        Self { name, child }
    }

    fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // tauri-driver may need a second SIGTERM; then nothing is asked.
        for signal in ["-TERM", "-TERM", "-KILL"] {
            self.signal(signal);
            let deadline = Instant::now() + Duration::from_secs(3);
            while self.running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !self.running() {
                break;
            }
        }
        if self.running() {
            eprintln!("{} would not stop", self.name);
        }
        let _ = self.child.wait();
    }
}

pub(crate) fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} did not come up in {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Everything the window needs, for the life of a test.
#[derive(Debug)]
pub struct Desktop {
    pub display: String,
    pub pulse_server: String,
    pub driver_url: String,
    /// The app's data directory, kept across sessions (restarts).
    pub data_dir: PathBuf,
    /// Port of the app's bundled signaling server.
    pub server_port: u16,
    // Dropped in reverse order of start: driver, then sound, then display.
    _driver: Group,
    _pulse: Group,
    _xvfb: Group,
}

impl Desktop {
    pub fn start(scratch: &Scratch) -> Self {
        let number = 50 + std::process::id() % 400;
        let display = format!(":{number}");
        let xvfb = Group::spawn(
            "Xvfb",
            Command::new("Xvfb")
                .args([&display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
                .stderr(Stdio::null()),
        );
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
        wait_until("Xvfb", || socket.exists());

        let pulse_dir = scratch.path("pulse");
        std::fs::create_dir_all(&pulse_dir).unwrap();
        let pulse_socket = pulse_dir.join("native");
        let pulse = Group::spawn(
            "pulseaudio",
            Command::new("pulseaudio")
                .args([
                    "--daemonize=no",
                    "--exit-idle-time=-1",
                    "--disallow-exit",
                    "--use-pid-file=no",
                    "--system=false",
                    "-n",
                    &format!(
                        "--load=module-native-protocol-unix socket={} auth-anonymous=1",
                        pulse_socket.display()
                    ),
                    "--load=module-null-sink sink_name=kith_null",
                ])
                .env("PULSE_RUNTIME_PATH", &pulse_dir)
                .env("HOME", scratch.path("."))
                .stderr(Stdio::null()),
        );
        wait_until("pulseaudio", || pulse_socket.exists());
        let pulse_server = format!("unix:{}", pulse_socket.display());

        let data_dir = scratch.path("app-data");
        let server_port = free_port();
        let port = free_port();
        let native_port = free_port();
        let driver = Group::spawn(
            "tauri-driver",
            Command::new("dbus-run-session")
                .arg("--")
                .arg(tauri_driver())
                .args([
                    "--port",
                    &port.to_string(),
                    "--native-port",
                    &native_port.to_string(),
                ])
                .env("DISPLAY", &display)
                .env("PULSE_SERVER", &pulse_server)
                .env("WEBKIT_DISABLE_DMABUF_RENDERER", "1")
                .env("KITH_DATA_DIR", &data_dir)
                .env("KITH_SERVER_PORT", server_port.to_string())
                .env("KITH_CAMERA", "synthetic")
                .env("KITH_MICROPHONE", "mic")
                .env("HOME", scratch.path("."))
                .env("RUST_LOG", "info,webrtc=warn,rtc=warn"),
        );
        let driver_url = format!("http://127.0.0.1:{port}");
        let _ = LAST_DISPLAY.set(display.clone());
        wait_until("tauri-driver", || http_ok(port, "/status"));
        Self {
            display,
            pulse_server,
            driver_url,
            data_dir,
            server_port,
            _driver: driver,
            _pulse: pulse,
            _xvfb: xvfb,
        }
    }

    /// The WebSocket URL of the app's bundled signaling server.
    pub fn server_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.server_port)
    }

    /// The app binary tauri-driver launches for each session.
    pub fn application() -> PathBuf {
        binary("kith")
    }
}

/// `tauri-driver` on PATH or where `cargo install` puts it.
fn tauri_driver() -> PathBuf {
    let in_cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .map(|home| home.join("bin/tauri-driver"));
    match in_cargo_home {
        Some(path) if path.exists() => path,
        _ => PathBuf::from("tauri-driver"),
    }
}

pub(crate) fn http_ok(port: u16, path: &str) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200")
}

// ---- driving the window through WebDriver ----

pub async fn open(desktop: &Desktop) -> Client {
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
pub async fn wait_for(client: &Client, css: &str, what: &str, check: impl AsyncCheck) -> Element {
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
            if let Some(display) = LAST_DISPLAY.get()
                && std::fs::write(&shot, screen_png(display)).is_ok()
            {
                eprintln!("screenshot of the screen: {}", shot.display());
            }
            panic!(
                "{what}: nothing matched {css} in {PATIENCE:?}; its matches' texts: {texts:?}; the page:\n{page}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// Only this crate's tests implement it; no Send bound is needed.
#[allow(async_fn_in_trait)]
pub trait AsyncCheck {
    async fn holds(&self, element: &Element) -> bool;
}

#[derive(Debug)]
pub struct Shown;
impl AsyncCheck for Shown {
    async fn holds(&self, element: &Element) -> bool {
        element.is_displayed().await.unwrap_or(false)
    }
}

#[derive(Debug)]
pub struct Present;
impl AsyncCheck for Present {
    async fn holds(&self, _element: &Element) -> bool {
        true
    }
}

#[derive(Debug)]
pub struct HasText(pub &'static str);
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

#[derive(Debug)]
pub struct AttrAtLeast(pub &'static str, pub u64);
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

#[derive(Debug)]
pub struct AttrIs(pub &'static str, pub &'static str);
impl AsyncCheck for AttrIs {
    async fn holds(&self, element: &Element) -> bool {
        element.attr(self.0).await.ok().flatten().as_deref() == Some(self.1)
    }
}

/// First run: picks the user id and name, and waits until signed in.
pub async fn sign_up(client: &Client, user: &str, name: &str) {
    type_into(client, "#setup-user", user).await;
    type_into(client, "#setup-name", name).await;
    click(client, "#setup-done").await;
    wait_for(client, "#signaling-status", "signed in", HasText("online")).await;
}

/// Adds a contact from the sidebar's form.
pub async fn add_contact(client: &Client, user: &str, name: &str) {
    type_into(client, "#add-user", user).await;
    type_into(client, "#add-name", name).await;
    click(client, "#add-contact-button").await;
}

/// Waits until `user` shows online, calls them with video, and returns their
/// tile once it has painted `frames` frames.
pub async fn video_call(client: &Client, user: &str, frames: u64) -> Element {
    let online = format!("li.contact.online[data-user='{user}']");
    wait_for(client, &online, "the contact online", Present).await;
    click(client, &format!("{online} .call-video")).await;
    let tile = format!("#grid .tile[data-user='{user}']");
    wait_for(
        client,
        &tile,
        "the remote tile",
        AttrAtLeast("data-painted", frames),
    )
    .await
}

/// A numeric data attribute of `element` (`NaN` when absent).
pub async fn attr_number(element: &Element, name: &str) -> f64 {
    element
        .attr(name)
        .await
        .ok()
        .flatten()
        .and_then(|value| value.parse().ok())
        .unwrap_or(f64::NAN)
}

pub async fn type_into(client: &Client, css: &str, text: &str) {
    let input = wait_for(client, css, "an input", Shown).await;
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

pub async fn click(client: &Client, css: &str) {
    // The UI may re-render the button between finding and clicking it (a
    // stale element): find it again, a few times.
    for _ in 0..10 {
        let button = wait_for(client, css, "a button", Present).await;
        if button.click().await.is_ok() {
            return;
        }
        // WebKitWebDriver calls some visible buttons (a clipped name) hidden
        // and refuses to click them; the page's own click is the same to the
        // app.
        let clicked = client
            .execute(
                "arguments[0].click()",
                vec![serde_json::to_value(&button).unwrap()],
            )
            .await;
        if clicked.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not click {css}: it kept going stale");
}

/// The X display as a PNG, as a person would see it (WebKitWebDriver's own
/// screenshots hang under Xvfb here). The window sits at the origin: Xvfb
/// runs no window manager.
pub fn screen_png(display: &str) -> Vec<u8> {
    let out = Command::new("import")
        .args(["-display", display, "-window", "root", "png:-"])
        .output()
        .expect("ImageMagick's import for a screenshot");
    out.stdout
}

/// The RGB pixels of `element`, cut from a screenshot of the display.
pub async fn pixels(display: &str, element: &Element) -> (u32, u32, Vec<u8>) {
    let (x, y, w, h) = element.rectangle().await.unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(screen_png(display)));
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
