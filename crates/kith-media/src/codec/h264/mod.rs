//! H.264 through OpenH264 (Cisco's encoder and decoder, compiled from the
//! source bundled in the `openh264` crate; no binary is downloaded).
//!
//! [`H264Encoder`] runs OpenH264 in its real-time camera mode (constrained
//! baseline, bitrate rate control, no skipped frames, one thread, keyframes
//! on demand) and writes Annex B with SPS and PPS before every IDR;
//! [`H264Decoder`] turns Annex B access units back into I420 and survives
//! corrupt input. [`annexb`] reads the byte stream (NAL unit types).
//!
//! The `openh264` crate is a safe API. Its gaps, changing bitrate and frame
//! rate of a running encoder without a new IDR and silencing OpenH264's
//! stderr logging before it initializes, are filled in `raw`: the only
//! `unsafe` here, a few `SetOption` calls.

pub mod annexb;
mod decoder;
mod encoder;
mod raw;

pub use decoder::H264Decoder;
pub use encoder::H264Encoder;

/// Name in errors and logs.
const NAME: &str = "H264";
