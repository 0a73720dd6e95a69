//! The only `unsafe` of the H.264 wrapper: OpenH264 `SetOption` calls the
//! safe `openh264` API (0.9) does not offer.
//!
//! That API fixes bitrate and frame rate when the encoder starts; the only
//! safe way to change them is a new encoder, whose first frame is an IDR. A
//! bandwidth estimator changes the target every second or so, and a
//! keyframe for each change would cost several frames' worth of bits just
//! when the link has fewer. So this calls OpenH264's own `SetOption` (what
//! WebRTC's H.264 wrapper does) through the crate's raw API. It also
//! silences OpenH264's logging before the encoder initializes (the crate
//! does so only after, so every start printed a warning to stderr). Four
//! options, each with the plain-data argument OpenH264 documents for it.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::c_void;

use openh264::encoder::Encoder;
use openh264_sys2::{
    ENCODER_OPTION_BITRATE, ENCODER_OPTION_FRAME_RATE, ENCODER_OPTION_MAX_BITRATE,
    ENCODER_OPTION_TRACE_LEVEL, SBitrateInfo, SPATIAL_LAYER_0, SPATIAL_LAYER_ALL, WELS_LOG_QUIET,
};

/// OpenH264's status code (`CM_RETURN`) of a failed `SetOption`.
pub(super) type Status = i64;

fn status(code: impl Into<i64>) -> Result<(), Status> {
    match code.into() {
        0 => Ok(()),
        code => Err(code),
    }
}

/// Sets the target bitrate (bits/s) of the encoder's one spatial layer.
///
/// OpenH264 refuses a target above the layer's maximum (which the
/// `openh264` crate sets equal to the starting target), so the maximum
/// moves with it: raised before the target goes up, lowered after it went
/// down. The encoder must have encoded a frame (before that, OpenH264 is not
/// initialized and refuses every option).
pub(super) fn set_bitrate(encoder: &mut Encoder, old_bps: u32, new_bps: u32) -> Result<(), Status> {
    let bps = i32::try_from(new_bps).map_err(|_| -1)?;
    if new_bps > old_bps {
        set_bitrate_option(encoder, ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0, bps)?;
        set_bitrate_option(encoder, ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL, bps)
    } else {
        set_bitrate_option(encoder, ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL, bps)?;
        set_bitrate_option(encoder, ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0, bps)
    }
}

fn set_bitrate_option(
    encoder: &mut Encoder,
    option: openh264_sys2::ENCODER_OPTION,
    layer: openh264_sys2::LAYER_NUM,
    bps: i32,
) -> Result<(), Status> {
    debug_assert!(option == ENCODER_OPTION_BITRATE || option == ENCODER_OPTION_MAX_BITRATE);
    let mut info = SBitrateInfo {
        iLayer: layer,
        iBitrate: bps,
    };
    // SAFETY: `raw_api` only asks that no parameter the wrapper relies on be
    // changed; it relies on the picture size and the data format, which
    // these options do not touch (the wrapper's own re-initialization, on a
    // size change, is never reached: Kith makes a new encoder instead).
    // For ENCODER_OPTION_BITRATE and ENCODER_OPTION_MAX_BITRATE OpenH264
    // reads (and writes nothing into) an SBitrateInfo, which `info` is,
    // valid for the whole call; it keeps no pointer to it afterwards.
    let code = unsafe {
        encoder
            .raw_api()
            .set_option(option, (&raw mut info).cast::<c_void>())
    };
    status(code)
}

/// Sets the input frame rate the rate control budgets for.
pub(super) fn set_frame_rate(encoder: &mut Encoder, fps: f32) -> Result<(), Status> {
    let mut value = fps;
    // SAFETY: as for the bitrate: the frame rate is no parameter the
    // wrapper relies on. For ENCODER_OPTION_FRAME_RATE OpenH264 reads one
    // `float` through the pointer, which `value` is, valid for the call.
    let code = unsafe {
        encoder
            .raw_api()
            .set_option(ENCODER_OPTION_FRAME_RATE, (&raw mut value).cast::<c_void>())
    };
    status(code)
}

/// Turns OpenH264's logging (to stderr) off. Allowed before the encoder
/// initializes, which is when it warns about settings Kith chose on purpose
/// (no frame skipping); errors still come back as return codes.
pub(super) fn quiet(encoder: &mut Encoder) -> Result<(), Status> {
    let mut level = WELS_LOG_QUIET;
    // SAFETY: the trace level is no parameter the wrapper relies on (it
    // sets the same level itself after initializing). For
    // ENCODER_OPTION_TRACE_LEVEL OpenH264 reads one 32-bit integer through
    // the pointer, which `level` (a C int) is, valid for the call; it is one
    // of the options OpenH264 accepts before initialization.
    let code = unsafe {
        encoder.raw_api().set_option(
            ENCODER_OPTION_TRACE_LEVEL,
            (&raw mut level).cast::<c_void>(),
        )
    };
    status(code)
}
