//! One place that turns a negotiated codec into a running encoder or
//! decoder, with the implementation and settings calls use, so the call
//! engine never names a codec library.

use crate::codec::av1::choose::{Av1Choice, Av1Preference, make_av1_encoder, trial_av1};
use crate::codec::av1::dav1d_decoder::Dav1dDecoder;
use crate::codec::g711::{G711Decoder, G711Encoder, G711Law};
use crate::codec::h264::{H264Decoder, H264Encoder};
use crate::codec::opus::{OpusDecoder, OpusEncoder, OpusEncoderConfig};
use crate::codec::vpx::{VpxDecoder, VpxEncoder, VpxEncoderOptions};
use crate::codec::{
    AudioCodec, AudioDecoder, AudioEncoder, CodecError, VideoCodec, VideoDecoder, VideoEncoder,
    VideoEncoderConfig,
};
use crate::frame::Channels;

/// Encoder threads for AV1: the two cores a call machine is assumed to have.
const AV1_THREADS: usize = 2;
/// dav1d threads per incoming stream: a group call decodes several streams
/// at once, and each keeps up at 720p on one thread.
const DAV1D_THREADS: u32 = 1;
/// G.711 packet length; 20 ms is what every browser sends.
const G711_PACKET_MS: u32 = 20;

/// The slow part of starting an encoder, run ahead on its own thread while
/// a call connects. For AV1 that is the timed trial that picks the encoder
/// and size (about half a second at 720p here, which came before the
/// call's first frame); the other codecs start in milliseconds and need
/// none.
#[derive(Debug)]
pub struct EncoderTrial {
    codec: VideoCodec,
    config: VideoEncoderConfig,
    running: std::thread::JoinHandle<Result<Av1Choice, CodecError>>,
}

impl EncoderTrial {
    /// Starts the trial; `None` when `codec` has nothing slow to run ahead
    /// (or no thread could be started: the encoder then trials itself).
    pub fn start(codec: VideoCodec, config: VideoEncoderConfig) -> Option<Self> {
        if codec != VideoCodec::Av1 {
            return None;
        }
        let running = std::thread::Builder::new()
            // Counted with the encoders by name (the call bench's CPU parts).
            .name("encode-trial".into())
            .spawn(move || call_av1_choice(config))
            .ok()?;
        Some(Self {
            codec,
            config,
            running,
        })
    }

    /// The choice, if this trial was for this codec at this size and rate
    /// (waiting for it to finish).
    fn choice_for(self, codec: VideoCodec, config: VideoEncoderConfig) -> Option<Av1Choice> {
        let same = self.codec == codec
            && (self.config.width, self.config.height, self.config.fps)
                == (config.width, config.height, config.fps);
        if !same {
            return None;
        }
        self.running.join().ok()?.ok()
    }
}

/// The AV1 encoder and size calls use: libaom's real-time mode, whose size
/// the trial steps down if it is too slow. rav1e holds 4 frames back
/// (133 ms at 30 fps) and manages 5 fps at 720p here (kith-media's bench),
/// so calls use it only when libaom cannot start.
fn call_av1_choice(config: VideoEncoderConfig) -> Result<Av1Choice, CodecError> {
    trial_av1(config, Av1Preference::Libaom, AV1_THREADS)
        .or_else(|_| trial_av1(config, Av1Preference::Rav1e, AV1_THREADS))
}

/// [`video_encoder`], taking a trial's choice when one was run ahead for
/// this codec and config.
pub fn video_encoder_after(
    trial: Option<EncoderTrial>,
    codec: VideoCodec,
    config: VideoEncoderConfig,
) -> Result<Box<dyn VideoEncoder>, CodecError> {
    match trial.and_then(|trial| trial.choice_for(codec, config)) {
        Some(choice) => make_av1_encoder(choice, config, AV1_THREADS),
        None => video_encoder(codec, config),
    }
}

/// A real-time encoder for `codec`. For AV1 this runs a short timed trial
/// (see [`trial_av1`]), so call it off any thread that must not
/// stall.
pub fn video_encoder(
    codec: VideoCodec,
    config: VideoEncoderConfig,
) -> Result<Box<dyn VideoEncoder>, CodecError> {
    Ok(match codec {
        VideoCodec::Av1 => make_av1_encoder(call_av1_choice(config)?, config, AV1_THREADS)?,
        VideoCodec::Vp8 | VideoCodec::Vp9 => Box::new(VpxEncoder::new(
            codec,
            config,
            VpxEncoderOptions::default(),
        )?),
        VideoCodec::H264 => Box::new(H264Encoder::new(config)?),
    })
}

pub fn video_decoder(codec: VideoCodec) -> Result<Box<dyn VideoDecoder>, CodecError> {
    Ok(match codec {
        VideoCodec::Av1 => Box::new(Dav1dDecoder::new(DAV1D_THREADS)?),
        VideoCodec::Vp8 | VideoCodec::Vp9 => Box::new(VpxDecoder::new(codec)?),
        VideoCodec::H264 => Box::new(H264Decoder::new()?),
    })
}

/// A mono voice encoder (Opus with FEC and DTX, or G.711 in 20 ms packets).
pub fn audio_encoder(codec: AudioCodec) -> Result<Box<dyn AudioEncoder>, CodecError> {
    Ok(match codec {
        AudioCodec::Opus => Box::new(OpusEncoder::new(OpusEncoderConfig::default())?),
        AudioCodec::Pcmu => Box::new(G711Encoder::new(G711Law::MuLaw, G711_PACKET_MS)?),
        AudioCodec::Pcma => Box::new(G711Encoder::new(G711Law::ALaw, G711_PACKET_MS)?),
    })
}

/// A decoder producing `channels` at 48 kHz whatever the packets carry.
pub fn audio_decoder(
    codec: AudioCodec,
    channels: Channels,
) -> Result<Box<dyn AudioDecoder>, CodecError> {
    Ok(match codec {
        AudioCodec::Opus => Box::new(OpusDecoder::new(channels)?),
        AudioCodec::Pcmu => Box::new(G711Decoder::new(G711Law::MuLaw, channels)?),
        AudioCodec::Pcma => Box::new(G711Decoder::new(G711Law::ALaw, channels)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIDEO: [VideoCodec; 4] = [
        VideoCodec::Av1,
        VideoCodec::Vp9,
        VideoCodec::Vp8,
        VideoCodec::H264,
    ];
    const AUDIO: [AudioCodec; 3] = [AudioCodec::Opus, AudioCodec::Pcmu, AudioCodec::Pcma];

    const SMALL: VideoEncoderConfig = VideoEncoderConfig {
        width: 320,
        height: 180,
        fps: 30,
        bitrate_bps: 300_000,
    };

    #[test]
    fn only_av1_has_a_trial_to_run_ahead() {
        for codec in [VideoCodec::Vp9, VideoCodec::Vp8, VideoCodec::H264] {
            assert!(EncoderTrial::start(codec, SMALL).is_none());
        }
        assert!(EncoderTrial::start(VideoCodec::Av1, SMALL).is_some());
    }

    #[test]
    fn a_trial_run_ahead_gives_its_choice_to_the_encoder_of_that_config() {
        let trial = EncoderTrial::start(VideoCodec::Av1, SMALL).expect("a trial thread");
        let choice = trial
            .choice_for(VideoCodec::Av1, SMALL)
            .expect("a 320x180 AV1 encoder keeps up");
        assert!(choice.width <= SMALL.width && choice.height <= SMALL.height);
        let encoder = video_encoder_after(
            EncoderTrial::start(VideoCodec::Av1, SMALL),
            VideoCodec::Av1,
            VideoEncoderConfig {
                bitrate_bps: 500_000,
                ..SMALL
            },
        )
        .expect("an AV1 encoder");
        assert_eq!(encoder.codec(), VideoCodec::Av1);
        assert_eq!(encoder.config().bitrate_bps, 500_000);
    }

    #[test]
    fn a_trial_for_another_size_is_not_taken() {
        let trial = EncoderTrial::start(VideoCodec::Av1, SMALL).expect("a trial thread");
        let larger = VideoEncoderConfig {
            width: 640,
            height: 360,
            ..SMALL
        };
        assert_eq!(trial.choice_for(VideoCodec::Av1, larger), None);
        let trial = EncoderTrial::start(VideoCodec::Av1, SMALL).expect("a trial thread");
        assert_eq!(trial.choice_for(VideoCodec::Vp8, SMALL), None);
    }

    #[test]
    fn every_video_codec_has_an_encoder_and_a_decoder() {
        // Small, so the AV1 trial is quick.
        let config = VideoEncoderConfig {
            width: 320,
            height: 180,
            fps: 30,
            bitrate_bps: 300_000,
        };
        for codec in VIDEO {
            match video_encoder(codec, config) {
                Ok(encoder) => assert_eq!(encoder.codec(), codec),
                Err(err) => panic!("{} encoder: {err}", codec.sdp_name()),
            }
            match video_decoder(codec) {
                Ok(decoder) => assert_eq!(decoder.codec(), codec),
                Err(err) => panic!("{} decoder: {err}", codec.sdp_name()),
            }
        }
    }

    #[test]
    fn every_audio_codec_has_an_encoder_and_a_decoder() {
        for codec in AUDIO {
            match audio_encoder(codec) {
                Ok(encoder) => assert_eq!(encoder.codec(), codec),
                Err(err) => panic!("{codec:?} encoder: {err}"),
            }
            for channels in [Channels::Mono, Channels::Stereo] {
                match audio_decoder(codec, channels) {
                    Ok(decoder) => assert_eq!(decoder.codec(), codec),
                    Err(err) => panic!("{codec:?} decoder ({channels:?}): {err}"),
                }
            }
        }
    }
}
