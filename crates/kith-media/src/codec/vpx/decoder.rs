//! VP8/VP9 decoder over libvpx.

use super::encoder::{cores, vpx_codec};
use super::ffi::{Decoder, VpxCodec, VpxError, peek_stream_info};
use crate::codec::{CodecError, VideoCodec, VideoDecoder};
use crate::frame::VideoFrame;

/// Largest picture accepted (libvpx's own size limit in Chromium and Debian).
const MAX_DIMENSION: u32 = 16384;

/// Decoder threads for a picture size on `cores` cores, as WebRTC does:
/// VP8 one (its threads spin-wait, see
/// [`auto_encoder_threads`](super::encoder::auto_encoder_threads)); VP9 two
/// per 720p worth of pixels, at least one, at most one per core.
pub fn auto_decoder_threads(codec: VpxCodec, width: u32, height: u32, cores: u32) -> u32 {
    match codec {
        VpxCodec::Vp8 => 1,
        VpxCodec::Vp9 => {
            let pixels = u64::from(width) * u64::from(height);
            let threads = (2 * pixels / (1280 * 720)).clamp(1, 8) as u32;
            threads.min(cores.max(1))
        }
    }
}

/// A VP8 or VP9 decoder.
///
/// It starts waiting for a keyframe. After a frame fails to decode it drops
/// its libvpx context and waits for a keyframe again, rejecting delta frames
/// with [`CodecError::Decode`]; the caller should then ask the sender for a
/// keyframe (PLI). A keyframe always decodes on a fresh context, whatever
/// came before it.
#[derive(Debug)]
pub struct VpxDecoder {
    codec: VpxCodec,
    /// Decoder threads; `None` picks by the keyframe's size.
    threads: Option<u32>,
    /// Created on the first keyframe, dropped after an error.
    decoder: Option<Decoder>,
    waiting_for_keyframe: bool,
}

impl VpxDecoder {
    /// A decoder for `codec` (VP8 or VP9), threads picked by picture size.
    pub fn new(codec: VideoCodec) -> Result<Self, CodecError> {
        Self::build(codec, None)
    }

    /// A decoder with a fixed number of threads.
    pub fn with_threads(codec: VideoCodec, threads: u32) -> Result<Self, CodecError> {
        Self::build(codec, Some(threads))
    }

    fn build(codec: VideoCodec, threads: Option<u32>) -> Result<Self, CodecError> {
        let codec = vpx_codec(codec)?;
        if let Some(threads @ (0 | 65..)) = threads {
            return Err(CodecError::Init {
                codec: codec.name(),
                reason: format!("{threads} threads (must be 1..=64)"),
            });
        }
        // Start and drop one context now, so a broken libvpx shows here; the
        // real one starts on the first keyframe, when the size is known.
        Decoder::new(codec, 1).map_err(|e| CodecError::Init {
            codec: codec.name(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            codec,
            threads,
            decoder: None,
            waiting_for_keyframe: true,
        })
    }

    fn error(&self, error: VpxError) -> CodecError {
        match error {
            VpxError::Unsupported(what) => CodecError::Unsupported {
                codec: self.codec.name(),
                what,
            },
            other => CodecError::Decode {
                codec: self.codec.name(),
                reason: other.to_string(),
            },
        }
    }

    fn reject(&self, reason: String) -> CodecError {
        CodecError::Decode {
            codec: self.codec.name(),
            reason,
        }
    }
}

impl VideoDecoder for VpxDecoder {
    fn codec(&self) -> VideoCodec {
        match self.codec {
            VpxCodec::Vp8 => VideoCodec::Vp8,
            VpxCodec::Vp9 => VideoCodec::Vp9,
        }
    }

    fn decode(&mut self, data: &[u8], capture_us: u64) -> Result<Option<VideoFrame>, CodecError> {
        if data.is_empty() {
            return Err(self.reject("empty frame".into()));
        }
        // Only a keyframe's header gives a size (VP8 reports an error for
        // every delta frame), so a failed peek just means "not a keyframe".
        let keyframe = match peek_stream_info(self.codec, data) {
            Ok(info) if info.keyframe => {
                if info.width == 0
                    || info.height == 0
                    || info.width > MAX_DIMENSION
                    || info.height > MAX_DIMENSION
                {
                    return Err(self.reject(format!(
                        "keyframe of {}x{} (each side must be 1..={MAX_DIMENSION})",
                        info.width, info.height
                    )));
                }
                Some(info)
            }
            _ => None,
        };
        if self.waiting_for_keyframe && keyframe.is_none() {
            return Err(self.reject(
                "delta frame while waiting for a keyframe (start of stream or after an error)"
                    .into(),
            ));
        }
        let decoder = match (&mut self.decoder, keyframe) {
            (Some(decoder), _) => decoder,
            (empty, Some(info)) => {
                let threads = self.threads.unwrap_or_else(|| {
                    auto_decoder_threads(self.codec, info.width, info.height, cores())
                });
                let decoder = Decoder::new(self.codec, threads).map_err(|e| CodecError::Init {
                    codec: self.codec.name(),
                    reason: e.to_string(),
                })?;
                empty.insert(decoder)
            }
            (None, None) => {
                return Err(self.reject("no decoder context and not a keyframe".into()));
            }
        };
        match decoder.decode(data, capture_us) {
            Ok(picture) => {
                if keyframe.is_some() {
                    self.waiting_for_keyframe = false;
                }
                Ok(picture)
            }
            Err(error) => {
                // Whatever state libvpx is left in, the next keyframe starts
                // on a fresh context.
                self.decoder = None;
                self.waiting_for_keyframe = true;
                tracing::debug!(codec = self.codec.name(), %error, bytes = data.len(), "decode failed");
                Err(self.error(error))
            }
        }
    }
}
