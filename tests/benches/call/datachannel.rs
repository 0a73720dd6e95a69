//! Bulk throughput of a reliable, ordered data channel (what `chat` is)
//! between two webrtc-rs peer connections in this process, over loopback:
//! Kith's side of the data channel rows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::BytesMut;
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCPeerConnectionIceEvent, SettingEngineBuilder,
};

/// Bytes sent per measurement.
pub const TOTAL: usize = 64 * 1024 * 1024;

struct Events {
    candidates: mpsc::UnboundedSender<RTCIceCandidateInit>,
    channels: mpsc::UnboundedSender<Arc<dyn DataChannel>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.candidates.send(init);
        }
    }
    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        let _ = self.channels.send(channel);
    }
}

type Peer = (
    Arc<dyn PeerConnection>,
    mpsc::UnboundedReceiver<RTCIceCandidateInit>,
    mpsc::UnboundedReceiver<Arc<dyn DataChannel>>,
);

async fn peer() -> anyhow::Result<Peer> {
    let (candidates, candidates_rx) = mpsc::unbounded_channel();
    let (channels, channels_rx) = mpsc::unbounded_channel();
    let pc = Box::pin(
        PeerConnectionBuilder::new()
            // Kith's sockets, as its connections bind them.
            .with_runtime(kith_call::sockets::runtime())
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_include_loopback_candidate(true)
                    .build(),
            )
            .with_handler(Arc::new(Events {
                candidates,
                channels,
            }))
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .build(),
    )
    .await?;
    Ok((Arc::new(pc), candidates_rx, channels_rx))
}

/// MB/s of `TOTAL` bytes sent in `message`-byte messages.
pub async fn kith_throughput(message: usize) -> anyhow::Result<f64> {
    let (offerer, mut offerer_candidates, _) = peer().await?;
    let (answerer, mut answerer_candidates, mut answerer_channels) = peer().await?;
    let sender = offerer
        .create_data_channel(
            "bulk",
            Some(RTCDataChannelInit {
                ordered: true,
                ..Default::default()
            }),
        )
        .await?;
    let offer = offerer.create_offer(None).await?;
    offerer.set_local_description(offer.clone()).await?;
    answerer.set_remote_description(offer).await?;
    let answer = answerer.create_answer(None).await?;
    answerer.set_local_description(answer.clone()).await?;
    offerer.set_remote_description(answer).await?;
    // Trickle both ways until the channel is up.
    let (a, b) = (Arc::clone(&offerer), Arc::clone(&answerer));
    tokio::spawn(async move {
        while let Some(c) = offerer_candidates.recv().await {
            let _ = b.add_ice_candidate(c).await;
        }
    });
    tokio::spawn(async move {
        while let Some(c) = answerer_candidates.recv().await {
            let _ = a.add_ice_candidate(c).await;
        }
    });
    loop {
        match tokio::time::timeout(Duration::from_secs(20), sender.poll())
            .await
            .context("channel never opened")?
        {
            Some(DataChannelEvent::OnOpen) => break,
            Some(_) => continue,
            None => anyhow::bail!("channel closed before opening"),
        }
    }
    let receiver = answerer_channels
        .recv()
        .await
        .context("no channel at the answerer")?;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut received = 0usize;
        while let Some(event) = receiver.poll().await {
            if let DataChannelEvent::OnMessage(message) = event {
                received += message.data.len();
                if received >= TOTAL {
                    let _ = done_tx.send(Instant::now());
                    break;
                }
            }
        }
    });
    let payload = BytesMut::from(&vec![0x5a_u8; message][..]);
    let started = Instant::now();
    for _ in 0..TOTAL / message {
        sender.send(payload.clone()).await?;
    }
    let finished = tokio::time::timeout(Duration::from_secs(120), done_rx.recv())
        .await
        .context("the receiver did not get everything in 120 s")?
        .context("receiver stopped")?;
    let seconds = finished.duration_since(started).as_secs_f64();
    offerer.close().await?;
    answerer.close().await?;
    Ok(TOTAL as f64 / seconds / 1e6)
}
