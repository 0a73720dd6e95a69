//! Measures what the codecs and the APM cost per frame, in thread CPU
//! time. Prints only: the machine is shared, so timings are reported,
//! never asserted. Run with
//! `--nocapture` (and `--release` for figures without debug glue).
//! `cargo xtask bench media` (audio part): Opus, G.711 and APM cost per frame,
//! in thread CPU time.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/support/audio_signals.rs"]
mod common;

use std::time::Instant;

use common::*;
use kith_media::codec::g711::{G711Decoder, G711Encoder, G711Law};
use kith_media::codec::opus::{OpusDecoder, OpusEncoder, OpusEncoderConfig};
use kith_media::codec::{AudioDecoder, AudioEncoder};
use kith_media::frame::{AudioFrame, Channels};
use kith_media::processing::{AudioProcessor, ProcessingSettings};

/// CPU time this thread has run, from Linux's scheduler statistics: on a
/// shared machine wall time mostly measures the neighbours. Falls back to
/// wall time elsewhere.
struct Clock {
    wall: Instant,
    cpu_ns: Option<u64>,
}

fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

impl Clock {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu_ns: thread_cpu_ns(),
        }
    }

    /// Microseconds per operation since `start`.
    fn per(&self, count: usize) -> f64 {
        let elapsed_us = match (self.cpu_ns, thread_cpu_ns()) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e3,
            _ => self.wall.elapsed().as_secs_f64() * 1e6,
        };
        elapsed_us / count.max(1) as f64
    }
}

/// Encodes `input` `rounds` times, then decodes the packets; µs of CPU
/// per 20 ms packet (encode counts both 10 ms calls that make a packet).
fn codec_cost(
    mut encoder: impl AudioEncoder,
    mut decoder: impl AudioDecoder,
    input: &[AudioFrame],
    rounds: usize,
) -> (f64, f64) {
    let mut packets = Vec::with_capacity(rounds * input.len() / 2);
    let clock = Clock::start();
    for _ in 0..rounds {
        for frame in input {
            if let Some(packet) = encoder.encode(frame).unwrap() {
                packets.push(packet);
            }
        }
    }
    let encode = clock.per(packets.len());
    let clock = Clock::start();
    for packet in &packets {
        assert_eq!(decoder.decode(packet).unwrap().len(), 2);
    }
    (encode, clock.per(packets.len()))
}

fn main() {
    println!();
    println!("kith-media audio costs (thread CPU time per packet or frame)");
    println!();
    let voice = speech_like(2.0, 31, (100.0, 220.0), 0.5);
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };

    for (channels, bitrate_bps) in [(Channels::Mono, 32_000), (Channels::Stereo, 64_000)] {
        let input = frames(&voice, channels);
        let encoder = OpusEncoder::new(OpusEncoderConfig {
            channels,
            bitrate_bps,
            dtx: false,
            ..OpusEncoderConfig::default()
        })
        .unwrap();
        let decoder = OpusDecoder::new(channels).unwrap();
        let (enc, dec) = codec_cost(encoder, decoder, &input, 3);
        println!(
            "[{profile}] Opus {channels:?} {} kbit/s, per 20 ms packet: encode {enc:.0} µs, decode {dec:.0} µs",
            bitrate_bps / 1000
        );
    }

    let input = frames(&voice, Channels::Mono);
    for law in [G711Law::MuLaw, G711Law::ALaw] {
        let (enc, dec) = codec_cost(
            G711Encoder::new(law, 20).unwrap(),
            G711Decoder::new(law, Channels::Mono).unwrap(),
            &input,
            3,
        );
        println!(
            "[{profile}] G.711 {law:?} (with 48↔8 kHz resampling), per 20 ms packet: encode {enc:.0} µs, decode {dec:.0} µs"
        );
    }

    // Echo of the voice 50 ms later, at half level, as the microphone.
    let mic: Vec<f32> = (0..voice.len())
        .map(|n| {
            if n >= 2_400 {
                0.5 * voice[n - 2_400]
            } else {
                0.0
            }
        })
        .collect();
    let far = frames(&voice, Channels::Mono);
    let near = frames(&mic, Channels::Mono);
    let mut apm = AudioProcessor::new(
        Channels::Mono,
        Channels::Mono,
        ProcessingSettings::default(),
    )
    .unwrap();
    let mut frame = AudioFrame::silent(Channels::Mono, 0);
    let rounds = 3;
    let clock = Clock::start();
    for _ in 0..rounds {
        for (played, mic) in far.iter().zip(&near) {
            apm.process_render(played).unwrap();
            frame.samples.copy_from_slice(&mic.samples);
            apm.process_capture(&mut frame).unwrap();
        }
    }
    println!(
        "[{profile}] APM mono AEC+NS+AGC, per 10 ms (capture + render): {:.0} µs",
        clock.per(rounds * far.len())
    );
    assert!(apm.stats().erle_db.is_some());
}
