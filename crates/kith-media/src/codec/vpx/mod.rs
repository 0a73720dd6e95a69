//! VP8 and VP9 through libvpx (Debian's 1.12, via `env-libvpx-sys`).
//!
//! [`VpxEncoder`] runs libvpx in real-time mode (CBR, no lookahead, no
//! dropped frames, keyframes on demand); [`VpxDecoder`] turns VP8/VP9 frames
//! back into I420 and survives corrupt input. Threads default to WebRTC's
//! rule (one on a two-core machine; see [`auto_encoder_threads`]).
//!
//! All FFI is in `ffi`, a thin safe wrapper written once: the only place in
//! Kith allowed `unsafe`, every block with its `SAFETY:` reasoning.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod decoder;
mod encoder;
mod ffi;

pub use decoder::{VpxDecoder, auto_decoder_threads};
pub use encoder::{VpxEncoder, VpxEncoderOptions, auto_encoder_threads};
pub use ffi::{VpxCodec, version};
