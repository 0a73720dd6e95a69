//! Running codecs on their own threads.

pub mod encoder_thread;
