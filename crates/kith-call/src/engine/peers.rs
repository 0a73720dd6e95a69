//! What peer connections report: state, tracks (receive side), chat, and
//! keyframe requests; and feeding encoded media to a connection (send side).

use super::*;

impl Engine {
    /// Once a description is agreed: feed the negotiated codecs' encoded
    /// units to this connection (one encoder per codec for the whole call).
    pub(super) async fn start_sending(&mut self, id: PeerId) {
        let Some(link) = self.links.get(&id) else {
            return;
        };
        // Packets written before DTLS-SRTP is up are dropped, and a lost
        // first keyframe would leave the peer waiting for a PLI.
        if link.state != RTCPeerConnectionState::Connected {
            return;
        }
        let pc = Arc::clone(&link.pc);
        let span = link.span.clone();
        let video_negotiated = if link.sending_video.is_none() && self.video.is_some() {
            peer::negotiated_send_codec(&pc, RtpCodecKind::Video).await
        } else {
            None
        };
        let audio_negotiated = if link.sending_audio.is_none() && self.audio.is_some() {
            peer::negotiated_send_codec(&pc, RtpCodecKind::Audio).await
        } else {
            None
        };
        if let (Some((mime, payload_type)), Some(video)) = (video_negotiated, &self.video)
            && let Some(codec) = peer::video_codec_of(&mime)
        {
            let units = self
                .video_units
                .entry(codec)
                .or_insert_with(|| {
                    let (tx, _) = broadcast::channel(UNIT_BACKLOG);
                    video.add_codec(codec, tx.clone());
                    tx
                })
                .subscribe();
            let keyframe = video.keyframe_requester(codec);
            if let Some(link) = self.links.get_mut(&id) {
                let writer = peer::write_units(
                    Arc::clone(&link.tracks.video),
                    units,
                    link.tracks.video_ssrc,
                    payload_type,
                    true,
                    Some(keyframe),
                    span.clone(),
                );
                link.tasks.push(writer);
                link.sending_video = Some(codec);
                info!(parent: &span, codec = codec.sdp_name(), payload_type, "sending video");
            }
        }
        if let (Some((mime, payload_type)), Some(audio)) = (audio_negotiated, &self.audio)
            && let Some(codec) = peer::audio_codec_of(&mime)
        {
            let units = self
                .audio_units
                .entry(codec)
                .or_insert_with(|| {
                    let (tx, _) = broadcast::channel(UNIT_BACKLOG);
                    audio.add_codec(codec, tx.clone());
                    tx
                })
                .subscribe();
            if let Some(link) = self.links.get_mut(&id) {
                let writer = peer::write_units(
                    Arc::clone(&link.tracks.audio),
                    units,
                    link.tracks.audio_ssrc,
                    payload_type,
                    false,
                    None,
                    span.clone(),
                );
                link.tasks.push(writer);
                link.sending_audio = Some(codec);
                info!(parent: &span, codec = audio_report_name(codec), payload_type, "sending audio");
            }
        }
    }

    // ------------------------------------------------------------ peers

    pub(super) async fn on_peer(&mut self, id: PeerId, event: PeerEvent) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        match event {
            PeerEvent::LocalCandidate(candidate) => {
                if link.detached_since.is_none() {
                    self.signaling.send(ClientMessage::Candidate {
                        room: link.remote.room.clone(),
                        to: link.remote.session.clone(),
                        candidate: Some(candidate_to_wire(candidate)),
                    });
                }
            }
            PeerEvent::GatheringComplete => {
                if link.detached_since.is_none() {
                    self.signaling.send(ClientMessage::Candidate {
                        room: link.remote.room.clone(),
                        to: link.remote.session.clone(),
                        candidate: None,
                    });
                }
            }
            PeerEvent::State(state) => {
                info!(parent: &link.span, %state, "connection state");
                link.state = state;
                match state {
                    RTCPeerConnectionState::Connected => {
                        let pc = Arc::clone(&link.pc);
                        let connect_ms = link.created_at.elapsed().as_millis() as u64;
                        let (session, user) = (
                            link.remote.session.as_str().to_owned(),
                            link.remote.user.as_str().to_owned(),
                        );
                        let transport = peer::transport_stats(&pc).await;
                        if let Some(record) = self.records.get_mut(&id) {
                            record.connect_ms.get_or_insert(connect_ms);
                            record.connected_at = Some(Instant::now());
                            record.candidate_type = transport.candidate_type.clone();
                        }
                        self.emit(CallEvent::PeerConnected {
                            session,
                            user,
                            candidate_type: transport.candidate_type,
                            connect_ms,
                        });
                        self.start_sending(id).await;
                    }
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        self.close_link(id, &format!("connection {state}")).await;
                    }
                    _ => {}
                }
            }
            PeerEvent::IceState(state) => {
                debug!(parent: &link.span, %state, "ICE state");
                if link.detached_since.is_some()
                    && matches!(
                        state,
                        RTCIceConnectionState::Disconnected | RTCIceConnectionState::Failed
                    )
                {
                    self.close_link(id, "gone (no signaling, no media)").await;
                }
            }
            PeerEvent::DataChannel(channel) => {
                if channel.label().await.ok().as_deref() != Some("chat") {
                    return;
                }
                let open = matches!(channel.ready_state().await, Ok(RTCDataChannelState::Open));
                let Some(link) = self.links.get_mut(&id) else {
                    return;
                };
                link.tasks.push(peer::watch_chat_channel(
                    id,
                    Arc::clone(&channel),
                    self.peer_events.clone(),
                ));
                link.chat = Some(channel);
                if open {
                    self.chat_opened(id).await;
                }
            }
            PeerEvent::ChatOpen => self.chat_opened(id).await,
            PeerEvent::ChatClosed => link.chat_open = false,
            PeerEvent::ChatText(text) => self.chat_text(id, text).await,
            PeerEvent::Track(track) => self.track_started(id, track).await,
            PeerEvent::KeyframeRequest(ssrc) => {
                if ssrc == link.tracks.video_ssrc
                    && let (Some(codec), Some(video)) = (link.sending_video, &self.video)
                {
                    debug!(parent: &link.span, "the peer asked for a keyframe");
                    video.request_keyframe(codec);
                }
            }
        }
    }

    pub(super) async fn chat_opened(&mut self, id: PeerId) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if link.chat_open {
            return;
        }
        link.chat_open = true;
        let Some(channel) = link.chat.clone() else {
            return;
        };
        for wire in self.chat.unacked_for(&link.remote.user) {
            if let Err(err) = channel.send_text(&wire).await {
                debug!(%err, "re-send failed");
                break;
            }
        }
    }

    pub(super) async fn chat_text(&mut self, id: PeerId, text: String) {
        let Some(link) = self.links.get(&id) else {
            return;
        };
        let frame = match ChatFrame::parse(&text) {
            Ok(frame) => frame,
            Err(err) => {
                debug!(parent: &link.span, %err, "not a chat frame, ignored");
                return;
            }
        };
        let channel = link.chat.clone();
        let user = link.remote.user.clone();
        match self.chat.receive(&user, frame) {
            Incoming::New { message, ack } => {
                if let Some(channel) = &channel {
                    let _ = channel.send_text(&ack).await;
                }
                self.emit(CallEvent::ChatReceived { message });
            }
            Incoming::Duplicate { ack } => {
                if let Some(channel) = &channel {
                    let _ = channel.send_text(&ack).await;
                }
            }
            Incoming::Acked { id, complete: true } => self.emit(CallEvent::ChatAcked { id }),
            Incoming::Acked { .. } | Incoming::Ignored => {}
        }
    }

    pub(super) async fn track_started(
        &mut self,
        id: PeerId,
        track: Arc<dyn webrtc::media_stream::track_remote::TrackRemote>,
    ) {
        let Some(ssrc) = track.ssrcs().await.first().copied() else {
            return;
        };
        let Some(codec) = track.codec(ssrc).await else {
            return;
        };
        let kind = track.kind().await;
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let counters = Arc::clone(&link.counters);
        let span = link.span.clone();
        let (session, user) = (
            link.remote.session.as_str().to_owned(),
            link.remote.user.as_str().to_owned(),
        );
        let (kind_name, codec_name, task) = match kind {
            RtpCodecKind::Video => {
                let Some(video_codec) = peer::video_codec_of(&codec.mime_type) else {
                    return self.error(CallError::Media(format!(
                        "{user} sends video as {}, which Kith cannot decode",
                        codec.mime_type
                    )));
                };
                let record_y4m = self.config.record_y4m.as_ref().map(|path| {
                    self.recordings += 1;
                    if self.recordings == 1 {
                        path.clone()
                    } else {
                        suffixed(path, &user)
                    }
                });
                // The driver keeps the handles; this engine has no UI to give them to.
                let media = ParticipantMedia::default();
                let mut sinks: Vec<Box<dyn VideoSink>> = vec![Box::new(media.video.clone())];
                if let Some(path) = record_y4m {
                    sinks.push(Box::new(Y4mRecorder::new(path, self.config.video.fps)));
                }
                let rtcp = keyframe_forwarder(id, self.peer_events.clone());
                let task = tokio::spawn(
                    receive_video(track, video_codec, ssrc, counters, sinks, rtcp).instrument(span),
                );
                ("video", video_codec.sdp_name().to_owned(), task)
            }
            RtpCodecKind::Audio => {
                let Some(audio_codec) = peer::audio_codec_of(&codec.mime_type) else {
                    return self.error(CallError::Media(format!(
                        "{user} sends audio as {}, which Kith cannot decode",
                        codec.mime_type
                    )));
                };
                let input = self.mixer.add_input();
                let rtcp = keyframe_forwarder(id, self.peer_events.clone());
                let level = AudioLevel::new();
                let task = tokio::spawn(
                    receive_audio(track, audio_codec, counters, input, level, rtcp)
                        .instrument(span),
                );
                ("audio", audio_report_name(audio_codec).to_owned(), task)
            }
            _ => return,
        };
        if let Some(link) = self.links.get_mut(&id) {
            link.tasks.push(task);
        }
        if let Some(record) = self.records.get_mut(&id) {
            match kind_name {
                "video" => record.video_codec = Some(codec_name.clone()),
                _ => record.audio_codec = Some(codec_name.clone()),
            }
        }
        self.emit(CallEvent::TrackStarted {
            session,
            user,
            kind: kind_name.to_owned(),
            codec: codec_name,
        });
    }

    pub(super) async fn close_link(&mut self, id: PeerId, reason: &str) {
        let Some(link) = self.links.remove(&id) else {
            return;
        };
        info!(parent: &link.span, reason, "peer connection closed");
        for task in &link.tasks {
            task.abort();
        }
        peer::close(&link.pc).await;
        if let Some(record) = self.records.get_mut(&id)
            && let Some(connected_at) = record.connected_at.take()
        {
            record.connected_total += connected_at.elapsed();
        }
        if let Some(record) = self.records.get_mut(&id) {
            record.latencies.extend(link.counters.take_latencies());
        }
        if !self
            .links
            .values()
            .any(|l| l.remote.user == link.remote.user)
        {
            self.chat.forget_user(&link.remote.user);
        }
        self.emit(CallEvent::PeerLeft {
            session: link.remote.session.as_str().to_owned(),
            user: link.remote.user.as_str().to_owned(),
            reason: reason.to_owned(),
        });
    }
}

/// Hands keyframe requests found in RTCP on a remote track to the engine.
fn keyframe_forwarder(id: PeerId, events: PeerEvents) -> crate::media::receive::RtcpSink {
    Arc::new(move |packets: &[Box<dyn rtc::rtcp::Packet>]| {
        for ssrc in peer::keyframe_requests(packets) {
            let _ = events.send((id, PeerEvent::KeyframeRequest(ssrc)));
        }
    })
}

fn suffixed(path: &std::path::Path, user: &str) -> PathBuf {
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
            PathBuf::from("/tmp/bob-carol.y4m")
        );
    }
}
