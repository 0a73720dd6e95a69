//! Carrying out the core's peer operations on webrtc-rs, and turning what
//! webrtc-rs reports back into peer facts for the core.

use std::sync::Arc;

use kith_call_core::{
    CallError, CallEvent, IceState, Input, LinkId, PeerFact, PeerOp, PeerState, Remote, TrackKind,
};
use kith_proto::Sdp;
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, warn};
use webrtc::data_channel::{DataChannel, RTCDataChannelState};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, RTCIceConnectionState, RTCPeerConnectionState, RTCSessionDescription,
};

use super::measure::PeerRecord;
use super::run::Driver;
use crate::candidates::{candidate_from_wire, candidate_to_wire};
use crate::codecs::audio_report_name;
use crate::connection::{self, ConnectionSettings, LocalTracks, PeerEvent};
use crate::counters::ReceiveCounters;
use crate::media::receive::{receive_audio, receive_video};
use crate::media::send::{UNIT_BACKLOG, UnitSender};
use crate::media::sinks::{ParticipantMedia, VideoSink, Y4mRecorder};

/// Chat bytes our SCTP may hold for one peer before new sends wait: sixteen
/// of the largest frames, thousands of typed lines.
const MAX_CHAT_OUTSTANDING_BYTES: usize = 1024 * 1024;

/// What the driver holds for one link: the webrtc-rs connection and the
/// tasks around it.
pub(super) struct LinkIo {
    pub pc: Arc<dyn PeerConnection>,
    pub tracks: LocalTracks,
    pub chat: Option<Arc<dyn DataChannel>>,
    pub tasks: Vec<JoinHandle<()>>,
    pub counters: Arc<ReceiveCounters>,
    pub media: ParticipantMedia,
    pub span: tracing::Span,
    pub connected: bool,
    pub last_bytes_in: u64,
    pub last_bytes_out: u64,
    pub last_frames: u64,
    pub estimate: crate::estimator::SharedEstimate,
    /// Resends sent and received on this connection, for the stats.
    pub repairs: crate::repairs::RepairCounts,
    /// Our video codecs, most preferred first, for the answers we make.
    pub video_codecs: Vec<kith_media::codec::VideoCodec>,
}

impl Driver {
    fn fact(&mut self, id: LinkId, fact: PeerFact) {
        self.input(Input::Peer(id, fact));
    }

    fn failed(&mut self, id: LinkId, context: &str, err: impl std::fmt::Display) {
        warn!(%id, context, %err, "peer operation failed");
        let connected = self.links.get(&id).is_some_and(|l| l.connected);
        if connected {
            // A failed renegotiation must not end a working call.
            self.emit(CallEvent::Error {
                error: CallError::WebRtc {
                    context: context.to_owned(),
                    reason: err.to_string(),
                },
            });
        } else {
            self.fact(
                id,
                PeerFact::Failed {
                    context: context.to_owned(),
                    reason: err.to_string(),
                },
            );
        }
    }

    pub(super) async fn peer_op(&mut self, id: LinkId, op: PeerOp) {
        if let PeerOp::Create {
            remote,
            offerer,
            ice_servers,
            video_codecs,
        } = op
        {
            return self
                .create_link(id, remote, offerer, ice_servers, video_codecs)
                .await;
        }
        let Some(link) = self.links.get(&id) else {
            debug!(%id, "an operation for a connection that is gone");
            return;
        };
        let pc = Arc::clone(&link.pc);
        let span = link.span.clone();
        let video_codecs = link.video_codecs.clone();
        match op {
            PeerOp::Create { .. } => {}
            PeerOp::CreateOffer { ice_restart } => {
                let options = RTCOfferOptions { ice_restart };
                let offer = match pc
                    .create_offer(Some(options))
                    .instrument(span.clone())
                    .await
                {
                    Ok(offer) => offer,
                    Err(err) => return self.failed(id, "create an offer", err),
                };
                if let Err(err) = pc.set_local_description(offer.clone()).await {
                    return self.failed(id, "set the local offer", err);
                }
                match Sdp::new(offer.sdp) {
                    Ok(sdp) => self.fact(id, PeerFact::LocalDescription(sdp)),
                    Err(err) => self.failed(id, "use our offer", err),
                }
            }
            PeerOp::AcceptOffer { sdp, rollback } => {
                if rollback {
                    match RTCSessionDescription::rollback(None) {
                        Ok(rollback) => {
                            if let Err(err) = pc.set_local_description(rollback).await {
                                return self.failed(id, "roll back our offer", err);
                            }
                        }
                        Err(err) => return self.failed(id, "roll back", err),
                    }
                }
                let offer_text: String = sdp.into();
                let offer = match RTCSessionDescription::offer(offer_text.clone()) {
                    Ok(offer) => offer,
                    Err(err) => return self.failed(id, "read the remote offer", err),
                };
                if let Err(err) = pc.set_remote_description(offer).await {
                    return self.failed(id, "apply the remote offer", err);
                }
                connection::prefer_our_video_codecs(&pc, &video_codecs, &offer_text).await;
                let answer = match pc.create_answer(None).await {
                    Ok(answer) => answer,
                    Err(err) => return self.failed(id, "create an answer", err),
                };
                if let Err(err) = pc.set_local_description(answer.clone()).await {
                    return self.failed(id, "set the local answer", err);
                }
                match Sdp::new(answer.sdp) {
                    Ok(sdp) => self.fact(id, PeerFact::LocalDescription(sdp)),
                    Err(err) => self.failed(id, "use our answer", err),
                }
            }
            PeerOp::AcceptAnswer { sdp } => {
                let answer = match RTCSessionDescription::answer(sdp.into()) {
                    Ok(answer) => answer,
                    Err(err) => return self.failed(id, "read the remote answer", err),
                };
                if let Err(err) = pc.set_remote_description(answer).await {
                    self.failed(id, "apply the remote answer", err);
                }
            }
            PeerOp::AddCandidate(candidate) => {
                if let Err(err) = pc.add_ice_candidate(candidate_from_wire(&candidate)).await {
                    debug!(parent: &span, %err, "a remote candidate was refused");
                }
            }
            PeerOp::StartSending => self.start_sending(id).await,
            PeerOp::SendChat(text) => {
                let channel = self.links.get(&id).and_then(|l| l.chat.clone());
                let Some(channel) = channel else { return };
                // A peer that takes nothing (a stalled or hostile SCTP) must
                // not grow our send queue: the message stays unacked in the
                // chat book and goes again once the queue has drained.
                let outstanding = channel.outstanding_bytes().await.unwrap_or(0);
                if outstanding >= MAX_CHAT_OUTSTANDING_BYTES {
                    debug!(parent: &span, outstanding, "the peer is not taking chat; the message waits");
                } else if let Err(err) = channel.send_text(&text).await {
                    debug!(parent: &span, %err, "chat send failed; it is re-sent when the channel is back");
                }
            }
            PeerOp::Close => self.close_link(id).await,
        }
    }

    async fn create_link(
        &mut self,
        id: LinkId,
        remote: Remote,
        offerer: bool,
        ice_servers: Vec<kith_proto::IceServer>,
        video_codecs: Vec<kith_media::codec::VideoCodec>,
    ) {
        let span = info_span!(
            "peer",
            link = id.0,
            user = remote.user.as_str(),
            session = remote.session.as_str()
        );
        let settings = ConnectionSettings {
            ice_servers: self.turn_tcp.route(ice_servers).await,
            ice_loopback: self.config.ice_loopback,
            relay_only: self.config.relay_only,
            video_codecs,
            audio_codecs: self.audio_codecs.clone(),
            start_bitrate_bps: self.config.video.start_bitrate_bps,
            max_bitrate_bps: self.config.max_bitrate_bps,
            estimate: Default::default(),
            repairs: Default::default(),
        };
        let built = connection::connect(id, &settings, self.peer_events.clone())
            .instrument(span.clone())
            .await;
        let (pc, tracks) = match built {
            Ok(built) => built,
            Err(err) => {
                return self.fact(
                    id,
                    PeerFact::Failed {
                        context: "create a peer connection".into(),
                        reason: err.to_string(),
                    },
                );
            }
        };
        let counters = Arc::new(ReceiveCounters::default());
        let mut link = LinkIo {
            pc,
            tracks,
            chat: None,
            tasks: Vec::new(),
            counters: Arc::clone(&counters),
            media: ParticipantMedia::default(),
            span: span.clone(),
            connected: false,
            last_bytes_in: 0,
            last_bytes_out: 0,
            last_frames: 0,
            estimate: settings.estimate.clone(),
            repairs: settings.repairs.clone(),
            video_codecs: settings.video_codecs.clone(),
        };
        for track in [&link.tracks.audio, &link.tracks.video] {
            link.tasks.push(connection::watch_local_rtcp(
                id,
                Arc::clone(track),
                self.peer_events.clone(),
            ));
        }
        if offerer {
            match connection::create_chat_channel(&link.pc).await {
                Ok(channel) => {
                    link.tasks.push(connection::watch_chat_channel(
                        id,
                        Arc::clone(&channel),
                        self.peer_events.clone(),
                    ));
                    link.chat = Some(channel);
                }
                Err(err) => self.emit(CallEvent::Error { error: err }),
            }
        }
        self.records.insert(
            id,
            PeerRecord::new(&remote, counters, std::time::Instant::now()),
        );
        info!(parent: &span, offerer, "peer connection created");
        self.links.insert(id, link);
    }

    /// Feeds the negotiated codecs' encoded units to this connection (one
    /// encoder per codec for the whole call).
    async fn start_sending(&mut self, id: LinkId) {
        let Some(link) = self.links.get(&id) else {
            return;
        };
        let pc = Arc::clone(&link.pc);
        let span = link.span.clone();
        let video_negotiated = match &self.video {
            Some(_) => connection::negotiated_send_codec(&pc, RtpCodecKind::Video).await,
            None => None,
        };
        let audio_negotiated = match &self.audio {
            Some(_) => connection::negotiated_send_codec(&pc, RtpCodecKind::Audio).await,
            None => None,
        };
        let mut sending_video = None;
        let mut sending_audio = None;
        if let (Some((mime, payload_type)), Some(video)) = (video_negotiated, &self.video)
            && let Some(codec) = connection::video_codec_of(&mime)
        {
            let units = subscribe(&mut self.video_units, codec, |tx| {
                video.add_codec(codec, tx)
            });
            let events = self.peer_events.clone();
            let keyframe: connection::KeyframeRequest = Arc::new(move || {
                let _ = events.send((id, PeerEvent::WriterNeedsKeyframe));
            });
            if let Some(link) = self.links.get_mut(&id) {
                let writer = connection::write_units(
                    Arc::clone(&link.tracks.video),
                    units,
                    link.tracks.video_ssrc,
                    payload_type,
                    true,
                    Some(keyframe),
                    span.clone(),
                );
                link.tasks.push(writer);
                sending_video = Some(codec);
                info!(parent: &span, codec = codec.sdp_name(), payload_type, "sending video");
            }
        }
        if let (Some((mime, payload_type)), Some(audio)) = (audio_negotiated, &self.audio)
            && let Some(codec) = connection::audio_codec_of(&mime)
        {
            let units = subscribe(&mut self.audio_units, codec, |tx| {
                audio.add_codec(codec, tx)
            });
            if let Some(link) = self.links.get_mut(&id) {
                let writer = connection::write_units(
                    Arc::clone(&link.tracks.audio),
                    units,
                    link.tracks.audio_ssrc,
                    payload_type,
                    false,
                    None,
                    span.clone(),
                );
                link.tasks.push(writer);
                sending_audio = Some(codec);
                info!(parent: &span, codec = audio_report_name(codec), payload_type, "sending audio");
            }
        }
        self.fact(
            id,
            PeerFact::Sending {
                video: sending_video,
                audio: sending_audio,
            },
        );
    }

    async fn close_link(&mut self, id: LinkId) {
        let Some(link) = self.links.remove(&id) else {
            return;
        };
        for task in &link.tasks {
            task.abort();
        }
        if let Err(err) = link.pc.close().await {
            warn!(parent: &link.span, %err, "closing a peer connection failed");
        }
        if let Some(record) = self.records.get_mut(&id) {
            record.closed(std::time::Instant::now());
        }
    }

    /// What webrtc-rs reported, as facts for the core.
    pub(super) async fn on_peer_event(&mut self, id: LinkId, event: PeerEvent) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        match event {
            PeerEvent::LocalCandidate(candidate) => {
                self.fact(id, PeerFact::LocalCandidate(candidate_to_wire(candidate)));
            }
            PeerEvent::GatheringComplete => self.fact(id, PeerFact::GatheringComplete),
            PeerEvent::State(state) => {
                info!(parent: &link.span, %state, "connection state");
                match state {
                    RTCPeerConnectionState::Connected => {
                        link.connected = true;
                        let pc = Arc::clone(&link.pc);
                        let transport = connection::transport_stats(&pc).await;
                        self.fact(
                            id,
                            PeerFact::Connected {
                                candidate_type: transport.candidate_type,
                            },
                        );
                    }
                    other => {
                        link.connected = false;
                        self.fact(id, PeerFact::State(peer_state(other)));
                    }
                }
            }
            PeerEvent::IceState(state) => {
                debug!(parent: &link.span, %state, "ICE state");
                if state == RTCIceConnectionState::Connected
                    && let Some(record) = self.records.get_mut(&id)
                {
                    record.ice_connected(std::time::Instant::now());
                }
                self.fact(id, PeerFact::Ice(ice_state(state)));
            }
            PeerEvent::DataChannel(channel) => {
                if channel.label().await.ok().as_deref() != Some("chat") {
                    return;
                }
                let open = matches!(channel.ready_state().await, Ok(RTCDataChannelState::Open));
                let Some(link) = self.links.get_mut(&id) else {
                    return;
                };
                link.tasks.push(connection::watch_chat_channel(
                    id,
                    Arc::clone(&channel),
                    self.peer_events.clone(),
                ));
                link.chat = Some(channel);
                if open {
                    self.fact(id, PeerFact::ChatOpen);
                }
            }
            PeerEvent::ChatOpen => self.fact(id, PeerFact::ChatOpen),
            PeerEvent::ChatClosed => self.fact(id, PeerFact::ChatClosed),
            PeerEvent::ChatText(text) => self.fact(id, PeerFact::ChatText(text)),
            PeerEvent::Track(track) => self.track_started(id, track).await,
            PeerEvent::KeyframeRequest(ssrc) => {
                if ssrc == link.tracks.video_ssrc {
                    link.counters
                        .keyframe_requests_received
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.fact(id, PeerFact::KeyframeRequest);
                }
            }
            PeerEvent::WriterNeedsKeyframe => self.fact(id, PeerFact::KeyframeRequest),
        }
    }

    async fn track_started(&mut self, id: LinkId, track: Arc<dyn TrackRemote>) {
        let Some(ssrc) = track.ssrcs().await.first().copied() else {
            return;
        };
        let Some(codec) = track.codec(ssrc).await else {
            return;
        };
        let kind = track.kind().await;
        let Some(link) = self.links.get(&id) else {
            return;
        };
        let counters = Arc::clone(&link.counters);
        let span = link.span.clone();
        let media = link.media.clone();
        let Some(user) = self.core.remote(id).map(|r| r.user.clone()) else {
            return;
        };
        let events = self.peer_events.clone();
        let rtcp: crate::media::receive::RtcpSink =
            Arc::new(move |packets: &[Box<dyn rtc::rtcp::Packet>]| {
                for ssrc in connection::keyframe_requests(packets) {
                    let _ = events.send((id, PeerEvent::KeyframeRequest(ssrc)));
                }
            });
        let (track_kind, codec_name, task) = match kind {
            RtpCodecKind::Video => {
                let Some(video_codec) = connection::video_codec_of(&codec.mime_type) else {
                    return self.emit(CallEvent::Error {
                        error: CallError::Media(format!(
                            "{user} sends video as {}, which Kith cannot decode",
                            codec.mime_type
                        )),
                    });
                };
                let mut sinks: Vec<Box<dyn VideoSink>> = vec![Box::new(media.video.clone())];
                if let Some(path) = &self.config.record_y4m {
                    self.recordings += 1;
                    let path = if self.recordings == 1 {
                        path.clone()
                    } else {
                        suffixed(path, user.as_str())
                    };
                    sinks.push(Box::new(Y4mRecorder::new(path, self.config.video.fps)));
                }
                let task = tokio::spawn(
                    receive_video(track, video_codec, ssrc, counters, sinks, rtcp).instrument(span),
                );
                (TrackKind::Video, video_codec.sdp_name().to_owned(), task)
            }
            RtpCodecKind::Audio => {
                let Some(audio_codec) = connection::audio_codec_of(&codec.mime_type) else {
                    return self.emit(CallEvent::Error {
                        error: CallError::Media(format!(
                            "{user} sends audio as {}, which Kith cannot decode",
                            codec.mime_type
                        )),
                    });
                };
                let input = self.mixer.add_input();
                let task = tokio::spawn(
                    receive_audio(
                        track,
                        audio_codec,
                        counters,
                        input,
                        media.audio_level.clone(),
                        rtcp,
                    )
                    .instrument(span),
                );
                (
                    TrackKind::Audio,
                    audio_report_name(audio_codec).to_owned(),
                    task,
                )
            }
            _ => return,
        };
        if let Some(link) = self.links.get_mut(&id) {
            link.tasks.push(task);
        }
        if let Some(record) = self.records.get_mut(&id) {
            record.track(track_kind, &codec_name);
        }
        self.fact(
            id,
            PeerFact::Track {
                kind: track_kind,
                codec: codec_name,
            },
        );
    }

    /// Keeps the per-peer records of what happened, for the summary.
    pub(super) fn note_event(&mut self, event: &CallEvent) {
        match event {
            CallEvent::PeerConnected {
                session,
                candidate_type,
                connect_ms,
                ..
            } => {
                let now = std::time::Instant::now();
                for record in self.records.values_mut() {
                    if record.session == *session {
                        record.connected(now, *connect_ms, candidate_type.clone());
                    }
                }
            }
            CallEvent::PeerRebound {
                old_session,
                session,
                ..
            } => {
                for record in self.records.values_mut() {
                    if record.session == *old_session {
                        record.session = session.clone();
                    }
                }
            }
            _ => {}
        }
    }
}

/// A new reader of `codec`'s encoded units; the first one for a codec starts
/// its encoder (`start`), which every later peer then shares.
fn subscribe<C: std::hash::Hash + Eq + Copy>(
    senders: &mut std::collections::HashMap<C, UnitSender>,
    codec: C,
    start: impl FnOnce(UnitSender),
) -> crate::media::send::UnitReceiver {
    senders
        .entry(codec)
        .or_insert_with(|| {
            let (tx, _) = broadcast::channel(UNIT_BACKLOG);
            start(tx.clone());
            tx
        })
        .subscribe()
}

fn peer_state(state: RTCPeerConnectionState) -> PeerState {
    match state {
        RTCPeerConnectionState::Connecting => PeerState::Connecting,
        RTCPeerConnectionState::Connected => PeerState::Connected,
        RTCPeerConnectionState::Disconnected => PeerState::Disconnected,
        RTCPeerConnectionState::Failed => PeerState::Failed,
        RTCPeerConnectionState::Closed => PeerState::Closed,
        _ => PeerState::New,
    }
}

fn ice_state(state: RTCIceConnectionState) -> IceState {
    match state {
        RTCIceConnectionState::Checking => IceState::Checking,
        RTCIceConnectionState::Connected => IceState::Connected,
        RTCIceConnectionState::Completed => IceState::Completed,
        RTCIceConnectionState::Disconnected => IceState::Disconnected,
        RTCIceConnectionState::Failed => IceState::Failed,
        RTCIceConnectionState::Closed => IceState::Closed,
        _ => IceState::New,
    }
}

fn suffixed(path: &std::path::Path, user: &str) -> std::path::PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("video");
    let name = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => format!("{stem}-{user}.{ext}"),
        None => format!("{stem}-{user}"),
    };
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_of_more_peers_get_their_user_in_the_name() {
        assert_eq!(
            suffixed(std::path::Path::new("/tmp/bob.y4m"), "carol"),
            std::path::PathBuf::from("/tmp/bob-carol.y4m")
        );
    }
}
