//! H.264 decoder over OpenH264.

use openh264::decoder::{DecodedYUV, Decoder, DecoderConfig};
use openh264::formats::YUVSource;

use super::{NAME, annexb};
use crate::codec::planes::copy_plane;
use crate::codec::{CodecError, VideoCodec, VideoDecoder};
use crate::frame::VideoFrame;

/// Largest picture side accepted (OpenH264's level 5.2 limit is 3840x2160
/// either way round; anything beyond is a corrupt SPS).
const MAX_DIMENSION: u32 = 4096;

/// An H.264 decoder: one thread, no error concealment, one access unit
/// (Annex B, as an RTP depacketizer rebuilds it) in, at most one picture out.
///
/// It starts waiting for a keyframe (an access unit with an IDR slice).
/// After an access unit fails to decode it drops its OpenH264 context and
/// waits for a keyframe again, rejecting other frames with
/// [`CodecError::Decode`]; the caller should then ask the sender for a
/// keyframe (PLI). That keyframe decodes on a fresh context, so it must
/// carry its SPS and PPS, as every keyframe of
/// [`H264Encoder`](super::H264Encoder) and of browsers does.
pub struct H264Decoder {
    /// Created on the first keyframe, dropped after an error.
    decoder: Option<Decoder>,
    waiting_for_keyframe: bool,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder")
            .field("active", &self.decoder.is_some())
            .field("waiting_for_keyframe", &self.waiting_for_keyframe)
            .finish()
    }
}

fn decoder() -> Result<Decoder, String> {
    // DecoderConfig's defaults: one thread, error concealment off (a damaged
    // picture is an error, not a guess), quiet logging.
    Decoder::with_api_config(openh264::OpenH264API::from_source(), DecoderConfig::new())
        .map_err(|e| format!("WelsCreateDecoder: {e}"))
}

fn reject(reason: impl Into<String>) -> CodecError {
    CodecError::Decode {
        codec: NAME,
        reason: reason.into(),
    }
}

/// OpenH264's `DECODING_STATE` flags, for error messages.
fn describe_state(state: i64) -> String {
    const FLAGS: [(i64, &str); 11] = [
        (0x01, "frame pending"),
        (0x02, "reference lost"),
        (0x04, "bitstream error"),
        (0x08, "dependency layer lost"),
        (0x10, "no parameter sets"),
        (0x20, "data error concealed"),
        (0x40, "reference list null pointers"),
        (0x1000, "invalid argument"),
        (0x2000, "initialization expected"),
        (0x4000, "out of memory"),
        (0x8000, "destination buffer needs expanding"),
    ];
    let names: Vec<&str> = FLAGS
        .iter()
        .filter(|(bit, _)| state & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        format!("state {state:#x}")
    } else {
        format!("state {state:#x} ({})", names.join(", "))
    }
}

/// Copies a decoded picture into a tightly packed I420 frame.
fn to_frame(picture: &DecodedYUV<'_>, capture_us: u64) -> Result<VideoFrame, CodecError> {
    let (width, height) = picture.dimensions();
    let (Ok(width), Ok(height)) = (u32::try_from(width), u32::try_from(height)) else {
        return Err(reject(format!("picture of {width}x{height}")));
    };
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(reject(format!(
            "picture of {width}x{height} (each side must be 1..={MAX_DIMENSION})"
        )));
    }
    let mut frame = VideoFrame::filled(width, height, 0, 128, 128, capture_us);
    let (cw, ch) = VideoFrame::chroma_size(width, height);
    let (y_stride, u_stride, v_stride) = picture.strides();
    let (y, u, v) = frame.planes_mut();
    let planes = [
        (picture.y(), y_stride, y, width, height),
        (picture.u(), u_stride, u, cw, ch),
        (picture.v(), v_stride, v, cw, ch),
    ];
    for (src, stride, dst, w, h) in planes {
        if !copy_plane(src, stride, dst, w as usize, w as usize, h as usize) {
            return Err(reject(format!(
                "decoded {width}x{height} picture has a plane smaller than its size"
            )));
        }
    }
    Ok(frame)
}

impl H264Decoder {
    pub fn new() -> Result<Self, CodecError> {
        // Start and drop one context now, so a broken OpenH264 shows here;
        // the real one starts on the first keyframe.
        decoder().map_err(|reason| CodecError::Init {
            codec: NAME,
            reason,
        })?;
        Ok(Self {
            decoder: None,
            waiting_for_keyframe: true,
        })
    }

    /// Forgets the context: the next access unit must be a keyframe.
    fn reset(&mut self) {
        self.decoder = None;
        self.waiting_for_keyframe = true;
    }
}

impl VideoDecoder for H264Decoder {
    fn codec(&self) -> VideoCodec {
        VideoCodec::H264
    }

    fn decode(&mut self, data: &[u8], capture_us: u64) -> Result<Option<VideoFrame>, CodecError> {
        if data.is_empty() {
            return Err(reject("empty access unit"));
        }
        let Some(contents) = annexb::contents(data) else {
            // Not handed to OpenH264 at all: it would look for start codes
            // and may keep bytes around for the next call.
            return Err(reject(
                "not an Annex B access unit (no start code, an empty NAL unit or a forbidden bit set)",
            ));
        };
        if self.waiting_for_keyframe && !contents.idr {
            return Err(reject(
                "delta frame while waiting for a keyframe (start of stream or after an error)",
            ));
        }
        let decoder = match &mut self.decoder {
            Some(decoder) => decoder,
            empty => empty.insert(decoder().map_err(|reason| CodecError::Init {
                codec: NAME,
                reason,
            })?),
        };
        let result = match decoder.decode(data) {
            Ok(Some(picture)) => to_frame(&picture, capture_us).map(Some),
            // Parameter sets alone give no picture; slices must.
            Ok(None) if !contents.slices => Ok(None),
            Ok(None) => Err(reject(
                "an access unit with slices gave no picture (incomplete frame?)",
            )),
            Err(error) => Err(reject(format!(
                "DecodeFrameNoDelay: {}",
                describe_state(error.native_code())
            ))),
        };
        match &result {
            Ok(_) if contents.idr => self.waiting_for_keyframe = false,
            Ok(_) => {}
            Err(error) => {
                // Whatever state OpenH264 is left in, the next keyframe
                // starts on a fresh context.
                tracing::debug!(%error, bytes = data.len(), "H.264 decode failed");
                self.reset();
            }
        }
        result
    }
}
