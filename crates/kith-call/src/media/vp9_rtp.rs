//! The VP9 RTP payload format (RFC 9628), both ways, written by hand
//! because webrtc-rs's is not usable with browsers:
//!
//! - Its depacketizer (`Vp9Packet`) keeps the reference list (`P_DIFF`) of
//!   every packet it has parsed and refuses all packets once three have
//!   gathered, so of Chromium's stream (one `P_DIFF` per inter frame) only
//!   keyframes got through: 2.4 fps. [`Vp9Depacketizer`] keeps no state.
//! - Its payloader marks every frame as flexible mode with no references
//!   and no scalability structure, so the receiver cannot tell which frames
//!   depend on which. [`Vp9Payloader`] sends what Chromium sends for one
//!   spatial and one temporal layer: non-flexible mode, `P` on inter frames,
//!   and on keyframes the scalability structure (size, and a picture group
//!   of one frame that references the one before it).

use bytes::Bytes;
use rtc::rtp::packetizer::Depacketizer;
use rtc::shared::error::Error;

/// At most this many `P_DIFF` entries follow one another (RFC 9628).
const MAX_REFERENCES: usize = 3;

#[derive(Debug, Default, Clone, Copy)]
pub struct Vp9Depacketizer;

/// Splits encoded VP9 frames into RTP payloads.
#[derive(Debug)]
pub struct Vp9Payloader {
    /// 15 bits, one per frame.
    picture_id: u16,
}

impl Default for Vp9Payloader {
    fn default() -> Self {
        Self {
            picture_id: rand::random::<u16>() & 0x7FFF,
        }
    }
}

impl Vp9Payloader {
    /// The payloads of one frame, each at most `mtu` bytes.
    pub fn payload(
        &mut self,
        mtu: usize,
        frame: &Bytes,
        keyframe: bool,
        width: u32,
        height: u32,
    ) -> Vec<Bytes> {
        let picture_id = self.picture_id;
        self.picture_id = (self.picture_id + 1) & 0x7FFF;
        let mut payloads = Vec::new();
        let mut at = 0;
        while at < frame.len() {
            let first = at == 0;
            let mut header = Vec::with_capacity(12);
            header.push(0);
            header.push(0x80 | (picture_id >> 8) as u8);
            header.push(picture_id as u8);
            let mut flags = I;
            if !keyframe {
                flags |= P;
            }
            if first {
                flags |= B;
                if keyframe {
                    flags |= V;
                    // N_S = 0 (one spatial layer), Y (its size follows), G.
                    header.push(0x18);
                    header.extend_from_slice(&(width.min(0xFFFF) as u16).to_be_bytes());
                    header.extend_from_slice(&(height.min(0xFFFF) as u16).to_be_bytes());
                    // One picture in the group: T=0, U=0, R=1, P_DIFF=1.
                    header.extend_from_slice(&[1, 0x04, 1]);
                }
            }
            let room = mtu.saturating_sub(header.len()).max(1);
            let end = (at + room).min(frame.len());
            if end == frame.len() {
                flags |= E;
            }
            header[0] = flags;
            header.extend_from_slice(&frame[at..end]);
            payloads.push(Bytes::from(header));
            at = end;
        }
        payloads
    }
}

const I: u8 = 0x80;
const P: u8 = 0x40;
const L: u8 = 0x20;
const F: u8 = 0x10;
const B: u8 = 0x08;
const E: u8 = 0x04;
const V: u8 = 0x02;

/// A cursor over the descriptor that fails instead of reading past the end.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, Error> {
        let byte = *self.bytes.get(self.at).ok_or(Error::ErrShortPacket)?;
        self.at += 1;
        Ok(byte)
    }

    fn skip(&mut self, n: usize) -> Result<(), Error> {
        if self.at + n > self.bytes.len() {
            return Err(Error::ErrShortPacket);
        }
        self.at += n;
        Ok(())
    }
}

/// Length of the payload descriptor at the start of `payload`.
fn descriptor_len(payload: &[u8]) -> Result<usize, Error> {
    let mut cursor = Cursor {
        bytes: payload,
        at: 0,
    };
    let flags = cursor.byte()?;
    if flags & I != 0 && cursor.byte()? & 0x80 != 0 {
        // M: a 15-bit picture id.
        cursor.skip(1)?;
    }
    if flags & L != 0 {
        cursor.skip(1)?;
        if flags & F == 0 {
            // TL0PICIDX, non-flexible mode only.
            cursor.skip(1)?;
        }
    }
    if flags & F != 0 && flags & P != 0 {
        let mut references = 0;
        loop {
            references += 1;
            if references > MAX_REFERENCES {
                return Err(Error::ErrTooManyPDiff);
            }
            if cursor.byte()? & 0x01 == 0 {
                break;
            }
        }
    }
    if flags & V != 0 {
        // Scalability structure: N_S|Y|G, sizes per spatial layer, then the
        // picture group.
        let ss = cursor.byte()?;
        let layers = usize::from(ss >> 5) + 1;
        if ss & 0x10 != 0 {
            cursor.skip(layers * 4)?;
        }
        if ss & 0x08 != 0 {
            let pictures = cursor.byte()?;
            for _ in 0..pictures {
                let picture = cursor.byte()?;
                cursor.skip(usize::from((picture >> 2) & 0x03))?;
            }
        }
    }
    Ok(cursor.at)
}

impl Depacketizer for Vp9Depacketizer {
    fn depacketize(&mut self, packet: &Bytes) -> Result<Bytes, Error> {
        let len = descriptor_len(packet)?;
        Ok(packet.slice(len..))
    }

    fn is_partition_head(&self, payload: &Bytes) -> bool {
        payload.first().is_some_and(|flags| flags & B != 0)
    }

    fn is_partition_tail(&self, marker: bool, _payload: &Bytes) -> bool {
        marker
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::unusual_byte_groupings)]
mod tests {
    use super::*;

    fn depacketize(bytes: &[u8]) -> Result<Vec<u8>, Error> {
        Vp9Depacketizer
            .depacketize(&Bytes::copy_from_slice(bytes))
            .map(|b| b.to_vec())
    }

    #[test]
    fn a_stream_of_flexible_mode_inter_frames_all_come_through() {
        // Chromium's shape: I (15-bit picture id), P, F, B, E with one
        // P_DIFF, frame after frame; webrtc-rs refused all after the third.
        for picture in 0..100u16 {
            let id = 0x8000 | picture;
            let packet = [
                I | P | F | B | 0x04,
                (id >> 8) as u8,
                id as u8,
                1 << 1,
                0xAA,
                0xBB,
            ];
            assert_eq!(depacketize(&packet).unwrap(), vec![0xAA, 0xBB]);
        }
    }

    #[test]
    fn a_keyframe_with_layer_indices_and_a_scalability_structure() {
        let packet = [
            I | L | F | B | 0x04 | V,
            0x12,          // 7-bit picture id
            0b000_0_000_0, // T, U, S, D
            0b000_1_1_000, // N_S=0, Y, G
            0x05,
            0x00,
            0x02,
            0xD0,          // 1280×720
            1,             // one picture in the group
            0b000_0_01_00, // T=0, U=0, R=1
            1,             // its P_DIFF
            0xCC,
        ];
        assert_eq!(depacketize(&packet).unwrap(), vec![0xCC]);
    }

    #[test]
    fn non_flexible_mode_carries_tl0picidx() {
        let packet = [I | L | B, 0x01, 0x00, 0x07, 0xDD];
        assert_eq!(depacketize(&packet).unwrap(), vec![0xDD]);
    }

    #[test]
    fn three_references_are_allowed_and_a_fourth_is_refused() {
        let three = [P | F | B, 0x03, 0x05, 0x06, 0xEE];
        assert_eq!(depacketize(&three).unwrap(), vec![0xEE]);
        let four = [P | F | B, 0x03, 0x05, 0x07, 0x08, 0xEE];
        assert!(depacketize(&four).is_err());
    }

    #[test]
    fn truncated_descriptors_are_errors_not_panics() {
        let full = [I | L | F | B | V | P, 0x80, 0x01, 0x00, 0x03, 0xF8, 0x05];
        for len in 0..full.len() {
            assert!(depacketize(&full[..len]).is_err(), "length {len}");
        }
    }

    #[test]
    fn payloads_of_a_keyframe_and_an_inter_frame_come_back_whole() {
        let mut payloader = Vp9Payloader::default();
        let frame = Bytes::from((0..3000u32).map(|i| i as u8).collect::<Vec<_>>());
        for keyframe in [true, false] {
            let payloads = payloader.payload(1100, &frame, keyframe, 1280, 720);
            assert!(payloads.len() >= 3 && payloads.iter().all(|p| p.len() <= 1100));
            let mut whole = Vec::new();
            for (index, payload) in payloads.iter().enumerate() {
                let flags = payload[0];
                assert_eq!(flags & B != 0, index == 0);
                assert_eq!(flags & E != 0, index == payloads.len() - 1);
                assert_eq!(flags & P != 0, !keyframe, "P marks inter frames");
                assert_eq!(flags & V != 0, keyframe && index == 0, "SS on keyframes");
                assert_eq!(flags & F, 0, "non-flexible mode");
                whole.extend(depacketize(payload).unwrap());
            }
            assert_eq!(whole, frame.to_vec());
        }
        let key = payloader.payload(1100, &frame, true, 1280, 720);
        // The scalability structure carries the size.
        assert_eq!(&key[0][4..8], &[0x05, 0x00, 0x02, 0xD0]);
    }

    #[test]
    fn picture_ids_count_frames_and_wrap_at_15_bits() {
        let mut payloader = Vp9Payloader { picture_id: 0x7FFF };
        let frame = Bytes::from_static(&[1, 2, 3]);
        let id = |p: &Bytes| (u16::from(p[1] & 0x7F) << 8) | u16::from(p[2]);
        assert_eq!(
            id(&payloader.payload(1100, &frame, false, 64, 64)[0]),
            0x7FFF
        );
        assert_eq!(id(&payloader.payload(1100, &frame, false, 64, 64)[0]), 0);
    }

    #[test]
    fn the_begin_bit_marks_a_frame_head() {
        assert!(Vp9Depacketizer.is_partition_head(&Bytes::from_static(&[B])));
        assert!(!Vp9Depacketizer.is_partition_head(&Bytes::from_static(&[I])));
        assert!(!Vp9Depacketizer.is_partition_head(&Bytes::new()));
    }
}
