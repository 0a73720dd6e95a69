//! Running ahead of the rest of the machine. A call's threads have
//! deadlines (an audio packet every 20 ms, a frame every 33 ms, packets
//! read off the socket as they come, since their arrival times are the
//! congestion feedback the far end paces by) and the machine is shared
//! with browsers, builds and the like. At the same priority, a busy 2-core
//! machine delayed Kith's socket reads and audio in bursts: Chromium read
//! the bursts as a queue building, sent Kith 0.17–1.1 Mbit/s where it sent
//! a browser 1.7, and buffered Kith's audio 60–100 ms against 30–50 ms.
//! With Kith's threads at nice −10 the same calls ran at 1.7 Mbit/s both
//! ways. libwebrtc raises its audio and network threads likewise;
//! PulseAudio runs at nice −11.

/// The nice value asked for: the audio server's level, not above it.
pub const CALL_NICENESS: i32 = -10;

/// Raises the calling thread, and so every thread it starts from now on
/// (Linux threads inherit it), to [`CALL_NICENESS`]. Call it first thing in
/// `main`. Without the privilege to (CAP_SYS_NICE, or an RLIMIT_NICE that
/// allows it) the error says so and the call runs at the usual priority.
pub fn raise_call_priority() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        rustix::process::setpriority_process(None, CALL_NICENESS)?;
    }
    Ok(())
}
