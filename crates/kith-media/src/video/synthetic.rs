//! A synthetic camera: moving, textured content (so encoders do real work)
//! with the latency strip on top.

use crate::frame::VideoFrame;
use crate::video::latency_strip;

/// Draws frames of a fixed size; frame `n` is a pure function of `n`.
#[derive(Debug, Clone)]
pub struct SyntheticCamera {
    width: u32,
    height: u32,
    frame_index: u64,
}

impl SyntheticCamera {
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width: width.max(32),
            height: height.max(16),
            frame_index: 0,
        }
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The next frame, stamped with `capture_us` (microseconds since the epoch).
    pub fn next_frame(&mut self, capture_us: u64) -> VideoFrame {
        let frame = self.draw(self.frame_index, capture_us);
        self.frame_index += 1;
        frame
    }

    /// Frame number `index`, stamped with `capture_us`.
    pub fn draw(&self, index: u64, capture_us: u64) -> VideoFrame {
        let (w, h) = (self.width, self.height);
        let mut frame = VideoFrame::filled(w, h, 0, 128, 128, capture_us);
        let t = index as u32;
        let (cw, ch) = VideoFrame::chroma_size(w, h);
        let (y, u, v) = frame.planes_mut();
        // A diagonal gradient that scrolls, with a fine texture that moves
        // with it: smooth areas and detail, both in motion.
        for row in 0..h {
            let line = &mut y[(row * w) as usize..((row + 1) * w) as usize];
            for (col, px) in line.iter_mut().enumerate() {
                let col = col as u32;
                let gradient = (col + row + 2 * t) % 256;
                let texture =
                    ((col.wrapping_mul(7) ^ row.wrapping_mul(13)).wrapping_add(t * 3)) & 31;
                *px = (16 + (gradient * 180 / 256) + texture) as u8;
            }
        }
        for row in 0..ch {
            for col in 0..cw {
                let i = (row * cw + col) as usize;
                u[i] = (64 + (col * 2 + t) % 128) as u8;
                v[i] = (64 + (row * 2 + 2 * t) % 128) as u8;
            }
        }
        // A bouncing box, the kind of motion a face makes.
        let size = (h / 4).max(4);
        let span_x = w.saturating_sub(size).max(1);
        let span_y = h.saturating_sub(size).max(1);
        let bx = bounce(t * 7, span_x);
        let by = bounce(t * 5, span_y);
        for row in by..(by + size).min(h) {
            for col in bx..(bx + size).min(w) {
                y[(row * w + col) as usize] = 200 - ((row - by) * 100 / size) as u8;
            }
        }
        for row in by / 2..((by + size) / 2).min(ch) {
            for col in bx / 2..((bx + size) / 2).min(cw) {
                u[(row * cw + col) as usize] = 90;
                v[(row * cw + col) as usize] = 200;
            }
        }
        latency_strip::stamp(&mut frame, capture_us / 1000);
        frame
    }
}

/// Position moving back and forth over `0..span`.
fn bounce(step: u32, span: u32) -> u32 {
    let period = 2 * span;
    let p = step % period;
    if p < span { p } else { period - p - 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_move_and_carry_their_capture_time() {
        let mut camera = SyntheticCamera::new(640, 360);
        let a = camera.next_frame(1_000_000);
        let b = camera.next_frame(1_033_000);
        assert_ne!(a.data, b.data, "content must move");
        assert_eq!(latency_strip::read(&a), Some(1000));
        assert_eq!(latency_strip::read(&b), Some(1033));
        assert_eq!(a.data.len(), VideoFrame::byte_len(640, 360));
    }

    #[test]
    fn odd_sizes_work() {
        let mut camera = SyntheticCamera::new(641, 361);
        let frame = camera.next_frame(5_000);
        assert_eq!(latency_strip::read(&frame), Some(5));
    }
}
