//! The WebRTC APM on a synthetic call: far-end speech played and echoed
//! back into the microphone, near-end speech on top.
#![allow(clippy::unwrap_used)]

#[path = "support/audio_signals.rs"]
mod common;

use std::sync::OnceLock;

use common::*;
use kith_media::frame::{AudioFrame, Channels, SAMPLES_PER_FRAME};
use kith_media::processing::{AudioProcessor, ProcessingSettings};

const SECOND: usize = 48_000;
const FRAME: usize = SAMPLES_PER_FRAME;

/// A small "room": the loudspeaker's sound reaches the microphone after
/// `delay_ms`, 6 dB down, with two weaker reflections.
fn echo_of(far: &[f32], delay_ms: usize) -> Vec<f32> {
    let d = delay_ms * 48;
    let taps = [(d, 0.5f32), (d + 150, 0.2), (d + 530, -0.1)];
    (0..far.len())
        .map(|n| {
            taps.iter()
                .filter(|(lag, _)| n >= *lag)
                .map(|(lag, gain)| gain * far[n - lag])
                .sum()
        })
        .collect()
}

struct Call {
    far: Vec<f32>,
    near: Vec<f32>,
    capture: Vec<f32>,
}

/// 0–5 s the far end talks alone (echo only), 5–7.5 s the near end talks
/// alone, 7.5–10 s both talk. A −70 dBFS noise floor keeps the microphone
/// from being digitally silent, as real ones never are.
fn call(delay_ms: usize) -> Call {
    // Generated once: every test hears the same two voices.
    static VOICES: OnceLock<(Vec<f32>, Vec<f32>)> = OnceLock::new();
    let (far, near) = VOICES.get_or_init(|| {
        let mut far = speech_like(10.0, 1, (90.0, 150.0), 0.5);
        far[5 * SECOND..15 * SECOND / 2].fill(0.0);
        let mut near = speech_like(10.0, 2, (190.0, 290.0), 0.3);
        near[..5 * SECOND].fill(0.0);
        (far, near)
    });
    let echo = echo_of(far, delay_ms);
    let mut rng = Lcg::new(3);
    let capture = echo
        .iter()
        .zip(near)
        .map(|(e, n)| e + n + 0.000_6 * (rng.next() - 0.5))
        .collect();
    Call {
        far: far.clone(),
        near: near.clone(),
        capture,
    }
}

/// Runs the call through `processor` 10 ms at a time; `at_frame` may
/// change settings between frames.
fn run(
    processor: &mut AudioProcessor,
    call: &Call,
    mut at_frame: impl FnMut(usize, &mut AudioProcessor),
) -> Vec<f32> {
    let mut out = Vec::with_capacity(call.capture.len());
    for (i, (far, mic)) in call
        .far
        .chunks_exact(FRAME)
        .zip(call.capture.chunks_exact(FRAME))
        .enumerate()
    {
        at_frame(i, processor);
        let position = (i * FRAME) as u64;
        let played = AudioFrame {
            channels: Channels::Mono,
            samples: far.to_vec(),
            position,
        };
        processor.process_render(&played).unwrap();
        let mut frame = AudioFrame {
            channels: Channels::Mono,
            samples: mic.to_vec(),
            position,
        };
        processor.process_capture(&mut frame).unwrap();
        out.extend_from_slice(&frame.samples);
    }
    out
}

fn span(seconds: std::ops::Range<f32>) -> std::ops::Range<usize> {
    (seconds.start * SECOND as f32) as usize..(seconds.end * SECOND as f32) as usize
}

fn level_change_db(before: &[f32], after: &[f32], range: std::ops::Range<usize>) -> f64 {
    db(energy(&after[range.clone()]) / energy(&before[range]))
}

fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let ab: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    ab / (energy(a) * energy(b)).sqrt()
}

/// AGC is off here: its job is to change levels, which would blur what the
/// canceller did to them (it has its own test below).
fn aec_ns() -> ProcessingSettings {
    ProcessingSettings {
        gain_control: false,
        ..ProcessingSettings::default()
    }
}

/// ≥ 20 dB of echo removed once converged (2 s in), and the near end's
/// speech passes: in its own stretch its level stays within 3 dB and its
/// waveform correlates ≥ 0.9 with the clean near-end signal. Echo delays of
/// 40–80 ms are found without a hint (delay-agnostic mode), and a correct
/// hint does no harm.
#[test]
fn echo_is_cancelled_and_near_end_speech_survives() {
    for (delay_ms, hint) in [(60, None), (60, Some(60)), (40, None), (80, None)] {
        let call = call(delay_ms);
        let mut p = AudioProcessor::new(
            Channels::Mono,
            Channels::Mono,
            ProcessingSettings {
                stream_delay_ms: hint,
                ..aec_ns()
            },
        )
        .unwrap();
        let mut stats = None;
        let out = run(&mut p, &call, |i, p| {
            if i == 490 {
                stats = Some(p.stats());
            }
        });

        let erle = -level_change_db(&call.capture, &out, span(2.0..5.0));
        let near_only = span(5.3..7.5);
        let near_level = level_change_db(&call.capture, &out, near_only.clone());
        let (near_corr, lag) = aligned_correlation(&call.near, &out, near_only);
        let double_talk = span(8.0..9.9);
        // The APM's own delay, found where the near end is alone.
        let dt_corr = correlation(
            &call.near[double_talk.clone()],
            &out[double_talk.start + lag..double_talk.end + lag],
        );
        let dt_in_corr = correlation(&call.near[double_talk.clone()], &call.capture[double_talk]);
        eprintln!(
            "echo {delay_ms} ms, hint {hint:?}: ERLE {erle:.1} dB; near end alone {near_level:+.1} dB, \
             corr {near_corr:.3} at lag {lag}; double talk corr {dt_corr:.3} (mic {dt_in_corr:.3}); stats at 4.9 s {stats:?}"
        );
        assert!(erle >= 20.0, "{delay_ms} ms: ERLE {erle:.1} dB");
        assert!(
            near_level.abs() <= 3.0,
            "{delay_ms} ms: near end changed {near_level:+.1} dB"
        );
        assert!(
            near_corr >= 0.9,
            "{delay_ms} ms: near-end correlation {near_corr:.3}"
        );
        // In double talk the near end must not be muted: it should stay
        // about as recognisable as it is in the echoey microphone signal.
        assert!(
            dt_corr >= dt_in_corr - 0.1,
            "{delay_ms} ms: double talk {dt_corr:.3}"
        );
        let stats = stats.unwrap();
        assert!(stats.erle_db.is_some());
    }
}

/// Switching the canceller off mid-call brings the echo straight back;
/// switching it on again removes it after re-converging; changing another
/// stage leaves the converged canceller alone.
#[test]
fn echo_cancellation_switches_at_run_time() {
    let call = call(60);
    let mut p = AudioProcessor::new(Channels::Mono, Channels::Mono, aec_ns()).unwrap();
    let mut stats_off = None;
    let out = run(&mut p, &call, |i, p| match i {
        // Seconds 0–2 converge, 2–2.5 as is, 2.5–3 without noise
        // suppression, 3–4 without echo cancellation, 4–5 with it again.
        250 => p.set_noise_suppression(false),
        300 => p.set_echo_cancellation(false),
        399 => stats_off = Some(p.stats()),
        400 => p.set_echo_cancellation(true),
        _ => {}
    });
    let on = -level_change_db(&call.capture, &out, span(2.0..2.5));
    let without_ns = -level_change_db(&call.capture, &out, span(2.5..3.0));
    let off = -level_change_db(&call.capture, &out, span(3.05..4.0));
    let again = -level_change_db(&call.capture, &out, span(4.5..5.0));
    eprintln!(
        "ERLE on {on:.1} dB, NS switched off {without_ns:.1} dB, AEC off {off:.1} dB, \
         AEC on again {again:.1} dB"
    );
    assert!(on >= 20.0, "on: {on:.1} dB");
    assert!(without_ns >= 20.0, "after NS off: {without_ns:.1} dB");
    assert!(off <= 3.0, "off: {off:.1} dB");
    assert!(again >= 15.0, "on again: {again:.1} dB");
    assert_eq!(stats_off.unwrap().erle_db, None);
}

/// The full default chain (AGC too) on the same call, for the record: AGC
/// may lift what little echo is left, so only ≥ 15 dB is asked here.
#[test]
fn full_chain_on_the_echo_call() {
    let call = call(60);
    let mut p = AudioProcessor::new(
        Channels::Mono,
        Channels::Mono,
        ProcessingSettings::default(),
    )
    .unwrap();
    let out = run(&mut p, &call, |_, _| {});
    let erle = -level_change_db(&call.capture, &out, span(2.0..5.0));
    let near = level_change_db(&call.capture, &out, span(5.3..7.5));
    eprintln!("AEC+NS+AGC: ERLE {erle:.1} dB, near end alone {near:+.1} dB");
    assert!(erle >= 15.0, "ERLE {erle:.1} dB");
    assert!(near > -3.0, "near end {near:+.1} dB");
}

/// Adaptive digital AGC lifts a quiet talker towards its −3 dBFS target
/// and does nothing when switched off.
#[test]
fn gain_control_lifts_a_quiet_talker() {
    let quiet = speech_like(4.0, 9, (120.0, 220.0), 0.03);
    let call = Call {
        far: vec![0.0; quiet.len()],
        near: quiet.clone(),
        capture: quiet,
    };
    let settings = ProcessingSettings {
        echo_cancellation: false,
        noise_suppression: false,
        gain_control: true,
        ..ProcessingSettings::default()
    };
    let mut p = AudioProcessor::new(Channels::Mono, Channels::Mono, settings).unwrap();
    let out_on = run(&mut p, &call, |_, _| {});
    let mut p = AudioProcessor::new(Channels::Mono, Channels::Mono, settings).unwrap();
    p.set_gain_control(false);
    let out_off = run(&mut p, &call, |_, _| {});
    let lift_on = level_change_db(&call.capture, &out_on, span(2.0..4.0));
    let lift_off = level_change_db(&call.capture, &out_off, span(2.0..4.0));
    eprintln!("AGC on: {lift_on:+.1} dB, off: {lift_off:+.1} dB");
    assert!(lift_on >= 6.0, "AGC lifted {lift_on:+.1} dB");
    assert!(lift_off.abs() <= 1.0, "without AGC {lift_off:+.1} dB");
}

/// The render feed can live on the playback thread.
#[test]
fn render_handle_feeds_from_another_thread() {
    let call = call(60);
    let mut p = AudioProcessor::new(Channels::Mono, Channels::Mono, aec_ns()).unwrap();
    let mut render = p.render_handle();
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(0);
    let far = call.far.clone();
    let player = std::thread::spawn(move || {
        for (i, chunk) in far.chunks_exact(FRAME).take(400).enumerate() {
            let frame = AudioFrame {
                channels: Channels::Mono,
                samples: chunk.to_vec(),
                position: (i * FRAME) as u64,
            };
            render.process_render(&frame).unwrap();
            // Lockstep with capture, as a real duplex device would be.
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    let mut out = Vec::new();
    for (i, mic) in call.capture.chunks_exact(FRAME).take(400).enumerate() {
        rx.recv().unwrap();
        let mut frame = AudioFrame {
            channels: Channels::Mono,
            samples: mic.to_vec(),
            position: (i * FRAME) as u64,
        };
        p.process_capture(&mut frame).unwrap();
        out.extend_from_slice(&frame.samples);
    }
    player.join().unwrap();
    let erle = -level_change_db(&call.capture, &out, span(2.0..4.0));
    eprintln!("render from another thread: ERLE {erle:.1} dB");
    assert!(erle >= 20.0);
}

/// Correlation of `clean[range]` with `out` at the lag that fits best: the
/// APM's band-splitting filters delay the capture by a few ms.
fn aligned_correlation(clean: &[f32], out: &[f32], range: std::ops::Range<usize>) -> (f64, usize) {
    let lag = best_lag(clean, out, range.clone(), 960);
    let shifted = &out[range.start + lag..range.end + lag];
    (correlation(&clean[range], shifted), lag)
}
