//! WAV source and sink, tone source.
#![allow(clippy::unwrap_used)]

use kith_media::audio::tone::ToneSource;
use kith_media::audio::wav::{WavError, WavSink, WavSource};
use kith_media::frame::{AudioFrame, Channels};

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("kith-wav-{}-{name}", std::process::id()))
}

/// Counts upward zero crossings per second in a run of frames.
fn frequency(frames: &[AudioFrame]) -> f64 {
    let samples: Vec<f32> = frames
        .iter()
        .flat_map(|f| f.samples.chunks(f.channels.count()).map(|c| c[0]))
        .collect();
    let crossings = samples
        .windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count();
    crossings as f64 / (samples.len() as f64 / 48_000.0)
}

#[test]
fn a_tone_written_and_read_back_is_the_same_tone() {
    let path = temp_path("tone.wav");
    let mut tone = ToneSource::new(440.0, 0.5, Channels::Stereo);
    let mut sink = WavSink::create(&path, Channels::Stereo).unwrap();
    let written: Vec<AudioFrame> = (0..50).map(|_| tone.next_frame()).collect();
    for frame in &written {
        sink.write(frame).unwrap();
    }
    sink.finish().unwrap();

    let mut source = WavSource::open(&path, Channels::Stereo).unwrap();
    let read: Vec<AudioFrame> = (0..50).map(|_| source.next_frame().unwrap()).collect();
    for (a, b) in written.iter().zip(&read) {
        for (x, y) in a.samples.iter().zip(&b.samples) {
            assert!((x - y).abs() < 1e-3, "16-bit quantization only");
        }
    }
    // It loops: the 51st frame is the first again.
    let again = source.next_frame().unwrap();
    assert!((again.samples[100] - written[0].samples[100]).abs() < 1e-3);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn other_rates_and_channel_counts_are_converted() {
    let path = temp_path("44k.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for n in 0..44_100 {
        let value =
            (0.5 * (std::f64::consts::TAU * 1000.0 * n as f64 / 44_100.0).sin() * 32767.0) as i16;
        writer.write_sample(value).unwrap();
        writer.write_sample(value).unwrap();
    }
    writer.finalize().unwrap();

    let mut source = WavSource::open(&path, Channels::Mono).unwrap();
    let frames: Vec<AudioFrame> = (0..90).map(|_| source.next_frame().unwrap()).collect();
    let steady = &frames[10..];
    let hz = frequency(steady);
    assert!((hz - 1000.0).abs() < 5.0, "{hz} Hz after 44.1 -> 48 kHz");
    let rms = steady.iter().map(AudioFrame::rms).sum::<f32>() / steady.len() as f32;
    assert!(
        (rms - 0.5 / 2f32.sqrt()).abs() < 0.02,
        "level kept: rms {rms}"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_bad_file_is_a_clear_error() {
    let path = temp_path("bad.wav");
    std::fs::write(&path, b"RIFF....WAVEnot really").unwrap();
    let err = WavSource::open(&path, Channels::Mono).unwrap_err();
    assert!(matches!(err, WavError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()));
    std::fs::remove_file(&path).unwrap();
    let missing = WavSource::open("/nonexistent/kith.wav", Channels::Mono).unwrap_err();
    assert!(matches!(missing, WavError::Open { .. }), "{missing}");
}
