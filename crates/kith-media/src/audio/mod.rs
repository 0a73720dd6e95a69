//! Audio sources and sinks that are not devices.

pub mod tone;
pub mod wav;
