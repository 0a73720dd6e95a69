//! Opus at 48 kHz for calls: VOIP application, in-band FEC, optional DTX.
//!
//! Backed by the `opus` crate, whose `opusic-sys` builds the bundled libopus
//! (1.6) with cmake and links it statically, so Debian's libopus is not used.

use bytes::Bytes;

use crate::codec::{AudioCodec, AudioDecoder, AudioEncoder, CodecError};
use crate::frame::{AudioFrame, Channels, SAMPLES_PER_FRAME};

const CODEC: &str = "Opus";
const SAMPLE_RATE: u32 = 48_000;
/// What the libopus documentation recommends for the output buffer; the
/// bitrate, not this size, is what limits a packet.
const MAX_PACKET_BYTES: usize = 4000;
/// The longest packet Opus allows (120 ms), per channel.
const MAX_PACKET_SAMPLES: usize = 5760;
/// Opus frames are multiples of 2.5 ms, and concealment must be too.
const CONCEAL_GRANULE_SAMPLES: usize = 120;
/// A gap longer than this is a stream restart, not a lost packet; refusing
/// it keeps a bogus duration from allocating minutes of audio.
const MAX_CONCEAL_MS: u32 = 10_000;
/// libopus' documented bitrate range.
const MIN_BITRATE_BPS: u32 = 6_000;
const MAX_BITRATE_BPS: u32 = 510_000;
/// With DTX on, libopus marks "nothing to send" with packets this short.
/// Like WebRTC, the first of a run is sent (it tells the receiver silence
/// has begun, so it plays comfort noise instead of concealing a loss: 6 % of
/// Kith's beeping tone was concealed in Chromium before) and the rest not.
const DTX_PACKET_MAX_BYTES: usize = 2;

/// How much audio one packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketDuration {
    Ms10,
    Ms20,
}

impl PacketDuration {
    pub fn millis(self) -> u32 {
        match self {
            PacketDuration::Ms10 => 10,
            PacketDuration::Ms20 => 20,
        }
    }

    fn frames(self) -> usize {
        match self {
            PacketDuration::Ms10 => 1,
            PacketDuration::Ms20 => 2,
        }
    }
}

/// Settings an [`OpusEncoder`] starts with; all but `channels` and
/// `packet_duration` can change while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusEncoderConfig {
    pub channels: Channels,
    pub bitrate_bps: u32,
    pub packet_duration: PacketDuration,
    /// In-band FEC: each packet also carries a coarse copy of the previous
    /// one, so a single loss can be repaired from the next packet.
    pub inband_fec: bool,
    /// Expected loss; libopus spends FEC bits only when this is above 0,
    /// so feed it from receiver reports.
    pub packet_loss_percent: u8,
    /// Discontinuous transmission: silence costs almost nothing.
    pub dtx: bool,
}

impl Default for OpusEncoderConfig {
    /// Mono voice at 32 kbit/s in 20 ms packets, FEC on with 5 % assumed
    /// loss (so FEC protects from the first packet, before any report) and
    /// DTX on, as calls want.
    fn default() -> Self {
        Self {
            channels: Channels::Mono,
            bitrate_bps: 32_000,
            packet_duration: PacketDuration::Ms20,
            inband_fec: true,
            packet_loss_percent: 5,
            dtx: true,
        }
    }
}

fn opus_channels(channels: Channels) -> opus::Channels {
    match channels {
        Channels::Mono => opus::Channels::Mono,
        Channels::Stereo => opus::Channels::Stereo,
    }
}

fn init_error(err: opus::Error) -> CodecError {
    CodecError::Init {
        codec: CODEC,
        reason: err.to_string(),
    }
}

fn encode_error(reason: impl Into<String>) -> CodecError {
    CodecError::Encode {
        codec: CODEC,
        reason: reason.into(),
    }
}

fn decode_error(reason: impl Into<String>) -> CodecError {
    CodecError::Decode {
        codec: CODEC,
        reason: reason.into(),
    }
}

/// Appends `frame` to `out` as `channels`, down- or up-mixing when the frame
/// has the other layout: a stereo microphone may feed a mono call.
/// Non-finite samples become silence so one bad sample cannot poison the
/// codec's filters.
pub(crate) fn append_as(frame: &AudioFrame, channels: Channels, out: &mut Vec<f32>) {
    let clean = |s: f32| if s.is_finite() { s } else { 0.0 };
    match (frame.channels, channels) {
        (Channels::Mono, Channels::Mono) | (Channels::Stereo, Channels::Stereo) => {
            out.extend(frame.samples.iter().map(|&s| clean(s)));
        }
        (Channels::Stereo, Channels::Mono) => {
            out.extend(
                frame
                    .samples
                    .chunks_exact(2)
                    .map(|lr| 0.5 * (clean(lr[0]) + clean(lr[1]))),
            );
        }
        (Channels::Mono, Channels::Stereo) => {
            for &s in &frame.samples {
                let s = clean(s);
                out.extend([s, s]);
            }
        }
    }
}

/// Checks that a frame holds exactly 10 ms.
pub(crate) fn check_frame(frame: &AudioFrame, codec: &'static str) -> Result<(), CodecError> {
    let expected = SAMPLES_PER_FRAME * frame.channels.count();
    if frame.samples.len() == expected {
        Ok(())
    } else {
        Err(CodecError::Encode {
            codec,
            reason: format!(
                "frame has {} samples, 10 ms of {:?} is {expected}",
                frame.samples.len(),
                frame.channels
            ),
        })
    }
}

/// Opus encoder fed 10 ms frames, emitting one packet per configured
/// packet duration.
#[derive(Debug)]
pub struct OpusEncoder {
    inner: opus::Encoder,
    config: OpusEncoderConfig,
    /// Interleaved samples waiting for a full packet.
    pending: Vec<f32>,
    /// Reused output buffer, so encoding allocates only the returned packet.
    out: Vec<u8>,
    /// The last packet was a DTX marker: the next ones are not sent.
    in_dtx: bool,
}

impl OpusEncoder {
    pub fn new(mut config: OpusEncoderConfig) -> Result<Self, CodecError> {
        config.bitrate_bps = clamp_bitrate(config.bitrate_bps).unsigned_abs();
        config.packet_loss_percent = config.packet_loss_percent.min(100);
        let mut inner = opus::Encoder::new(
            SAMPLE_RATE,
            opus_channels(config.channels),
            opus::Application::Voip,
        )
        .map_err(init_error)?;
        inner
            .set_bitrate(opus::Bitrate::Bits(clamp_bitrate(config.bitrate_bps)))
            .map_err(init_error)?;
        inner
            .set_inband_fec(config.inband_fec)
            .map_err(init_error)?;
        inner
            .set_packet_loss_perc(i32::from(config.packet_loss_percent))
            .map_err(init_error)?;
        inner.set_dtx(config.dtx).map_err(init_error)?;
        let packet_len =
            config.packet_duration.frames() * SAMPLES_PER_FRAME * config.channels.count();
        Ok(Self {
            inner,
            config,
            pending: Vec::with_capacity(packet_len),
            out: vec![0; MAX_PACKET_BYTES],
            in_dtx: false,
        })
    }

    pub fn config(&self) -> OpusEncoderConfig {
        self.config
    }

    /// Tells the encoder how much loss to expect (0–100; higher clamps).
    pub fn set_packet_loss_percent(&mut self, percent: u8) -> Result<(), CodecError> {
        let percent = percent.min(100);
        self.inner
            .set_packet_loss_perc(i32::from(percent))
            .map_err(|e| encode_error(e.to_string()))?;
        self.config.packet_loss_percent = percent;
        Ok(())
    }

    pub fn set_inband_fec(&mut self, on: bool) -> Result<(), CodecError> {
        self.inner
            .set_inband_fec(on)
            .map_err(|e| encode_error(e.to_string()))?;
        self.config.inband_fec = on;
        Ok(())
    }

    pub fn set_dtx(&mut self, on: bool) -> Result<(), CodecError> {
        self.inner
            .set_dtx(on)
            .map_err(|e| encode_error(e.to_string()))?;
        self.config.dtx = on;
        Ok(())
    }

    /// Samples per channel by which decoded audio lags the input.
    pub fn lookahead(&mut self) -> Result<usize, CodecError> {
        let samples = self
            .inner
            .get_lookahead()
            .map_err(|e| encode_error(e.to_string()))?;
        Ok(usize::try_from(samples).unwrap_or(0))
    }
}

/// Congestion control may ask for anything; Opus takes 6–510 kbit/s.
fn clamp_bitrate(bps: u32) -> i32 {
    // The clamp keeps the value far below i32::MAX.
    bps.clamp(MIN_BITRATE_BPS, MAX_BITRATE_BPS) as i32
}

impl AudioEncoder for OpusEncoder {
    fn codec(&self) -> AudioCodec {
        AudioCodec::Opus
    }

    fn encode(&mut self, frame: &AudioFrame) -> Result<Option<Bytes>, CodecError> {
        check_frame(frame, CODEC)?;
        append_as(frame, self.config.channels, &mut self.pending);
        let packet_len =
            self.config.packet_duration.frames() * SAMPLES_PER_FRAME * self.config.channels.count();
        if self.pending.len() < packet_len {
            return Ok(None);
        }
        let result = self.inner.encode_float(&self.pending, &mut self.out);
        // Drop the samples even on failure so one bad packet does not wedge
        // every later one.
        self.pending.clear();
        let len = result.map_err(|e| encode_error(e.to_string()))?;
        if self.config.dtx && len <= DTX_PACKET_MAX_BYTES {
            if self.in_dtx {
                return Ok(None);
            }
            self.in_dtx = true;
        } else {
            self.in_dtx = false;
        }
        Ok(Some(Bytes::copy_from_slice(&self.out[..len])))
    }

    fn sent_silence(&self) -> bool {
        self.in_dtx
    }

    fn frames_per_packet(&self) -> u32 {
        // 1, 2, 4 or 6 frames: never truncated.
        self.config.packet_duration.frames() as u32
    }

    /// Clamps to the 6–510 kbit/s Opus supports rather than failing, since
    /// the estimate comes from congestion control, not from a user.
    fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<(), CodecError> {
        let bps = clamp_bitrate(bitrate_bps);
        self.inner
            .set_bitrate(opus::Bitrate::Bits(bps))
            .map_err(|e| encode_error(e.to_string()))?;
        self.config.bitrate_bps = bps.unsigned_abs();
        Ok(())
    }
}

/// Opus decoder producing 10 ms frames at 48 kHz in its configured layout
/// (a mono packet is upmixed for a stereo decoder and vice versa).
#[derive(Debug)]
pub struct OpusDecoder {
    inner: opus::Decoder,
    channels: Channels,
    /// Reused decode buffer large enough for the longest Opus packet.
    pcm: Vec<f32>,
    /// Decoded samples short of a full 10 ms frame (packets of 2.5 or 5 ms).
    carry: Vec<f32>,
    /// Samples per channel emitted so far, for `AudioFrame::position`.
    position: u64,
}

impl OpusDecoder {
    pub fn new(channels: Channels) -> Result<Self, CodecError> {
        let inner = opus::Decoder::new(SAMPLE_RATE, opus_channels(channels)).map_err(init_error)?;
        Ok(Self {
            inner,
            channels,
            pcm: vec![0.0; MAX_PACKET_SAMPLES * channels.count()],
            carry: Vec::with_capacity(SAMPLES_PER_FRAME * channels.count()),
            position: 0,
        })
    }

    pub fn channels(&self) -> Channels {
        self.channels
    }

    /// Moves `samples_per_channel` decoded samples from `pcm` into 10 ms
    /// frames, keeping any remainder for the next call.
    fn emit(&mut self, samples_per_channel: usize) -> Vec<AudioFrame> {
        let ch = self.channels.count();
        let frame_len = SAMPLES_PER_FRAME * ch;
        let decoded = &self.pcm[..samples_per_channel * ch];
        let mut frames = Vec::with_capacity((self.carry.len() + decoded.len()) / frame_len);
        let mut rest = decoded;
        if !self.carry.is_empty() {
            let take = (frame_len - self.carry.len()).min(rest.len());
            self.carry.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.carry.len() == frame_len {
                frames.push(AudioFrame {
                    channels: self.channels,
                    samples: std::mem::replace(&mut self.carry, Vec::with_capacity(frame_len)),
                    position: self.position,
                });
                self.position += SAMPLES_PER_FRAME as u64;
            }
        }
        let mut chunks = rest.chunks_exact(frame_len);
        for chunk in &mut chunks {
            frames.push(AudioFrame {
                channels: self.channels,
                samples: chunk.to_vec(),
                position: self.position,
            });
            self.position += SAMPLES_PER_FRAME as u64;
        }
        self.carry.extend_from_slice(chunks.remainder());
        frames
    }
}

impl AudioDecoder for OpusDecoder {
    fn codec(&self) -> AudioCodec {
        AudioCodec::Opus
    }

    fn decode(&mut self, packet: &[u8]) -> Result<Vec<AudioFrame>, CodecError> {
        // libopus reads an empty packet as "lost" and would conceal; a
        // caller who means that should say so with `conceal`.
        if packet.is_empty() {
            return Err(decode_error("empty packet (use conceal for a lost one)"));
        }
        let samples = self
            .inner
            .decode_float(packet, &mut self.pcm, false)
            .map_err(|e| decode_error(e.to_string()))?;
        Ok(self.emit(samples))
    }

    /// Fills a gap of `duration_ms` (a multiple of 5 ms). With `next`, the
    /// packet after the gap, the end of the gap is rebuilt from that packet's
    /// FEC data (when it has none, libopus falls back to concealment); the
    /// caller then decodes `next` as usual.
    fn conceal(
        &mut self,
        duration_ms: u32,
        next: Option<&[u8]>,
    ) -> Result<Vec<AudioFrame>, CodecError> {
        if duration_ms == 0 || !duration_ms.is_multiple_of(5) || duration_ms > MAX_CONCEAL_MS {
            return Err(CodecError::Unsupported {
                codec: CODEC,
                what: format!(
                    "concealing {duration_ms} ms (needs a multiple of 5 ms up to {MAX_CONCEAL_MS})"
                ),
            });
        }
        let ch = self.channels.count();
        let mut remaining = duration_ms as usize * (SAMPLE_RATE as usize / 1000);
        let mut frames = Vec::new();
        // libopus conceals at most 120 ms per call. The odd-sized piece goes
        // first so that the last call, the one that can use `next`'s FEC,
        // is long enough to cover a whole packet.
        let mut chunk = match remaining % MAX_PACKET_SAMPLES {
            0 => MAX_PACKET_SAMPLES,
            odd => odd,
        };
        while remaining > 0 {
            debug_assert_eq!(chunk % CONCEAL_GRANULE_SAMPLES, 0);
            remaining -= chunk;
            let out = &mut self.pcm[..chunk * ch];
            let fec_packet = next.filter(|p| remaining == 0 && !p.is_empty());
            let decoded = match fec_packet {
                Some(packet) => match self.inner.decode_float(packet, out, true) {
                    Ok(n) => Ok(n),
                    Err(err) => {
                        // The gap must still be filled; the broken packet will
                        // report its own error when it is decoded normally.
                        tracing::debug!(%err, "Opus FEC decode failed; concealing instead");
                        self.inner.decode_float(&[], out, false)
                    }
                },
                None => self.inner.decode_float(&[], out, false),
            };
            let samples = decoded.map_err(|e| decode_error(e.to_string()))?;
            frames.extend(self.emit(samples));
            chunk = MAX_PACKET_SAMPLES;
        }
        Ok(frames)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tone(channels: Channels, position: u64) -> AudioFrame {
        let ch = channels.count();
        let samples = (0..SAMPLES_PER_FRAME * ch)
            .map(|i| {
                let t = (position + (i / ch) as u64) as f32 / SAMPLE_RATE as f32;
                0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
            })
            .collect();
        AudioFrame {
            channels,
            samples,
            position,
        }
    }

    #[test]
    fn packets_follow_configured_duration() {
        for (duration, every) in [(PacketDuration::Ms10, 1), (PacketDuration::Ms20, 2)] {
            let mut enc = OpusEncoder::new(OpusEncoderConfig {
                packet_duration: duration,
                dtx: false,
                ..OpusEncoderConfig::default()
            })
            .unwrap();
            let mut dec = OpusDecoder::new(Channels::Mono).unwrap();
            for i in 0..10u64 {
                let packet = enc.encode(&tone(Channels::Mono, i * 480)).unwrap();
                assert_eq!(packet.is_some(), (i + 1) % every == 0, "frame {i}");
                if let Some(p) = packet {
                    assert_eq!(
                        opus::packet::get_nb_samples(&p, SAMPLE_RATE).unwrap(),
                        480 * every as usize
                    );
                    let frames = dec.decode(&p).unwrap();
                    assert_eq!(frames.len(), every as usize);
                    assert!(frames.iter().all(|f| f.samples.len() == 480));
                }
            }
        }
    }

    #[test]
    fn wrong_frame_length_is_an_error() {
        let mut enc = OpusEncoder::new(OpusEncoderConfig::default()).unwrap();
        let frame = AudioFrame {
            channels: Channels::Mono,
            samples: vec![0.0; 100],
            position: 0,
        };
        assert!(matches!(enc.encode(&frame), Err(CodecError::Encode { .. })));
    }

    #[test]
    fn stereo_frames_feed_a_mono_encoder_and_back() {
        let mut enc = OpusEncoder::new(OpusEncoderConfig {
            dtx: false,
            ..OpusEncoderConfig::default()
        })
        .unwrap();
        let mut dec = OpusDecoder::new(Channels::Stereo).unwrap();
        let mut frames = Vec::new();
        for i in 0..4u64 {
            if let Some(p) = enc.encode(&tone(Channels::Stereo, i * 480)).unwrap() {
                frames.extend(dec.decode(&p).unwrap());
            }
        }
        assert_eq!(frames.len(), 4);
        assert!(
            frames
                .iter()
                .all(|f| f.channels == Channels::Stereo && f.samples.len() == 960)
        );
        assert_eq!(frames[3].position, 3 * 480);
    }

    #[test]
    fn bitrate_is_clamped_not_refused() {
        let mut enc = OpusEncoder::new(OpusEncoderConfig::default()).unwrap();
        enc.set_bitrate(0).unwrap();
        assert_eq!(enc.config().bitrate_bps, MIN_BITRATE_BPS);
        enc.set_bitrate(u32::MAX).unwrap();
        assert_eq!(enc.config().bitrate_bps, MAX_BITRATE_BPS);
    }

    #[test]
    fn conceal_rejects_odd_durations_and_splits_long_gaps() {
        let mut dec = OpusDecoder::new(Channels::Mono).unwrap();
        assert!(matches!(
            dec.conceal(0, None),
            Err(CodecError::Unsupported { .. })
        ));
        assert!(matches!(
            dec.conceal(7, None),
            Err(CodecError::Unsupported { .. })
        ));
        assert!(dec.conceal(MAX_CONCEAL_MS + 5, None).is_err());
        // 250 ms is longer than one libopus call may conceal (120 ms).
        assert_eq!(dec.conceal(250, None).unwrap().len(), 25);
        // 5 ms leaves half a frame carried over to the next call.
        assert_eq!(dec.conceal(5, None).unwrap().len(), 0);
        assert_eq!(dec.conceal(5, None).unwrap().len(), 1);
    }
}
