//! Resizing I420 frames, plane by plane, with `fast_image_resize`.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::frame::VideoFrame;

/// Why a frame could not be scaled.
#[derive(Debug, thiserror::Error)]
#[error("cannot scale {from_w}x{from_h} to {to_w}x{to_h}: {reason}")]
pub struct ScaleError {
    pub from_w: u32,
    pub from_h: u32,
    pub to_w: u32,
    pub to_h: u32,
    pub reason: String,
}

/// Scales I420 frames; keeps its buffers between calls.
#[derive(Debug)]
pub struct Scaler {
    resizer: Resizer,
    options: ResizeOptions,
}

impl Default for Scaler {
    fn default() -> Self {
        Self {
            resizer: Resizer::new(),
            // Bilinear: cheap enough for every frame of a call, and smooth
            // enough that downscaled video stays easy to encode.
            options: ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        }
    }
}

impl Scaler {
    /// `frame` at `width`x`height` (returned as is when the size already matches).
    pub fn scale(
        &mut self,
        frame: &VideoFrame,
        width: u32,
        height: u32,
    ) -> Result<VideoFrame, ScaleError> {
        if (frame.width, frame.height) == (width, height) {
            return Ok(frame.clone());
        }
        let error = |reason: String| ScaleError {
            from_w: frame.width,
            from_h: frame.height,
            to_w: width,
            to_h: height,
            reason,
        };
        if width == 0 || height == 0 {
            return Err(error("the target size is empty".into()));
        }
        let mut out = VideoFrame::filled(width, height, 0, 128, 128, frame.capture_us);
        let (src_cw, src_ch) = VideoFrame::chroma_size(frame.width, frame.height);
        let (dst_cw, dst_ch) = VideoFrame::chroma_size(width, height);
        let (y, u, v) = out.planes_mut();
        let planes = [
            (frame.y(), frame.width, frame.height, y, width, height),
            (frame.u(), src_cw, src_ch, u, dst_cw, dst_ch),
            (frame.v(), src_cw, src_ch, v, dst_cw, dst_ch),
        ];
        for (src, sw, sh, dst, dw, dh) in planes {
            let src =
                ImageRef::new(sw, sh, src, PixelType::U8).map_err(|e| error(e.to_string()))?;
            let mut dst = Image::from_slice_u8(dw, dh, dst, PixelType::U8)
                .map_err(|e| error(e.to_string()))?;
            self.resizer
                .resize(&src, &mut dst, &self.options)
                .map_err(|e| error(e.to_string()))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_each_plane_and_keeps_flat_colours() {
        let frame = VideoFrame::filled(1280, 720, 100, 60, 200, 42);
        let mut scaler = Scaler::default();
        let small = scaler.scale(&frame, 640, 360).expect("scales");
        assert_eq!(
            (small.width, small.height, small.capture_us),
            (640, 360, 42)
        );
        assert!(small.y().iter().all(|&p| p == 100));
        assert!(small.u().iter().all(|&p| p == 60));
        assert!(small.v().iter().all(|&p| p == 200));
        let odd = scaler.scale(&frame, 333, 187).expect("odd sizes scale");
        assert_eq!(odd.data.len(), VideoFrame::byte_len(333, 187));
        assert!(scaler.scale(&frame, 0, 10).is_err());
    }
}
