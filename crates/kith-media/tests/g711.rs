//! G.711 against the ITU-T tables, and through the 48 kHz resampling path.
#![allow(clippy::unwrap_used)]

#[path = "support/audio_signals.rs"]
mod common;

use common::*;
use kith_media::codec::g711::{
    G711Decoder, G711Encoder, G711Law, alaw_to_linear, linear_to_alaw, linear_to_ulaw,
    ulaw_to_linear,
};
use kith_media::codec::{AudioCodec, AudioDecoder, AudioEncoder};
use kith_media::frame::Channels;

// Reference points from G.711 tables 1 and 2. The standard gives µ-law
// decoder outputs on a ±8159 scale and A-law on ±4096 (so 16-bit linear is
// ×4 and ×8 respectively), and the transmitted characters with the
// inversions applied (µ-law: all bits; A-law: even bits).
#[test]
fn mu_law_matches_the_g711_table() {
    // (character on the wire, decoder output on the ±8159 scale)
    let table: [(u8, i32); 15] = [
        (0xFF, 0),  // segment 1, first level (+0)
        (0x7F, 0),  // "negative zero"
        (0xFE, 2),  // segment 1 steps by 2
        (0xF0, 30), // last level of segment 1
        (0xEF, 33), // segment 2 starts at 33, step 4
        (0xE0, 93),
        (0xDF, 99),    // segment 3, step 8
        (0x9F, 2079),  // segment 7 starts at 2079, step 128
        (0x8F, 4191),  // segment 8 starts at 4191, step 256
        (0x80, 8031),  // largest positive level
        (0x00, -8031), // largest negative level
        (0x7E, -2),
        (0x70, -30),
        (0x6F, -33),
        (0x0F, -4191),
    ];
    for (code, level) in table {
        assert_eq!(
            i32::from(ulaw_to_linear(code)),
            level * 4,
            "decode {code:#04x}"
        );
    }
    // Encoder decision levels (±8159 scale): 1 splits 0 and 2, 31 ends
    // segment 1, 8159 is the overload point.
    let encode14 = |x: i32| linear_to_ulaw((x * 4) as i16);
    assert_eq!(encode14(0), 0xFF);
    assert_eq!(linear_to_ulaw(3), 0xFF); // below decision level 1
    assert_eq!(linear_to_ulaw(4), 0xFE); // at decision level 1
    assert_eq!(encode14(30), 0xF0);
    assert_eq!(encode14(31), 0xEF); // decision level 31 opens segment 2
    assert_eq!(encode14(-31), 0x6F);
    assert_eq!(encode14(4062), 0x80 | 0x10); // last of segment 7 ...
    assert_eq!(encode14(4063), 0x8F); // ... decision level 4063 opens segment 8
    assert_eq!(encode14(8159), 0x80);
    assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
    assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
}

#[test]
fn a_law_matches_the_g711_table() {
    // (character on the wire, decoder output on the ±4096 scale)
    let table: [(u8, i32); 12] = [
        (0xD5, 1), // segment 1, first level; idle pattern
        (0x55, -1),
        (0xD4, 3),     // step 2
        (0xDA, 31),    // last level of segment 1
        (0xC5, 33),    // segment 2, same step 2
        (0xF5, 66),    // segment 3 starts at 66, step 4
        (0xA5, 2112),  // segment 8 starts at 2112, step 128
        (0xAA, 4032),  // largest positive level
        (0x2A, -4032), // largest negative level
        (0x25, -2112),
        (0x75, -66),
        (0x5A, -31),
    ];
    for (code, level) in table {
        assert_eq!(
            i32::from(alaw_to_linear(code)),
            level * 8,
            "decode {code:#04x}"
        );
    }
    let encode12 = |x: i32| linear_to_alaw((x * 8) as i16);
    assert_eq!(linear_to_alaw(0), 0xD5);
    assert_eq!(linear_to_alaw(-1), 0x55);
    assert_eq!(encode12(2), 0xD4); // decision level 2
    assert_eq!(encode12(32), 0xC5); // decision level 32 opens segment 2
    assert_eq!(encode12(64), 0xF5); // and 64 segment 3
    assert_eq!(encode12(4095), 0xAA);
    assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
    assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
}

#[test]
fn every_codeword_survives_decode_then_encode() {
    for code in 0..=255u8 {
        assert_eq!(
            linear_to_alaw(alaw_to_linear(code)),
            code,
            "A-law {code:#04x}"
        );
        // µ-law has two zeros; the encoder writes the positive one.
        let expected = if code == 0x7F { 0xFF } else { code };
        assert_eq!(
            linear_to_ulaw(ulaw_to_linear(code)),
            expected,
            "µ-law {code:#04x}"
        );
    }
}

/// Over every 16-bit input: the output never decreases as the input grows,
/// and it is one of the two levels that bracket the input (the standard's
/// decision levels are midpoints inside a segment but not at segment
/// boundaries, so "nearest level" is not quite the rule).
#[test]
fn quantisation_is_monotonic_and_brackets_the_input() {
    for law in [G711Law::MuLaw, G711Law::ALaw] {
        let mut levels: Vec<i32> = (0..=255u8)
            .map(|c| i32::from(law.decode_sample(c)))
            .collect();
        levels.sort_unstable();
        levels.dedup();
        let (lowest, highest) = (levels[0], levels[levels.len() - 1]);
        let mut previous = i32::MIN;
        for x in i16::MIN..=i16::MAX {
            let y = i32::from(law.decode_sample(law.encode_sample(x)));
            assert!(y >= previous, "{law:?}: {x} gave {y} after {previous}");
            previous = y;
            let x = i32::from(x);
            // `levels` is sorted: the first level ≥ x and the one before.
            let at = levels.partition_point(|&l| l < x);
            let above = levels.get(at).copied().unwrap_or(highest);
            let below = if levels.get(at) == Some(&x) {
                x
            } else {
                at.checked_sub(1).map_or(lowest, |i| levels[i])
            };
            assert!(
                y == below || y == above,
                "{law:?}: {x} → {y}, not {below} or {above}"
            );
        }
    }
}

/// Companding alone at 8 kHz. G.711's point is a nearly constant SNR over
/// a wide range of levels: unweighted, a tone's companding noise ripples
/// between about 35 and 39 dB from −30 to 0 dBm0 as its peaks cross segment
/// boundaries (G.712 asks 35 dB of a whole channel, but noise-weighted,
/// which reads a few dB kinder). 34 dB over −30 to −3 dBFS is that ripple's
/// floor; a wrong segment or mantissa costs 6 dB or more.
#[test]
fn companding_snr_is_flat_over_levels() {
    for law in [G711Law::MuLaw, G711Law::ALaw] {
        for level_db in [-30.0f32, -20.0, -10.0, -3.0] {
            let amplitude = 10f32.powf(level_db / 20.0);
            // 1020 Hz, like G.712's test tone: not a divisor of 8 kHz, so
            // the samples walk over every quantiser step.
            let x = tone(1_020.0, amplitude, 16_000, 8_000.0);
            let y: Vec<f32> = x
                .iter()
                .map(|&s| {
                    let pcm = (s * 32_768.0).round() as i16;
                    f32::from(law.decode_sample(law.encode_sample(pcm))) / 32_768.0
                })
                .collect();
            let snr = snr_db(&x, &y, 0, 0..x.len());
            eprintln!("{law:?} at {level_db} dBFS: {snr:.1} dB");
            assert!(snr >= 34.0, "{law:?} at {level_db} dBFS: {snr:.1} dB");
        }
    }
}

fn through_codec(law: G711Law, input: &[f32], channels: Channels) -> Vec<f32> {
    let mut enc = G711Encoder::new(law, 20).unwrap();
    let mut dec = G711Decoder::new(law, Channels::Mono).unwrap();
    let mut out = Vec::new();
    for frame in frames(input, channels) {
        if let Some(packet) = enc.encode(&frame).unwrap() {
            assert_eq!(packet.len(), 160);
            out.extend(dec.decode(&packet).unwrap());
        }
    }
    first_channel(&out)
}

/// The whole path at 48 kHz: anti-alias filter, 8 kHz, companding, back up.
/// A −6 dBFS 1020 Hz tone should keep companding's ~37 dB (above): the
/// resamplers' passband ripple and stopband leakage sit far below that, so
/// 33 dB allows the filters a few dB and catches any real fault (aliasing,
/// dropped or repeated samples, a wrong rate all cost 20 dB or more).
#[test]
fn round_trip_sinad_on_a_tone() {
    for law in [G711Law::MuLaw, G711Law::ALaw] {
        let input = tone(1_020.0, 0.5, 48_000, RATE);
        let out = through_codec(law, &input, Channels::Stereo);
        assert_eq!(out.len(), input.len());
        // Skip the filters' start-up; judge a steady second half.
        let sinad = sinad_db(&out[24_000..], 1_020.0, RATE);
        let gain_db = rms_dbfs(&out[24_000..]) - rms_dbfs(&input[24_000..]);
        eprintln!(
            "{law:?} 1020 Hz at −6 dBFS through 48↔8 kHz: SINAD {sinad:.1} dB, gain {gain_db:+.2} dB"
        );
        assert!(sinad >= 33.0, "{law:?}: {sinad:.1} dB");
        assert!(gain_db.abs() < 0.5);
    }
}

/// Speech-like audio comes back in shape and on time: the round trip adds
/// only the resamplers' delay, and keeps the telephone band's spectrum.
#[test]
fn round_trip_delay_and_spectrum_on_speech() {
    let input = speech_like(3.0, 8, (100.0, 200.0), 0.5);
    let out = through_codec(G711Law::ALaw, &input, Channels::Mono);
    let range = 4_800..input.len() - 4_800;
    let lag = best_lag(&input, &out, range.clone(), 2_400);
    // Only the band G.711 carries is compared; the rest is filtered by design.
    let spectral = spectral_snr_db(&input, &out, lag, range, (100.0, 3_400.0));
    eprintln!(
        "A-law speech round trip: delay {lag} samples ({:.1} ms), spectral SNR 100–3400 Hz {spectral:.1} dB",
        lag as f32 / 48.0
    );
    // 11.6 ms by design (see the filter lengths in g711.rs).
    assert!(lag < 13 * 48, "delay {lag} samples");
    assert!(spectral >= 25.0, "{spectral:.1} dB");
}

/// What the anti-alias and anti-image filters are for: telephone-band
/// tones (300–3400 Hz) pass, tones above 4 kHz do not come back (without
/// the filter a 6 kHz tone would fold to 2 kHz at full level).
#[test]
fn resampling_passes_the_voice_band_and_blocks_aliases() {
    let level = |freq: f32| {
        let input = tone(freq, 0.5, 48_000, RATE);
        let out = through_codec(G711Law::MuLaw, &input, Channels::Mono);
        rms_dbfs(&out[24_000..]) - rms_dbfs(&input[24_000..])
    };
    for freq in [300.0, 1_000.0, 3_000.0, 3_400.0] {
        let gain = level(freq);
        eprintln!("{freq} Hz: {gain:+.2} dB");
        assert!(gain.abs() < 1.0, "{freq} Hz: {gain:+.2} dB");
    }
    for freq in [4_200.0, 4_400.0, 4_800.0, 6_000.0, 10_000.0] {
        let gain = level(freq);
        eprintln!("{freq} Hz: {gain:+.1} dB");
        // Measured 64–70 dB down; an alias would be near 0 dB.
        assert!(gain < -50.0, "{freq} Hz leaks at {gain:+.1} dB");
    }
}

#[test]
fn codecs_report_their_payload_names() {
    let enc = G711Encoder::new(G711Law::MuLaw, 20).unwrap();
    let dec = G711Decoder::new(G711Law::ALaw, Channels::Stereo).unwrap();
    assert_eq!(enc.codec(), AudioCodec::Pcmu);
    assert_eq!(dec.codec(), AudioCodec::Pcma);
}
