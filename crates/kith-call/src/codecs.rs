//! The codecs Kith negotiates, in the protocol's order, and the mapping
//! between SDP names and kith-media's codec types.

use std::fmt;
use std::str::FromStr;

use kith_media::codec::{AudioCodec, VideoCodec};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_AV1, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_PCMA, MIME_TYPE_PCMU, MIME_TYPE_RTX,
    MIME_TYPE_VP8, MIME_TYPE_VP9, MediaEngine,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};

use crate::error::CallError;

/// Video codecs this build can encode and decode, in Kith's default order.
pub const VIDEO_CODECS: &[VideoCodec] = &[
    VideoCodec::Av1,
    VideoCodec::Vp9,
    VideoCodec::Vp8,
    VideoCodec::H264,
];

/// Audio codecs, in Kith's default order.
pub const AUDIO_CODECS: &[AudioCodec] = &[AudioCodec::Opus, AudioCodec::Pcmu, AudioCodec::Pcma];

/// A video codec name as users type it (`--codec AV1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoCodecName(pub VideoCodec);

impl FromStr for VideoCodecName {
    type Err = CallError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        VIDEO_CODECS
            .iter()
            .find(|codec| codec.sdp_name().eq_ignore_ascii_case(text))
            .map(|codec| Self(*codec))
            .ok_or_else(|| {
                CallError::Config(format!(
                    "unknown video codec {text:?}: use AV1, VP9, VP8 or H264"
                ))
            })
    }
}

impl fmt::Display for VideoCodecName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.sdp_name())
    }
}

/// An audio codec name as users type it (`--audio-codec pcmu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioCodecName(pub AudioCodec);

impl FromStr for AudioCodecName {
    type Err = CallError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        AUDIO_CODECS
            .iter()
            .find(|codec| audio_sdp_name(**codec).eq_ignore_ascii_case(text))
            .map(|codec| Self(*codec))
            .ok_or_else(|| {
                CallError::Config(format!(
                    "unknown audio codec {text:?}: use opus, pcmu or pcma"
                ))
            })
    }
}

impl fmt::Display for AudioCodecName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(audio_report_name(self.0))
    }
}

pub fn audio_sdp_name(codec: AudioCodec) -> &'static str {
    match codec {
        AudioCodec::Opus => "opus",
        AudioCodec::Pcmu => "PCMU",
        AudioCodec::Pcma => "PCMA",
    }
}

/// The name reports use (`"opus"`, `"pcmu"`, `"pcma"`).
pub fn audio_report_name(codec: AudioCodec) -> &'static str {
    match codec {
        AudioCodec::Opus => "opus",
        AudioCodec::Pcmu => "pcmu",
        AudioCodec::Pcma => "pcma",
    }
}

fn video_mime(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::Av1 => MIME_TYPE_AV1,
        VideoCodec::Vp9 => MIME_TYPE_VP9,
        VideoCodec::Vp8 => MIME_TYPE_VP8,
        VideoCodec::H264 => MIME_TYPE_H264,
    }
}

fn audio_mime(codec: AudioCodec) -> &'static str {
    match codec {
        AudioCodec::Opus => MIME_TYPE_OPUS,
        AudioCodec::Pcmu => MIME_TYPE_PCMU,
        AudioCodec::Pcma => MIME_TYPE_PCMA,
    }
}

/// The kith-media video codec for an RTP mime type (`video/AV1`).
pub fn video_codec_for_mime(mime: &str) -> Option<VideoCodec> {
    VIDEO_CODECS
        .iter()
        .copied()
        .find(|codec| video_mime(*codec).eq_ignore_ascii_case(mime))
}

/// The kith-media audio codec for an RTP mime type (`audio/opus`).
pub fn audio_codec_for_mime(mime: &str) -> Option<AudioCodec> {
    AUDIO_CODECS
        .iter()
        .copied()
        .find(|codec| audio_mime(*codec).eq_ignore_ascii_case(mime))
}

/// Payload types: the numbers Chromium gives the same formats. webrtc-rs
/// answers an offer with our numbers, not the offer's, so a number that
/// means another format in a browser's offer breaks that codec: Chromium's
/// 102 is H.264 baseline (42001f), and answered as our constrained baseline
/// it decoded nothing either way. Its constrained baseline is 108.
pub(crate) fn video_payload_type(codec: VideoCodec) -> u8 {
    match codec {
        VideoCodec::Av1 => 45,
        VideoCodec::Vp9 => 98,
        VideoCodec::Vp8 => 96,
        VideoCodec::H264 => 108,
    }
}

fn video_fmtp(codec: VideoCodec) -> &'static str {
    match codec {
        // What browsers send; webrtc-rs's default AV1 fmtp differs (stack.md).
        VideoCodec::Av1 => "level-idx=5;profile=0;tier=0",
        VideoCodec::Vp9 => "profile-id=0",
        VideoCodec::Vp8 => "",
        VideoCodec::H264 => {
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
        }
    }
}

fn video_feedback() -> Vec<RTCPFeedback> {
    [
        ("goog-remb", ""),
        ("transport-cc", ""),
        ("ccm", "fir"),
        ("nack", ""),
        ("nack", "pli"),
    ]
    .into_iter()
    .map(|(typ, parameter)| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    })
    .collect()
}

/// The RTP codec description of a video codec.
pub fn video_rtp_codec(codec: VideoCodec) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: video_mime(codec).to_owned(),
        clock_rate: kith_media::codec::VIDEO_CLOCK_RATE,
        channels: 0,
        sdp_fmtp_line: video_fmtp(codec).to_owned(),
        rtcp_feedback: video_feedback(),
    }
}

/// The RTP codec description of an audio codec.
pub fn audio_rtp_codec(codec: AudioCodec) -> RTCRtpCodec {
    let (clock_rate, channels, fmtp) = match codec {
        AudioCodec::Opus => (48_000, 2, "minptime=10;useinbandfec=1"),
        AudioCodec::Pcmu | AudioCodec::Pcma => (8_000, 1, ""),
    };
    RTCRtpCodec {
        mime_type: audio_mime(codec).to_owned(),
        clock_rate,
        channels,
        sdp_fmtp_line: fmtp.to_owned(),
        rtcp_feedback: match codec {
            AudioCodec::Opus => vec![RTCPFeedback {
                typ: "transport-cc".to_owned(),
                parameter: String::new(),
            }],
            _ => Vec::new(),
        },
    }
}

fn audio_payload_type(codec: AudioCodec) -> u8 {
    match codec {
        AudioCodec::Opus => 111,
        AudioCodec::Pcmu => 0,
        AudioCodec::Pcma => 8,
    }
}

/// Preference order with `first` moved to the front.
pub fn ordered<T: Copy + PartialEq>(all: &[T], first: Option<T>) -> Vec<T> {
    let mut order: Vec<T> = first.into_iter().collect();
    order.extend(all.iter().copied().filter(|codec| Some(*codec) != first));
    order
}

/// A media engine with Kith's codecs registered in the order given.
pub fn media_engine(video: &[VideoCodec], audio: &[AudioCodec]) -> Result<MediaEngine, CallError> {
    let mut engine = MediaEngine::default();
    for codec in audio {
        engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: audio_rtp_codec(*codec),
                    payload_type: audio_payload_type(*codec),
                },
                RtpCodecKind::Audio,
            )
            .map_err(CallError::webrtc("register an audio codec"))?;
    }
    for codec in video {
        engine
            .register_codec(video_codec_parameters(*codec), RtpCodecKind::Video)
            .map_err(CallError::webrtc("register a video codec"))?;
        engine
            .register_codec(rtx_codec(*codec), RtpCodecKind::Video)
            .map_err(CallError::webrtc("register a retransmission codec"))?;
    }
    Ok(engine)
}

/// `codec` on its payload type.
pub fn video_codec_parameters(codec: VideoCodec) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: video_rtp_codec(codec),
        payload_type: video_payload_type(codec),
    }
}

/// The retransmission stream (RFC 4588) of `codec`, on the next payload
/// type as Chromium numbers them.
pub fn rtx_codec(codec: VideoCodec) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_RTX.to_owned(),
            clock_rate: kith_media::codec::VIDEO_CLOCK_RATE,
            channels: 0,
            sdp_fmtp_line: format!("apt={}", video_payload_type(codec)),
            rtcp_feedback: Vec::new(),
        },
        payload_type: video_payload_type(codec) + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_case_insensitively() {
        assert_eq!(
            "av1".parse::<VideoCodecName>().ok(),
            Some(VideoCodecName(VideoCodec::Av1))
        );
        assert_eq!(
            "PCMU".parse::<AudioCodecName>().ok(),
            Some(AudioCodecName(AudioCodec::Pcmu))
        );
        assert!("theora".parse::<VideoCodecName>().is_err());
    }

    #[test]
    fn preference_moves_one_codec_first() {
        assert_eq!(
            ordered(VIDEO_CODECS, Some(VideoCodec::Vp8)),
            vec![
                VideoCodec::Vp8,
                VideoCodec::Av1,
                VideoCodec::Vp9,
                VideoCodec::H264
            ]
        );
        assert_eq!(ordered(VIDEO_CODECS, None), VIDEO_CODECS.to_vec());
    }

    #[test]
    fn mime_types_map_back() {
        for codec in VIDEO_CODECS {
            assert_eq!(
                video_codec_for_mime(&video_rtp_codec(*codec).mime_type),
                Some(*codec)
            );
        }
        for codec in AUDIO_CODECS {
            assert_eq!(
                audio_codec_for_mime(&audio_rtp_codec(*codec).mime_type),
                Some(*codec)
            );
        }
        assert_eq!(video_codec_for_mime("VIDEO/av1"), Some(VideoCodec::Av1));
    }
}
