//! Real PulseAudio devices: a tone played through `Speaker` into a null sink comes
//! back through `Microphone` on a source fed from that sink's monitor.

#![allow(clippy::unwrap_used)]

#[path = "support/pulse.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kith_media::audio_io::{
    AudioIoError, DeviceChoice, Direction, FormatPreference, Microphone, Speaker, StreamOptions,
    input_devices, output_devices,
};
use kith_media::frame::{AudioFrame, Channels, SAMPLE_RATE, SAMPLES_PER_FRAME};
use support::{PulseFixture, dbfs, goertzel, in_pulse_env};

const TONE_HZ: f64 = 1000.0;
/// -12 dBFS peak, so -15.01 dBFS RMS.
const TONE_AMP: f32 = 0.251_188_64;
const TONE_FRAMES: usize = 150;
const TAIL_FRAMES: usize = 50;
const RATE: f64 = SAMPLE_RATE as f64;
/// A frame counts as tone when louder than this (tone RMS is 0.178).
const LOUD_RMS: f32 = 0.05;

fn tone_frame(index: usize, channels: Channels) -> AudioFrame {
    let start = index * SAMPLES_PER_FRAME;
    let samples = (start..start + SAMPLES_PER_FRAME)
        .flat_map(|n| {
            let s = TONE_AMP * (std::f64::consts::TAU * TONE_HZ * n as f64 / RATE).sin() as f32;
            std::iter::repeat_n(s, channels.count())
        })
        .collect();
    AudioFrame {
        channels,
        samples,
        position: start as u64,
    }
}

/// Mono view of a frame (first channel).
fn first_channel(frame: &AudioFrame) -> impl Iterator<Item = f32> + '_ {
    frame
        .samples
        .iter()
        .step_by(frame.channels.count())
        .copied()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Asserts a 1 kHz tone at the expected level in at least `min_frames` frames;
/// returns its median frame level in dBFS. Judged frame by frame so that gaps
/// (a descheduled thread on a busy machine) do not spoil the measurement.
fn assert_tone(what: &str, frames: &[AudioFrame], min_frames: usize) -> f64 {
    let expected = dbfs(f64::from(TONE_AMP) / 2f64.sqrt());
    let loud: Vec<&AudioFrame> = frames.iter().filter(|f| f.rms() > LOUD_RMS).collect();
    assert!(
        loud.len() >= min_frames,
        "{what}: only {} loud frames of {}",
        loud.len(),
        frames.len()
    );
    let level = median(loud.iter().map(|f| dbfs(f64::from(f.rms()))).collect());
    assert!(
        (level - expected).abs() < 1.0,
        "{what}: level {level:.2} dBFS, expected {expected:.2}"
    );
    // Frames wholly inside the tone: not cut by a gap or the tone's ends.
    let full: Vec<Vec<f32>> = loud
        .iter()
        .filter(|f| (dbfs(f64::from(f.rms())) - expected).abs() < 1.0)
        .map(|f| first_channel(f).collect())
        .collect();
    assert!(
        full.len() >= min_frames / 2,
        "{what}: {} full frames",
        full.len()
    );
    // Median of per-frame estimates: a frame cut by lost audio gives a wrong
    // value, but only for itself.
    let hz = median(
        full.iter()
            .filter_map(|f| cycles_and_span(f, TONE_AMP / 2.0))
            .map(|(cycles, span)| cycles as f64 / span * RATE)
            .collect(),
    );
    assert!(
        (hz - TONE_HZ).abs() < 5.0,
        "{what}: {hz:.1} Hz by zero crossings"
    );
    let dominance = median(
        full.iter()
            .map(|f| {
                let off = [500.0, 800.0, 1200.0, 2000.0, 3000.0]
                    .map(|hz| goertzel(f, hz, RATE))
                    .into_iter()
                    .fold(0.0, f64::max);
                goertzel(f, TONE_HZ, RATE) / off.max(1e-30)
            })
            .collect(),
    );
    assert!(
        dominance > 100.0,
        "{what}: 1 kHz only {dominance:.1}x other tones"
    );
    eprintln!(
        "{what}: {} loud frames, level {level:.2} dBFS (expected {expected:.2}), {hz:.1} Hz, \
         1 kHz {dominance:.0}x stronger than others",
        loud.len()
    );
    level
}

/// Tone cycles and their length in samples, from the first to the last rising
/// zero crossing of a frame (interpolated). A crossing counts only after the
/// signal has been below -`threshold`, which ignores resampler ringing near silence.
fn cycles_and_span(samples: &[f32], threshold: f32) -> Option<(usize, f64)> {
    let mut armed = false;
    let mut crossings = Vec::new();
    for (i, w) in samples.windows(2).enumerate() {
        if w[0] < -threshold {
            armed = true;
        }
        if armed && w[0] < 0.0 && w[1] >= 0.0 {
            crossings.push(i as f64 + f64::from(-w[0] / (w[1] - w[0])));
            armed = false;
        }
    }
    match (crossings.first(), crossings.last()) {
        (Some(first), Some(last)) if crossings.len() >= 2 => {
            Some((crossings.len() - 1, last - first))
        }
        _ => None,
    }
}

/// Sum of squares of all samples, per channel.
fn energy(frames: &[AudioFrame]) -> f64 {
    frames
        .iter()
        .flat_map(first_channel)
        .map(|s| f64::from(s) * f64::from(s))
        .sum()
}

fn loopback(tag: &str, format: FormatPreference) {
    let fixture = PulseFixture::new(tag);
    let options = StreamOptions { format };
    let mut mic = Microphone::open_with(
        &DeviceChoice::Name(fixture.source.clone()),
        Channels::Mono,
        &options,
    )
    .unwrap();
    let mut speaker = Speaker::open_with(
        &DeviceChoice::Name(fixture.sink.clone()),
        Channels::Stereo,
        &options,
    )
    .unwrap();
    assert_eq!(mic.device_name(), fixture.source);
    assert_eq!(speaker.device_name(), fixture.sink);
    eprintln!(
        "{tag}: mic {:?}, speaker {:?}",
        mic.device_format(),
        speaker.device_format()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let stop_reader = Arc::clone(&stop);
    let reader = std::thread::spawn(move || {
        let mut frames: Vec<(Instant, AudioFrame)> = Vec::new();
        let started = Instant::now();
        // Bounded in time so a broken device cannot keep the test alive.
        while !stop_reader.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
            if let Some(f) = mic.read_frame(Duration::from_millis(500)) {
                frames.push((Instant::now(), f));
            }
        }
        (frames, mic)
    });

    let mut played = Vec::new();
    let mut first_write = None;
    let total = TONE_FRAMES + TAIL_FRAMES;
    for i in 0..total {
        let give_up = Instant::now() + Duration::from_secs(10);
        // Keep ~150 ms queued: real-time pacing from the device's own consumption,
        // with room for this thread to be descheduled on a busy machine.
        while speaker.buffered() > Duration::from_millis(150) && Instant::now() < give_up {
            played.extend(std::iter::from_fn(|| speaker.take_played()));
            std::thread::sleep(Duration::from_millis(3));
        }
        let frame = if i < TONE_FRAMES {
            tone_frame(i, Channels::Stereo)
        } else {
            AudioFrame::silent(Channels::Stereo, (i * SAMPLES_PER_FRAME) as u64)
        };
        speaker.write_frame(&frame);
        first_write.get_or_insert_with(Instant::now);
        played.extend(std::iter::from_fn(|| speaker.take_played()));
    }
    let give_up = Instant::now() + Duration::from_secs(10);
    while speaker.buffered() > Duration::ZERO && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
        played.extend(std::iter::from_fn(|| speaker.take_played()));
    }
    std::thread::sleep(Duration::from_millis(300));
    played.extend(std::iter::from_fn(|| speaker.take_played()));
    stop.store(true, Ordering::Relaxed);
    let (captured, mic) = reader.join().unwrap();

    let spk_stats = speaker.stats();
    let mic_stats = mic.stats();
    eprintln!("{tag}: speaker {spk_stats:?}, microphone {mic_stats:?}");
    assert!(speaker.failure().is_none() && mic.failure().is_none());
    assert_eq!(spk_stats.frames, total as u64);
    assert_eq!(spk_stats.overruns, 0, "paced writes never fill the queue");

    assert!(
        played
            .iter()
            .all(|f| f.channels == Channels::Stereo && f.samples.len() == 2 * SAMPLES_PER_FRAME)
    );
    // take_played hands back what was played: every tone sample exactly once,
    // unless a stalled sound server made it skip a backlog (positions jump then).
    assert!(
        !played.is_empty(),
        "{tag}: nothing came back from take_played"
    );
    assert!(played.windows(2).all(|w| w[1].position > w[0].position
        && (w[1].position - w[0].position) % SAMPLES_PER_FRAME as u64 == 0));
    let skipped = played
        .windows(2)
        .any(|w| w[1].position != w[0].position + SAMPLES_PER_FRAME as u64);
    let expected_energy = energy(
        &(0..TONE_FRAMES)
            .map(|i| tone_frame(i, Channels::Stereo))
            .collect::<Vec<_>>(),
    );
    let ratio = energy(&played) / expected_energy;
    // Without our resampler in the path the played samples are the written ones.
    let tolerance = if format == FormatPreference::Kith {
        0.001
    } else {
        0.03
    };
    eprintln!("{tag}: played energy ratio {ratio:.5}, skipped backlog: {skipped}");
    if skipped {
        assert!(
            ratio < 1.0 + tolerance,
            "{tag}: played energy ratio {ratio:.5}"
        );
        assert_tone(&format!("{tag} played"), &played, TONE_FRAMES / 2);
    } else {
        assert!(
            (ratio - 1.0).abs() < tolerance,
            "{tag}: played energy ratio {ratio:.5}"
        );
        assert_tone(&format!("{tag} played"), &played, TONE_FRAMES - 10);
    }

    let mic_frames: Vec<AudioFrame> = captured.iter().map(|(_, f)| f.clone()).collect();
    assert!(
        mic_frames
            .iter()
            .all(|f| f.channels == Channels::Mono && f.samples.len() == SAMPLES_PER_FRAME)
    );
    assert_eq!(mic_stats.frames, mic_frames.len() as u64);
    if mic_stats.overruns == 0 {
        assert!(
            mic_frames
                .windows(2)
                .all(|w| w[1].position == w[0].position + SAMPLES_PER_FRAME as u64),
            "{tag}: capture positions must be gapless when nothing was dropped"
        );
    }
    // Generous: a loaded machine may lose some capture to server-side overflow.
    assert_tone(&format!("{tag} captured"), &mic_frames, TONE_FRAMES / 2);

    if let (Some(first), Some((heard, _))) = (
        first_write,
        captured.iter().find(|(_, f)| f.rms() > LOUD_RMS),
    ) {
        eprintln!(
            "{tag}: first tone frame written -> first loud frame read: {} ms (wall clock)",
            heard.saturating_duration_since(first).as_millis()
        );
    }
}

#[test]
fn tone_round_trip_kith_format() {
    if let Some(_serial) = in_pulse_env("tone_round_trip_kith_format") {
        loopback("kith", FormatPreference::Kith);
    }
}

#[test]
fn tone_round_trip_device_native_format() {
    if let Some(_serial) = in_pulse_env("tone_round_trip_device_native_format") {
        loopback("native", FormatPreference::DeviceNative);
    }
}

#[test]
fn unknown_device_name_lists_available_devices() {
    let Some(_serial) = in_pulse_env("unknown_device_name_lists_available_devices") else {
        return;
    };
    let fixture = PulseFixture::new("list");
    let wanted = DeviceChoice::Name("no-such-device".into());

    match Speaker::open(&wanted, Channels::Stereo) {
        Err(AudioIoError::DeviceNotFound {
            direction,
            wanted,
            available,
        }) => {
            assert_eq!(direction, Direction::Output);
            assert_eq!(wanted, "no-such-device");
            assert!(available.contains(&fixture.sink), "{available:?}");
        }
        other => panic!("expected DeviceNotFound, got {other:?}"),
    }
    let err = Microphone::open(&wanted, Channels::Mono).unwrap_err();
    let text = err.to_string();
    match err {
        AudioIoError::DeviceNotFound { available, .. } => {
            assert!(available.contains(&fixture.source), "{available:?}");
            assert!(text.contains(&fixture.source), "{text}");
        }
        other => panic!("expected DeviceNotFound, got {other:?}"),
    }

    let outputs = output_devices().unwrap();
    let sink = outputs.iter().find(|d| d.name == fixture.sink).unwrap();
    assert_eq!(sink.description, "KithTestSpeaker");
    assert!(sink.sample_rates.contains(&48_000));
    assert!(sink.max_channels >= 2);
    assert_eq!(sink.native, Some((44_100, 2)));
    assert_eq!(outputs.iter().filter(|d| d.is_default).count(), 1);
    for (i, d) in outputs.iter().enumerate() {
        assert_eq!(d.index, i);
    }
    // Index and unique substring pick the same device as the full name.
    let by_index = Speaker::open(&DeviceChoice::Index(sink.index), Channels::Mono).unwrap();
    assert_eq!(by_index.device_name(), fixture.sink);
    let fragment = fixture.source.trim_start_matches("kith_test_");
    let by_fragment =
        Microphone::open(&DeviceChoice::Name(fragment.into()), Channels::Mono).unwrap();
    assert_eq!(by_fragment.device_name(), fixture.source);
    assert!(
        input_devices()
            .unwrap()
            .iter()
            .any(|d| d.name == fixture.source)
    );
}

#[test]
fn removed_device_is_reported_without_hang() {
    let Some(_serial) = in_pulse_env("removed_device_is_reported_without_hang") else {
        return;
    };
    let mut fixture = PulseFixture::new("gone");
    let mut mic =
        Microphone::open(&DeviceChoice::Name(fixture.source.clone()), Channels::Mono).unwrap();
    let mut speaker =
        Speaker::open(&DeviceChoice::Name(fixture.sink.clone()), Channels::Stereo).unwrap();
    // Silence only: PulseAudio moves orphaned streams to the default sink, which
    // may be a real speaker or another test's null sink.
    let silence = AudioFrame::silent(Channels::Stereo, 0);
    for _ in 0..20 {
        speaker.write_frame(&silence);
        mic.read_frame(Duration::from_millis(100));
    }
    assert!(mic.failure().is_none() && speaker.failure().is_none());

    fixture.unload();
    // Keep using both devices: nothing may panic or block while the failure shows up.
    let give_up = Instant::now() + Duration::from_secs(20);
    while (mic.failure().is_none() || speaker.failure().is_none()) && Instant::now() < give_up {
        speaker.write_frame(&silence);
        while speaker.take_played().is_some() {}
        mic.read_frame(Duration::from_millis(50));
    }
    for (what, failure) in [
        ("microphone", mic.failure()),
        ("speaker", speaker.failure()),
    ] {
        match failure {
            Some(AudioIoError::DeviceLost { device, .. }) => {
                assert!(device.starts_with("kith_test_"), "{what}: {device}")
            }
            other => panic!("{what}: expected DeviceLost, got {other:?}"),
        }
    }
    eprintln!("after removal: {}", mic.failure().unwrap());

    // Closing a device whose hardware is gone must not hang.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(mic);
        drop(speaker);
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("dropping the devices hung");
}
