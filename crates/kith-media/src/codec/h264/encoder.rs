//! H.264 real-time encoder over OpenH264.

use bytes::Bytes;
use openh264::Timestamp;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSource;

use super::{NAME, annexb, raw};
use crate::codec::{
    CodecError, EncodedVideoFrame, VideoCodec, VideoEncoder, VideoEncoderConfig, check_frame_size,
    rtp_timestamp,
};
use crate::frame::VideoFrame;

/// A keyframe at least this often (frames) even without a request: 100 s at
/// 30 fps, as for VP8/VP9. Receivers ask for one (PLI) when they need it.
const KEYFRAME_INTERVAL: u32 = 3000;
/// OpenH264 codes nothing smaller than one macroblock per side.
const MIN_DIMENSION: u32 = 16;
/// OpenH264's largest picture (level 5.2): 3840 on the long side, 2160 on
/// the short one.
const MAX_LONG_SIDE: u32 = 3840;
const MAX_SHORT_SIDE: u32 = 2160;

/// An H.264 encoder in OpenH264's real-time camera mode: constrained
/// baseline profile, bitrate rate control, no frame skipping, no
/// lookahead, one thread, one slice per picture, keyframes on demand.
///
/// Every keyframe is an IDR picture preceded by its SPS and PPS, so any
/// keyframe is a place to start decoding. Output is Annex B (4-byte start
/// codes), what an RTP packetizer in packetization-mode=1 splits into FU-A
/// and STAP-A packets.
pub struct H264Encoder {
    config: VideoEncoderConfig,
    encoder: Encoder,
    /// OpenH264 initializes itself on the first frame and refuses options
    /// before that; until then a changed setting rebuilds the encoder.
    started: bool,
    /// The next frame must be a keyframe (start, resize).
    keyframe_pending: bool,
    /// Capture time of the first frame: OpenH264 timestamp 0.
    first_capture_us: Option<u64>,
    last_timestamp_ms: u64,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("config", &self.config)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

/// The OpenH264 settings for a configuration.
///
/// After WebRTC's H.264 wrapper: camera real-time usage, bitrate mode,
/// one slice (packetization-mode=1 fragments it), SPS/PPS with every IDR.
/// Frame skipping is off, as `rc_dropframe_thresh = 0` is for VP8/VP9: the
/// encoder thread already drops frames when encoding falls behind, and a
/// skipped frame would also postpone a keyframe that was asked for. Scene
/// change detection is off so keyframes come only on request (or every
/// [`KEYFRAME_INTERVAL`] frames): a receiver that lost one asks for it.
fn openh264_config(config: &VideoEncoderConfig) -> EncoderConfig {
    EncoderConfig::new()
        .usage_type(UsageType::CameraVideoRealTime)
        .profile(Profile::Baseline)
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(config.bitrate_bps))
        .max_frame_rate(FrameRate::from_hz(config.fps as f32))
        .skip_frames(false)
        .num_threads(1)
        .complexity(Complexity::Low)
        .scene_change_detect(false)
        .intra_frame_period(IntraFramePeriod::from_num_frames(KEYFRAME_INTERVAL))
        .sps_pps_strategy(SpsPpsStrategy::ConstantId)
}

fn validate(config: &VideoEncoderConfig) -> Result<(), String> {
    let (w, h) = (config.width, config.height);
    let (long, short) = (w.max(h), w.min(h));
    if w < MIN_DIMENSION || h < MIN_DIMENSION || long > MAX_LONG_SIDE || short > MAX_SHORT_SIDE {
        return Err(format!(
            "size {w}x{h} (each side at least {MIN_DIMENSION}, at most \
             {MAX_LONG_SIDE}x{MAX_SHORT_SIDE} either way round)"
        ));
    }
    // 4:2:0 H.264 crops in steps of two pixels: an odd size cannot be
    // signalled, the decoder would show one more or one less column.
    if w % 2 != 0 || h % 2 != 0 {
        return Err(format!("size {w}x{h} (H.264 4:2:0 needs even sides)"));
    }
    if config.fps == 0 || config.fps > 1000 {
        return Err(format!("{} fps (must be 1..=1000)", config.fps));
    }
    // OpenH264 wants at least one bit per frame and fits the rate in i32.
    if config.bitrate_bps < 1000 || i32::try_from(config.bitrate_bps).is_err() {
        return Err(format!(
            "{} bit/s (must be 1000..={})",
            config.bitrate_bps,
            i32::MAX
        ));
    }
    Ok(())
}

fn start(config: &VideoEncoderConfig) -> Result<Encoder, String> {
    let mut encoder = Encoder::with_api_config(
        openh264::OpenH264API::from_source(),
        openh264_config(config),
    )
    .map_err(|e| format!("WelsCreateSVCEncoder: {e}"))?;
    raw::quiet(&mut encoder)
        .map_err(|code| format!("SetOption(trace level) failed with {code}"))?;
    Ok(encoder)
}

/// A tightly packed I420 [`VideoFrame`] as OpenH264 reads it. Only built for
/// frames whose byte count matches their (even) size.
struct Planes<'a>(&'a VideoFrame);

impl YUVSource for Planes<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width as usize, self.0.height as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let (cw, _) = VideoFrame::chroma_size(self.0.width, self.0.height);
        (self.0.width as usize, cw as usize, cw as usize)
    }

    fn y(&self) -> &[u8] {
        self.0.y()
    }

    fn u(&self) -> &[u8] {
        self.0.u()
    }

    fn v(&self) -> &[u8] {
        self.0.v()
    }
}

impl H264Encoder {
    pub fn new(config: VideoEncoderConfig) -> Result<Self, CodecError> {
        let init_error = |reason: String| CodecError::Init {
            codec: NAME,
            reason,
        };
        validate(&config).map_err(init_error)?;
        let encoder = start(&config).map_err(init_error)?;
        tracing::debug!(
            width = config.width,
            height = config.height,
            fps = config.fps,
            bitrate_bps = config.bitrate_bps,
            "OpenH264 encoder started"
        );
        Ok(Self {
            config,
            encoder,
            started: false,
            keyframe_pending: true,
            first_capture_us: None,
            last_timestamp_ms: 0,
        })
    }

    /// Milliseconds since the first frame, never going backwards.
    fn timestamp_ms(&mut self, capture_us: u64) -> u64 {
        let first = *self.first_capture_us.get_or_insert(capture_us);
        let ms = capture_us.saturating_sub(first) / 1000;
        // OpenH264 stores it as a signed 64-bit value.
        let ms = ms.clamp(self.last_timestamp_ms, i64::MAX as u64);
        self.last_timestamp_ms = ms;
        ms
    }

    /// Replaces the encoder before its first frame (OpenH264 takes options
    /// only once it runs, and a new one costs nothing yet).
    fn restart(&mut self, config: VideoEncoderConfig) -> Result<(), CodecError> {
        self.encoder = start(&config).map_err(|reason| CodecError::Encode {
            codec: NAME,
            reason,
        })?;
        self.config = config;
        self.started = false;
        self.keyframe_pending = true;
        Ok(())
    }
}

fn invalid(what: String) -> CodecError {
    CodecError::Unsupported { codec: NAME, what }
}

fn encode_error(reason: String) -> CodecError {
    CodecError::Encode {
        codec: NAME,
        reason,
    }
}

impl VideoEncoder for H264Encoder {
    fn codec(&self) -> VideoCodec {
        VideoCodec::H264
    }

    fn implementation(&self) -> &'static str {
        "openh264"
    }

    fn encode(
        &mut self,
        frame: &VideoFrame,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedVideoFrame>, CodecError> {
        check_frame_size(NAME, frame, &self.config)?;
        if frame.data.len() != VideoFrame::byte_len(frame.width, frame.height) {
            return Err(encode_error(format!(
                "frame of {}x{} has {} bytes, not {}",
                frame.width,
                frame.height,
                frame.data.len(),
                VideoFrame::byte_len(frame.width, frame.height)
            )));
        }
        let keyframe = force_keyframe || self.keyframe_pending;
        if keyframe && self.started {
            // Before the first frame OpenH264 is not initialized (this would
            // be refused), and its first frame is an IDR anyway.
            self.encoder.force_intra_frame();
        }
        let timestamp = Timestamp::from_millis(self.timestamp_ms(frame.capture_us));
        let (frame_type, data) = {
            let stream = self
                .encoder
                .encode_at(&Planes(frame), timestamp)
                .map_err(|e| encode_error(format!("EncodeFrame: {e}")))?;
            (stream.frame_type(), stream.to_vec())
        };
        self.started = true;
        match frame_type {
            FrameType::IDR | FrameType::I | FrameType::P | FrameType::IPMixed => {}
            FrameType::Skip => {
                // Frame skipping is off; should OpenH264 skip anyway, the
                // keyframe request carries over to the next frame.
                tracing::debug!(keyframe, "OpenH264 skipped a frame");
                self.keyframe_pending = keyframe;
                return Ok(Vec::new());
            }
            FrameType::Invalid => {
                return Err(encode_error("EncodeFrame returned no valid frame".into()));
            }
        }
        self.keyframe_pending = false;
        let is_key = frame_type == FrameType::IDR;
        if keyframe && !is_key {
            tracing::warn!(?frame_type, "OpenH264 ignored a keyframe request");
        }
        if data.is_empty() {
            return Err(encode_error(format!("{frame_type:?} frame with no data")));
        }
        debug_assert_eq!(
            annexb::contents(&data).map(|c| c.is_self_contained_keyframe()),
            Some(is_key),
            "IDR frames carry SPS and PPS, others none"
        );
        Ok(vec![EncodedVideoFrame {
            codec: VideoCodec::H264,
            data: Bytes::from(data),
            keyframe: is_key,
            width: self.config.width,
            height: self.config.height,
            capture_us: frame.capture_us,
            rtp_timestamp: rtp_timestamp(frame.capture_us),
        }])
    }

    fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<(), CodecError> {
        let config = VideoEncoderConfig {
            bitrate_bps,
            ..self.config
        };
        validate(&config).map_err(invalid)?;
        if config == self.config {
            return Ok(());
        }
        if !self.started {
            return self.restart(config);
        }
        raw::set_bitrate(&mut self.encoder, self.config.bitrate_bps, bitrate_bps).map_err(
            |code| {
                encode_error(format!(
                    "SetOption(bitrate {bitrate_bps}) failed with {code}"
                ))
            },
        )?;
        self.config = config;
        Ok(())
    }

    fn set_fps(&mut self, fps: u32) -> Result<(), CodecError> {
        let config = VideoEncoderConfig { fps, ..self.config };
        validate(&config).map_err(invalid)?;
        if config == self.config {
            return Ok(());
        }
        if !self.started {
            return self.restart(config);
        }
        raw::set_frame_rate(&mut self.encoder, fps as f32).map_err(|code| {
            encode_error(format!("SetOption(frame rate {fps}) failed with {code}"))
        })?;
        self.config = config;
        Ok(())
    }

    fn set_resolution(&mut self, width: u32, height: u32) -> Result<(), CodecError> {
        if (width, height) == (self.config.width, self.config.height) {
            return Ok(());
        }
        let config = VideoEncoderConfig {
            width,
            height,
            ..self.config
        };
        validate(&config).map_err(invalid)?;
        // A new encoder rather than the wrapper's in-place re-initialization,
        // which would also bring back the starting bitrate and frame rate.
        // The old encoder keeps working if this fails.
        let encoder = start(&config)
            .map_err(|e| encode_error(format!("resizing to {width}x{height}: {e}")))?;
        self.encoder = encoder;
        self.config = config;
        self.started = false;
        self.keyframe_pending = true;
        tracing::debug!(width, height, "OpenH264 encoder resized");
        Ok(())
    }

    fn config(&self) -> VideoEncoderConfig {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(width: u32, height: u32) -> VideoEncoderConfig {
        VideoEncoderConfig {
            width,
            height,
            fps: 30,
            bitrate_bps: 500_000,
        }
    }

    #[test]
    fn sizes_openh264_can_code() {
        assert!(validate(&config(640, 360)).is_ok());
        assert!(validate(&config(16, 16)).is_ok());
        assert!(validate(&config(3840, 2160)).is_ok());
        assert!(validate(&config(2160, 3840)).is_ok());
        for (w, h) in [(15, 16), (321, 180), (320, 181), (3842, 2160), (2162, 2162)] {
            assert!(validate(&config(w, h)).is_err(), "{w}x{h}");
        }
    }

    #[test]
    fn timestamps_start_at_zero_and_never_go_back() {
        let mut enc = H264Encoder::new(config(64, 64)).expect("encoder");
        assert_eq!(enc.timestamp_ms(5_000_000), 0);
        assert_eq!(enc.timestamp_ms(5_033_333), 33);
        assert_eq!(enc.timestamp_ms(5_010_000), 33);
        assert_eq!(enc.timestamp_ms(4_000_000), 33);
        assert_eq!(enc.timestamp_ms(5_066_666), 66);
    }
}
