//! Between kith-media and RTP: sources and encoders on the send side,
//! depacketizing, decoding and mixing on the receive side.

pub mod assembler;
pub mod keyframe_asks;
pub mod keyframe_start;
pub mod mixer;
pub mod playout;
pub mod receive;
pub mod send;
pub mod sinks;
pub mod sources;
pub mod vp9_rtp;
