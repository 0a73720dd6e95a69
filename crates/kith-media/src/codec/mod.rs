//! One interface for every codec, so the call engine can pick any of them.

pub mod av1;
pub mod factory;
pub mod g711;
pub mod h264;
pub mod opus;
mod planes;
pub mod vpx;

use bytes::Bytes;

use crate::frame::{AudioFrame, VideoFrame};

/// Video codecs Kith can negotiate, in its order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    Av1,
    Vp9,
    Vp8,
    H264,
}

impl VideoCodec {
    /// The RTP/SDP encoding name.
    pub fn sdp_name(self) -> &'static str {
        match self {
            VideoCodec::Av1 => "AV1",
            VideoCodec::Vp9 => "VP9",
            VideoCodec::Vp8 => "VP8",
            VideoCodec::H264 => "H264",
        }
    }
}

/// Audio codecs Kith can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    Opus,
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

/// RTP clock rate of video (90 kHz for every video codec).
pub const VIDEO_CLOCK_RATE: u32 = 90_000;

/// One encoded picture. Cloning is cheap (`Bytes`), so one encode can be
/// sent to every peer of a group call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedVideoFrame {
    pub codec: VideoCodec,
    /// The bitstream: for AV1 a temporal unit of OBUs (with the sequence
    /// header on keyframes), for VP8/VP9 one frame, for H.264 Annex B.
    pub data: Bytes,
    pub keyframe: bool,
    pub width: u32,
    pub height: u32,
    /// Capture time of the source frame, microseconds since the Unix epoch.
    pub capture_us: u64,
    /// RTP timestamp (90 kHz) derived from the capture time.
    pub rtp_timestamp: u32,
}

/// Settings an encoder starts with; all but the codec can change while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoEncoderConfig {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_bps: u32,
}

/// Why a codec call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("{codec} could not start: {reason}")]
    Init { codec: &'static str, reason: String },
    #[error("{codec} could not encode: {reason}")]
    Encode { codec: &'static str, reason: String },
    #[error("{codec} could not decode: {reason}")]
    Decode { codec: &'static str, reason: String },
    #[error("{codec} does not support {what}")]
    Unsupported { codec: &'static str, what: String },
}

/// A video encoder in real-time mode: no lookahead, no frame reordering.
pub trait VideoEncoder: Send {
    fn codec(&self) -> VideoCodec;
    /// Which implementation this is (e.g. "libvpx", "rav1e", "libaom").
    fn implementation(&self) -> &'static str;
    /// Encodes one frame. A frame of another size than configured is an
    /// error: call [`VideoEncoder::set_resolution`] first.
    fn encode(
        &mut self,
        frame: &VideoFrame,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedVideoFrame>, CodecError>;
    fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<(), CodecError>;
    fn set_fps(&mut self, fps: u32) -> Result<(), CodecError>;
    /// Changes the encoded size; the next frame is a keyframe.
    fn set_resolution(&mut self, width: u32, height: u32) -> Result<(), CodecError>;
    fn config(&self) -> VideoEncoderConfig;
}

/// A video decoder. Corrupt or truncated input is an error, never a crash.
pub trait VideoDecoder: Send {
    fn codec(&self) -> VideoCodec;
    /// Decodes one encoded frame; `Ok(None)` when it produced no picture yet.
    fn decode(&mut self, data: &[u8], capture_us: u64) -> Result<Option<VideoFrame>, CodecError>;
}

/// An audio encoder taking 10 ms frames at 48 kHz.
pub trait AudioEncoder: Send {
    fn codec(&self) -> AudioCodec;
    /// Encodes one 10 ms frame; `Ok(None)` when the codec is collecting a
    /// longer packet or, with DTX, chose to send nothing.
    fn encode(&mut self, frame: &AudioFrame) -> Result<Option<Bytes>, CodecError>;
    /// How many 10 ms frames one packet holds. A packet `encode` returns
    /// ends with the frame just fed in, so its first sample (its RTP time)
    /// is this many frames back: after a DTX gap the caller cannot count
    /// that itself, since a suppressed packet and a half-collected one both
    /// return `Ok(None)`.
    fn frames_per_packet(&self) -> u32;
    /// The packet `encode` returned last says only "silence follows" (a
    /// DTX marker), so the next packet of sound starts a talkspurt.
    fn sent_silence(&self) -> bool {
        false
    }
    fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<(), CodecError>;
}

/// An audio decoder producing 48 kHz audio.
pub trait AudioDecoder: Send {
    fn codec(&self) -> AudioCodec;
    /// Decodes a packet into 48 kHz frames (10 ms each).
    fn decode(&mut self, packet: &[u8]) -> Result<Vec<AudioFrame>, CodecError>;
    /// Conceals one missing packet of `duration_ms`; `next` is the packet
    /// after the gap when known (Opus recovers the lost one from its FEC).
    fn conceal(
        &mut self,
        duration_ms: u32,
        next: Option<&[u8]>,
    ) -> Result<Vec<AudioFrame>, CodecError>;
}

/// The 90 kHz RTP timestamp for a capture time.
pub fn rtp_timestamp(capture_us: u64) -> u32 {
    // Wraps by design: RTP timestamps are modulo 2^32.
    (capture_us.wrapping_mul(u64::from(VIDEO_CLOCK_RATE)) / 1_000_000) as u32
}

/// Encoders take frames of their configured size only; the encoder thread
/// scales before encoding, so a mismatch here is a caller's mistake.
pub(crate) fn check_frame_size(
    codec: &'static str,
    frame: &VideoFrame,
    config: &VideoEncoderConfig,
) -> Result<(), CodecError> {
    if (frame.width, frame.height) == (config.width, config.height) {
        return Ok(());
    }
    Err(CodecError::Encode {
        codec,
        reason: format!(
            "frame is {}x{} but the encoder is set to {}x{}; call set_resolution first",
            frame.width, frame.height, config.width, config.height
        ),
    })
}
