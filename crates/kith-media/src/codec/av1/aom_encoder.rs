//! AV1 encoding with libaom in its real-time mode, the encoder Chromium uses
//! for AV1 calls. It is the path that keeps 720p at 30 fps on two cores,
//! where rav1e cannot. All of libaom's unsafe API stays in this file.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_int, c_uint};
use std::mem::MaybeUninit;
use std::ptr;

use aom_sys as ffi;
use bytes::Bytes;

use crate::codec::{
    CodecError, EncodedVideoFrame, VideoCodec, VideoEncoder, VideoEncoderConfig, check_frame_size,
    rtp_timestamp,
};
use crate::frame::VideoFrame;

const NAME: &str = "libaom";

/// libaom's fastest real-time speed; what Chromium picks for cameras on few cores.
pub const DEFAULT_CPU_USED: c_int = 10;

/// An initialized libaom encoder context.
pub struct AomEncoder {
    context: Box<ffi::aom_codec_ctx_t>,
    settings: ffi::aom_codec_enc_cfg_t,
    config: VideoEncoderConfig,
    threads: u32,
    cpu_used: c_int,
    pts: i64,
    next_is_key: bool,
}

// SAFETY: the context is only used through `&mut self`, one call at a time;
// libaom contexts may move between threads as long as they are not shared.
unsafe impl Send for AomEncoder {}

impl std::fmt::Debug for AomEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AomEncoder")
            .field("config", &self.config)
            .field("cpu_used", &self.cpu_used)
            .finish_non_exhaustive()
    }
}

impl Drop for AomEncoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialized by aom_codec_enc_init_ver and is
        // destroyed once, here.
        unsafe {
            ffi::aom_codec_destroy(&mut *self.context);
        }
    }
}

fn error_text(context: &mut ffi::aom_codec_ctx_t) -> String {
    // SAFETY: libaom returns NUL-terminated strings it owns (or null for the detail).
    unsafe {
        let message = ffi::aom_codec_error(context);
        let detail = ffi::aom_codec_error_detail(context);
        let mut text = if message.is_null() {
            String::from("unknown error")
        } else {
            CStr::from_ptr(message).to_string_lossy().into_owned()
        };
        if !detail.is_null() {
            text.push_str(": ");
            text.push_str(&CStr::from_ptr(detail).to_string_lossy());
        }
        text
    }
}

impl AomEncoder {
    pub fn new(
        config: VideoEncoderConfig,
        cpu_used: c_int,
        threads: u32,
    ) -> Result<Self, CodecError> {
        let init_error = |reason: String| CodecError::Init {
            codec: NAME,
            reason,
        };
        if config.width < 16 || config.height < 16 || config.fps == 0 || config.bitrate_bps == 0 {
            return Err(init_error(format!("unusable settings {config:?}")));
        }
        let mut settings = MaybeUninit::<ffi::aom_codec_enc_cfg_t>::zeroed();
        // SAFETY: the interface pointer is static; `settings` is written in full on success.
        let status = unsafe {
            ffi::aom_codec_enc_config_default(
                ffi::aom_codec_av1_cx(),
                settings.as_mut_ptr(),
                ffi::AOM_USAGE_REALTIME,
            )
        };
        if status != ffi::aom_codec_err_t::AOM_CODEC_OK {
            return Err(init_error(format!(
                "no default configuration (status {status})"
            )));
        }
        // SAFETY: initialized by the successful call above.
        let mut settings = unsafe { settings.assume_init() };
        Self::apply(&mut settings, &config, threads);
        let mut context = Box::new(MaybeUninit::<ffi::aom_codec_ctx_t>::zeroed());
        // SAFETY: `context` is writable memory for a context; `settings` is valid.
        let status = unsafe {
            ffi::aom_codec_enc_init_ver(
                context.as_mut_ptr(),
                ffi::aom_codec_av1_cx(),
                &settings,
                0,
                ffi::AOM_ENCODER_ABI_VERSION as c_int,
            )
        };
        // SAFETY: a zeroed context is a valid (uninitialized) aom_codec_ctx_t value,
        // and init filled it in when it succeeded.
        let mut context: Box<ffi::aom_codec_ctx_t> = unsafe { context.assume_init() };
        if status != ffi::aom_codec_err_t::AOM_CODEC_OK {
            return Err(init_error(error_text(&mut context)));
        }
        let mut encoder = Self {
            context,
            settings,
            config,
            threads,
            cpu_used,
            pts: 0,
            next_is_key: true,
        };
        encoder.tune()?;
        Ok(encoder)
    }

    /// The rate-control settings of a real-time call (after Chromium's).
    fn apply(settings: &mut ffi::aom_codec_enc_cfg_t, config: &VideoEncoderConfig, threads: u32) {
        settings.g_w = config.width;
        settings.g_h = config.height;
        settings.g_threads = threads;
        settings.g_timebase.num = 1;
        settings.g_timebase.den = 90_000;
        settings.g_lag_in_frames = 0;
        settings.g_error_resilient = 0;
        settings.rc_end_usage = ffi::aom_rc_mode::AOM_CBR;
        settings.rc_target_bitrate = (config.bitrate_bps / 1000).max(1);
        settings.rc_dropframe_thresh = 0;
        settings.rc_min_quantizer = 10;
        settings.rc_max_quantizer = 56;
        settings.rc_undershoot_pct = 50;
        settings.rc_overshoot_pct = 50;
        settings.rc_buf_initial_sz = 600;
        settings.rc_buf_optimal_sz = 600;
        settings.rc_buf_sz = 1000;
        // Keyframes only when asked for.
        settings.kf_mode = ffi::aom_kf_mode::AOM_KF_DISABLED;
        settings.kf_max_dist = u32::MAX / 2;
    }

    fn control(
        &mut self,
        id: ffi::aome_enc_control_id::Type,
        value: c_int,
    ) -> Result<(), CodecError> {
        // SAFETY: every control used here takes one int-sized argument.
        let status = unsafe { ffi::aom_codec_control(&mut *self.context, id as c_int, value) };
        if status == ffi::aom_codec_err_t::AOM_CODEC_OK {
            Ok(())
        } else {
            Err(CodecError::Init {
                codec: NAME,
                reason: format!("control {id}: {}", error_text(&mut self.context)),
            })
        }
    }

    fn tune(&mut self) -> Result<(), CodecError> {
        use ffi::aome_enc_control_id as id;
        let tile_columns_log2 = if self.config.width >= 1280 { 1 } else { 0 };
        self.control(id::AOME_SET_CPUUSED, self.cpu_used)?;
        self.control(id::AV1E_SET_ROW_MT, 1)?;
        self.control(id::AV1E_SET_TILE_COLUMNS, tile_columns_log2)?;
        self.control(id::AV1E_SET_AQ_MODE, 3)?;
        self.control(id::AV1E_SET_ENABLE_TPL_MODEL, 0)?;
        self.control(id::AV1E_SET_DELTAQ_MODE, 0)?;
        self.control(id::AV1E_SET_ENABLE_ORDER_HINT, 0)?;
        self.control(id::AV1E_SET_ENABLE_CDEF, 1)?;
        self.control(id::AV1E_SET_ENABLE_GLOBAL_MOTION, 0)?;
        self.control(id::AV1E_SET_ENABLE_WARPED_MOTION, 0)?;
        self.control(id::AV1E_SET_ENABLE_OBMC, 0)?;
        self.control(id::AV1E_SET_NOISE_SENSITIVITY, 0)?;
        self.control(id::AOME_SET_MAX_INTRA_BITRATE_PCT, 300)?;
        self.control(id::AV1E_SET_COEFF_COST_UPD_FREQ, 3)?;
        self.control(id::AV1E_SET_MODE_COST_UPD_FREQ, 3)?;
        self.control(id::AV1E_SET_MV_COST_UPD_FREQ, 3)?;
        Ok(())
    }

    fn reconfigure(&mut self) -> Result<(), CodecError> {
        Self::apply(&mut self.settings, &self.config, self.threads);
        // SAFETY: context initialized; settings valid.
        let status = unsafe { ffi::aom_codec_enc_config_set(&mut *self.context, &self.settings) };
        if status == ffi::aom_codec_err_t::AOM_CODEC_OK {
            Ok(())
        } else {
            Err(CodecError::Encode {
                codec: NAME,
                reason: format!("reconfigure: {}", error_text(&mut self.context)),
            })
        }
    }
}

impl VideoEncoder for AomEncoder {
    fn codec(&self) -> VideoCodec {
        VideoCodec::Av1
    }

    fn implementation(&self) -> &'static str {
        NAME
    }

    fn encode(
        &mut self,
        frame: &VideoFrame,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedVideoFrame>, CodecError> {
        let encode_error = |reason: String| CodecError::Encode {
            codec: NAME,
            reason,
        };
        check_frame_size(NAME, frame, &self.config)?;
        let (cw, _) = VideoFrame::chroma_size(frame.width, frame.height);
        let mut image = MaybeUninit::<ffi::aom_image_t>::zeroed();
        // SAFETY: wraps (does not copy or free) our buffer; libaom only reads it.
        let wrapped = unsafe {
            ffi::aom_img_wrap(
                image.as_mut_ptr(),
                ffi::aom_img_fmt::AOM_IMG_FMT_I420,
                frame.width as c_uint,
                frame.height as c_uint,
                1,
                frame.data.as_ptr().cast_mut(),
            )
        };
        if wrapped.is_null() {
            return Err(encode_error("cannot describe the frame to libaom".into()));
        }
        // SAFETY: aom_img_wrap initialized the image.
        let mut image = unsafe { image.assume_init() };
        // Our planes are tightly packed with chroma rounded up, which
        // aom_img_wrap's own stride arithmetic does not assume for odd sizes.
        let y = frame.data.as_ptr();
        let luma = (frame.width * frame.height) as usize;
        let chroma = VideoFrame::byte_len(frame.width, frame.height) - luma;
        image.planes = [
            y.cast_mut(),
            y.wrapping_add(luma).cast_mut(),
            y.wrapping_add(luma + chroma / 2).cast_mut(),
        ];
        image.stride = [frame.width as c_int, cw as c_int, cw as c_int];

        let key = force_keyframe || self.next_is_key;
        self.next_is_key = false;
        let flags = if key {
            ffi::AOM_EFLAG_FORCE_KF as ffi::aom_enc_frame_flags_t
        } else {
            0
        };
        let duration = u64::from(90_000 / self.config.fps.max(1));
        // SAFETY: context initialized; the image points into `frame`, alive for the call.
        let status = unsafe {
            ffi::aom_codec_encode(&mut *self.context, &image, self.pts, duration as _, flags)
        };
        self.pts += duration as i64;
        if status != ffi::aom_codec_err_t::AOM_CODEC_OK {
            return Err(encode_error(error_text(&mut self.context)));
        }
        let mut out = Vec::new();
        let mut iter: ffi::aom_codec_iter_t = ptr::null();
        loop {
            // SAFETY: iterates packets owned by the context until it returns null.
            let packet = unsafe { ffi::aom_codec_get_cx_data(&mut *self.context, &mut iter) };
            if packet.is_null() {
                break;
            }
            // SAFETY: non-null packets are valid until the next encode call.
            let packet = unsafe { &*packet };
            if packet.kind != ffi::aom_codec_cx_pkt_kind::AOM_CODEC_CX_FRAME_PKT {
                continue;
            }
            // SAFETY: for frame packets the `frame` member of the union is the live one.
            let data = unsafe { packet.data.frame };
            if data.buf.is_null() || data.sz == 0 {
                continue;
            }
            // SAFETY: buf holds sz bytes until the next encode call; copied now.
            let bytes = unsafe { std::slice::from_raw_parts(data.buf.cast::<u8>(), data.sz) };
            out.push(EncodedVideoFrame {
                codec: VideoCodec::Av1,
                data: Bytes::copy_from_slice(bytes),
                keyframe: data.flags & ffi::AOM_FRAME_IS_KEY != 0,
                width: self.config.width,
                height: self.config.height,
                capture_us: frame.capture_us,
                rtp_timestamp: rtp_timestamp(frame.capture_us),
            });
        }
        Ok(out)
    }

    fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<(), CodecError> {
        self.config.bitrate_bps = bitrate_bps.max(1000);
        self.reconfigure()
    }

    fn set_fps(&mut self, fps: u32) -> Result<(), CodecError> {
        self.config.fps = fps.max(1);
        Ok(())
    }

    fn set_resolution(&mut self, width: u32, height: u32) -> Result<(), CodecError> {
        if (width, height) == (self.config.width, self.config.height) {
            return Ok(());
        }
        // A new size gets a fresh encoder: libaom cannot grow past its first size.
        let config = VideoEncoderConfig {
            width,
            height,
            ..self.config
        };
        *self = Self::new(config, self.cpu_used, self.threads)?;
        Ok(())
    }

    fn config(&self) -> VideoEncoderConfig {
        self.config
    }
}
