//! VP8/VP9 real-time encoder over libvpx.

use vpx_sys as sys;

use super::ffi::{Encoder, EncoderConfig, Image, VpxCodec, VpxError};
use crate::codec::{
    CodecError, EncodedVideoFrame, VideoCodec, VideoEncoder, VideoEncoderConfig, check_frame_size,
    rtp_timestamp,
};
use crate::frame::VideoFrame;

/// Timestamps go to libvpx in RTP units (90 kHz), derived from capture time.
/// libvpx measures the real frame rate from them (as WebRTC's wrappers rely
/// on), so rate control stays right when a camera delivers fewer frames than
/// configured. With a timebase this fine libvpx starts from 30 fps until it
/// has seen two frames.
const TIMEBASE_HZ: i32 = 90_000;
/// A keyframe at least this often (frames) even without a request: 100 s at
/// 30 fps. Receivers ask for one (PLI) when they need it.
const KEYFRAME_INTERVAL: u32 = 3000;
/// Largest size either codec takes (VP8 codes 14 bits per dimension).
const MAX_DIMENSION: u32 = 16383;
/// Rate-control buffer, milliseconds (WebRTC's values for real time).
const RC_BUF_SZ_MS: u32 = 1000;
const RC_BUF_INITIAL_MS: u32 = 500;
const RC_BUF_OPTIMAL_MS: u32 = 600;

/// Knobs that are not part of [`VideoEncoderConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VpxEncoderOptions {
    /// Encoder threads (`g_threads`); `None` picks by size and core count
    /// like WebRTC (see [`auto_encoder_threads`]).
    pub threads: Option<u32>,
    /// `VP8E_SET_CPUUSED`; `None` picks by codec and size (VP8 -6 below 720p
    /// and -8 from 720p, VP9 7 below 720p and 8 from 720p).
    pub cpu_used: Option<i32>,
}

/// Logical cores this process may use.
pub(super) fn cores() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1)
}

/// Encoder threads for a size on `cores` cores: WebRTC's desktop rule.
///
/// A second thread only when there is a third core: libvpx's VP8 threads
/// synchronise by spinning, and on a busy two-core machine two of them are
/// several times slower than one (measured here: 360p VP8 29 ms/frame with
/// two threads vs 3.5 ms with one while another build ran). VP9 threads
/// block properly but still lose to one thread when the cores are taken.
pub fn auto_encoder_threads(codec: VpxCodec, width: u32, height: u32, cores: u32) -> u32 {
    let pixels = u64::from(width) * u64::from(height);
    match codec {
        VpxCodec::Vp8 => match pixels {
            p if p >= 1920 * 1080 && cores > 8 => 8,
            p if p > 1280 * 960 && cores >= 6 => 3,
            p if p > 640 * 480 && cores >= 3 => 2,
            _ => 1,
        },
        VpxCodec::Vp9 => match pixels {
            p if p >= 1280 * 720 && cores > 4 => 4,
            p if p >= 640 * 360 && cores > 2 => 2,
            _ => 1,
        },
    }
}

/// A VP8 or VP9 encoder in libvpx's real-time mode: CBR, no lookahead, no
/// dropped frames, keyframes on demand.
#[derive(Debug)]
pub struct VpxEncoder {
    codec: VpxCodec,
    options: VpxEncoderOptions,
    config: VideoEncoderConfig,
    cfg: EncoderConfig,
    encoder: Encoder,
    image: Image,
    /// The next frame must be a keyframe (after a re-initialization).
    keyframe_pending: bool,
    /// Capture time of the first frame: pts 0.
    first_capture_us: Option<u64>,
    last_pts: Option<i64>,
}

/// Which libvpx codec a [`VideoCodec`] is.
pub(super) fn vpx_codec(codec: VideoCodec) -> Result<VpxCodec, CodecError> {
    match codec {
        VideoCodec::Vp8 => Ok(VpxCodec::Vp8),
        VideoCodec::Vp9 => Ok(VpxCodec::Vp9),
        other => Err(CodecError::Unsupported {
            codec: other.sdp_name(),
            what: "libvpx (it codes VP8 and VP9 only)".into(),
        }),
    }
}

fn video_codec(codec: VpxCodec) -> VideoCodec {
    match codec {
        VpxCodec::Vp8 => VideoCodec::Vp8,
        VpxCodec::Vp9 => VideoCodec::Vp9,
    }
}

impl VpxEncoder {
    /// A VP8 encoder with default options.
    pub fn vp8(config: VideoEncoderConfig) -> Result<Self, CodecError> {
        Self::new(VideoCodec::Vp8, config, VpxEncoderOptions::default())
    }

    /// A VP9 encoder with default options.
    pub fn vp9(config: VideoEncoderConfig) -> Result<Self, CodecError> {
        Self::new(VideoCodec::Vp9, config, VpxEncoderOptions::default())
    }

    pub fn new(
        codec: VideoCodec,
        config: VideoEncoderConfig,
        options: VpxEncoderOptions,
    ) -> Result<Self, CodecError> {
        let codec = vpx_codec(codec)?;
        let init_error = |reason: String| CodecError::Init {
            codec: codec.name(),
            reason,
        };
        validate(&config).map_err(init_error)?;
        if let Some(threads @ (0 | 65..)) = options.threads {
            return Err(init_error(format!("{threads} threads (must be 1..=64)")));
        }
        let (cfg, encoder, image) =
            start(codec, &config, &options).map_err(|e| init_error(e.to_string()))?;
        tracing::debug!(
            codec = codec.name(),
            width = config.width,
            height = config.height,
            fps = config.fps,
            bitrate_bps = config.bitrate_bps,
            libvpx = %super::ffi::version(),
            "libvpx encoder started"
        );
        Ok(Self {
            codec,
            options,
            config,
            cfg,
            encoder,
            image,
            keyframe_pending: true,
            first_capture_us: None,
            last_pts: None,
        })
    }

    fn encode_error(&self, reason: String) -> CodecError {
        CodecError::Encode {
            codec: self.codec.name(),
            reason,
        }
    }

    fn invalid(&self, what: String) -> CodecError {
        CodecError::Unsupported {
            codec: self.codec.name(),
            what,
        }
    }

    /// pts in 90 kHz units since the first frame, strictly increasing.
    fn pts(&mut self, capture_us: u64) -> i64 {
        let first = *self.first_capture_us.get_or_insert(capture_us);
        let since_us = capture_us.saturating_sub(first);
        let ticks =
            i64::try_from(since_us / 100 * 9 + since_us % 100 * 9 / 100).unwrap_or(i64::MAX);
        let pts = match self.last_pts {
            Some(last) if ticks <= last => last.saturating_add(1),
            _ => ticks,
        };
        self.last_pts = Some(pts);
        pts
    }
}

fn validate(config: &VideoEncoderConfig) -> Result<(), String> {
    if config.width == 0
        || config.height == 0
        || config.width > MAX_DIMENSION
        || config.height > MAX_DIMENSION
    {
        return Err(format!(
            "size {}x{} (each side must be 1..={MAX_DIMENSION})",
            config.width, config.height
        ));
    }
    if config.fps == 0 || config.fps > 1000 {
        return Err(format!("{} fps (must be 1..=1000)", config.fps));
    }
    if config.bitrate_bps < 1000 {
        return Err(format!("{} bit/s (at least 1000)", config.bitrate_bps));
    }
    Ok(())
}

fn bitrate_kbps(bitrate_bps: u32) -> u32 {
    (bitrate_bps / 1000).max(1)
}

/// Per-frame duration in timebase units.
fn frame_duration(fps: u32) -> u32 {
    (TIMEBASE_HZ as u32 / fps.max(1)).max(1)
}

/// Largest keyframe as a percentage of the per-frame budget (WebRTC's
/// formula: half the optimal buffer, in frames at this rate; at least 300).
fn max_intra_bitrate_pct(fps: u32) -> i32 {
    let pct = RC_BUF_OPTIMAL_MS / 2 * fps / 10;
    i32::try_from(pct.max(300)).unwrap_or(i32::MAX)
}

fn cpu_used(codec: VpxCodec, options: &VpxEncoderOptions, width: u32, height: u32) -> i32 {
    if let Some(speed) = options.cpu_used {
        return speed;
    }
    let hd = u64::from(width) * u64::from(height) >= 1280 * 720;
    match (codec, hd) {
        (VpxCodec::Vp8, false) => -6,
        (VpxCodec::Vp8, true) => -8,
        (VpxCodec::Vp9, false) => 7,
        (VpxCodec::Vp9, true) => 8,
    }
}

/// log2 of the VP9 tile columns: one more per doubling of width from 512
/// (tiles are at least 256 wide), at most 4 columns.
fn vp9_tile_columns_log2(width: u32) -> i32 {
    match width {
        0..512 => 0,
        512..1024 => 1,
        _ => 2,
    }
}

fn threads(codec: VpxCodec, config: &VideoEncoderConfig, options: &VpxEncoderOptions) -> u32 {
    options
        .threads
        .unwrap_or_else(|| auto_encoder_threads(codec, config.width, config.height, cores()))
}

fn build_config(
    codec: VpxCodec,
    config: &VideoEncoderConfig,
    options: &VpxEncoderOptions,
) -> Result<EncoderConfig, VpxError> {
    let mut cfg = EncoderConfig::default_for(codec)?;
    let c = cfg.fields();
    c.g_w = config.width;
    c.g_h = config.height;
    c.g_threads = threads(codec, config, options);
    c.g_profile = 0;
    c.g_timebase = sys::vpx_rational {
        num: 1,
        den: TIMEBASE_HZ,
    };
    c.g_error_resilient = sys::VPX_ERROR_RESILIENT_DEFAULT;
    c.g_pass = sys::vpx_enc_pass::VPX_RC_ONE_PASS;
    c.g_lag_in_frames = 0;
    c.rc_dropframe_thresh = 0;
    c.rc_resize_allowed = 0;
    c.rc_end_usage = sys::vpx_rc_mode::VPX_CBR;
    c.rc_target_bitrate = bitrate_kbps(config.bitrate_bps);
    c.rc_min_quantizer = 2;
    c.rc_max_quantizer = match codec {
        VpxCodec::Vp8 => 56,
        VpxCodec::Vp9 => 52,
    };
    (c.rc_undershoot_pct, c.rc_overshoot_pct) = match codec {
        VpxCodec::Vp8 => (100, 15),
        VpxCodec::Vp9 => (50, 50),
    };
    c.rc_buf_sz = RC_BUF_SZ_MS;
    c.rc_buf_initial_sz = RC_BUF_INITIAL_MS;
    c.rc_buf_optimal_sz = RC_BUF_OPTIMAL_MS;
    c.kf_mode = sys::vpx_kf_mode::VPX_KF_AUTO;
    c.kf_min_dist = 0;
    c.kf_max_dist = KEYFRAME_INTERVAL;
    Ok(cfg)
}

fn apply_controls(
    codec: VpxCodec,
    encoder: &mut Encoder,
    config: &VideoEncoderConfig,
    options: &VpxEncoderOptions,
) -> Result<(), VpxError> {
    use sys::vp8e_enc_control_id as C;
    let speed = cpu_used(codec, options, config.width, config.height);
    encoder.control(C::VP8E_SET_CPUUSED, speed)?;
    encoder.control(
        C::VP8E_SET_MAX_INTRA_BITRATE_PCT,
        max_intra_bitrate_pct(config.fps),
    )?;
    match codec {
        VpxCodec::Vp8 => {
            encoder.control(C::VP8E_SET_NOISE_SENSITIVITY, 0)?;
            encoder.control(C::VP8E_SET_STATIC_THRESHOLD, 1)?;
            encoder.control(
                C::VP8E_SET_TOKEN_PARTITIONS,
                sys::vp8e_token_partitions::VP8_ONE_TOKENPARTITION as i32,
            )?;
        }
        VpxCodec::Vp9 => {
            encoder.control(C::VP9E_SET_ROW_MT, 1)?;
            // Cyclic refresh: the real-time CBR mode's adaptive quantization.
            encoder.control(C::VP9E_SET_AQ_MODE, 3)?;
            encoder.control(
                C::VP9E_SET_TILE_COLUMNS,
                vp9_tile_columns_log2(config.width),
            )?;
            encoder.control(C::VP9E_SET_NOISE_SENSITIVITY, 0)?;
        }
    }
    Ok(())
}

/// A configured encoder context and its input image.
fn start(
    codec: VpxCodec,
    config: &VideoEncoderConfig,
    options: &VpxEncoderOptions,
) -> Result<(EncoderConfig, Encoder, Image), VpxError> {
    let cfg = build_config(codec, config, options)?;
    let mut encoder = Encoder::new(codec, &cfg)?;
    apply_controls(codec, &mut encoder, config, options)?;
    let image = Image::new_i420(config.width, config.height)?;
    Ok((cfg, encoder, image))
}

impl VideoEncoder for VpxEncoder {
    fn codec(&self) -> VideoCodec {
        video_codec(self.codec)
    }

    fn implementation(&self) -> &'static str {
        "libvpx"
    }

    fn encode(
        &mut self,
        frame: &VideoFrame,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedVideoFrame>, CodecError> {
        check_frame_size(self.codec.name(), frame, &self.config)?;
        self.image
            .copy_from(frame)
            .map_err(|e| self.encode_error(e.to_string()))?;
        let pts = self.pts(frame.capture_us);
        let keyframe = force_keyframe || self.keyframe_pending;
        let packets = self
            .encoder
            .encode(&self.image, pts, frame_duration(self.config.fps), keyframe)
            .map_err(|e| self.encode_error(e.to_string()))?;
        self.keyframe_pending = false;
        if keyframe && packets.first().is_some_and(|p| !p.keyframe) {
            tracing::warn!(
                codec = self.codec.name(),
                "libvpx ignored a keyframe request"
            );
        }
        Ok(packets
            .into_iter()
            .map(|p| EncodedVideoFrame {
                codec: video_codec(self.codec),
                data: p.data,
                keyframe: p.keyframe,
                width: self.config.width,
                height: self.config.height,
                capture_us: frame.capture_us,
                rtp_timestamp: rtp_timestamp(frame.capture_us),
            })
            .collect())
    }

    fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<(), CodecError> {
        let config = VideoEncoderConfig {
            bitrate_bps,
            ..self.config
        };
        validate(&config).map_err(|e| self.invalid(e))?;
        let mut cfg = self.cfg;
        cfg.fields().rc_target_bitrate = bitrate_kbps(bitrate_bps);
        self.encoder
            .set_config(&cfg)
            .map_err(|e| self.encode_error(format!("setting {bitrate_bps} bit/s: {e}")))?;
        self.cfg = cfg;
        self.config = config;
        Ok(())
    }

    fn set_fps(&mut self, fps: u32) -> Result<(), CodecError> {
        let config = VideoEncoderConfig { fps, ..self.config };
        validate(&config).map_err(|e| self.invalid(e))?;
        // The timebase stays 1/90000: libvpx follows the real rate from the
        // timestamps; the rate sets each frame's duration and the keyframe cap.
        self.encoder
            .control(
                sys::vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT,
                max_intra_bitrate_pct(fps),
            )
            .map_err(|e| self.encode_error(format!("setting {fps} fps: {e}")))?;
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
        validate(&config).map_err(|e| self.invalid(e))?;
        // A fresh context rather than vpx_codec_enc_config_set: libvpx's
        // in-place resize has had memory-safety bugs with threads (VP8
        // CVE-2023-5217, VP9 CVE-2023-44488), and the next frame is a
        // keyframe either way. The old encoder keeps working if this fails.
        let (cfg, encoder, image) = start(self.codec, &config, &self.options)
            .map_err(|e| self.encode_error(format!("resizing to {width}x{height}: {e}")))?;
        self.cfg = cfg;
        self.encoder = encoder;
        self.image = image;
        self.config = config;
        self.keyframe_pending = true;
        tracing::debug!(
            codec = self.codec.name(),
            width,
            height,
            "libvpx encoder resized"
        );
        Ok(())
    }

    fn config(&self) -> VideoEncoderConfig {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_columns_follow_width() {
        assert_eq!(vp9_tile_columns_log2(320), 0);
        assert_eq!(vp9_tile_columns_log2(640), 1);
        assert_eq!(vp9_tile_columns_log2(1280), 2);
        assert_eq!(vp9_tile_columns_log2(3840), 2);
    }

    #[test]
    fn threads_follow_webrtc() {
        use VpxCodec::{Vp8, Vp9};
        assert_eq!(auto_encoder_threads(Vp8, 1280, 720, 2), 1);
        assert_eq!(auto_encoder_threads(Vp8, 1280, 720, 4), 2);
        assert_eq!(auto_encoder_threads(Vp8, 640, 360, 4), 1);
        assert_eq!(auto_encoder_threads(Vp9, 640, 360, 2), 1);
        assert_eq!(auto_encoder_threads(Vp9, 640, 360, 4), 2);
        assert_eq!(auto_encoder_threads(Vp9, 1280, 720, 8), 4);
    }

    #[test]
    fn intra_cap_matches_webrtc() {
        assert_eq!(max_intra_bitrate_pct(30), 900);
        assert_eq!(max_intra_bitrate_pct(5), 300);
    }

    #[test]
    fn durations_are_in_90khz_ticks() {
        assert_eq!(frame_duration(30), 3000);
        assert_eq!(frame_duration(0), 90_000);
    }
}
