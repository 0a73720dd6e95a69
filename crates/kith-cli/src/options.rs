//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use kith_call::codecs::{AudioCodecName, VideoCodecName};
use kith_call::{AudioSourceSpec, CallConfig, SignalingConfig, VideoSendSettings, VideoSourceSpec};
use kith_proto::{DisplayName, RoomId, UserId};

/// Kith without a window: join rooms, call and answer, for developers, bots
/// and tests. Events are printed to stdout as JSON lines; logs go to stderr
/// (RUST_LOG=info for more).
#[derive(Debug, Parser)]
#[command(name = "kith-cli", version)]
pub struct Cli {
    /// Signaling server.
    #[arg(long, default_value = "ws://127.0.0.1:8787/ws", global = true)]
    pub server: String,
    /// Your user id (letters, digits, `.`, `_`, `-`).
    #[arg(long, value_parser = parse_user, global = true, default_value = "kith-cli")]
    pub user: UserId,
    /// Display name.
    #[arg(long, value_parser = parse_name, global = true)]
    pub name: Option<DisplayName>,
    /// Server token, when the server wants one.
    #[arg(long, global = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Take part in a room.
    Join {
        #[arg(value_parser = parse_room)]
        room: RoomId,
        #[command(flatten)]
        call: CallOptions,
    },
    /// Ring a user; join a fresh room with them when they accept.
    Call {
        /// Who to call. (Not named `user`: that id belongs to the global `--user`.)
        #[arg(value_parser = parse_user, value_name = "USER")]
        callee: UserId,
        /// Give up (and cancel the invite) after this many seconds.
        #[arg(long, default_value_t = 30)]
        ring_secs: u64,
        #[command(flatten)]
        call: CallOptions,
    },
    /// Wait for an invite and accept it (or decline, or say busy).
    Answer {
        #[arg(long, conflicts_with_all = ["busy", "ignore"])]
        decline: bool,
        #[arg(long, conflicts_with = "ignore")]
        busy: bool,
        /// Do not reply; wait for the caller to cancel.
        #[arg(long)]
        ignore: bool,
        /// How long to wait for an invite.
        #[arg(long, default_value_t = 60)]
        wait_secs: u64,
        #[command(flatten)]
        call: CallOptions,
    },
    /// Print who is online and exit.
    Online,
}

/// What a call sends, records and reports.
#[derive(Debug, Clone, Args)]
pub struct CallOptions {
    /// synthetic | camera[:INDEX] | y4m:PATH | none
    #[arg(long, default_value = "synthetic")]
    pub video: VideoSourceSpec,
    /// tone | mic | wav:PATH | none
    #[arg(long, default_value = "tone")]
    pub audio: AudioSourceSpec,
    /// Preferred video codec: AV1, VP9, VP8 or H264.
    #[arg(long)]
    pub codec: Option<VideoCodecName>,
    /// Preferred audio codec: opus, pcmu or pcma.
    #[arg(long)]
    pub audio_codec: Option<AudioCodecName>,
    #[arg(long, default_value_t = 1280)]
    pub width: u32,
    #[arg(long, default_value_t = 720)]
    pub height: u32,
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Start video bitrate, kbit/s; the bandwidth estimate climbs (or
    /// falls) from there. Starting low keeps a slow link from being flooded
    /// before the estimate has seen it.
    #[arg(long, default_value_t = 1000)]
    pub bitrate: u32,
    /// Highest video bitrate the bandwidth estimate may reach, kbit/s.
    #[arg(long, default_value_t = 4000)]
    pub max_bitrate: u32,
    /// Send N numbered chat messages once a peer is connected.
    #[arg(long, default_value_t = 0)]
    pub chat: u32,
    /// Milliseconds between those messages.
    #[arg(long, default_value_t = 50)]
    pub chat_interval_ms: u64,
    /// Leave and exit after this many seconds in the call.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Peers that must connect (and send media) for exit status 0.
    #[arg(long, default_value_t = 1)]
    pub expect_peers: usize,
    /// Record the decoded video of the first peer (more peers: -USER added).
    #[arg(long)]
    pub record_y4m: Option<PathBuf>,
    /// Record the mixed audio of all peers.
    #[arg(long)]
    pub record_wav: Option<PathBuf>,
    /// Write a stats snapshot per second, one JSON object per line.
    #[arg(long)]
    pub stats_json: Option<PathBuf>,
    /// Write a JSON report at exit.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Offer loopback candidates (calls between processes on one machine).
    #[arg(long)]
    pub ice_loopback: bool,
    /// Connect only through TURN relays.
    #[arg(long)]
    pub relay_only: bool,
    /// Play received audio on the speakers (default: when --audio mic).
    #[arg(long)]
    pub speakers: bool,
}

impl CallOptions {
    /// No media: `online` only talks to the server.
    pub fn for_online() -> Self {
        Self {
            video: VideoSourceSpec::None,
            audio: AudioSourceSpec::None,
            codec: None,
            audio_codec: None,
            width: 1280,
            height: 720,
            fps: 30,
            bitrate: 1000,
            max_bitrate: 4000,
            chat: 0,
            chat_interval_ms: 50,
            duration: None,
            expect_peers: 0,
            record_y4m: None,
            record_wav: None,
            stats_json: None,
            report: None,
            ice_loopback: false,
            relay_only: false,
            speakers: false,
        }
    }

    pub fn call_config(&self, cli: &Cli) -> CallConfig {
        CallConfig {
            signaling: SignalingConfig {
                url: cli.server.clone(),
                user: cli.user.clone(),
                name: cli.name.clone(),
                token: cli.token.clone(),
                keepalive: Default::default(),
            },
            video: VideoSendSettings {
                source: self.video.clone(),
                width: self.width,
                height: self.height,
                fps: self.fps,
                start_bitrate_bps: self.bitrate.saturating_mul(1000),
            },
            audio: self.audio.clone(),
            video_codec: self.codec.map(|c| c.0),
            audio_codec: self.audio_codec.map(|c| c.0),
            max_bitrate_bps: self.max_bitrate.max(self.bitrate).saturating_mul(1000),
            ice_loopback: self.ice_loopback,
            relay_only: self.relay_only,
            record_y4m: self.record_y4m.clone(),
            record_wav: self.record_wav.clone(),
            speakers: self.speakers || self.audio == AudioSourceSpec::Mic,
            auto_busy: true,
        }
    }
}

fn parse_user(text: &str) -> Result<UserId, String> {
    UserId::new(text).map_err(|err| err.to_string())
}

fn parse_room(text: &str) -> Result<RoomId, String> {
    RoomId::new(text).map_err(|err| err.to_string())
}

fn parse_name(text: &str) -> Result<DisplayName, String> {
    DisplayName::new(text).map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_come_after_the_command() {
        let cli = Cli::try_parse_from([
            "kith-cli",
            "--server",
            "ws://127.0.0.1:1/ws",
            "--user",
            "bob",
            "join",
            "r1",
            "--video",
            "synthetic",
            "--audio",
            "tone",
            "--codec",
            "AV1",
            "--chat",
            "20",
            "--duration",
            "12",
            "--report",
            "bob.json",
        ])
        .expect("parses");
        let Command::Join { room, call } = cli.command else {
            panic!("join")
        };
        assert_eq!(room.as_str(), "r1");
        assert_eq!(call.chat, 20);
        assert_eq!(call.codec.map(|c| c.to_string()).as_deref(), Some("AV1"));
        assert!(Cli::try_parse_from(["kith-cli", "--user", "bad user!", "online"]).is_err());
        let cli =
            Cli::try_parse_from(["kith-cli", "--user", "alice", "call", "bob"]).expect("parses");
        assert_eq!(cli.user.as_str(), "alice");
        let Command::Call { callee, .. } = cli.command else {
            panic!("call")
        };
        assert_eq!(callee.as_str(), "bob");
        assert!(Cli::try_parse_from(["kith-cli", "join", "r", "--video", "webcam"]).is_err());
    }
}
