//! Picking the stream format to ask a device for.

use cpal::{
    BufferSize, SampleFormat, SupportedBufferSize, SupportedStreamConfig,
    SupportedStreamConfigRange,
};

use crate::frame::SAMPLE_RATE;

/// Which format to open a device in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormatPreference {
    /// Ask for 48 kHz `f32` in the wanted channel count, so a sound server that
    /// converts (PulseAudio, PipeWire) does the work and we only copy. Falls back
    /// to the closest format the device offers.
    #[default]
    Kith,
    /// Use the device's own default format and convert here. Avoids a second
    /// resampler in the sound server; also what a raw ALSA device usually needs.
    DeviceNative,
}

/// Options for opening a [`super::Microphone`] or [`super::Speaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamOptions {
    pub format: FormatPreference,
}

/// The format a stream actually runs at on the device side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFormat {
    pub sample_rate: u32,
    pub channels: u16,
    /// cpal's name for the sample type, e.g. `f32`, `i16`.
    pub sample_format: String,
}

/// What we will ask the device for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamPlan {
    pub(crate) channels: u16,
    pub(crate) rate: u32,
    pub(crate) format: SampleFormat,
    pub(crate) buffer: BufferSize,
}

impl StreamPlan {
    pub(crate) fn config(&self) -> cpal::StreamConfig {
        cpal::StreamConfig {
            channels: self.channels,
            sample_rate: self.rate,
            buffer_size: self.buffer,
        }
    }

    pub(crate) fn describe(&self) -> StreamFormat {
        StreamFormat {
            sample_rate: self.rate,
            channels: self.channels,
            sample_format: self.format.to_string(),
        }
    }
}

/// Rates worth asking for, best first when 48 kHz itself is not offered: multiples
/// of 16 kHz resample to 48 kHz more cheaply than the 44.1 kHz family.
const RATE_ORDER: [u32; 11] = [
    48_000, 96_000, 32_000, 16_000, 24_000, 192_000, 44_100, 88_200, 22_050, 8_000, 11_025,
];

/// More channels than any real device has (ALSA enumerates up to 64); beyond
/// this a device report is not trusted.
pub(crate) const MAX_DEVICE_CHANNELS: u16 = 64;

/// Rates reported in device listings.
pub(crate) const LISTED_RATES: [u32; 10] = [
    8_000, 11_025, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 96_000, 192_000,
];

/// Lower is better; `None` for formats the callbacks cannot convert.
fn format_rank(format: SampleFormat) -> Option<u8> {
    Some(match format {
        SampleFormat::F32 => 0,
        SampleFormat::I16 => 1,
        SampleFormat::I32 => 2,
        SampleFormat::I24 => 3,
        SampleFormat::F64 => 4,
        SampleFormat::U16 => 5,
        SampleFormat::U8 => 6,
        SampleFormat::I8 => 7,
        SampleFormat::U24 => 8,
        SampleFormat::U32 => 9,
        SampleFormat::I64 => 10,
        SampleFormat::U64 => 11,
        _ => return None,
    })
}

pub(crate) fn is_supported(format: SampleFormat) -> bool {
    format_rank(format).is_some()
}

fn rate_for(range: &SupportedStreamConfigRange) -> u32 {
    RATE_ORDER
        .into_iter()
        .find(|r| range.contains_rate(*r))
        .unwrap_or_else(|| SAMPLE_RATE.clamp(range.min_sample_rate(), range.max_sample_rate()))
}

fn buffer_for(supported: &SupportedBufferSize, rate: u32, period_ms: u32) -> BufferSize {
    let period = (u64::from(rate) * u64::from(period_ms) / 1000).max(1);
    match supported {
        SupportedBufferSize::Range { min, max }
            if (u64::from(*min)..=u64::from(*max)).contains(&period) =>
        {
            BufferSize::Fixed(u32::try_from(period).unwrap_or(*max))
        }
        _ => BufferSize::Default,
    }
}

fn usable_default(d: &SupportedStreamConfig) -> bool {
    is_supported(d.sample_format())
        && (1..=MAX_DEVICE_CHANNELS).contains(&d.channels())
        && d.sample_rate() > 0
}

/// Chooses a stream format. `period_ms` is the callback period to ask for where the
/// device lets us choose: without it PulseAudio buffers up to two seconds.
pub(crate) fn plan(
    ranges: &[SupportedStreamConfigRange],
    default: Option<&SupportedStreamConfig>,
    wanted_channels: u16,
    preference: FormatPreference,
    period_ms: u32,
) -> Option<StreamPlan> {
    if preference == FormatPreference::DeviceNative
        && let Some(d) = default.filter(|d| usable_default(d))
    {
        return Some(StreamPlan {
            channels: d.channels(),
            rate: d.sample_rate(),
            format: d.sample_format(),
            buffer: buffer_for(d.buffer_size(), d.sample_rate(), period_ms),
        });
    }
    let best = ranges
        .iter()
        .filter(|r| {
            // A device's own report: an inverted range would make `clamp` panic.
            (1..=MAX_DEVICE_CHANNELS).contains(&r.channels())
                && r.max_sample_rate() > 0
                && r.min_sample_rate() <= r.max_sample_rate()
        })
        .filter_map(|r| {
            let rank = format_rank(r.sample_format())?;
            let rate = rate_for(r);
            let channels = r.channels();
            // Exact channels first; more channels (we downmix) beats fewer (we upmix).
            let channel_cost = match channels.cmp(&wanted_channels) {
                std::cmp::Ordering::Equal => 0,
                std::cmp::Ordering::Greater => 1,
                std::cmp::Ordering::Less => 2,
            };
            let key = (
                rate != SAMPLE_RATE,
                channel_cost,
                channels.abs_diff(wanted_channels),
                rank,
                rate.abs_diff(SAMPLE_RATE),
            );
            Some((key, r, rate))
        })
        .min_by_key(|(key, _, _)| *key);
    if let Some((_, range, rate)) = best {
        return Some(StreamPlan {
            channels: range.channels(),
            rate,
            format: range.sample_format(),
            buffer: buffer_for(range.buffer_size(), rate, period_ms),
        });
    }
    // Some backends list nothing but still have a default.
    default.filter(|d| usable_default(d)).map(|d| StreamPlan {
        channels: d.channels(),
        rate: d.sample_rate(),
        format: d.sample_format(),
        buffer: buffer_for(d.buffer_size(), d.sample_rate(), period_ms),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn range(ch: u16, min: u32, max: u32, fmt: SampleFormat) -> SupportedStreamConfigRange {
        SupportedStreamConfigRange::new(
            ch,
            min,
            max,
            SupportedBufferSize::Range { min: 64, max: 8192 },
            fmt,
        )
    }

    #[test]
    fn pulse_like_device_gets_exactly_what_we_want() {
        let ranges: Vec<_> = [SampleFormat::I16, SampleFormat::F32]
            .into_iter()
            .flat_map(|f| (1..8).map(move |ch| range(ch, 1, 384_000, f)))
            .collect();
        let p = plan(&ranges, None, 1, FormatPreference::Kith, 10).unwrap();
        assert_eq!(
            (p.channels, p.rate, p.format, p.buffer),
            (1, 48_000, SampleFormat::F32, BufferSize::Fixed(480))
        );
        let p = plan(&ranges, None, 2, FormatPreference::Kith, 20).unwrap();
        assert_eq!((p.channels, p.buffer), (2, BufferSize::Fixed(960)));
    }

    #[test]
    fn hardware_at_44k1_i16_stereo_only() {
        let ranges = [range(2, 44_100, 44_100, SampleFormat::I16)];
        let p = plan(&ranges, None, 1, FormatPreference::Kith, 10).unwrap();
        assert_eq!(
            (p.channels, p.rate, p.format, p.buffer),
            (2, 44_100, SampleFormat::I16, BufferSize::Fixed(441))
        );
    }

    #[test]
    fn rate_at_48k_beats_matching_channels() {
        let ranges = [
            range(1, 44_100, 44_100, SampleFormat::F32),
            range(2, 48_000, 48_000, SampleFormat::I16),
        ];
        let p = plan(&ranges, None, 1, FormatPreference::Kith, 10).unwrap();
        assert_eq!((p.channels, p.rate), (2, 48_000));
    }

    #[test]
    fn prefers_16k_family_when_48k_missing() {
        let ranges = [range(1, 8_000, 44_100, SampleFormat::I16)];
        let p = plan(&ranges, None, 1, FormatPreference::Kith, 10).unwrap();
        assert_eq!(p.rate, 32_000);
    }

    #[test]
    fn odd_range_is_clamped() {
        let ranges = [range(1, 50_000, 60_000, SampleFormat::F32)];
        assert_eq!(
            plan(&ranges, None, 1, FormatPreference::Kith, 10)
                .unwrap()
                .rate,
            50_000
        );
    }

    #[test]
    fn native_preference_uses_device_default() {
        let ranges = [range(2, 1, 384_000, SampleFormat::F32)];
        let default =
            SupportedStreamConfig::new(2, 44_100, SupportedBufferSize::Unknown, SampleFormat::I16);
        let p = plan(
            &ranges,
            Some(&default),
            1,
            FormatPreference::DeviceNative,
            10,
        )
        .unwrap();
        assert_eq!(
            (p.channels, p.rate, p.format, p.buffer),
            (2, 44_100, SampleFormat::I16, BufferSize::Default)
        );
    }

    #[test]
    fn absurd_channel_counts_are_not_trusted() {
        let ranges = [range(5000, 48_000, 48_000, SampleFormat::F32)];
        assert!(plan(&ranges, None, 1, FormatPreference::Kith, 10).is_none());
    }

    #[test]
    fn inverted_range_is_ignored_not_a_panic() {
        let ranges = [range(1, 60_000, 50_000, SampleFormat::F32)];
        assert!(plan(&ranges, None, 1, FormatPreference::Kith, 10).is_none());
    }

    #[test]
    fn nothing_usable_is_none() {
        assert!(plan(&[], None, 1, FormatPreference::Kith, 10).is_none());
        let ranges = [range(0, 48_000, 48_000, SampleFormat::F32)];
        assert!(plan(&ranges, None, 1, FormatPreference::Kith, 10).is_none());
    }

    #[test]
    fn falls_back_to_default_when_no_ranges() {
        let default =
            SupportedStreamConfig::new(1, 16_000, SupportedBufferSize::Unknown, SampleFormat::I16);
        let p = plan(&[], Some(&default), 2, FormatPreference::Kith, 10).unwrap();
        assert_eq!((p.channels, p.rate), (1, 16_000));
    }
}
