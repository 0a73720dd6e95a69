//! Debian's headless Chromium, driven through chromedriver, running the
//! browser client that signaling-dev serves at `/`. Each [`Page`] is its own
//! Chromium (its own WebDriver session), so two pages never share a
//! renderer or throttle each other as background tabs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use crate::desktop::{Group, http_ok, wait_until};
use crate::{PATIENCE, free_port};

/// chromedriver on a free port, for the life of a test.
#[derive(Debug)]
pub struct Chromium {
    driver_url: String,
    _driver: Group,
}

impl Chromium {
    pub fn start() -> Self {
        let port = free_port();
        let driver = Group::spawn(
            "chromedriver",
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_until("chromedriver", || http_ok(port, "/status"));
        Self {
            driver_url: format!("http://127.0.0.1:{port}"),
            _driver: driver,
        }
    }

    /// Opens `url` in a new headless Chromium and waits for the page's API.
    pub async fn open(&self, url: &str) -> Page {
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            // Loopback ICE candidates, and real addresses instead of mDNS
            // names (kith-cli resolves no .local names without multicast).
            "--allow-loopback-in-peer-connection",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            "--autoplay-policy=no-user-gesture-required",
            // Play into a fake output at real-time pace, never into the
            // PulseAudio server the device tests measure levels on.
            "--disable-audio-output",
            // The synthetic source paints on a timer: never throttle it.
            "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows",
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": "/usr/bin/chromium", "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.driver_url)
            .await
            .expect("a chromedriver session (is Debian's chromium-driver installed?)");
        client.goto(url).await.expect("the page opens");
        let page = Page { client };
        page.wait_until("the page's API", "window.kith !== undefined")
            .await;
        page
    }
}

/// One browser client page.
#[derive(Debug)]
pub struct Page {
    pub client: Client,
}

impl Page {
    /// Polls the JavaScript expression `condition` (it may `await`) until
    /// it is true.
    pub async fn wait_until(&self, what: &str, condition: &str) {
        let deadline = Instant::now() + PATIENCE;
        let script = format!(
            "const done = arguments[arguments.length - 1];
             (async () => ({condition}))().then((v) => done(!!v), () => done(false));"
        );
        loop {
            if let Ok(Value::Bool(true)) = self.client.execute_async(&script, vec![]).await {
                return;
            }
            if Instant::now() > deadline {
                let report = self.report().await;
                panic!(
                    "{what}: `{condition}` did not hold in {PATIENCE:?}; the page reports {report:#}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Clicks the element matching `css`, as a person would.
    pub async fn click(&self, css: &str) {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("nothing to click at {css}: {err}"))
            .click()
            .await
            .unwrap_or_else(|err| panic!("cannot click {css}: {err}"));
    }

    /// `window.kith.report()`: the page's figures from getStats, per peer.
    pub async fn report(&self) -> Value {
        self.run_async(
            "const done = arguments[arguments.length - 1];
             window.kith.report().then(done, (e) => done({ error: String(e) }));",
            vec![],
        )
        .await
    }

    /// Runs `script` (a function body) in the page.
    pub async fn run(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Runs `script` with `args` and the WebDriver callback as its last
    /// argument; its value is what the script passes to the callback.
    pub async fn run_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute_async(script, args)
            .await
            .unwrap_or_else(|err| json!({ "error": err.to_string() }))
    }

    /// A PNG of the page as Chromium renders it.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.unwrap()
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// The client page's query for `user` joining `room` as it opens, sending
/// its synthetic camera in `codec` at `width`×`height` and `fps`.
pub fn call_query(
    room: &str,
    user: &str,
    codec: &str,
    (width, height, fps): (u32, u32, u32),
) -> String {
    format!(
        "room={room}&user={user}&source=synthetic&codec={codec}&width={width}&height={height}&fps={fps}"
    )
}

/// The figures `report` holds for the peer that is (or was) `user`.
pub fn peer_in<'a>(report: &'a Value, user: &str) -> &'a Value {
    report["peers"]
        .as_array()
        .into_iter()
        .chain(report["left"].as_array())
        .flatten()
        .find(|peer| peer["user"] == user)
        .unwrap_or_else(|| panic!("no peer {user} in the page's report {report:#}"))
}
