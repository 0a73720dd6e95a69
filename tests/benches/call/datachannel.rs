//! Bulk throughput of a reliable, ordered data channel (what `chat` is)
//! between two webrtc-rs peer connections in this process, over loopback,
//! and the latency of chat messages on a second channel of the same
//! connection before and during the transfer: Kith's side of the data
//! channel rows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::BytesMut;
use kith_e2e::percentile;
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCPeerConnectionIceEvent, SettingEngineBuilder,
};

/// Bytes sent per measurement.
pub const TOTAL: usize = 64 * 1024 * 1024;
/// A chat message goes every this often...
pub const CHAT_EVERY: Duration = Duration::from_millis(20);
/// ...for this long before the transfer starts.
pub const IDLE: Duration = Duration::from_millis(600);

/// What one transfer measured: MB/s, and chat latency in ms (median before
/// the transfer; median and 95th percentile during it).
#[derive(Debug, Clone, Copy)]
pub struct Bulk {
    pub mb_per_s: f64,
    pub chat_idle_p50_ms: f64,
    pub chat_busy_p50_ms: f64,
    pub chat_busy_p95_ms: f64,
}

impl Bulk {
    pub const FAILED: Self = Self {
        mb_per_s: f64::NAN,
        chat_idle_p50_ms: f64::NAN,
        chat_busy_p50_ms: f64::NAN,
        chat_busy_p95_ms: f64::NAN,
    };
}

async fn opened(channel: &Arc<dyn DataChannel>) -> anyhow::Result<()> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), channel.poll())
            .await
            .context("channel never opened")?
        {
            Some(DataChannelEvent::OnOpen) => return Ok(()),
            Some(_) => continue,
            None => anyhow::bail!("channel closed before opening"),
        }
    }
}

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
            // As the Chromium page does: at most 8 MiB queued to send.
            .with_data_channel_send_buffer_limit(8 << 20)
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

/// `TOTAL` bytes sent in `message`-byte messages.
pub async fn kith_throughput(message: usize) -> anyhow::Result<Bulk> {
    let (offerer, mut offerer_candidates, _) = peer().await?;
    let (answerer, mut answerer_candidates, mut answerer_channels) = peer().await?;
    let ordered = || {
        Some(RTCDataChannelInit {
            ordered: true,
            ..Default::default()
        })
    };
    let sender = offerer.create_data_channel("bulk", ordered()).await?;
    let chat = offerer.create_data_channel("chat", ordered()).await?;
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
    opened(&sender).await?;
    opened(&chat).await?;
    let mut receiver = None;
    let mut chat_receiver = None;
    while receiver.is_none() || chat_receiver.is_none() {
        let channel = answerer_channels
            .recv()
            .await
            .context("a channel did not reach the answerer")?;
        if channel.label().await? == "chat" {
            chat_receiver = Some(channel);
        } else {
            receiver = Some(channel);
        }
    }
    let (receiver, chat_receiver) = (
        receiver.context("no bulk channel")?,
        chat_receiver.context("no chat channel")?,
    );
    // Both ends are in this process: a message carries the time it was
    // sent, as nanoseconds since `epoch`.
    let epoch = Instant::now();
    let (latency_tx, mut latency_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = chat_receiver.poll().await {
            if let DataChannelEvent::OnMessage(message) = event
                && let Ok(stamp) = <[u8; 8]>::try_from(&message.data[..])
            {
                let sent = Duration::from_nanos(u64::from_le_bytes(stamp));
                let now = epoch.elapsed();
                let _ = latency_tx.send((now, now.saturating_sub(sent).as_secs_f64() * 1000.0));
            }
        }
    });
    let pinger = tokio::spawn(async move {
        loop {
            let stamp = (epoch.elapsed().as_nanos() as u64).to_le_bytes();
            if chat.send(BytesMut::from(&stamp[..])).await.is_err() {
                break;
            }
            tokio::time::sleep(CHAT_EVERY).await;
        }
    });
    tokio::time::sleep(IDLE).await;
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
    pinger.abort();
    let seconds = finished.duration_since(started).as_secs_f64();
    let (started, finished) = (started - epoch, finished - epoch);
    let (mut idle, mut busy) = (Vec::new(), Vec::new());
    while let Ok((at, latency)) = latency_rx.try_recv() {
        if at < started {
            idle.push(latency);
        } else if at <= finished {
            busy.push(latency);
        }
    }
    offerer.close().await?;
    answerer.close().await?;
    Ok(Bulk {
        mb_per_s: TOTAL as f64 / seconds / 1e6,
        chat_idle_p50_ms: percentile(&mut idle, 0.5),
        chat_busy_p50_ms: percentile(&mut busy, 0.5),
        chat_busy_p95_ms: percentile(&mut busy, 0.95),
    })
}
