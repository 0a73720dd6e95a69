//! AV1: rav1e (pure Rust, always built) and libaom real-time for encoding,
//! dav1d for decoding, and the choice between the two encoders.

pub mod aom_encoder;
pub mod choose;
pub mod dav1d_decoder;
pub mod obu;
pub mod rav1e_encoder;
