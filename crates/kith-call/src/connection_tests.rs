//! Answers to a browser's offer: the payload types Kith answers with and
//! sends on must mean in the offer what they mean to us.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::codecs::VIDEO_CODECS;
use webrtc::peer_connection::RTCSessionDescription;

/// Chromium 156's offer (audio, video, the chat channel), taken from Debian's
/// package: H.264 constrained baseline with packetization-mode 1 is its
/// payload type 108; its 102 is baseline (42001f).
const CHROMIUM_OFFER: &str = include_str!("testdata/chromium-156-offer.sdp");

fn settings(video_codecs: Vec<VideoCodec>) -> ConnectionSettings {
    ConnectionSettings {
        ice_servers: Vec::new(),
        ice_loopback: true,
        relay_only: false,
        video_codecs,
        audio_codecs: vec![AudioCodec::Opus],
        start_bitrate_bps: 1_000_000,
        max_bitrate_bps: 2_500_000,
        estimate: Default::default(),
        repairs: Default::default(),
    }
}

/// Payload type → (codec name, fmtp) of the video section of an SDP.
fn video_formats(sdp: &str) -> (Vec<u8>, HashMap<u8, (String, String)>) {
    let mut order = Vec::new();
    let mut formats: HashMap<u8, (String, String)> = HashMap::new();
    let mut in_video = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(media) = line.strip_prefix("m=") {
            in_video = media.starts_with("video");
            if in_video {
                order = media
                    .split(' ')
                    .skip(3)
                    .filter_map(|pt| pt.parse().ok())
                    .collect();
            }
        } else if in_video && let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let (pt, name) = rest.split_once(' ').unwrap();
            let name = name.split('/').next().unwrap().to_owned();
            formats.entry(pt.parse().unwrap()).or_default().0 = name;
        } else if in_video && let Some(rest) = line.strip_prefix("a=fmtp:") {
            let (pt, fmtp) = rest.split_once(' ').unwrap();
            formats.entry(pt.parse().unwrap()).or_default().1 = fmtp.to_owned();
        }
    }
    (order, formats)
}

/// The profile an fmtp line names (H.264's profile-level-id, VP9's
/// profile-id), if any.
fn profile_of(fmtp: &str) -> Option<&str> {
    fmtp.split(';').find_map(|parameter| {
        parameter
            .strip_prefix("profile-level-id=")
            .or_else(|| parameter.strip_prefix("profile-id="))
    })
}

async fn answer_chromium(video_codecs: Vec<VideoCodec>) -> (String, Option<(String, u8)>) {
    let (answer, sending, _) = answer_offer(video_codecs, CHROMIUM_OFFER).await;
    (answer, sending)
}

/// Kith's own offer, as a joiner makes it.
async fn kith_offer(video_codecs: Vec<VideoCodec>) -> String {
    let (events, _keep) = mpsc::unbounded_channel();
    let (pc, _tracks) = connect(PeerId(2), &settings(video_codecs), events)
        .await
        .unwrap();
    let offer = pc.create_offer(None).await.unwrap();
    pc.set_local_description(offer.clone()).await.unwrap();
    let _ = pc.close().await;
    offer.sdp
}

/// Our answer to `offer`, the codec we send, and the codecs our video
/// sender holds (its RTX comes from these, not from the SDP).
async fn answer_offer(
    video_codecs: Vec<VideoCodec>,
    offer: &str,
) -> (String, Option<(String, u8)>, Vec<String>) {
    let (events, _keep) = mpsc::unbounded_channel();
    let (pc, _tracks) = connect(PeerId(1), &settings(video_codecs.clone()), events)
        .await
        .unwrap();
    pc.set_remote_description(RTCSessionDescription::offer(offer.to_owned()).unwrap())
        .await
        .unwrap();
    prefer_our_video_codecs(&pc, &video_codecs, offer).await;
    let answer = pc.create_answer(None).await.unwrap();
    pc.set_local_description(answer.clone()).await.unwrap();
    let sending = negotiated_send_codec(&pc, RtpCodecKind::Video).await;
    let mut sender_codecs = Vec::new();
    for sender in pc.get_senders().await {
        if sender.track().kind().await != RtpCodecKind::Video {
            continue;
        }
        if let Ok(parameters) = sender.get_parameters().await {
            sender_codecs.extend(
                parameters
                    .rtp_parameters
                    .codecs
                    .iter()
                    .map(|c| format!("{} {}", c.rtp_codec.mime_type, c.rtp_codec.sdp_fmtp_line)),
            );
        }
    }
    let _ = pc.close().await;
    (answer.sdp, sending, sender_codecs)
}

/// The answerer resends on its own SSRC too: without RTX it resends on the
/// media SSRC, whose duplicates SRTP's replay check drops before TWCC sees
/// them (see `add_tracks`).
#[tokio::test]
async fn answers_keep_rtx_for_the_codec_they_lead_with() {
    for (first, from_kith) in VIDEO_CODECS.iter().flat_map(|c| [(c, false), (c, true)]) {
        let ours = crate::codecs::ordered(VIDEO_CODECS, Some(*first));
        let offer = if from_kith {
            kith_offer(ours.clone()).await
        } else {
            CHROMIUM_OFFER.to_owned()
        };
        let (answer, sending, sender_codecs) = answer_offer(ours, &offer).await;
        let (_, payload_type) = sending.unwrap();
        assert!(
            sender_codecs
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&format!("video/rtx apt={payload_type}"))),
            "{first:?} (Kith's offer: {from_kith}): the sender has no RTX for {payload_type}: {sender_codecs:?}"
        );
        let (_, answered) = video_formats(&answer);
        let rtx = answered.values().any(|(name, fmtp)| {
            name.eq_ignore_ascii_case("rtx") && fmtp == &format!("apt={payload_type}")
        });
        assert!(
            rtx,
            "{first:?} (Kith's offer: {from_kith}): no RTX for payload type {payload_type}:\n{answer}"
        );
        assert!(
            answer.contains("a=ssrc-group:FID "),
            "{first:?} (Kith's offer: {from_kith}): no RTX SSRC in the answer:\n{answer}"
        );
    }
}

#[tokio::test]
async fn answers_use_the_offers_payload_types_for_every_codec() {
    let (_, offered) = video_formats(CHROMIUM_OFFER);
    for first in VIDEO_CODECS {
        let ours = crate::codecs::ordered(VIDEO_CODECS, Some(*first));
        let (answer, sending) = answer_chromium(ours).await;
        let (order, answered) = video_formats(&answer);
        let leading = order.first().copied().unwrap();
        assert_eq!(
            answered[&leading].0.to_ascii_uppercase(),
            first.sdp_name().to_ascii_uppercase(),
            "the answer leads with our preference:\n{answer}"
        );
        for pt in &order {
            let (name, fmtp) = &answered[pt];
            let (offered_name, offered_fmtp) = offered
                .get(pt)
                .unwrap_or_else(|| panic!("answered payload type {pt} was not offered"));
            assert_eq!(name, offered_name, "payload type {pt} changed its codec");
            assert_eq!(
                profile_of(fmtp),
                profile_of(offered_fmtp),
                "payload type {pt} changed its profile: {fmtp} against {offered_fmtp}"
            );
        }
        let (_, payload_type) = sending.unwrap();
        assert_eq!(
            payload_type, leading,
            "we send on the answer's first format"
        );
        if *first == VideoCodec::H264 {
            let fmtp = &offered[&payload_type].1;
            assert!(
                fmtp.contains("profile-level-id=42e01f") && fmtp.contains("packetization-mode=1"),
                "H.264 goes out as the offer's constrained baseline, mode 1: {fmtp}"
            );
        }
    }
}

/// A negotiated connection, closed and dropped, is freed with its sockets
/// and tasks: webrtc-rs 0.21.0 kept every one through a reference cycle
/// (its issue 906). Counts are process-wide; nextest runs each test in its
/// own process, so nothing else moves them here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_is_freed() {
    let before = crate::alive::peer_connections_alive();
    let (events, _keep) = mpsc::unbounded_channel();
    let codecs = VIDEO_CODECS.to_vec();
    let (offerer, _) = connect(PeerId(1), &settings(codecs.clone()), events.clone())
        .await
        .unwrap();
    let (answerer, _) = connect(PeerId(2), &settings(codecs), events).await.unwrap();
    let offer = offerer.create_offer(None).await.unwrap();
    offerer.set_local_description(offer.clone()).await.unwrap();
    answerer.set_remote_description(offer).await.unwrap();
    let answer = answerer.create_answer(None).await.unwrap();
    answerer
        .set_local_description(answer.clone())
        .await
        .unwrap();
    offerer.set_remote_description(answer).await.unwrap();
    assert_eq!(crate::alive::peer_connections_alive(), before + 2);

    for pc in [offerer, answerer] {
        pc.close().await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while crate::alive::peer_connections_alive() > before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(crate::alive::peer_connections_alive(), before);
}
