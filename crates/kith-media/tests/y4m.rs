//! Y4M files: write, read back, loop, and clear errors for bad files.
#![allow(clippy::unwrap_used)]

use kith_media::video::latency_strip;
use kith_media::video::synthetic::SyntheticCamera;
use kith_media::video::y4m_file::{Y4mError, Y4mSink, Y4mSource};

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("kith-y4m-{}-{name}", std::process::id()))
}

#[test]
fn frames_round_trip_and_the_source_loops() {
    let path = temp_path("loop.y4m");
    let mut camera = SyntheticCamera::new(320, 180);
    let written: Vec<_> = (0..3)
        .map(|i| camera.next_frame(1_000_000 * (i + 1)))
        .collect();
    let mut sink = Y4mSink::create(&path, 320, 180, 30).unwrap();
    for frame in &written {
        sink.write(frame).unwrap();
    }
    drop(sink);

    let mut source = Y4mSource::open(&path).unwrap();
    assert_eq!(source.size(), (320, 180));
    assert_eq!(source.frame_rate(), (30, 1));
    for round in 0..2 {
        for (i, original) in written.iter().enumerate() {
            let frame = source.next_frame(77).unwrap();
            assert_eq!(frame.data, original.data, "round {round} frame {i}");
            assert_eq!(frame.capture_us, 77);
            assert_eq!(latency_strip::read(&frame), Some((i as u32 + 1) * 1000));
        }
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_sink_refuses_a_frame_of_another_size() {
    let path = temp_path("size.y4m");
    let mut sink = Y4mSink::create(&path, 64, 32, 30).unwrap();
    let frame = SyntheticCamera::new(128, 64).next_frame(0);
    assert!(matches!(
        sink.write(&frame),
        Err(Y4mError::SizeMismatch { .. })
    ));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn malformed_files_get_errors_that_say_what_is_wrong() {
    let cases: [(&str, &[u8], &str); 5] = [
        (
            "garbage.y4m",
            b"this is not video at all\n",
            "not a valid YUV4MPEG2",
        ),
        ("c444.y4m", b"YUV4MPEG2 W4 H4 F30:1 C444\nFRAME\n", "C444"),
        (
            "empty.y4m",
            b"YUV4MPEG2 W4 H4 F30:1 C420jpeg\n",
            "no complete frame",
        ),
        (
            "truncated.y4m",
            b"YUV4MPEG2 W4 H4 F30:1 C420jpeg\nFRAME\n0123",
            "cut short",
        ),
        ("zero.y4m", b"YUV4MPEG2 W0 H4 F30:1 C420jpeg\n", "YUV4MPEG2"),
    ];
    for (name, bytes, expected) in cases {
        let path = temp_path(name);
        std::fs::write(&path, bytes).unwrap();
        let err = Y4mSource::open(&path)
            .and_then(|mut s| s.next_frame(0))
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains(expected), "{name}: {message}");
        assert!(
            message.contains(&path.display().to_string()),
            "{name}: {message}"
        );
        std::fs::remove_file(&path).unwrap();
    }
    let missing = Y4mSource::open("/nonexistent/kith.y4m").unwrap_err();
    assert!(matches!(missing, Y4mError::Open { .. }), "{missing}");
}
