//! Just enough of the AV1 bitstream (OBU headers) to tell what a temporal
//! unit holds; RTP packetization (in the call engine) builds on this.

/// OBU types of the AV1 specification, section 6.2.2.
pub const OBU_SEQUENCE_HEADER: u8 = 1;
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;
pub const OBU_FRAME_HEADER: u8 = 3;
pub const OBU_TILE_GROUP: u8 = 4;
pub const OBU_METADATA: u8 = 5;
pub const OBU_FRAME: u8 = 6;
pub const OBU_PADDING: u8 = 15;

/// One OBU inside a temporal unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObuSpan {
    pub kind: u8,
    /// Start of the OBU (its header) in the temporal unit.
    pub start: usize,
    /// Byte length of the whole OBU, header included.
    pub len: usize,
}

/// Reads an unsigned LEB128 value; returns it and the bytes it took.
pub fn read_leb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Splits a temporal unit (OBUs with size fields, as encoders emit them)
/// into its OBUs; `None` when it is malformed.
pub fn split(unit: &[u8]) -> Option<Vec<ObuSpan>> {
    let mut spans = Vec::new();
    let mut at = 0;
    while at < unit.len() {
        let header = unit[at];
        if header & 0x80 != 0 {
            return None; // forbidden bit
        }
        let kind = (header >> 3) & 0x0f;
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let mut cursor = at + 1 + usize::from(has_extension);
        let payload = if has_size {
            let (size, used) = read_leb128(unit.get(cursor..)?)?;
            cursor += used;
            usize::try_from(size).ok()?
        } else {
            unit.len().checked_sub(cursor)?
        };
        let end = cursor.checked_add(payload)?;
        if end > unit.len() {
            return None;
        }
        spans.push(ObuSpan {
            kind,
            start: at,
            len: end - at,
        });
        at = end;
    }
    Some(spans)
}

/// Whether the temporal unit carries a sequence header.
pub fn has_sequence_header(unit: &[u8]) -> bool {
    split(unit).is_some_and(|spans| spans.iter().any(|s| s.kind == OBU_SEQUENCE_HEADER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sized_obus() {
        // temporal delimiter (size 0), then a padding OBU with 2 bytes
        let unit = [0x12, 0x00, 0x7a, 0x02, 0xaa, 0xbb];
        let spans = split(&unit).expect("valid");
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].kind, OBU_TEMPORAL_DELIMITER);
        assert_eq!(spans[1].kind, OBU_PADDING);
        assert_eq!(spans[1].len, 4);
        assert!(!has_sequence_header(&unit));
        assert!(split(&[0x7a, 0x05, 0x00]).is_none(), "overrun");
        assert!(split(&[0x80]).is_none(), "forbidden bit");
    }

    #[test]
    fn leb128() {
        assert_eq!(read_leb128(&[0x00]), Some((0, 1)));
        assert_eq!(read_leb128(&[0xe5, 0x8e, 0x26]), Some((624_485, 3)));
        assert_eq!(read_leb128(&[0x80]), None);
    }
}
