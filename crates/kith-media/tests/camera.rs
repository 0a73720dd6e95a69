#![allow(clippy::unwrap_used)]

use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use kith_media::camera::{
    Camera, CameraChoice, CameraError, CameraRequest, PixelFormat, choose_format, list_cameras,
    to_i420,
};

const REQ: CameraRequest = CameraRequest {
    width: 640,
    height: 480,
    fps: 30,
};

// ---------- devices (this machine has no camera) ----------

#[test]
fn list_cameras_is_ok_and_empty_without_a_camera() {
    let cameras = list_cameras().unwrap();
    assert!(
        cameras.is_empty(),
        "expected no camera here, got {cameras:?}"
    );
}

fn assert_not_found(choice: CameraChoice) {
    let err = Camera::open(&choice, REQ).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CameraError::NotFound { .. }), "{err:?}");
    assert!(msg.contains("no camera was found"), "{msg}");
    assert!(msg.contains("--video synthetic"), "{msg}");
}

#[test]
fn opening_index_0_is_not_found() {
    assert_not_found(CameraChoice::Index(0));
}

#[test]
fn opening_unknown_name_is_not_found() {
    assert_not_found(CameraChoice::Name("no-such-camera".into()));
}

#[test]
fn not_found_lists_available_cameras() {
    let err = CameraError::NotFound {
        wanted: "camera index 3".into(),
        available: vec!["Webcam (0)".into()],
    };
    let msg = err.to_string();
    assert!(
        msg.contains("Webcam (0)") && msg.contains("--video synthetic"),
        "{msg}"
    );
}

// ---------- format choice ----------

#[test]
fn choose_format_prefers_resolution_then_fps_then_mjpeg() {
    use PixelFormat::*;
    let offered = [
        (1920, 1080, 30, Mjpeg),
        (640, 480, 15, Yuyv),
        (640, 480, 30, Yuyv),
        (640, 480, 30, Mjpeg),
        (640, 480, 60, Nv12),
        (320, 240, 30, Yuyv),
    ];
    assert_eq!(choose_format(&offered, REQ), Some((640, 480, 30, Mjpeg)));
    // No exact fps: at-or-above beats below.
    let offered = [(640, 480, 24, Yuyv), (640, 480, 36, Nv12)];
    assert_eq!(choose_format(&offered, REQ), Some((640, 480, 36, Nv12)));
    // Resolution dominates fps.
    let offered = [(1280, 720, 30, Mjpeg), (648, 480, 5, Yuyv)];
    assert_eq!(choose_format(&offered, REQ), Some((648, 480, 5, Yuyv)));
    // Equal distance: the larger resolution wins.
    let offered = [(620, 480, 30, Yuyv), (660, 480, 30, Yuyv)];
    assert_eq!(choose_format(&offered, REQ), Some((660, 480, 30, Yuyv)));
    assert_eq!(choose_format(&[], REQ), None);
    assert_eq!(choose_format(&[(640, 480, 30, I420)], REQ), None);
}

// ---------- YUYV ----------

/// YUYV buffer whose Y is `10 * row + x`, U `100 + 10 * row + macropixel`,
/// V `200 - 10 * row - macropixel`; padding Y for odd widths is 255.
fn yuyv(w: usize, h: usize) -> Vec<u8> {
    let cw = w.div_ceil(2);
    let mut out = Vec::new();
    for r in 0..h {
        for m in 0..cw {
            let y0 = (10 * r + 2 * m) as u8;
            let y1 = if 2 * m + 1 < w {
                (10 * r + 2 * m + 1) as u8
            } else {
                255
            };
            out.extend([y0, (100 + 10 * r + m) as u8, y1, (200 - 10 * r - m) as u8]);
        }
    }
    out
}

#[test]
fn yuyv_even_size_exact() {
    let f = to_i420(&yuyv(4, 2), 4, 2, PixelFormat::Yuyv, 7).unwrap();
    assert_eq!((f.width, f.height, f.capture_us), (4, 2, 7));
    assert_eq!(f.y(), &[0, 1, 2, 3, 10, 11, 12, 13]);
    // rows 0 and 1 averaged, rounding up: (100+110+1)/2 = 105.
    assert_eq!(f.u(), &[105, 106]);
    assert_eq!(f.v(), &[195, 194]);
}

#[test]
fn yuyv_odd_size_exact() {
    let f = to_i420(&yuyv(3, 3), 3, 3, PixelFormat::Yuyv, 0).unwrap();
    assert_eq!(f.y(), &[0, 1, 2, 10, 11, 12, 20, 21, 22]);
    // chroma 2x2: row pair (0,1) averaged, row 2 alone.
    assert_eq!(f.u(), &[105, 106, 120, 121]);
    assert_eq!(f.v(), &[195, 194, 180, 179]);
    assert_eq!(f.data.len(), 9 + 2 * 4);
}

#[test]
fn yuyv_short_buffer_is_corrupt() {
    let data = yuyv(4, 4);
    for len in [0, 1, data.len() - 1] {
        let err = to_i420(&data[..len], 4, 4, PixelFormat::Yuyv, 0).unwrap_err();
        assert!(
            matches!(
                err,
                CameraError::CorruptFrame {
                    format: PixelFormat::Yuyv,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    // Odd width needs the padded macropixel too: 3 wide is 8 bytes a row.
    assert!(to_i420(&[0; 3 * 2 * 2], 3, 2, PixelFormat::Yuyv, 0).is_err());
    assert!(to_i420(&[0; 8 * 2], 3, 2, PixelFormat::Yuyv, 0).is_ok());
}

// ---------- NV12 ----------

#[test]
fn nv12_odd_size_exact() {
    // 3x3: 9 Y, then 2x2 chroma pairs.
    let mut data: Vec<u8> = (1..=9).collect();
    data.extend([50, 60, 51, 61, 52, 62, 53, 63]);
    let f = to_i420(&data, 3, 3, PixelFormat::Nv12, 0).unwrap();
    assert_eq!(f.y(), &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(f.u(), &[50, 51, 52, 53]);
    assert_eq!(f.v(), &[60, 61, 62, 63]);
}

#[test]
fn nv12_even_size_exact() {
    let mut data = vec![16; 4 * 2];
    data.extend([90, 240, 91, 241]);
    let f = to_i420(&data, 4, 2, PixelFormat::Nv12, 0).unwrap();
    assert_eq!(f.y(), &[16; 8]);
    assert_eq!(f.u(), &[90, 91]);
    assert_eq!(f.v(), &[240, 241]);
}

#[test]
fn nv12_short_buffer_is_corrupt() {
    let full = 9 + 8;
    for len in [0, 9, full - 1] {
        let err = to_i420(&vec![0; len], 3, 3, PixelFormat::Nv12, 0).unwrap_err();
        assert!(
            matches!(
                err,
                CameraError::CorruptFrame {
                    format: PixelFormat::Nv12,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[test]
fn i420_passthrough_and_zero_size() {
    let data: Vec<u8> = (0..17).collect();
    let f = to_i420(&data, 3, 3, PixelFormat::I420, 0).unwrap();
    assert_eq!(f.data, data);
    assert!(to_i420(&data[..16], 3, 3, PixelFormat::I420, 0).is_err());
    for fmt in [
        PixelFormat::Yuyv,
        PixelFormat::Nv12,
        PixelFormat::Mjpeg,
        PixelFormat::I420,
    ] {
        assert!(matches!(
            to_i420(&[], 0, 0, fmt, 0),
            Err(CameraError::CorruptFrame { .. })
        ));
    }
}

// ---------- MJPEG ----------

fn jpeg(rgb: &[u8], w: u16, h: u16, sampling: SamplingFactor) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, 95);
    enc.set_sampling_factor(sampling);
    enc.encode(rgb, w, h, ColorType::Rgb).unwrap();
    out
}

/// BT.601 limited-range Y, U, V of an sRGB colour.
fn bt601(r: u8, g: u8, b: u8) -> (f64, f64, f64) {
    let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
    let y = 16.0 + (0.299 * r + 0.587 * g + 0.114 * b) * 219.0 / 255.0;
    let u = 128.0 + (-0.168_736 * r - 0.331_264 * g + 0.5 * b) * 224.0 / 255.0;
    let v = 128.0 + (0.5 * r - 0.418_688 * g - 0.081_312 * b) * 224.0 / 255.0;
    (y, u, v)
}

fn assert_close(plane: &[u8], want: f64, tol: f64, what: &str) {
    for (i, &p) in plane.iter().enumerate() {
        assert!(
            (f64::from(p) - want).abs() <= tol,
            "{what}[{i}] = {p}, want {want:.1}"
        );
    }
}

#[test]
fn mjpeg_flat_colour_matches_bt601() {
    for (r, g, b) in [
        (200u8, 100u8, 50u8),
        (30, 200, 240),
        (255, 255, 255),
        (0, 0, 0),
    ] {
        flat_colour(r, g, b);
    }
}

fn flat_colour(r: u8, g: u8, b: u8) {
    let (ey, eu, ev) = bt601(r, g, b);
    for (w, h) in [(16u16, 16u16), (17, 13), (1, 1), (3, 5)] {
        for sampling in [
            SamplingFactor::R_4_2_2,
            SamplingFactor::R_4_2_0,
            SamplingFactor::R_4_4_4,
        ] {
            let rgb: Vec<u8> = [r, g, b].repeat(usize::from(w) * usize::from(h));
            let data = jpeg(&rgb, w, h, sampling);
            let f = to_i420(&data, w.into(), h.into(), PixelFormat::Mjpeg, 5).unwrap();
            assert_eq!((f.width, f.height, f.capture_us), (w.into(), h.into(), 5));
            let what = format!("rgb({r},{g},{b}) {w}x{h} {sampling:?}");
            assert_close(f.y(), ey, 2.5, &format!("Y {what}"));
            assert_close(f.u(), eu, 2.5, &format!("U {what}"));
            assert_close(f.v(), ev, 2.5, &format!("V {what}"));
        }
    }
}

#[test]
fn mjpeg_horizontal_gradient() {
    // Grey ramp: Y follows x, chroma stays neutral.
    let (w, h) = (64u16, 8u16);
    let mut rgb = Vec::new();
    for _ in 0..h {
        for x in 0..w {
            let v = (x * 4) as u8;
            rgb.extend([v, v, v]);
        }
    }
    let f = to_i420(
        &jpeg(&rgb, w, h, SamplingFactor::R_4_2_0),
        64,
        8,
        PixelFormat::Mjpeg,
        0,
    )
    .unwrap();
    for (i, &y) in f.y().iter().enumerate() {
        let x = (i % 64) as f64;
        let want = 16.0 + x * 4.0 * 219.0 / 255.0;
        assert!(
            (f64::from(y) - want).abs() <= 4.0,
            "Y at x={x}: {y} vs {want:.1}"
        );
    }
    assert_close(f.u(), 128.0, 2.0, "U");
    assert_close(f.v(), 128.0, 2.0, "V");
}

#[test]
fn mjpeg_greyscale_jpeg() {
    let mut out = Vec::new();
    Encoder::new(&mut out, 95)
        .encode(&[235; 5 * 3], 5, 3, ColorType::Luma)
        .unwrap();
    let f = to_i420(&out, 5, 3, PixelFormat::Mjpeg, 0).unwrap();
    assert_close(f.y(), 16.0 + 235.0 * 219.0 / 255.0, 2.0, "Y");
    assert_close(f.u(), 128.0, 0.0, "U");
    assert_close(f.v(), 128.0, 0.0, "V");
}

fn assert_mjpeg_corrupt(data: &[u8], w: u32, h: u32) {
    match to_i420(data, w, h, PixelFormat::Mjpeg, 0) {
        Err(CameraError::CorruptFrame {
            format: PixelFormat::Mjpeg,
            ..
        }) => {}
        other => panic!("{} bytes: expected CorruptFrame, got {other:?}", data.len()),
    }
}

#[test]
fn mjpeg_corrupt_inputs_are_errors() {
    let rgb: Vec<u8> = (0..32 * 32 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let good = jpeg(&rgb, 32, 32, SamplingFactor::R_4_2_2);
    assert!(to_i420(&good, 32, 32, PixelFormat::Mjpeg, 0).is_ok());
    assert_mjpeg_corrupt(&[], 32, 32);
    assert_mjpeg_corrupt(b"not a jpeg at all", 32, 32);
    assert_mjpeg_corrupt(&good[..2], 32, 32);
    assert_mjpeg_corrupt(&good[..good.len() / 2], 32, 32);
    assert_mjpeg_corrupt(&good[..good.len() - 20], 32, 32);
    // Size other than what the camera negotiated.
    assert_mjpeg_corrupt(&good, 64, 32);
    assert_mjpeg_corrupt(&good, 32, 31);
}

#[test]
fn mjpeg_every_truncation_and_bitflip_is_handled_without_panic() {
    let rgb: Vec<u8> = (0..24 * 16 * 3).map(|i| (i * 13 % 256) as u8).collect();
    let good = jpeg(&rgb, 24, 16, SamplingFactor::R_4_2_0);
    let mut truncated_ok = 0;
    for len in 0..good.len() {
        if to_i420(&good[..len], 24, 16, PixelFormat::Mjpeg, 0).is_ok() {
            truncated_ok += 1;
        }
    }
    assert_eq!(truncated_ok, 0, "truncated JPEGs decoded");
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0xA5;
        // Ok or Err are both fine; a panic is not.
        let _ = to_i420(&bad, 24, 16, PixelFormat::Mjpeg, 0);
    }
}
