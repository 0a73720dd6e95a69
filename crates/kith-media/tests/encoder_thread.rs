//! The encoder thread: frames in, commands in, encoded frames out; and the
//! AV1 encoder choice.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crossbeam_channel::unbounded;
use kith_media::codec::av1::choose::{Av1Preference, choose_av1_encoder};
use kith_media::codec::vpx::VpxEncoder;
use kith_media::codec::{VideoCodec, VideoEncoderConfig};
use kith_media::pipeline::encoder_thread::{EncoderCommand, EncoderEvent, EncoderThread};
use kith_media::video::synthetic::SyntheticCamera;

const WAIT: Duration = Duration::from_secs(20);

fn config(width: u32, height: u32) -> VideoEncoderConfig {
    VideoEncoderConfig {
        width,
        height,
        fps: 30,
        bitrate_bps: 800_000,
    }
}

fn next_frame(
    events: &crossbeam_channel::Receiver<EncoderEvent>,
) -> kith_media::codec::EncodedVideoFrame {
    match events.recv_timeout(WAIT).unwrap() {
        EncoderEvent::Frame(frame) => frame,
        EncoderEvent::Error(err) => panic!("encoder error: {err}"),
    }
}

#[test]
fn frames_flow_and_commands_take_effect() {
    let (tx, events) = unbounded();
    let encoder = VpxEncoder::vp8(config(320, 180)).unwrap();
    let thread = EncoderThread::spawn(Box::new(encoder), tx).unwrap();
    let mut camera = SyntheticCamera::new(320, 180);

    thread.push(camera.next_frame(1_000));
    let first = next_frame(&events);
    assert!(first.keyframe, "the stream starts with a keyframe");
    assert_eq!(first.capture_us, 1_000);

    thread.push(camera.next_frame(2_000));
    assert!(!next_frame(&events).keyframe);

    thread.command(EncoderCommand::Keyframe);
    thread.push(camera.next_frame(3_000));
    let asked = next_frame(&events);
    assert!(
        asked.keyframe,
        "a keyframe on the next frame after the command"
    );
    assert_eq!(asked.capture_us, 3_000);

    // A new size: the camera keeps sending 320x180, the thread scales.
    thread.command(EncoderCommand::Resolution {
        width: 160,
        height: 90,
    });
    thread.push(camera.next_frame(4_000));
    let resized = next_frame(&events);
    assert_eq!((resized.width, resized.height), (160, 90));
    assert!(resized.keyframe);

    let counters = thread.counters();
    assert_eq!(
        counters
            .frames_encoded
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
    drop(thread);
    // The thread is gone: the channel closes once its sender is dropped.
    assert!(events.recv_timeout(WAIT).is_err());
}

#[test]
fn a_slow_encoder_drops_old_frames_instead_of_queueing() {
    let (tx, events) = unbounded();
    let encoder = VpxEncoder::vp9(config(1280, 720)).unwrap();
    let thread = EncoderThread::spawn(Box::new(encoder), tx).unwrap();
    let mut camera = SyntheticCamera::new(1280, 720);
    let frames: Vec<_> = (0..40).map(|i| camera.next_frame(i * 33_333)).collect();
    for frame in frames {
        thread.push(frame);
    }
    // Whatever was dropped, the newest frame is always encoded.
    let mut last = 0;
    while let Ok(EncoderEvent::Frame(frame)) = events.recv_timeout(Duration::from_secs(5)) {
        last = frame.capture_us;
        if last == 39 * 33_333 {
            break;
        }
    }
    assert_eq!(last, 39 * 33_333, "the newest frame is encoded");
    let counters = thread.counters();
    let dropped = counters
        .frames_dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    let encoded = counters
        .frames_encoded
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        dropped + encoded,
        40,
        "every frame is either encoded or dropped"
    );
}

#[test]
fn the_av1_choice_returns_a_working_encoder_within_the_asked_size() {
    let mut encoder = choose_av1_encoder(config(640, 360), Av1Preference::Auto, 2).unwrap();
    let chosen = encoder.config();
    assert!(chosen.width <= 640 && chosen.height <= 360);
    assert_eq!(encoder.codec(), VideoCodec::Av1);
    let frame = SyntheticCamera::new(chosen.width, chosen.height).next_frame(0);
    // rav1e holds a few frames back; libaom answers at once. Either way
    // frames go in without error.
    for _ in 0..6 {
        encoder.encode(&frame, false).unwrap();
    }
    let forced = choose_av1_encoder(config(320, 180), Av1Preference::Libaom, 2).unwrap();
    assert_eq!(forced.implementation(), "libaom");
}

#[test]
fn an_encoder_built_on_its_thread_never_stalls_the_pusher_and_skips_what_came_before() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    let (tx, events) = unbounded();
    let built = Arc::new(AtomicBool::new(false));
    let thread_built = Arc::clone(&built);
    let build = move || {
        // A slow start, like the AV1 trial.
        std::thread::sleep(Duration::from_millis(300));
        let encoder = VpxEncoder::vp8(config(320, 180))?;
        thread_built.store(true, Ordering::SeqCst);
        Ok(Box::new(encoder) as Box<dyn kith_media::codec::VideoEncoder>)
    };
    let thread = EncoderThread::spawn_with("encode-test".into(), Box::new(build), tx).unwrap();
    let mut camera = SyntheticCamera::new(320, 180);
    let mut first_after_build = None;
    let started = Instant::now();
    for i in 1..=60u64 {
        if first_after_build.is_none() && built.load(Ordering::SeqCst) {
            first_after_build = Some(i);
        }
        let pushed = Instant::now();
        thread.push(camera.next_frame(i));
        assert!(pushed.elapsed() < Duration::from_millis(50), "push waited");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let first_after_build = first_after_build.unwrap();
    let first = next_frame(&events);
    assert!(first.keyframe);
    // The frame waiting when the build ended was captured before it ended
    // (at most one push before `built` was seen).
    assert!(
        first.capture_us + 1 >= first_after_build,
        "encoded frame {} was captured during the build (built at {first_after_build})",
        first.capture_us
    );
}

#[test]
fn a_failed_build_is_one_error_and_the_thread_ends() {
    let (tx, events) = unbounded();
    let build = || {
        Err(kith_media::codec::CodecError::Init {
            codec: "test",
            reason: "no such encoder".into(),
        })
    };
    let thread = EncoderThread::spawn_with("encode-test".into(), Box::new(build), tx).unwrap();
    thread.push(SyntheticCamera::new(320, 180).next_frame(1));
    assert!(matches!(
        events.recv_timeout(WAIT),
        Ok(EncoderEvent::Error(_))
    ));
    assert!(events.recv_timeout(WAIT).is_err(), "nothing more, ever");
}
