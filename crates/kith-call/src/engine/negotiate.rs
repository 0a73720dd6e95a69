//! Signaling in, negotiation out: rooms, the mesh rule, offers and answers,
//! candidates, glare, and rebinding connections after a reconnect.

use super::*;

impl Engine {
    pub(super) async fn on_signaling(&mut self, event: SignalingEvent) {
        match event {
            SignalingEvent::Connected {
                session,
                ice_servers,
                online,
                ..
            } => {
                self.session = Some(session.clone());
                self.ice_servers = ice_servers;
                // Every remote session we knew is gone from the server's view
                // of us; connections live on until they are rebound.
                for link in self.links.values_mut() {
                    link.detached_since.get_or_insert_with(Instant::now);
                }
                self.emit(CallEvent::SignalingConnected {
                    session: session.as_str().to_owned(),
                    online,
                });
                for room in &self.rooms {
                    self.signaling
                        .send(ClientMessage::Join { room: room.clone() });
                }
            }
            SignalingEvent::Disconnected { reason, .. } => {
                self.session = None;
                for link in self.links.values_mut() {
                    link.detached_since.get_or_insert_with(Instant::now);
                }
                self.emit(CallEvent::SignalingLost { reason });
            }
            SignalingEvent::Refused(error) => self.error(error),
            SignalingEvent::Message(message) => self.on_server_message(message).await,
        }
    }

    pub(super) async fn on_server_message(&mut self, message: ServerMessage) {
        match message {
            ServerMessage::Welcome { .. } => {}
            ServerMessage::Presence { user, name, online } => self.emit(CallEvent::Presence {
                user: user.as_str().to_owned(),
                name: name.as_str().to_owned(),
                online,
            }),
            ServerMessage::Joined { room, peers, .. } => {
                self.emit(CallEvent::Joined {
                    room: room.as_str().to_owned(),
                    peers: peers.clone(),
                });
                for info in peers {
                    let remote = Remote {
                        room: room.clone(),
                        session: info.session,
                        user: info.user,
                    };
                    self.offer_to(remote).await;
                }
            }
            ServerMessage::PeerJoined { room, peer } => {
                // The newcomer sends the first offer (mesh rule); wait for it.
                self.emit(CallEvent::PeerJoined {
                    room: room.as_str().to_owned(),
                    peer,
                });
            }
            ServerMessage::PeerLeft { room, session } => {
                let found = self
                    .links
                    .iter_mut()
                    .find(|(_, l)| l.remote.room == room && l.remote.session == session);
                if let Some((id, link)) = found {
                    let id = *id;
                    if link.state == RTCPeerConnectionState::Connected {
                        // It may be reconnecting; keep the media until it comes
                        // back or the connection itself dies.
                        link.detached_since.get_or_insert_with(Instant::now);
                    } else {
                        self.close_link(id, "left the room").await;
                    }
                }
            }
            ServerMessage::Offer {
                room,
                from,
                from_user,
                sdp,
            } => self.on_remote_offer(room, from, from_user, sdp).await,
            ServerMessage::Answer {
                room, from, sdp, ..
            } => self.on_remote_answer(room, from, sdp).await,
            ServerMessage::Candidate {
                room,
                from,
                candidate,
                ..
            } => {
                let Some(candidate) = candidate else { return };
                let init = candidate_from_wire(&candidate);
                let Some(id) = self.link_by_session(&room, &from) else {
                    self.orphan_candidates.entry(from).or_default().push(init);
                    return;
                };
                self.add_candidate(id, init).await;
            }
            ServerMessage::Invite {
                room,
                from,
                from_name,
                media,
            } => self.emit(CallEvent::Invite {
                room: room.as_str().to_owned(),
                from: from.as_str().to_owned(),
                from_name: from_name.as_str().to_owned(),
                media,
            }),
            ServerMessage::InviteReply { room, from, answer } => {
                self.emit(CallEvent::InviteReply {
                    room: room.as_str().to_owned(),
                    from: from.as_str().to_owned(),
                    answer,
                })
            }
            ServerMessage::InviteCancel { room, from, .. } => self.emit(CallEvent::InviteCanceled {
                room: room.as_str().to_owned(),
                from: from.as_str().to_owned(),
            }),
            ServerMessage::Error { code, message, .. } => self.error(CallError::Server {
                code: code.as_str().to_owned(),
                message,
            }),
        }
    }

    pub(super) fn link_by_session(&self, room: &RoomId, session: &SessionId) -> Option<PeerId> {
        self.links
            .iter()
            .find(|(_, l)| &l.remote.room == room && &l.remote.session == session)
            .map(|(id, _)| *id)
    }

    /// Mesh rule, as the joiner: offer to a peer listed in `joined`, reusing
    /// a connection that survived a reconnect when there is one.
    pub(super) async fn offer_to(&mut self, remote: Remote) {
        let existing = self
            .link_by_session(&remote.room, &remote.session)
            .or_else(|| {
                self.links
                    .iter()
                    .find(|(_, l)| {
                        l.detached_since.is_some()
                            && l.remote.room == remote.room
                            && l.remote.user == remote.user
                    })
                    .map(|(id, _)| *id)
            });
        if let Some(id) = existing {
            self.rebind(id, remote.session.clone());
            self.send_offer(id).await;
            return;
        }
        let Some(id) = self.new_link(remote, true).await else {
            return;
        };
        self.send_offer(id).await;
    }

    pub(super) fn rebind(&mut self, id: PeerId, session: SessionId) {
        let my_session = self.session.clone();
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.detached_since = None;
        if link.remote.session != session {
            let old = std::mem::replace(&mut link.remote.session, session.clone());
            if let Some(mine) = &my_session {
                link.polite = is_polite(mine, &session);
            }
            if let Some(record) = self.records.get_mut(&id) {
                record.session = session.as_str().to_owned();
            }
            info!(
                old = old.as_str(),
                new = session.as_str(),
                "peer connection rebound to a new session"
            );
            let _ = self.events.send(CallEvent::PeerRebound {
                old_session: old.as_str().to_owned(),
                session: session.as_str().to_owned(),
                user: link.remote.user.as_str().to_owned(),
            });
        } else if let Some(mine) = &my_session {
            link.polite = is_polite(mine, &session);
        }
    }

    pub(super) async fn new_link(&mut self, remote: Remote, offerer: bool) -> Option<PeerId> {
        let mine = self.session.clone()?;
        let id = PeerId(self.next_id);
        self.next_id += 1;
        let span = info_span!(
            "peer",
            id = id.0,
            user = remote.user.as_str(),
            session = remote.session.as_str()
        );
        let settings = ConnectionSettings {
            ice_servers: self.ice_servers.clone(),
            ice_loopback: self.config.ice_loopback,
            relay_only: self.config.relay_only,
            video_codecs: self.settings_video.clone(),
            audio_codecs: self.settings_audio.clone(),
            start_bitrate_bps: self.config.video.start_bitrate_bps,
            max_bitrate_bps: self.config.max_bitrate_bps,
        };
        let (pc, tracks) = match peer::connect(id, &settings, self.peer_events.clone())
            .instrument(span.clone())
            .await
        {
            Ok(built) => built,
            Err(err) => {
                self.error(err);
                return None;
            }
        };
        let counters = peer::new_counters();
        let mut link = Link {
            polite: is_polite(&mine, &remote.session),
            remote,
            pc,
            tracks,
            have_local_offer: false,
            remote_description_set: false,
            pending_candidates: Vec::new(),
            remote_ufrag: None,
            detached_since: None,
            chat: None,
            chat_open: false,
            sending_video: None,
            sending_audio: None,
            counters: Arc::clone(&counters),
            tasks: Vec::new(),
            state: RTCPeerConnectionState::New,
            created_at: Instant::now(),
            span,
            last_bytes_in: 0,
            last_bytes_out: 0,
            last_frames: 0,
        };
        if let Some(orphans) = self.orphan_candidates.remove(&link.remote.session) {
            link.pending_candidates.extend(orphans);
        }
        for track in [&link.tracks.audio, &link.tracks.video] {
            link.tasks.push(peer::watch_local_rtcp(
                id,
                Arc::clone(track),
                self.peer_events.clone(),
            ));
        }
        if offerer {
            match peer::create_chat_channel(&link.pc).await {
                Ok(channel) => {
                    link.tasks.push(peer::watch_chat_channel(
                        id,
                        Arc::clone(&channel),
                        self.peer_events.clone(),
                    ));
                    link.chat = Some(channel);
                }
                Err(err) => self.error(err),
            }
        }
        self.records.insert(
            id,
            PeerRecord {
                session: link.remote.session.as_str().to_owned(),
                user: link.remote.user.as_str().to_owned(),
                created_at: Some(link.created_at),
                counters,
                ..PeerRecord::default()
            },
        );
        info!(parent: &link.span, offerer, "peer connection created");
        self.links.insert(id, link);
        Some(id)
    }

    pub(super) async fn send_offer(&mut self, id: PeerId) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let pc = Arc::clone(&link.pc);
        let offer = match pc.create_offer(None).await {
            Ok(offer) => offer,
            Err(err) => return self.error(CallError::webrtc("create an offer")(err)),
        };
        if let Err(err) = pc.set_local_description(offer.clone()).await {
            return self.error(CallError::webrtc("set the local offer")(err));
        }
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.have_local_offer = true;
        match Sdp::new(offer.sdp) {
            Ok(sdp) => self.signaling.send(ClientMessage::Offer {
                room: link.remote.room.clone(),
                to: link.remote.session.clone(),
                sdp,
            }),
            Err(err) => self.error(CallError::Signaling(format!(
                "our offer is unusable: {err}"
            ))),
        }
    }

    pub(super) async fn on_remote_offer(
        &mut self,
        room: RoomId,
        from: SessionId,
        from_user: UserId,
        sdp: Sdp,
    ) {
        let ufrag = ice_ufrag(sdp.as_str()).map(str::to_owned);
        let id = match self.link_by_session(&room, &from) {
            Some(id) => Some(id),
            None => {
                // A connection that survived its peer's reconnect: same ICE
                // credentials, new session.
                let survivor = self
                    .links
                    .iter()
                    .find(|(_, l)| {
                        l.detached_since.is_some()
                            && l.remote.room == room
                            && l.remote_ufrag.is_some()
                            && l.remote_ufrag == ufrag
                    })
                    .map(|(id, _)| *id);
                if let Some(id) = survivor {
                    self.rebind(id, from.clone());
                }
                survivor
            }
        };
        let id = match id {
            Some(id) => id,
            None => {
                let remote = Remote {
                    room,
                    session: from,
                    user: from_user,
                };
                let Some(id) = self.new_link(remote, false).await else {
                    return;
                };
                id
            }
        };
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        let pc = Arc::clone(&link.pc);
        if link.have_local_offer {
            if !link.polite {
                debug!(parent: &link.span, "glare: we are impolite, ignoring their offer");
                return;
            }
            debug!(parent: &link.span, "glare: we are polite, rolling back our offer");
            let rollback = match RTCSessionDescription::rollback(None) {
                Ok(rollback) => rollback,
                Err(err) => return self.error(CallError::webrtc("roll back")(err)),
            };
            if let Err(err) = pc.set_local_description(rollback).await {
                return self.error(CallError::webrtc("roll back our offer")(err));
            }
            if let Some(link) = self.links.get_mut(&id) {
                link.have_local_offer = false;
            }
        }
        let offer = match RTCSessionDescription::offer(sdp.into()) {
            Ok(offer) => offer,
            Err(err) => return self.error(CallError::webrtc("read the remote offer")(err)),
        };
        if let Err(err) = pc.set_remote_description(offer).await {
            return self.error(CallError::webrtc("apply the remote offer")(err));
        }
        self.remote_description_applied(id, ufrag).await;
        let answer = match pc.create_answer(None).await {
            Ok(answer) => answer,
            Err(err) => return self.error(CallError::webrtc("create an answer")(err)),
        };
        if let Err(err) = pc.set_local_description(answer.clone()).await {
            return self.error(CallError::webrtc("set the local answer")(err));
        }
        let Some(link) = self.links.get(&id) else {
            return;
        };
        match Sdp::new(answer.sdp) {
            Ok(sdp) => self.signaling.send(ClientMessage::Answer {
                room: link.remote.room.clone(),
                to: link.remote.session.clone(),
                sdp,
            }),
            Err(err) => self.error(CallError::Signaling(format!(
                "our answer is unusable: {err}"
            ))),
        }
        self.start_sending(id).await;
    }

    pub(super) async fn on_remote_answer(&mut self, room: RoomId, from: SessionId, sdp: Sdp) {
        let Some(id) = self.link_by_session(&room, &from) else {
            debug!(
                from = from.as_str(),
                "answer from a session we did not offer to"
            );
            return;
        };
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if !link.have_local_offer {
            debug!(parent: &link.span, "answer without a pending offer, ignored");
            return;
        }
        let pc = Arc::clone(&link.pc);
        let ufrag = ice_ufrag(sdp.as_str()).map(str::to_owned);
        let answer = match RTCSessionDescription::answer(sdp.into()) {
            Ok(answer) => answer,
            Err(err) => return self.error(CallError::webrtc("read the remote answer")(err)),
        };
        if let Err(err) = pc.set_remote_description(answer).await {
            return self.error(CallError::webrtc("apply the remote answer")(err));
        }
        if let Some(link) = self.links.get_mut(&id) {
            link.have_local_offer = false;
        }
        self.remote_description_applied(id, ufrag).await;
        self.start_sending(id).await;
    }

    pub(super) async fn remote_description_applied(&mut self, id: PeerId, ufrag: Option<String>) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.remote_description_set = true;
        if ufrag.is_some() {
            link.remote_ufrag = ufrag;
        }
        let pending = std::mem::take(&mut link.pending_candidates);
        let pc = Arc::clone(&link.pc);
        for candidate in pending {
            if let Err(err) = pc.add_ice_candidate(candidate).await {
                debug!(%err, "a queued remote candidate was refused");
            }
        }
    }

    pub(super) async fn add_candidate(&mut self, id: PeerId, candidate: RTCIceCandidateInit) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if !link.remote_description_set {
            link.pending_candidates.push(candidate);
            return;
        }
        if let Err(err) = link.pc.add_ice_candidate(candidate).await {
            debug!(parent: &link.span, %err, "a remote candidate was refused");
        }
    }
}
