//! Starting the call engine for a profile and settings: the bundled
//! signaling server when no other is configured, then `kith_call::Call`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr as _;
use std::time::Duration;

use kith_call::codecs::VideoCodecName;
use kith_call::{
    AudioSourceSpec, Call, CallConfig, CallEvents, SignalingConfig, VideoSendSettings,
    VideoSourceSpec,
};
use kith_proto::{DisplayName, UserId};
use signaling_dev::{Server, ServerConfig, ServerError};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tracing::{info, warn};

use crate::error::{AppError, AppResult};
use crate::settings::{Profile, Settings};

/// A running engine and, when it is ours, the server it talks to.
#[derive(Debug)]
pub struct Engine {
    pub call: Call,
    pub server_url: String,
    /// The in-process server; `None` when another one serves.
    pub server: Option<Server>,
    /// Problems that did not stop the start (a missing camera, say).
    pub warnings: Vec<String>,
}

impl Engine {
    pub async fn start(profile: &Profile, settings: &Settings) -> AppResult<(Engine, CallEvents)> {
        let user = UserId::new(&profile.user)?;
        let name = DisplayName::new(&profile.name)?;
        let (server_url, server) = match &settings.server_url {
            Some(url) => (url.clone(), None),
            None => bundled_server(settings).await?,
        };
        let mut warnings = Vec::new();
        let mut video = VideoSourceSpec::from_str(&settings.camera)?;
        let mut audio = AudioSourceSpec::from_str(&settings.microphone)?;
        let mut speakers = true;
        loop {
            let mut config = call_config(settings, &server_url, &user, &name, &video, &audio)?;
            config.speakers &= speakers;
            match Call::start(config) {
                Ok((call, events)) => {
                    return Ok((
                        Engine {
                            call,
                            server_url,
                            server,
                            warnings,
                        },
                        events,
                    ));
                }
                // A missing device must not keep the user out of calls:
                // go on without it and say so.
                Err(kith_call::CallError::Device { device, .. })
                    if device == kith_call_core::DeviceKind::Camera
                        && video != VideoSourceSpec::None =>
                {
                    warnings.push(format!(
                        "no usable camera ({}); video is off",
                        settings.camera
                    ));
                    video = VideoSourceSpec::None;
                }
                Err(kith_call::CallError::Device { device, .. })
                    if device == kith_call_core::DeviceKind::Speaker && speakers =>
                {
                    warnings.push("no usable speaker; you will not hear the call".into());
                    speakers = false;
                }
                Err(kith_call::CallError::Device { .. }) if audio != AudioSourceSpec::None => {
                    warnings.push(format!(
                        "no usable microphone ({}); others will not hear you",
                        settings.microphone
                    ));
                    audio = AudioSourceSpec::None;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    pub async fn stop(self) {
        if let Err(error) = self.call.finish().await {
            warn!(%error, "the call engine did not stop cleanly");
        }
        if let Some(server) = self.server
            && let Err(error) = server.shutdown().await
        {
            warn!(%error, "the bundled server did not stop cleanly");
        }
    }
}

fn call_config(
    settings: &Settings,
    server_url: &str,
    user: &UserId,
    name: &DisplayName,
    video: &VideoSourceSpec,
    audio: &AudioSourceSpec,
) -> AppResult<CallConfig> {
    let (width, height, start_kbps, max_kbps) = if settings.low_bandwidth {
        (640, 360, 300, 500)
    } else {
        (1280, 720, 1000, 4000)
    };
    let video_codec = match &settings.codec {
        Some(name) => Some(
            VideoCodecName::from_str(name)
                .map_err(|e| AppError::Invalid(e.to_string()))?
                .0,
        ),
        None => None,
    };
    Ok(CallConfig {
        signaling: SignalingConfig {
            url: server_url.to_string(),
            user: user.clone(),
            name: Some(name.clone()),
            token: settings.token.clone(),
            keepalive: Default::default(),
        },
        video: VideoSendSettings {
            source: video.clone(),
            width,
            height,
            fps: 30,
            start_bitrate_bps: start_kbps * 1000,
        },
        audio: audio.clone(),
        video_codec,
        audio_codec: None,
        max_bitrate_bps: max_kbps * 1000,
        // Calls between apps on one machine (and with kith-cli) need loopback.
        ice_loopback: true,
        relay_only: false,
        record_y4m: None,
        record_wav: None,
        speakers: *audio != AudioSourceSpec::None,
        auto_busy: true,
    })
}

/// Starts signaling-dev in this process; if the port already serves Kith
/// signaling (another Kith on this machine), uses that one instead.
async fn bundled_server(settings: &Settings) -> AppResult<(String, Option<Server>)> {
    let host = if settings.listen_on_lan {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    let listen = SocketAddr::new(host, settings.listen_port);
    let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), settings.listen_port);
    let config = ServerConfig {
        listen,
        ..ServerConfig::default()
    };
    match Server::start(config).await {
        Ok(server) => {
            // The bound port (the setting may be 0: any free one).
            let url = format!("ws://127.0.0.1:{}/ws", server.local_addr().port());
            info!(%listen, "bundled signaling server started");
            Ok((url, Some(server)))
        }
        Err(ServerError::Bind { source, .. })
            if source.kind() == std::io::ErrorKind::AddrInUse && serves_kith(loopback).await =>
        {
            info!(%loopback, "using the Kith signaling server already on this port");
            Ok((format!("ws://{loopback}/ws"), None))
        }
        Err(error) => Err(AppError::Server(format!(
            "{error}; choose another port or a server in the settings"
        ))),
    }
}

/// Whether `addr` answers `GET /healthz` the way signaling-dev does.
async fn serves_kith(addr: SocketAddr) -> bool {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut reply = Vec::with_capacity(512);
        let mut reader = stream.take(4096);
        reader.read_to_end(&mut reply).await.ok()?;
        let text = String::from_utf8_lossy(&reply);
        Some(text.starts_with("HTTP/1.1 200") && text.trim_end().ends_with("ok"))
    };
    tokio::time::timeout(Duration::from_secs(2), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn on_port(port: u16) -> Settings {
        Settings {
            listen_port: port,
            ..Settings::default()
        }
    }

    #[tokio::test]
    async fn a_port_that_already_serves_kith_is_used_not_fought_over() {
        let (url, first) = bundled_server(&on_port(0)).await.unwrap();
        let first = first.expect("the first start runs its own server");
        let port = first.local_addr().port();
        let (url_again, second) = bundled_server(&on_port(port)).await.unwrap();
        assert!(
            second.is_none(),
            "the second start uses the first one's server"
        );
        assert_eq!(url_again, format!("ws://127.0.0.1:{port}/ws"));
        assert_eq!(url, url_again);
        first.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_port_held_by_something_else_is_a_clear_error() {
        let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = other.local_addr().unwrap().port();
        // Accept and say nothing: not a Kith server.
        tokio::spawn(async move {
            while let Ok((socket, _)) = other.accept().await {
                drop(socket);
            }
        });
        let error = bundled_server(&on_port(port)).await.unwrap_err();
        assert!(matches!(error, AppError::Server(_)), "{error}");
        assert!(error.to_string().contains("choose another port"), "{error}");
    }
}
