//! H.264 Annex B byte streams: NAL units behind `00 00 01` or `00 00 00 01`
//! start codes, the form OpenH264 writes and an RTP depacketizer
//! (packetization-mode=1) rebuilds.

/// Coded slice of a non-IDR picture.
pub const NAL_SLICE: u8 = 1;
/// Coded slice of an IDR picture: the keyframe.
pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
/// Sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// Picture parameter set.
pub const NAL_PPS: u8 = 8;
/// Access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// The NAL units of an Annex B access unit, start codes removed.
///
/// `None` when the data does not begin with a start code (leading zero
/// bytes allowed), or a unit is empty or has its forbidden zero bit set:
/// whatever that is, it is not an H.264 byte stream.
pub fn split(data: &[u8]) -> Option<Vec<&[u8]>> {
    let first = start_code_at(data, 0)?;
    if data[..first.0].iter().any(|&b| b != 0) {
        return None;
    }
    let mut units = Vec::new();
    let mut payload = first.1;
    loop {
        let next = start_code_at(data, payload);
        let end = next.map_or(data.len(), |(at, _)| at);
        // Zero bytes before the next start code (trailing_zero_8bits) are
        // not part of the unit: a NAL unit never ends in 0x00.
        let mut unit = &data[payload..end];
        while let [rest @ .., 0] = unit {
            unit = rest;
        }
        match unit.first() {
            Some(header) if header & 0x80 == 0 => units.push(unit),
            _ => return None,
        }
        match next {
            Some((_, after)) => payload = after,
            None => return Some(units),
        }
    }
}

/// The first `00 00 01` at or after `from`: (where it starts, where its
/// payload starts).
fn start_code_at(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let tail = data.get(from..)?;
    tail.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|i| (from + i, from + i + 3))
}

/// `nal_unit_type` of a NAL unit (its first byte's low five bits).
pub fn nal_type(unit: &[u8]) -> Option<u8> {
    unit.first().map(|header| header & 0x1f)
}

/// What an access unit holds, by NAL unit type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Contents {
    /// Has a slice of an IDR picture.
    pub idr: bool,
    /// Has a coded slice of any picture (types 1 to 5).
    pub slices: bool,
    pub sps: bool,
    pub pps: bool,
}

impl Contents {
    /// A keyframe a decoder can start from: an IDR picture with its
    /// parameter sets.
    pub fn is_self_contained_keyframe(&self) -> bool {
        self.idr && self.sps && self.pps
    }
}

/// Summarises an access unit; `None` when it is not Annex B (see [`split`]).
pub fn contents(data: &[u8]) -> Option<Contents> {
    let mut contents = Contents::default();
    for unit in split(data)? {
        match nal_type(unit)? {
            NAL_IDR => {
                contents.idr = true;
                contents.slices = true;
            }
            2..=4 | NAL_SLICE => contents.slices = true,
            NAL_SPS => contents.sps = true,
            NAL_PPS => contents.pps = true,
            _ => {}
        }
    }
    Some(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let units = split(&data).expect("annex b");
        assert_eq!(units, [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5]]);
        let c = contents(&data).expect("annex b");
        assert!(c.is_self_contained_keyframe() && c.slices);
    }

    #[test]
    fn rejects_what_is_not_annex_b() {
        assert_eq!(split(&[]), None);
        assert_eq!(split(&[0x65, 1, 2]), None);
        assert_eq!(split(&[7, 0, 0, 1, 0x65]), None);
        // Empty unit, forbidden zero bit.
        assert_eq!(split(&[0, 0, 1, 0, 0, 1, 0x41]), None);
        assert_eq!(split(&[0, 0, 1]), None);
        assert_eq!(split(&[0, 0, 1, 0xe5, 1]), None);
        let delta = contents(&[0, 0, 0, 1, 0x41, 9]).expect("annex b");
        assert!(delta.slices && !delta.idr && !delta.sps);
    }
}
