//! One peer connection (webrtc-rs) and the tasks around it: its event
//! handler forwarding to the engine, the RTP writers that take encoded units
//! from the send side, the RTCP reader that turns PLI/FIR into keyframes,
//! the chat channel reader, and the stats it reads back.

use std::sync::Arc;
use std::time::Instant;

use kith_media::codec::{AudioCodec, VideoCodec};
use kith_proto::IceServer;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::statistics::report::RTCStatsReportEntry;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, warn};
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::TrackLocalEvent;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceConnectionState, RTCIceGatheringState, RTCIceServer,
    RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState, SettingEngineBuilder,
    StatsSelector,
};

use crate::codecs::{
    audio_codec_for_mime, audio_rtp_codec, media_engine, video_codec_for_mime, video_rtp_codec,
};
use crate::error::CallError;
use crate::media::send::{Marker, MediaUnit, UnitReceiver};

/// The core's name for a peer connection.
pub use kith_call_core::LinkId as PeerId;

/// What a peer connection reports to the engine.
#[derive(Clone)]
pub enum PeerEvent {
    LocalCandidate(RTCIceCandidateInit),
    GatheringComplete,
    State(RTCPeerConnectionState),
    IceState(RTCIceConnectionState),
    DataChannel(Arc<dyn DataChannel>),
    Track(Arc<dyn TrackRemote>),
    ChatOpen,
    ChatText(String),
    ChatClosed,
    /// The peer asked for a keyframe of the stream with this SSRC.
    KeyframeRequest(u32),
    /// Our RTP writer for this peer needs a keyframe (it starts, or fell behind).
    WriterNeedsKeyframe,
}

impl std::fmt::Debug for PeerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerEvent::LocalCandidate(c) => write!(f, "LocalCandidate({})", c.candidate),
            PeerEvent::GatheringComplete => f.write_str("GatheringComplete"),
            PeerEvent::State(s) => write!(f, "State({s})"),
            PeerEvent::IceState(s) => write!(f, "IceState({s})"),
            PeerEvent::DataChannel(_) => f.write_str("DataChannel"),
            PeerEvent::Track(_) => f.write_str("Track"),
            PeerEvent::ChatOpen => f.write_str("ChatOpen"),
            PeerEvent::ChatText(_) => f.write_str("ChatText"),
            PeerEvent::ChatClosed => f.write_str("ChatClosed"),
            PeerEvent::KeyframeRequest(ssrc) => write!(f, "KeyframeRequest({ssrc})"),
            PeerEvent::WriterNeedsKeyframe => f.write_str("WriterNeedsKeyframe"),
        }
    }
}

pub type PeerEvents = mpsc::UnboundedSender<(PeerId, PeerEvent)>;

struct Handler {
    id: PeerId,
    events: PeerEvents,
    /// Dropped with the connection's state inside webrtc-rs.
    _alive: crate::alive::AliveGuard,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let _ = self.events.send((self.id, PeerEvent::LocalCandidate(init)));
            }
            Err(err) => debug!(%err, "local candidate not serializable"),
        }
    }
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.events.send((self.id, PeerEvent::GatheringComplete));
        }
    }
    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        let _ = self.events.send((self.id, PeerEvent::IceState(state)));
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send((self.id, PeerEvent::State(state)));
    }
    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        let _ = self.events.send((self.id, PeerEvent::DataChannel(channel)));
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.events.send((self.id, PeerEvent::Track(track)));
    }
}

/// How connections are built.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub ice_servers: Vec<IceServer>,
    /// Offer loopback host candidates (calls on one machine, tests).
    pub ice_loopback: bool,
    /// Only relay candidates (through TURN).
    pub relay_only: bool,
    pub video_codecs: Vec<VideoCodec>,
    pub audio_codecs: Vec<AudioCodec>,
    /// Bandwidth estimator start and ceiling, bits/s.
    pub start_bitrate_bps: u32,
    pub max_bitrate_bps: u32,
    /// Where the connection's estimator publishes its estimate.
    pub estimate: crate::estimator::SharedEstimate,
    /// Where the connection counts resends sent and received.
    pub repairs: crate::repairs::RepairCounts,
}

/// The local tracks of one connection.
pub struct LocalTracks {
    pub audio: Arc<TrackLocalStaticRTP>,
    pub audio_ssrc: u32,
    pub video: Arc<TrackLocalStaticRTP>,
    pub video_ssrc: u32,
}

fn local_track(
    kind: RtpCodecKind,
    codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
    ssrc: u32,
    rtx_ssrc: Option<u32>,
) -> Arc<TrackLocalStaticRTP> {
    let label = kind.to_string();
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "kith".to_owned(),
        format!("kith-{label}"),
        label,
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                rtx: rtx_ssrc.map(|ssrc| RTCRtpRtxParameters { ssrc }),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )))
}

/// Connectivity checks every 50 ms, as libwebrtc paces them, not
/// webrtc-rs's 200 ms: the checks were most of a call's 400 ms set-up.
const ICE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);
/// ...for as long as webrtc-rs's defaults try a pair (7 × 200 ms), so a
/// lossy path is not given up on sooner.
const ICE_CHECKS_PER_PAIR: u16 = 28;

/// Builds a connection with one audio and one video transceiver (sendrecv,
/// in that order) and, for the offerer, the `chat` data channel.
pub async fn connect(
    id: PeerId,
    settings: &ConnectionSettings,
    events: PeerEvents,
) -> Result<(Arc<dyn PeerConnection>, LocalTracks), CallError> {
    // mDNS lets us resolve a browser's `.local` host candidates, but its
    // multicast socket cannot be opened on a host without a default route
    // (ENODEV): an isolated LAN or an offline laptop. Such a host goes on
    // without mDNS rather than without calls.
    let pc = match build(id, settings, events.clone(), MulticastDnsMode::QueryOnly).await {
        Ok(pc) => pc,
        Err(err) => {
            warn!(%err, "cannot open a connection with mDNS; trying without it");
            build(id, settings, events, MulticastDnsMode::Disabled).await?
        }
    };
    add_tracks(pc, settings).await
}

async fn build(
    id: PeerId,
    settings: &ConnectionSettings,
    events: PeerEvents,
    mdns: MulticastDnsMode,
) -> Result<Arc<dyn PeerConnection>, CallError> {
    let mut engine = media_engine(&settings.video_codecs, &settings.audio_codecs)?;
    let estimator = crate::estimator::Estimator::new(
        f64::from(settings.start_bitrate_bps),
        100_000.0,
        f64::from(settings.max_bitrate_bps.max(settings.start_bitrate_bps)),
        settings.estimate.clone(),
    );
    let registry = crate::chain::registry(
        &mut engine,
        estimator,
        settings.estimate.clone(),
        settings.repairs.clone(),
    )?;
    let setting_engine = SettingEngineBuilder::new()
        .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_CHECKS_PER_PAIR))
        .with_include_loopback_candidate(settings.ice_loopback)
        // An ICE restart rebinds the sockets and gathers anew: after the
        // host's address changed, the old sockets and candidates name an
        // address that is gone, and a restart that kept them never connects.
        .with_discard_local_candidates_during_ice_restart(true)
        .with_multicast_dns_mode(mdns)
        .build();
    let ice_servers = settings
        .ice_servers
        .iter()
        .map(|server| RTCIceServer {
            urls: server.urls.clone(),
            username: server.username.clone().unwrap_or_default(),
            credential: server.credential.clone().unwrap_or_default(),
        })
        .collect();
    let mut configuration = RTCConfigurationBuilder::new().with_ice_servers(ice_servers);
    if settings.relay_only {
        configuration = configuration.with_ice_transport_policy(RTCIceTransportPolicy::Relay);
    }
    let mut udp_addrs = vec!["0.0.0.0:0".to_owned()];
    if settings.ice_loopback {
        udp_addrs.push("127.0.0.1:0".to_owned());
    }
    // Boxed: webrtc-rs's build future is 20 KB, too big to nest in ours.
    let build = PeerConnectionBuilder::new()
        .with_runtime(crate::sockets::runtime())
        .with_configuration(configuration.build())
        .with_media_engine(engine)
        .with_setting_engine(setting_engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler {
            id,
            events,
            _alive: crate::alive::AliveGuard::new(),
        }))
        .with_udp_addrs(udp_addrs)
        .build();
    let pc = Box::pin(build)
        .await
        .map_err(CallError::webrtc("create a peer connection"))?;
    Ok(Arc::new(pc))
}

async fn add_tracks(
    pc: Arc<dyn PeerConnection>,
    settings: &ConnectionSettings,
) -> Result<(Arc<dyn PeerConnection>, LocalTracks), CallError> {
    let audio_codec = audio_rtp_codec(
        settings
            .audio_codecs
            .first()
            .copied()
            .unwrap_or(AudioCodec::Opus),
    );
    let video_codec = video_rtp_codec(
        settings
            .video_codecs
            .first()
            .copied()
            .unwrap_or(VideoCodec::Vp8),
    );
    let (audio_ssrc, video_ssrc) = (rand::random(), rand::random());
    let tracks = LocalTracks {
        audio: local_track(RtpCodecKind::Audio, audio_codec, audio_ssrc, None),
        audio_ssrc,
        // Retransmissions on their own SSRC (RFC 4588): re-sent with the
        // media SSRC, a packet that did arrive after all is a duplicate that
        // SRTP's replay check drops before the transport-wide CC recorder
        // sees it, which the sender's estimator counts as loss; under random
        // loss that spiral starved the whole call.
        video: local_track(
            RtpCodecKind::Video,
            video_codec,
            video_ssrc,
            Some(rand::random()),
        ),
        video_ssrc,
    };
    for track in [&tracks.audio, &tracks.video] {
        pc.add_transceiver_from_track(
            Arc::clone(track) as Arc<dyn TrackLocal>,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendrecv,
                streams: Vec::new(),
                send_encodings: Vec::new(),
            }),
        )
        .await
        .map_err(CallError::webrtc("add a transceiver"))?;
    }
    Ok((pc, tracks))
}

/// Creates the `chat` channel (the offerer does, protocol.md).
pub async fn create_chat_channel(
    pc: &Arc<dyn PeerConnection>,
) -> Result<Arc<dyn DataChannel>, CallError> {
    pc.create_data_channel(
        "chat",
        Some(RTCDataChannelInit {
            ordered: true,
            ..Default::default()
        }),
    )
    .await
    .map_err(CallError::webrtc("create the chat channel"))
}

/// Forwards a chat channel's events to the engine until it closes.
pub fn watch_chat_channel(
    id: PeerId,
    channel: Arc<dyn DataChannel>,
    events: PeerEvents,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = channel.poll().await {
            let forwarded = match event {
                DataChannelEvent::OnOpen => PeerEvent::ChatOpen,
                DataChannelEvent::OnMessage(message) if message.is_string => {
                    match String::from_utf8(message.data.to_vec()) {
                        Ok(text) => PeerEvent::ChatText(text),
                        Err(_) => continue,
                    }
                }
                DataChannelEvent::OnClose => {
                    let _ = events.send((id, PeerEvent::ChatClosed));
                    break;
                }
                _ => continue,
            };
            if events.send((id, forwarded)).is_err() {
                break;
            }
        }
    })
}

/// The codec and payload type negotiated for the sender of `kind`.
pub async fn negotiated_send_codec(
    pc: &Arc<dyn PeerConnection>,
    kind: RtpCodecKind,
) -> Option<(String, u8)> {
    for sender in pc.get_senders().await {
        if sender.track().kind().await != kind {
            continue;
        }
        let parameters = sender.get_parameters().await.ok()?;
        let codec = parameters.rtp_parameters.codecs.first()?;
        return Some((codec.rtp_codec.mime_type.clone(), codec.payload_type));
    }
    None
}

pub fn video_codec_of(mime: &str) -> Option<VideoCodec> {
    video_codec_for_mime(mime)
}

pub fn audio_codec_of(mime: &str) -> Option<AudioCodec> {
    audio_codec_for_mime(mime)
}

/// Puts our video codec order on the video transceiver before an answer is
/// made. protocol.md: "the answerer picks the first codec of its own
/// preference that the offer has"; webrtc-rs answers in the offer's order,
/// so a browser offering AV1 first got AV1 from a Kith that prefers VP8.
/// Only codecs the offer has are listed: webrtc-rs refuses the others.
/// Each is followed by its RTX codec: the sender takes its codecs from this
/// list, and without RTX in it the answerer resent lost packets on the media
/// SSRC (the SDP answer still showed RTX, from the media engine).
pub async fn prefer_our_video_codecs(
    pc: &Arc<dyn PeerConnection>,
    ours: &[VideoCodec],
    offer: &str,
) {
    let offered: Vec<rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters> = ours
        .iter()
        .filter(|codec| offer.contains(&format!(" {}/90000", codec.sdp_name())))
        .flat_map(|codec| {
            [
                crate::codecs::video_codec_parameters(*codec),
                crate::codecs::rtx_codec(*codec),
            ]
        })
        .collect();
    if offered.is_empty() {
        return;
    }
    for transceiver in pc.get_transceivers().await {
        let Ok(Some(sender)) = transceiver.sender().await else {
            continue;
        };
        if sender.track().kind().await != RtpCodecKind::Video {
            continue;
        }
        if let Err(err) = transceiver.set_codec_preferences(offered.clone()).await {
            debug!(%err, "the answer keeps the offer's codec order");
        }
    }
}

/// Something that can ask the encoder for a keyframe.
pub type KeyframeRequest = Arc<dyn Fn() + Send + Sync>;

/// Writes every encoded unit to `track` as RTP with this connection's SSRC,
/// sequence numbers and payload type. Video starts at a keyframe; a writer
/// that falls behind skips ahead and asks for a keyframe.
pub fn write_units(
    track: Arc<TrackLocalStaticRTP>,
    mut units: UnitReceiver,
    ssrc: u32,
    payload_type: u8,
    wait_for_keyframe: bool,
    keyframe: Option<KeyframeRequest>,
    span: tracing::Span,
) -> JoinHandle<()> {
    tokio::spawn(
        async move {
            let mut sequence: u16 = rand::random();
            let mut started = !wait_for_keyframe;
            if let Some(keyframe) = &keyframe {
                keyframe();
            }
            loop {
                let unit: Arc<MediaUnit> = match units.recv().await {
                    Ok(unit) => unit,
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        debug!(skipped, "RTP writer fell behind");
                        if wait_for_keyframe {
                            started = false;
                            if let Some(keyframe) = &keyframe {
                                keyframe();
                            }
                        }
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if !started {
                    if !unit.keyframe {
                        continue;
                    }
                    started = true;
                }
                let last = unit.payloads.len().saturating_sub(1);
                for (index, payload) in unit.payloads.iter().enumerate() {
                    let packet = rtp::Packet {
                        header: rtp::header::Header {
                            version: 2,
                            marker: match unit.marker {
                                Marker::LastPacket => index == last,
                                Marker::FirstPacket => index == 0,
                                Marker::Nowhere => false,
                            },
                            payload_type,
                            sequence_number: sequence,
                            timestamp: unit.rtp_timestamp,
                            ssrc,
                            ..Default::default()
                        },
                        payload: payload.clone(),
                    };
                    sequence = sequence.wrapping_add(1);
                    if let Err(err) = track.write_rtp(packet).await {
                        debug!(%err, "RTP write failed; writer stops");
                        return;
                    }
                }
            }
        }
        .instrument(span),
    )
}

/// The SSRCs that RTCP asks a keyframe of (PLI and FIR).
pub fn keyframe_requests(packets: &[Box<dyn rtc::rtcp::Packet>]) -> Vec<u32> {
    let mut ssrcs = Vec::new();
    for packet in packets {
        let any = packet.as_any();
        if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
            ssrcs.push(pli.media_ssrc);
        } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
            ssrcs.extend(fir.fir.iter().map(|entry| entry.ssrc));
        }
    }
    ssrcs
}

/// Reads RTCP that webrtc-rs routes to a local track. It routes a compound
/// packet by its *first* report's SSRC, so a PLI for our video may arrive
/// on the audio track (or a remote one): every track is watched, and the
/// engine matches the SSRC.
pub fn watch_local_rtcp(
    id: PeerId,
    track: Arc<TrackLocalStaticRTP>,
    events: PeerEvents,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = track.poll().await {
            let TrackLocalEvent::OnRtcpPacket(packets) = event else {
                continue;
            };
            for ssrc in keyframe_requests(&packets) {
                if events.send((id, PeerEvent::KeyframeRequest(ssrc))).is_err() {
                    return;
                }
            }
        }
    })
}

/// Transport facts read from webrtc-rs's stats.
#[derive(Debug, Clone, Default)]
pub struct TransportStats {
    pub rtt_ms: Option<f64>,
    pub candidate_type: Option<String>,
    pub available_outgoing_bps: Option<f64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets_lost: i64,
    pub jitter_ms: Option<f64>,
    /// NACKs we sent for the peer's video (NACKs received and resends are
    /// counted by `repairs::RepairCounts`: webrtc-rs's own counts are wrong).
    pub nacks_sent: u64,
}

pub async fn transport_stats(pc: &Arc<dyn PeerConnection>) -> TransportStats {
    let report = pc.get_stats(Instant::now(), StatsSelector::None).await;
    let mut out = TransportStats::default();
    let selected = report.iter().find_map(|entry| match entry {
        RTCStatsReportEntry::Transport(transport)
            if !transport.selected_candidate_pair_id.is_empty() =>
        {
            Some(transport.selected_candidate_pair_id.clone())
        }
        _ => None,
    });
    let pair = selected
        .as_deref()
        .and_then(|id| report.get(id))
        .or_else(|| {
            report
                .iter()
                .find(|e| matches!(e, RTCStatsReportEntry::IceCandidatePair(p) if p.nominated))
        });
    if let Some(RTCStatsReportEntry::IceCandidatePair(pair)) = pair {
        if pair.current_round_trip_time > 0.0 {
            out.rtt_ms = Some(pair.current_round_trip_time * 1000.0);
        }
        if pair.available_outgoing_bitrate > 0.0 {
            out.available_outgoing_bps = Some(pair.available_outgoing_bitrate);
        }
        out.bytes_sent = pair.bytes_sent;
        out.bytes_received = pair.bytes_received;
        // The report keys local candidates with a prefix the pair's reference lacks.
        out.candidate_type = report.iter().find_map(|entry| match entry {
            RTCStatsReportEntry::LocalCandidate(candidate)
                if entry.id() == pair.local_candidate_id
                    || entry
                        .id()
                        .ends_with(&format!("_{}", pair.local_candidate_id)) =>
            {
                Some(candidate.candidate_type.to_string())
            }
            _ => None,
        });
    }
    for entry in report.iter() {
        if let RTCStatsReportEntry::InboundRtp(inbound) = entry {
            out.packets_lost += inbound.received_rtp_stream_stats.packets_lost;
            if inbound.received_rtp_stream_stats.rtp_stream_stats.kind == RtpCodecKind::Video {
                out.nacks_sent += u64::from(inbound.nack_count);
                // webrtc-rs reports it in RTP clock units despite the field's doc.
                out.jitter_ms = Some(inbound.received_rtp_stream_stats.jitter / 90.0);
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
