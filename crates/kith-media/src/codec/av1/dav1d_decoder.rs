//! AV1 decoding with dav1d.

use dav1d::{Decoder, PixelLayout, PlanarImageComponent, Settings};

use crate::codec::planes::copy_plane;
use crate::codec::{CodecError, VideoCodec, VideoDecoder};
use crate::frame::VideoFrame;

const NAME: &str = "dav1d";

/// dav1d set for calls: one frame of delay, a thread per core we may use.
pub struct Dav1dDecoder {
    decoder: Decoder,
}

impl std::fmt::Debug for Dav1dDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dav1dDecoder").finish_non_exhaustive()
    }
}

fn decode_error(reason: impl Into<String>) -> CodecError {
    CodecError::Decode {
        codec: NAME,
        reason: reason.into(),
    }
}

impl Dav1dDecoder {
    pub fn new(threads: u32) -> Result<Self, CodecError> {
        let mut settings = Settings::new();
        settings.set_n_threads(threads.max(1));
        // Output each frame as soon as it is decoded: latency over throughput.
        settings.set_max_frame_delay(1);
        let decoder = Decoder::with_settings(&settings).map_err(|err| CodecError::Init {
            codec: NAME,
            reason: err.to_string(),
        })?;
        Ok(Self { decoder })
    }

    fn picture_to_frame(
        picture: &dav1d::Picture,
        capture_us: u64,
    ) -> Result<VideoFrame, CodecError> {
        if picture.pixel_layout() != PixelLayout::I420 || picture.bit_depth() != 8 {
            return Err(CodecError::Unsupported {
                codec: NAME,
                what: format!(
                    "{:?} at {} bits (Kith decodes 8-bit 4:2:0)",
                    picture.pixel_layout(),
                    picture.bit_depth()
                ),
            });
        }
        let (width, height) = (picture.width(), picture.height());
        let mut frame = VideoFrame::filled(width, height, 0, 128, 128, capture_us);
        let (cw, ch) = VideoFrame::chroma_size(width, height);
        let (y, u, v) = frame.planes_mut();
        let targets = [
            (PlanarImageComponent::Y, y, width, height),
            (PlanarImageComponent::U, u, cw, ch),
            (PlanarImageComponent::V, v, cw, ch),
        ];
        for (component, target, w, h) in targets {
            let plane = picture.plane(component);
            let stride = picture.stride(component) as usize;
            if !copy_plane(&plane, stride, target, w as usize, w as usize, h as usize) {
                return Err(decode_error("picture planes are smaller than the picture"));
            }
        }
        Ok(frame)
    }
}

impl VideoDecoder for Dav1dDecoder {
    fn codec(&self) -> VideoCodec {
        VideoCodec::Av1
    }

    fn decode(&mut self, data: &[u8], capture_us: u64) -> Result<Option<VideoFrame>, CodecError> {
        let timestamp = i64::try_from(capture_us).unwrap_or(i64::MAX);
        let mut latest = None;
        match self
            .decoder
            .send_data(data.to_vec(), None, Some(timestamp), None)
        {
            Ok(()) => {}
            Err(dav1d::Error::Again) => {
                // Pictures are waiting; take them, then hand over the rest.
                loop {
                    match self.decoder.get_picture() {
                        Ok(picture) => latest = Some(picture),
                        Err(dav1d::Error::Again) => {}
                        Err(err) => return Err(decode_error(err.to_string())),
                    }
                    match self.decoder.send_pending_data() {
                        Ok(()) => break,
                        Err(dav1d::Error::Again) => continue,
                        Err(err) => return Err(decode_error(err.to_string())),
                    }
                }
            }
            Err(err) => {
                self.decoder.flush();
                return Err(decode_error(err.to_string()));
            }
        }
        loop {
            match self.decoder.get_picture() {
                Ok(picture) => latest = Some(picture),
                Err(dav1d::Error::Again) => break,
                Err(err) => {
                    self.decoder.flush();
                    return Err(decode_error(err.to_string()));
                }
            }
        }
        latest
            .map(|picture| {
                let stamp = picture
                    .timestamp()
                    .and_then(|t| u64::try_from(t).ok())
                    .unwrap_or(capture_us);
                Self::picture_to_frame(&picture, stamp)
            })
            .transpose()
    }
}
