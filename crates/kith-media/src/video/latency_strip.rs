//! The latency strip of `shared/latency-strip.md`: the capture time in
//! milliseconds, stamped as 32 black/white cells across the top of a frame,
//! so any receiver that decodes the frame can measure glass-to-glass latency.

use crate::frame::VideoFrame;

const CELLS: u32 = 32;
const WHITE: u8 = 235;
const BLACK: u8 = 16;
const NEUTRAL_CHROMA: u8 = 128;
/// A cell whose luma is further than this from black and white is unreadable.
const TOLERANCE: i32 = 40;

/// Height in rows of the strip for a frame of this height.
pub fn strip_height(height: u32) -> u32 {
    let rows = (height / 12).max(8);
    (rows & !1).min(height & !1)
}

fn cell_span(width: u32, cell: u32) -> (u32, u32) {
    (cell * width / CELLS, (cell + 1) * width / CELLS)
}

/// Writes `capture_ms mod 2^32` into the top of the frame.
pub fn stamp(frame: &mut VideoFrame, capture_ms: u64) {
    let (width, height) = (frame.width, frame.height);
    let rows = strip_height(height);
    let bits = capture_ms as u32; // modulo 2^32 by the format's definition
    let (cw, _) = VideoFrame::chroma_size(width, height);
    let (y, u, v) = frame.planes_mut();
    for cell in 0..CELLS {
        let luma = if bits >> (31 - cell) & 1 == 1 {
            WHITE
        } else {
            BLACK
        };
        let (x0, x1) = cell_span(width, cell);
        for row in 0..rows {
            let start = (row * width + x0) as usize;
            y[start..start + (x1 - x0) as usize].fill(luma);
        }
    }
    for row in 0..rows / 2 {
        let start = (row * cw) as usize;
        u[start..start + cw as usize].fill(NEUTRAL_CHROMA);
        v[start..start + cw as usize].fill(NEUTRAL_CHROMA);
    }
}

/// Reads the stamped time back; `None` when any cell is not clearly black or
/// white (the strip did not survive coding, or there is none).
pub fn read(frame: &VideoFrame) -> Option<u32> {
    let (width, height) = (frame.width, frame.height);
    let rows = strip_height(height);
    if width < CELLS || rows < 2 {
        return None;
    }
    let y = frame.y();
    let centre_row = rows / 2;
    let mut value = 0u32;
    for cell in 0..CELLS {
        let (x0, x1) = cell_span(width, cell);
        let centre = (x0 + x1) / 2;
        // Average a small block around the centre to ride over coding noise.
        let half = ((x1 - x0) / 4).clamp(0, 2);
        let (mut sum, mut count) = (0u32, 0u32);
        for row in centre_row.saturating_sub(1)..=(centre_row + 1).min(rows - 1) {
            for x in centre - half..=centre + half {
                sum += u32::from(y[(row * width + x) as usize]);
                count += 1;
            }
        }
        let luma = (sum / count.max(1)) as i32;
        let near_white = (luma - i32::from(WHITE)).abs() <= TOLERANCE;
        let near_black = (luma - i32::from(BLACK)).abs() <= TOLERANCE;
        if !near_white && !near_black {
            return None;
        }
        value = value << 1 | u32::from(luma > 128);
    }
    Some(value)
}

/// Milliseconds from the stamped time to `now_ms`, modulo 2^32.
pub fn latency_ms(stamped: u32, now_ms: u64) -> u32 {
    (now_ms as u32).wrapping_sub(stamped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_height_follows_the_format() {
        assert_eq!(strip_height(720), 60);
        assert_eq!(strip_height(360), 30);
        assert_eq!(strip_height(90), 8);
        assert_eq!(strip_height(100), 8);
        assert_eq!(strip_height(300), 24);
        assert_eq!(strip_height(1080), 90);
        assert_eq!(strip_height(130), 10);
    }

    #[test]
    fn stamp_then_read_round_trips_at_many_sizes() {
        for (w, h) in [(1280, 720), (640, 360), (320, 180), (33, 17), (1920, 1080)] {
            let mut frame = VideoFrame::filled(w, h, 80, 90, 100, 0);
            for t in [0u64, 1, 0xFFFF_FFFF, 1_767_225_600_123, 0xA5A5_5A5A] {
                stamp(&mut frame, t);
                assert_eq!(read(&frame), Some(t as u32), "{w}x{h} t={t}");
            }
        }
    }

    #[test]
    fn an_unstamped_frame_reads_as_none() {
        let frame = VideoFrame::filled(640, 360, 128, 128, 128, 0);
        assert_eq!(read(&frame), None);
    }

    #[test]
    fn latency_wraps_modulo_2_32() {
        assert_eq!(latency_ms(10, 25), 15);
        assert_eq!(latency_ms(0xFFFF_FFF0, 0x1_0000_0005), 0x15);
    }
}
