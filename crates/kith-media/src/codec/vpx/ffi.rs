//! The one place that talks to libvpx: owned codec contexts and images with
//! RAII, and safe methods over the handful of calls Kith needs. Every
//! `unsafe` block of the VP8/VP9 support lives in this file.

use std::ffi::{CStr, c_char, c_int, c_long, c_uint, c_ulong};
use std::fmt;
use std::mem::MaybeUninit;
use std::ptr;

use bytes::Bytes;
use vpx_sys as sys;

use crate::frame::VideoFrame;

/// VP8 or VP9: which libvpx interface to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VpxCodec {
    Vp8,
    Vp9,
}

impl VpxCodec {
    pub fn name(self) -> &'static str {
        match self {
            VpxCodec::Vp8 => "VP8",
            VpxCodec::Vp9 => "VP9",
        }
    }

    fn encoder_iface(self) -> *mut sys::vpx_codec_iface_t {
        // SAFETY: these functions take no arguments and return a pointer to a
        // static interface table inside libvpx, valid for the whole process.
        unsafe {
            match self {
                VpxCodec::Vp8 => sys::vpx_codec_vp8_cx(),
                VpxCodec::Vp9 => sys::vpx_codec_vp9_cx(),
            }
        }
    }

    fn decoder_iface(self) -> *mut sys::vpx_codec_iface_t {
        // SAFETY: as in `encoder_iface`: static tables, no arguments.
        unsafe {
            match self {
                VpxCodec::Vp8 => sys::vpx_codec_vp8_dx(),
                VpxCodec::Vp9 => sys::vpx_codec_vp9_dx(),
            }
        }
    }
}

/// A failed libvpx call or an input libvpx cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VpxError {
    /// A libvpx function returned an error code.
    #[error("{call} failed: {message}{}", detail_suffix(.detail))]
    Call {
        call: &'static str,
        /// `vpx_codec_err_to_string` of the returned code.
        message: String,
        /// `vpx_codec_error_detail` of the context, when libvpx gave one.
        detail: Option<String>,
    },
    /// libvpx accepted the call but its output is not something Kith handles.
    #[error("{0}")]
    Unsupported(String),
    /// The caller's input cannot be handed to libvpx.
    #[error("{0}")]
    Invalid(String),
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail
        .as_deref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}

/// Copies a C string libvpx returned; `None` for a null pointer.
///
/// # Safety
/// `s` is null or points to a NUL-terminated string that stays valid and
/// unchanged for the duration of this call.
unsafe fn c_string(s: *const c_char) -> Option<String> {
    if s.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated per this function's contract.
    Some(unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
}

fn err_to_string(code: sys::vpx_codec_err_t) -> String {
    // SAFETY: vpx_codec_err_to_string returns a pointer to a static string
    // literal for every code (a generic one for unknown codes).
    unsafe { c_string(sys::vpx_codec_err_to_string(code)) }
        .unwrap_or_else(|| format!("error {}", code as u32))
}

/// An initialized libvpx codec context (encoder or decoder), destroyed on drop.
///
/// The context lives in a `Box` so its address never changes after
/// `vpx_codec_*_init`, whatever happens to the owner.
struct Context {
    ctx: Box<sys::vpx_codec_ctx_t>,
    what: &'static str,
}

// SAFETY: a libvpx context has no thread affinity: it holds no thread-local
// state, and the worker threads it may start are owned by the context and
// joined by `vpx_codec_destroy`. `Context` owns its context exclusively and
// every call goes through `&mut self`, so moving it to another thread is
// sound. It is deliberately not `Sync`.
unsafe impl Send for Context {}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("what", &self.what).finish()
    }
}

impl Context {
    /// A zeroed context, ready for `vpx_codec_*_init`.
    fn zeroed() -> Box<sys::vpx_codec_ctx_t> {
        // SAFETY: every field of vpx_codec_ctx_t is a raw pointer, an integer,
        // a union of raw pointers, or `vpx_codec_err_t` whose 0 is
        // VPX_CODEC_OK; all-zero bytes are a valid value, and it is what
        // libvpx's own examples start from.
        Box::new(unsafe { MaybeUninit::<sys::vpx_codec_ctx_t>::zeroed().assume_init() })
    }

    fn encoder(codec: VpxCodec, cfg: &EncoderConfig) -> Result<Self, VpxError> {
        let mut ctx = Self::zeroed();
        let cfg = cfg.raw();
        // SAFETY: `ctx` is a valid zeroed context at a stable heap address;
        // `cfg` is a fully initialized config (libvpx copies it during init
        // and keeps no pointer to it); the ABI version is the one these
        // bindings were generated for (libvpx rejects a mismatch).
        let code = unsafe {
            sys::vpx_codec_enc_init_ver(
                &mut *ctx,
                codec.encoder_iface(),
                &cfg,
                0,
                sys::VPX_ENCODER_ABI_VERSION as c_int,
            )
        };
        if code != sys::vpx_codec_err_t::VPX_CODEC_OK {
            // On failure libvpx has already destroyed the context; its detail
            // pointer may point into freed memory, so only the code is used.
            return Err(VpxError::Call {
                call: "vpx_codec_enc_init",
                message: err_to_string(code),
                detail: None,
            });
        }
        Ok(Self {
            ctx,
            what: "encoder",
        })
    }

    fn decoder(codec: VpxCodec, threads: u32) -> Result<Self, VpxError> {
        let mut ctx = Self::zeroed();
        let cfg = sys::vpx_codec_dec_cfg_t {
            threads,
            w: 0,
            h: 0,
        };
        // SAFETY: as in `encoder`; `cfg` is only read during the call.
        let code = unsafe {
            sys::vpx_codec_dec_init_ver(
                &mut *ctx,
                codec.decoder_iface(),
                &cfg,
                0,
                sys::VPX_DECODER_ABI_VERSION as c_int,
            )
        };
        if code != sys::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(VpxError::Call {
                call: "vpx_codec_dec_init",
                message: err_to_string(code),
                detail: None,
            });
        }
        Ok(Self {
            ctx,
            what: "decoder",
        })
    }

    fn ptr(&mut self) -> *mut sys::vpx_codec_ctx_t {
        &mut *self.ctx
    }

    /// The error of the last failed call on this context, with libvpx's detail.
    fn error(&mut self, call: &'static str, code: sys::vpx_codec_err_t) -> VpxError {
        // SAFETY: the context is initialized; the detail string is owned by
        // the context (or static) and is copied before any other call.
        let detail = unsafe { c_string(sys::vpx_codec_error_detail(self.ptr())) };
        VpxError::Call {
            call,
            message: err_to_string(code),
            detail,
        }
    }

    fn check(&mut self, call: &'static str, code: sys::vpx_codec_err_t) -> Result<(), VpxError> {
        if code == sys::vpx_codec_err_t::VPX_CODEC_OK {
            Ok(())
        } else {
            Err(self.error(call, code))
        }
    }

    /// `vpx_codec_control` for a control that takes an `int`.
    fn control_int(&mut self, id: c_int, value: c_int) -> Result<(), VpxError> {
        // SAFETY: the context is initialized, and every control id passed
        // here (checked by the callers) takes one `int` or `unsigned int`
        // argument: the variadic call passes one `int`, which has the same
        // size and, for the non-negative values used, the same value.
        let code = unsafe { sys::vpx_codec_control_(self.ptr(), id, value) };
        self.check("vpx_codec_control", code)
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context was initialized successfully (constructors
        // return no `Context` otherwise) and is destroyed exactly once here.
        let code = unsafe { sys::vpx_codec_destroy(self.ptr()) };
        if code != sys::vpx_codec_err_t::VPX_CODEC_OK {
            tracing::warn!(what = self.what, error = %err_to_string(code), "vpx_codec_destroy failed");
        }
    }
}

/// An encoder configuration, starting from libvpx's defaults.
#[derive(Clone, Copy)]
pub struct EncoderConfig(sys::vpx_codec_enc_cfg_t);

// SAFETY: the config is plain data except for the two-pass statistics
// buffers (`rc_twopass_stats_in`, `rc_firstpass_mb_stats_in`), which Kith
// never uses (one pass only): `raw` hands libvpx a copy with both set to
// null, so no pointer in it is ever dereferenced, on any thread.
unsafe impl Send for EncoderConfig {}

impl fmt::Debug for EncoderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.0;
        f.debug_struct("EncoderConfig")
            .field("g_w", &c.g_w)
            .field("g_h", &c.g_h)
            .field("g_threads", &c.g_threads)
            .field("g_timebase", &(c.g_timebase.num, c.g_timebase.den))
            .field("rc_target_bitrate", &c.rc_target_bitrate)
            .field("rc_end_usage", &c.rc_end_usage)
            .field("kf_max_dist", &c.kf_max_dist)
            .finish_non_exhaustive()
    }
}

impl EncoderConfig {
    /// libvpx's default configuration for `codec` (usage 0).
    pub fn default_for(codec: VpxCodec) -> Result<Self, VpxError> {
        let mut cfg = MaybeUninit::<sys::vpx_codec_enc_cfg_t>::uninit();
        // SAFETY: the interface pointer is valid; on success libvpx writes a
        // whole config struct (a copy of its default table entry) to `cfg`.
        let code = unsafe {
            sys::vpx_codec_enc_config_default(codec.encoder_iface(), cfg.as_mut_ptr(), 0)
        };
        if code != sys::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(VpxError::Call {
                call: "vpx_codec_enc_config_default",
                message: err_to_string(code),
                detail: None,
            });
        }
        // SAFETY: vpx_codec_enc_config_default returned OK, so `cfg` is fully
        // written with valid values.
        Ok(Self(unsafe { cfg.assume_init() }))
    }

    /// The fields, to change before starting or reconfiguring an encoder.
    pub fn fields(&mut self) -> &mut sys::vpx_codec_enc_cfg_t {
        &mut self.0
    }

    /// The config as libvpx gets it: one pass, no statistics buffers.
    fn raw(&self) -> sys::vpx_codec_enc_cfg_t {
        let mut cfg = self.0;
        let none = sys::vpx_fixed_buf_t {
            buf: ptr::null_mut(),
            sz: 0,
        };
        cfg.rc_twopass_stats_in = none;
        cfg.rc_firstpass_mb_stats_in = none;
        cfg
    }
}

/// One compressed frame out of the encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub data: Bytes,
    pub keyframe: bool,
}

/// A libvpx encoder context.
#[derive(Debug)]
pub struct Encoder {
    ctx: Context,
}

impl Encoder {
    pub fn new(codec: VpxCodec, cfg: &EncoderConfig) -> Result<Self, VpxError> {
        Ok(Self {
            ctx: Context::encoder(codec, cfg)?,
        })
    }

    /// Sets an encoder control that takes an `int`.
    pub fn control(&mut self, id: sys::vp8e_enc_control_id, value: i32) -> Result<(), VpxError> {
        use sys::vp8e_enc_control_id as C;
        // The variadic call below passes an `int`: only controls whose
        // argument is an `int` may go through here.
        let takes_int = matches!(
            id,
            C::VP8E_SET_CPUUSED
                | C::VP8E_SET_NOISE_SENSITIVITY
                | C::VP8E_SET_STATIC_THRESHOLD
                | C::VP8E_SET_TOKEN_PARTITIONS
                | C::VP8E_SET_MAX_INTRA_BITRATE_PCT
                | C::VP8E_SET_SCREEN_CONTENT_MODE
                | C::VP9E_SET_ROW_MT
                | C::VP9E_SET_AQ_MODE
                | C::VP9E_SET_TILE_COLUMNS
                | C::VP9E_SET_NOISE_SENSITIVITY
                | C::VP9E_SET_FRAME_PARALLEL_DECODING
                | C::VP9E_SET_TUNE_CONTENT
                | C::VP9E_SET_GF_CBR_BOOST_PCT
        );
        if !takes_int {
            return Err(VpxError::Invalid(format!(
                "{id:?} does not take an int argument"
            )));
        }
        self.ctx.control_int(id as c_int, value)
    }

    /// Applies a changed configuration (`vpx_codec_enc_config_set`).
    pub fn set_config(&mut self, cfg: &EncoderConfig) -> Result<(), VpxError> {
        let cfg = cfg.raw();
        // SAFETY: the context is initialized; libvpx copies `cfg`.
        let code = unsafe { sys::vpx_codec_enc_config_set(self.ctx.ptr(), &cfg) };
        self.ctx.check("vpx_codec_enc_config_set", code)
    }

    /// Encodes one picture in real-time mode and returns the frames it produced.
    pub fn encode(
        &mut self,
        image: &Image,
        pts: i64,
        duration: u32,
        force_keyframe: bool,
    ) -> Result<Vec<Packet>, VpxError> {
        let flags: sys::vpx_enc_frame_flags_t = if force_keyframe {
            sys::VPX_EFLAG_FORCE_KF as c_long
        } else {
            0
        };
        // SAFETY: the context is initialized; `image.img` is a live image from
        // vpx_img_alloc whose format and size the caller matched to the
        // encoder's configuration (libvpx checks them too and fails cleanly).
        // libvpx copies the picture into its own buffers before returning.
        let code = unsafe {
            sys::vpx_codec_encode(
                self.ctx.ptr(),
                image.img,
                pts,
                c_ulong::from(duration),
                flags,
                sys::VPX_DL_REALTIME as c_ulong,
            )
        };
        self.ctx.check("vpx_codec_encode", code)?;

        let mut packets = Vec::new();
        let mut iter: sys::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: the context is initialized and `iter` is the iterator
            // libvpx hands back, started at null as the API requires.
            let pkt = unsafe { sys::vpx_codec_get_cx_data(self.ctx.ptr(), &mut iter) };
            if pkt.is_null() {
                break;
            }
            // SAFETY: `pkt` is non-null and points to a packet libvpx owns
            // until the next encode call. `kind` (a `repr(u32)` enum, first
            // field) is read as a plain u32 so that a kind these bindings do
            // not know cannot become an invalid enum value.
            let kind = unsafe { ptr::addr_of!((*pkt).kind).cast::<u32>().read() };
            if kind != sys::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT as u32 {
                continue;
            }
            // SAFETY: for a frame packet the `frame` member of the union is
            // the active one; it is plain data (pointer, sizes, flags).
            let frame = unsafe { (*pkt).data.frame };
            if frame.buf.is_null() || frame.sz == 0 {
                continue;
            }
            let len = usize::try_from(frame.sz)
                .map_err(|_| VpxError::Unsupported(format!("frame of {} bytes", frame.sz)))?;
            // SAFETY: libvpx guarantees `buf` points to `sz` readable bytes
            // that stay valid until the next call on this context; they are
            // copied out right here.
            let data = unsafe { std::slice::from_raw_parts(frame.buf.cast::<u8>(), len) };
            packets.push(Packet {
                data: Bytes::copy_from_slice(data),
                keyframe: frame.flags & sys::VPX_FRAME_IS_KEY != 0,
            });
        }
        Ok(packets)
    }
}

/// An 8-bit I420 picture allocated by libvpx (`vpx_img_alloc`), freed on drop.
pub struct Image {
    img: *mut sys::vpx_image_t,
    width: u32,
    height: u32,
}

// SAFETY: the image is a plain heap buffer owned exclusively by this value
// (libvpx keeps no reference to it after vpx_codec_encode returns), so it
// may move between threads.
unsafe impl Send for Image {}

impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

impl Image {
    /// Stride alignment of allocated images (SIMD friendly).
    const ALIGN: c_uint = 32;

    pub fn new_i420(width: u32, height: u32) -> Result<Self, VpxError> {
        if width == 0 || height == 0 || width > 16384 || height > 16384 {
            return Err(VpxError::Invalid(format!("image size {width}x{height}")));
        }
        // SAFETY: a null `img` asks libvpx to allocate the descriptor too; the
        // size is bounded above so its size computations cannot overflow.
        let img = unsafe {
            sys::vpx_img_alloc(
                ptr::null_mut(),
                sys::vpx_img_fmt::VPX_IMG_FMT_I420,
                width,
                height,
                Self::ALIGN,
            )
        };
        if img.is_null() {
            return Err(VpxError::Call {
                call: "vpx_img_alloc",
                message: format!("could not allocate a {width}x{height} I420 image"),
                detail: None,
            });
        }
        let mut image = Self { img, width, height };
        // vpx_img_alloc leaves the buffer uninitialised; no byte of it may be
        // read before it is written.
        for plane in [sys::VPX_PLANE_Y, sys::VPX_PLANE_U, sys::VPX_PLANE_V] {
            image.plane_mut(plane as usize)?.0.fill(0);
        }
        Ok(image)
    }

    /// Copies a tightly packed I420 frame of this image's size into it.
    pub fn copy_from(&mut self, frame: &VideoFrame) -> Result<(), VpxError> {
        if (frame.width, frame.height) != (self.width, self.height)
            || frame.data.len() != VideoFrame::byte_len(frame.width, frame.height)
        {
            return Err(VpxError::Invalid(format!(
                "frame of {}x{} with {} bytes does not fit a {}x{} I420 image",
                frame.width,
                frame.height,
                frame.data.len(),
                self.width,
                self.height
            )));
        }
        let (cw, ch) = VideoFrame::chroma_size(self.width, self.height);
        let planes = [
            (sys::VPX_PLANE_Y, frame.y(), self.width, self.height),
            (sys::VPX_PLANE_U, frame.u(), cw, ch),
            (sys::VPX_PLANE_V, frame.v(), cw, ch),
        ];
        for (plane, src, w, h) in planes {
            let (w, h) = (w as usize, h as usize);
            let (dst, stride, alloc_w) = self.plane_mut(plane as usize)?;
            if alloc_w < w || dst.len() < stride * h {
                return Err(VpxError::Invalid(format!(
                    "allocated image plane {plane} is smaller than {w}x{h}"
                )));
            }
            // libvpx codes odd sizes rounded up to even: the extra column and
            // row repeat the last ones rather than stay undefined.
            for (row, dst_row) in dst.chunks_exact_mut(stride).enumerate() {
                let src_row = &src[row.min(h - 1) * w..][..w];
                dst_row[..w].copy_from_slice(src_row);
                dst_row[w..alloc_w].fill(src_row[w - 1]);
            }
        }
        Ok(())
    }

    /// Plane `index` as one slice of whole allocated rows, with its stride
    /// and allocated width (the display width rounded up to even, shifted
    /// for chroma).
    fn plane_mut(&mut self, index: usize) -> Result<(&mut [u8], usize, usize), VpxError> {
        // SAFETY: `img` is a live image from vpx_img_alloc owned by `self`;
        // these are plain integer and pointer fields.
        let (base, stride, w, h, xs, ys) = unsafe {
            let img = &*self.img;
            (
                img.planes[index],
                img.stride[index],
                img.w,
                img.h,
                img.x_chroma_shift,
                img.y_chroma_shift,
            )
        };
        let (xs, ys) = if index == 0 { (0, 0) } else { (xs, ys) };
        let (width, rows) = ((w >> xs) as usize, (h >> ys) as usize);
        let stride = usize::try_from(stride).unwrap_or(0);
        if base.is_null() || stride < width || rows == 0 {
            return Err(VpxError::Invalid(format!(
                "allocated image plane {index} has stride {stride} for width {width}"
            )));
        }
        // SAFETY: vpx_img_alloc allocated `img.h` rows of `stride` bytes for
        // Y and `img.h >> y_chroma_shift` rows of the chroma stride for U and
        // V (`img.w`/`img.h` are the allocated, even-rounded size), each
        // plane contiguous from `base`; `self` is borrowed mutably, so this
        // is the only reference into the buffer while the slice lives.
        let plane = unsafe { std::slice::from_raw_parts_mut(base, stride * rows) };
        Ok((plane, stride, width))
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: `img` came from vpx_img_alloc(NULL, ...) (which set
        // self_allocd) and is freed exactly once, descriptor and data.
        unsafe { sys::vpx_img_free(self.img) };
    }
}

/// What the header of a compressed frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInfo {
    pub width: u32,
    pub height: u32,
    pub keyframe: bool,
}

/// Reads the frame header without decoding (`vpx_codec_peek_stream_info`).
pub fn peek_stream_info(codec: VpxCodec, data: &[u8]) -> Result<StreamInfo, VpxError> {
    let len = c_uint::try_from(data.len())
        .map_err(|_| VpxError::Invalid(format!("{} bytes is too long a frame", data.len())))?;
    if len == 0 {
        return Err(VpxError::Invalid("empty frame".into()));
    }
    let mut si = sys::vpx_codec_stream_info_t {
        sz: size_of::<sys::vpx_codec_stream_info_t>() as c_uint,
        w: 0,
        h: 0,
        is_kf: 0,
    };
    // SAFETY: `data` is valid for `len` bytes and only read; `si` is a valid
    // out-parameter of the right size.
    let code = unsafe {
        sys::vpx_codec_peek_stream_info(codec.decoder_iface(), data.as_ptr(), len, &mut si)
    };
    if code != sys::vpx_codec_err_t::VPX_CODEC_OK {
        return Err(VpxError::Call {
            call: "vpx_codec_peek_stream_info",
            message: err_to_string(code),
            detail: None,
        });
    }
    Ok(StreamInfo {
        width: si.w,
        height: si.h,
        keyframe: si.is_kf != 0,
    })
}

/// A libvpx decoder context.
#[derive(Debug)]
pub struct Decoder {
    ctx: Context,
}

impl Decoder {
    pub fn new(codec: VpxCodec, threads: u32) -> Result<Self, VpxError> {
        Ok(Self {
            ctx: Context::decoder(codec, threads)?,
        })
    }

    /// Decodes one compressed frame and returns the last picture it shows,
    /// copied into a tightly packed I420 frame.
    pub fn decode(&mut self, data: &[u8], capture_us: u64) -> Result<Option<VideoFrame>, VpxError> {
        let len = c_uint::try_from(data.len())
            .map_err(|_| VpxError::Invalid(format!("{} bytes is too long a frame", data.len())))?;
        if len == 0 {
            return Err(VpxError::Invalid("empty frame".into()));
        }
        // SAFETY: the context is initialized; `data` is valid for `len` bytes
        // and libvpx only reads it during the call (no frame threading, no
        // input fragments); no user_priv; deadline 0 = best quality.
        let code = unsafe {
            sys::vpx_codec_decode(self.ctx.ptr(), data.as_ptr(), len, ptr::null_mut(), 0)
        };
        self.ctx.check("vpx_codec_decode", code)?;

        let mut picture = None;
        let mut iter: sys::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: the context is initialized; `iter` starts at null.
            let img = unsafe { sys::vpx_codec_get_frame(self.ctx.ptr(), &mut iter) };
            if img.is_null() {
                break;
            }
            // SAFETY: `img` is non-null and points to an image libvpx owns,
            // valid until the next decode call or destroy on this context;
            // it is copied out before either can happen.
            picture = Some(unsafe { copy_image(img, capture_us) }?);
        }
        Ok(picture)
    }
}

/// Copies a decoded libvpx image into a tightly packed 8-bit I420 frame.
///
/// # Safety
/// `img` points to a live `vpx_image_t` filled by the libvpx decoder, whose
/// planes stay valid for the duration of the call.
unsafe fn copy_image(
    img: *const sys::vpx_image_t,
    capture_us: u64,
) -> Result<VideoFrame, VpxError> {
    // `fmt` is a `repr(u32)` enum in the bindings; read it as u32 so that a
    // format these bindings do not list cannot become an invalid enum value.
    // SAFETY: `img` is valid per this function's contract.
    let fmt = unsafe { ptr::addr_of!((*img).fmt).cast::<u32>().read() };
    // SAFETY: as above; these are plain integer and pointer fields.
    let (width, height, bit_depth, xs, ys, planes, strides) = unsafe {
        (
            (*img).d_w,
            (*img).d_h,
            (*img).bit_depth,
            (*img).x_chroma_shift,
            (*img).y_chroma_shift,
            (*img).planes,
            (*img).stride,
        )
    };
    const I420: u32 = sys::vpx_img_fmt::VPX_IMG_FMT_I420 as u32;
    const YV12: u32 = sys::vpx_img_fmt::VPX_IMG_FMT_YV12 as u32;
    const I42016: u32 = sys::vpx_img_fmt::VPX_IMG_FMT_I42016 as u32;
    let (u_plane, v_plane, high) = match fmt {
        I420 => (sys::VPX_PLANE_U, sys::VPX_PLANE_V, false),
        YV12 => (sys::VPX_PLANE_V, sys::VPX_PLANE_U, false),
        I42016 if (8..=16).contains(&bit_depth) => (sys::VPX_PLANE_U, sys::VPX_PLANE_V, true),
        other => {
            return Err(VpxError::Unsupported(format!(
                "decoded picture format {other:#x} (bit depth {bit_depth}); only 4:2:0 is supported"
            )));
        }
    };
    if width == 0 || height == 0 || xs != 1 || ys != 1 {
        return Err(VpxError::Unsupported(format!(
            "decoded picture {width}x{height} with chroma shift {xs},{ys}"
        )));
    }
    let Some(mut frame) = VideoFrame::from_i420(
        width,
        height,
        vec![0; VideoFrame::byte_len(width, height)],
        capture_us,
    ) else {
        return Err(VpxError::Invalid(format!("picture size {width}x{height}")));
    };
    let (cw, ch) = VideoFrame::chroma_size(width, height);
    let (y, u, v) = frame.planes_mut();
    let outputs = [
        (sys::VPX_PLANE_Y, y, width as usize, height as usize),
        (u_plane, u, cw as usize, ch as usize),
        (v_plane, v, cw as usize, ch as usize),
    ];
    let shift = bit_depth.saturating_sub(8);
    for (plane, dst, w, h) in outputs {
        let base = planes[plane as usize];
        let stride = strides[plane as usize];
        let row_bytes = if high { w * 2 } else { w };
        let stride_ok = usize::try_from(stride).is_ok_and(|s| s >= row_bytes);
        if base.is_null() || !stride_ok {
            return Err(VpxError::Unsupported(format!(
                "decoded plane {plane} with stride {stride} for {row_bytes} bytes per row"
            )));
        }
        let stride = stride as usize;
        for (row, dst_row) in dst.chunks_exact_mut(w).enumerate().take(h) {
            // SAFETY: libvpx lays out each plane of a decoded image as at
            // least `h` rows (the display height, halved and rounded up for
            // 4:2:0 chroma) of `stride` bytes from `base`, each holding at
            // least `row_bytes` valid bytes (checked: stride >= row_bytes).
            let src = unsafe { std::slice::from_raw_parts(base.add(row * stride), row_bytes) };
            if high {
                for (d, s) in dst_row.iter_mut().zip(src.chunks_exact(2)) {
                    let sample = u16::from_ne_bytes([s[0], s[1]]) >> shift;
                    *d = u8::try_from(sample).unwrap_or(u8::MAX);
                }
            } else {
                dst_row.copy_from_slice(src);
            }
        }
    }
    Ok(frame)
}

/// libvpx's version string, e.g. "v1.12.0".
pub fn version() -> String {
    // SAFETY: returns a pointer to a static string.
    unsafe { c_string(sys::vpx_codec_version_str()) }.unwrap_or_default()
}
