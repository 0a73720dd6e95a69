//! Camera pixel formats → I420.
//!
//! The YUYV and NV12 repacks are hand-written: they are a few lines each, and
//! the one crate that does them (`yuvutils-rs` 0.8) is ~100k lines of SIMD
//! code, has no NV12→I420 repack, and documents panics on odd widths and
//! short buffers, whereas here a bad buffer must be an error. MJPEG is
//! decoded by `zune-jpeg` (pure Rust).

use std::panic::{AssertUnwindSafe, catch_unwind};

use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use super::error::CameraError;
use crate::frame::VideoFrame;

/// Pixel layouts a camera can deliver that Kith converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Motion JPEG: every frame a JPEG.
    Mjpeg,
    /// Packed 4:2:2, `Y0 U Y1 V` per two pixels.
    Yuyv,
    /// Y plane, then one interleaved `U V` plane at half size.
    Nv12,
    /// Y, U, V planes (already what Kith uses).
    I420,
}

/// Converts one camera buffer to an I420 [`VideoFrame`].
///
/// Buffers may be longer than needed (trailing bytes are ignored); a short or
/// malformed buffer is [`CameraError::CorruptFrame`], never a panic.
pub fn to_i420(
    data: &[u8],
    width: u32,
    height: u32,
    format: PixelFormat,
    capture_us: u64,
) -> Result<VideoFrame, CameraError> {
    if width == 0 || height == 0 {
        return Err(CameraError::corrupt(
            format,
            format!("empty frame size {width}x{height}"),
        ));
    }
    let mut frame = VideoFrame::filled(width, height, 0, 128, 128, capture_us);
    match format {
        PixelFormat::Yuyv => yuyv_to_i420(data, &mut frame)?,
        PixelFormat::Nv12 => nv12_to_i420(data, &mut frame)?,
        PixelFormat::I420 => {
            let len = frame.data.len();
            let src = need(data, len, format)?;
            frame.data.copy_from_slice(src);
        }
        PixelFormat::Mjpeg => mjpeg_to_i420(data, &mut frame)?,
    }
    Ok(frame)
}

/// The first `len` bytes of `data`, or a `CorruptFrame` saying it is short.
fn need(data: &[u8], len: usize, format: PixelFormat) -> Result<&[u8], CameraError> {
    data.get(..len).ok_or_else(|| {
        CameraError::corrupt(
            format,
            format!("buffer has {} bytes, needs {len}", data.len()),
        )
    })
}

fn avg2(a: u8, b: u8) -> u8 {
    (u16::from(a) + u16::from(b)).div_ceil(2) as u8
}

/// YUYV rows hold `ceil(w/2)` macropixels of 4 bytes (for odd widths the last
/// macropixel's second Y is padding). Chroma of rows `2r` and `2r+1` is
/// averaged into I420 chroma row `r`; an odd last row stands alone.
fn yuyv_to_i420(data: &[u8], frame: &mut VideoFrame) -> Result<(), CameraError> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (cw, ch) = VideoFrame::chroma_size(frame.width, frame.height);
    let (cw, ch) = (cw as usize, ch as usize);
    let stride = cw * 4;
    let src = need(data, stride * h, PixelFormat::Yuyv)?;
    let (yp, up, vp) = frame.planes_mut();
    for (row, line) in src.chunks_exact(stride).enumerate() {
        let yrow = &mut yp[row * w..(row + 1) * w];
        for (x, y) in yrow.iter_mut().enumerate() {
            *y = line[(x / 2) * 4 + (x % 2) * 2];
        }
    }
    for r in 0..ch {
        let top = &src[2 * r * stride..(2 * r + 1) * stride];
        let bottom = if 2 * r + 1 < h {
            &src[(2 * r + 1) * stride..(2 * r + 2) * stride]
        } else {
            top
        };
        for c in 0..cw {
            up[r * cw + c] = avg2(top[c * 4 + 1], bottom[c * 4 + 1]);
            vp[r * cw + c] = avg2(top[c * 4 + 3], bottom[c * 4 + 3]);
        }
    }
    Ok(())
}

/// NV12: Y plane (`w` per row), then `ch` rows of `cw` interleaved U,V pairs.
fn nv12_to_i420(data: &[u8], frame: &mut VideoFrame) -> Result<(), CameraError> {
    let luma = frame.width as usize * frame.height as usize;
    let (cw, ch) = VideoFrame::chroma_size(frame.width, frame.height);
    let chroma = cw as usize * ch as usize;
    let src = need(data, luma + 2 * chroma, PixelFormat::Nv12)?;
    let (yp, up, vp) = frame.planes_mut();
    yp.copy_from_slice(&src[..luma]);
    for ((pair, u), v) in src[luma..]
        .chunks_exact(2)
        .zip(up.iter_mut())
        .zip(vp.iter_mut())
    {
        *u = pair[0];
        *v = pair[1];
    }
    Ok(())
}

/// Full-range (JFIF) luma → limited (video) range, as the rest of Kith's
/// I420 is BT.601 limited range.
fn luma_full_to_limited(y: u8) -> u8 {
    (16 + (u32::from(y) * 219 + 127) / 255) as u8
}

fn chroma_full_to_limited(c: u16) -> u8 {
    // `c` is a sum of four samples (0..=1020); centre on 128 and scale by 224/255.
    let centred = i32::from(c) - 4 * 128;
    (128 + (centred * 224 + centred.signum() * 510) / 1020).clamp(16, 240) as u8
}

fn mjpeg_to_i420(data: &[u8], frame: &mut VideoFrame) -> Result<(), CameraError> {
    const FMT: PixelFormat = PixelFormat::Mjpeg;
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err(CameraError::corrupt(FMT, "no JPEG start-of-image marker"));
    }
    check_complete(data)?;
    let (w, h) = (frame.width as usize, frame.height as usize);
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(w.max(1))
        .set_max_height(h.max(1));

    // Find the JPEG's colour space first, then ask for YCbCr (or luma) so the
    // planes need no RGB round trip.
    let mut probe = JpegDecoder::new_with_options(data, options);
    catch_decoder_panic(|| probe.decode_headers())?
        .map_err(|e| CameraError::corrupt(FMT, e.to_string()))?;
    let (jw, jh) = probe
        .dimensions()
        .ok_or_else(|| CameraError::corrupt(FMT, "no frame header"))?;
    if (jw, jh) != (w, h) {
        return Err(CameraError::corrupt(
            FMT,
            format!("JPEG is {jw}x{jh}, camera said {w}x{h}"),
        ));
    }
    let out = match probe.get_input_colorspace() {
        Some(ColorSpace::Luma) => ColorSpace::Luma,
        Some(ColorSpace::YCbCr) => ColorSpace::YCbCr,
        _ => ColorSpace::RGB,
    };
    let mut decoder = JpegDecoder::new_with_options(data, options.jpeg_set_out_colorspace(out));
    let pixels = catch_decoder_panic(|| decoder.decode())?
        .map_err(|e| CameraError::corrupt(FMT, e.to_string()))?;
    let n = out.num_components();
    let pixels = need(&pixels, w * h * n, FMT)?;

    let (cw, ch) = VideoFrame::chroma_size(frame.width, frame.height);
    let (cw, ch) = (cw as usize, ch as usize);
    let (yp, up, vp) = frame.planes_mut();
    // Per pixel (Y, Cb, Cr), full range.
    let ycc = |i: usize| -> (u8, u8, u8) {
        let p = &pixels[i * n..i * n + n];
        match out {
            ColorSpace::Luma => (p[0], 128, 128),
            ColorSpace::YCbCr => (p[0], p[1], p[2]),
            _ => rgb_to_ycc_full(p[0], p[1], p[2]),
        }
    };
    for (i, y) in yp.iter_mut().enumerate() {
        *y = luma_full_to_limited(ycc(i).0);
    }
    for r in 0..ch {
        for c in 0..cw {
            // 2x2 average; edge pixels are repeated for odd sizes.
            let (x0, y0) = (2 * c, 2 * r);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (mut su, mut sv) = (0u16, 0u16);
            for (x, y) in [(x0, y0), (x1, y0), (x0, y1), (x1, y1)] {
                let (_, cb, cr) = ycc(y * w + x);
                su += u16::from(cb);
                sv += u16::from(cr);
            }
            up[r * cw + c] = chroma_full_to_limited(su);
            vp[r * cw + c] = chroma_full_to_limited(sv);
        }
    }
    Ok(())
}

/// zune-jpeg fills a truncated scan with grey instead of failing, and USB
/// cameras do deliver cut-off frames; so walk the header segments to the
/// first start-of-scan and require an end-of-image marker after it. (Inside
/// entropy-coded data `FF` is only ever followed by `00` or a restart marker,
/// so `FF D9` there is the real end.)
fn check_complete(data: &[u8]) -> Result<(), CameraError> {
    let bad = |detail: &str| CameraError::corrupt(PixelFormat::Mjpeg, detail);
    let mut i = 2;
    let scan = loop {
        let (Some(&ff), Some(&marker)) = (data.get(i), data.get(i + 1)) else {
            return Err(bad("truncated in the JPEG headers"));
        };
        if ff != 0xFF {
            return Err(bad("malformed JPEG header segment"));
        }
        match marker {
            0xFF => i += 1, // fill byte
            0x01 | 0xD0..=0xD7 => i += 2,
            0xD9 => return Err(bad("end of image before any image data")),
            _ => {
                let (Some(&hi), Some(&lo)) = (data.get(i + 2), data.get(i + 3)) else {
                    return Err(bad("truncated in the JPEG headers"));
                };
                let len = usize::from(u16::from_be_bytes([hi, lo]));
                if len < 2 {
                    return Err(bad("malformed JPEG segment length"));
                }
                i += 2 + len;
                if marker == 0xDA {
                    break i;
                }
            }
        }
    };
    let rest = data.get(scan..).unwrap_or_default();
    if rest.windows(2).any(|w| w == [0xFF, 0xD9]) {
        Ok(())
    } else {
        Err(bad("truncated: no end-of-image marker"))
    }
}

/// JFIF (full-range BT.601) RGB → YCbCr.
fn rgb_to_ycc_full(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let cb = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
    let cr = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
    let q = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    (q(y), q(cb), q(cr))
}

/// zune-jpeg is fuzzed, but a camera is an untrusted source: turn a decoder
/// panic into a corrupt-frame error rather than taking the call down.
fn catch_decoder_panic<T>(f: impl FnOnce() -> T) -> Result<T, CameraError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| {
        tracing::warn!("JPEG decoder panicked on a camera frame");
        CameraError::corrupt(PixelFormat::Mjpeg, "JPEG decoder panicked")
    })
}
