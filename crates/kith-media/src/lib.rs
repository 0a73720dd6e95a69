//! Kith's media engine: sources and sinks, audio processing and codecs,
//! turning a camera and a microphone into encoded frames and back. It knows
//! no network; the call engine moves what it produces.

pub mod audio;
pub mod audio_io;
pub mod camera;
pub mod codec;
pub mod frame;
pub mod pipeline;
pub mod processing;
pub mod video;

pub use frame::{AudioFrame, Channels, VideoFrame};
