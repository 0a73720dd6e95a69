//! AV1 encoding with rav1e, the pure-Rust encoder, tuned for calls.

use bytes::Bytes;
use rav1e::config::SpeedSettings;
use rav1e::prelude::SceneDetectionSpeed;
use rav1e::prelude::{
    ChromaSampling, Config, Context, EncoderConfig, EncoderStatus, FrameParameters, FrameType,
    FrameTypeOverride, Opaque, Rational,
};

use crate::codec::av1::obu;
use crate::codec::{
    CodecError, EncodedVideoFrame, VideoCodec, VideoEncoder, VideoEncoderConfig, check_frame_size,
    rtp_timestamp,
};
use crate::frame::VideoFrame;

const NAME: &str = "rav1e";

/// The speed preset rav1e runs at by default: 10 is its fastest, the only one
/// near real time on two cores (9.8 fps at 720p measured here, 28.7 at 360p).
pub const DEFAULT_SPEED: u8 = 10;

/// Frames rav1e 0.8 holds back even in low-latency mode: its API keeps a
/// keyframe lookahead of 2 frames plus 1 frame of RDO lookahead before it
/// emits a packet. At 30 fps that is 133 ms, which is why calls prefer
/// libaom when it is available (see `choose`).
pub const RAV1E_LAG_FRAMES: usize = 4;

/// rav1e in low-latency mode: no reordering, one packet per frame after a
/// fixed lag of [`RAV1E_LAG_FRAMES`].
pub struct Rav1eEncoder {
    context: Context<u8>,
    config: VideoEncoderConfig,
    speed: u8,
    threads: usize,
    /// The last sequence header seen, put in front of keyframes that lack one.
    sequence_header: Option<Bytes>,
    next_is_key: bool,
}

impl std::fmt::Debug for Rav1eEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rav1eEncoder")
            .field("config", &self.config)
            .field("speed", &self.speed)
            .finish_non_exhaustive()
    }
}

impl Rav1eEncoder {
    pub fn new(config: VideoEncoderConfig, speed: u8, threads: usize) -> Result<Self, CodecError> {
        let context = Self::context(&config, speed, threads)?;
        Ok(Self {
            context,
            config,
            speed,
            threads,
            sequence_header: None,
            next_is_key: true,
        })
    }

    fn context(
        config: &VideoEncoderConfig,
        speed: u8,
        threads: usize,
    ) -> Result<Context<u8>, CodecError> {
        let fail = |reason: String| CodecError::Init {
            codec: NAME,
            reason,
        };
        if config.width < 16 || config.height < 16 || config.fps == 0 || config.bitrate_bps == 0 {
            return Err(fail(format!("unusable settings {config:?}")));
        }
        let mut speed_settings = SpeedSettings::from_preset(speed);
        speed_settings.rdo_lookahead_frames = 1;
        // Keyframes come when a peer asks; scene detection would only add cost.
        speed_settings.scene_detection_mode = SceneDetectionSpeed::None;
        let encoder = EncoderConfig {
            width: config.width as usize,
            height: config.height as usize,
            bit_depth: 8,
            chroma_sampling: ChromaSampling::Cs420,
            time_base: Rational::new(1, u64::from(config.fps)),
            low_latency: true,
            // Keyframes when asked for (a peer joined or lost one), and
            // otherwise rarely: each one costs several normal frames.
            min_key_frame_interval: 0,
            max_key_frame_interval: u64::from(config.fps) * 60,
            // Bitrate mode: quantizer 255 lets rate control use the whole range.
            quantizer: 255,
            min_quantizer: 0,
            bitrate: i32::try_from(config.bitrate_bps).unwrap_or(i32::MAX),
            // A one-second buffer: tight enough for a call, loose enough that
            // a keyframe is not starved into an unreadable smear (12 frames was).
            reservoir_frame_delay: Some(30),
            error_resilient: true,
            tiles: if config.width * config.height >= 1280 * 720 {
                4
            } else {
                2
            },
            speed_settings,
            ..EncoderConfig::default()
        };
        Config::new()
            .with_encoder_config(encoder)
            .with_threads(threads)
            .new_context()
            .map_err(|err| fail(err.to_string()))
    }

    fn rebuild(&mut self) -> Result<(), CodecError> {
        self.context = Self::context(&self.config, self.speed, self.threads)?;
        self.next_is_key = true;
        Ok(())
    }
}

impl VideoEncoder for Rav1eEncoder {
    fn codec(&self) -> VideoCodec {
        VideoCodec::Av1
    }

    fn implementation(&self) -> &'static str {
        NAME
    }

    fn encode(
        &mut self,
        frame: &VideoFrame,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedVideoFrame>, CodecError> {
        let encode_error = |reason: String| CodecError::Encode {
            codec: NAME,
            reason,
        };
        check_frame_size(NAME, frame, &self.config)?;
        let mut input = self.context.new_frame();
        let (cw, _) = VideoFrame::chroma_size(frame.width, frame.height);
        let sources = [
            (frame.y(), frame.width as usize),
            (frame.u(), cw as usize),
            (frame.v(), cw as usize),
        ];
        for (plane, (data, stride)) in input.planes.iter_mut().zip(sources) {
            plane.copy_from_raw_u8(data, stride, 1);
        }
        let key = force_keyframe || self.next_is_key;
        let parameters = FrameParameters {
            frame_type_override: if key {
                FrameTypeOverride::Key
            } else {
                FrameTypeOverride::No
            },
            opaque: Some(Opaque::new(frame.capture_us)),
            ..FrameParameters::default()
        };
        self.next_is_key = false;
        self.context
            .send_frame((input, parameters))
            .map_err(|err| encode_error(err.to_string()))?;
        let mut out = Vec::new();
        loop {
            match self.context.receive_packet() {
                Ok(packet) => {
                    let capture_us = packet
                        .opaque
                        .and_then(|o| o.downcast::<u64>().ok())
                        .map_or(frame.capture_us, |b| *b);
                    let keyframe = packet.frame_type == FrameType::KEY;
                    let mut data = packet.data;
                    if keyframe {
                        match obu::split(&data) {
                            Some(spans) => {
                                if let Some(header) =
                                    spans.iter().find(|s| s.kind == obu::OBU_SEQUENCE_HEADER)
                                {
                                    self.sequence_header = Some(Bytes::copy_from_slice(
                                        &data[header.start..header.start + header.len],
                                    ));
                                } else if let Some(header) = &self.sequence_header {
                                    let mut with_header = header.to_vec();
                                    with_header.extend_from_slice(&data);
                                    data = with_header;
                                }
                            }
                            None => {
                                return Err(encode_error("encoder produced malformed OBUs".into()));
                            }
                        }
                    }
                    out.push(EncodedVideoFrame {
                        codec: VideoCodec::Av1,
                        data: Bytes::from(data),
                        keyframe,
                        width: self.config.width,
                        height: self.config.height,
                        capture_us,
                        rtp_timestamp: rtp_timestamp(capture_us),
                    });
                }
                Err(EncoderStatus::Encoded) => continue,
                Err(EncoderStatus::NeedMoreData) => break,
                Err(err) => return Err(encode_error(err.to_string())),
            }
        }
        Ok(out)
    }

    /// rav1e fixes its rate control when it starts, so a new bitrate means a
    /// new encoder (and a keyframe); small changes are ignored to avoid that.
    fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<(), CodecError> {
        let current = f64::from(self.config.bitrate_bps);
        if (f64::from(bitrate_bps) - current).abs() / current < 0.15 {
            return Ok(());
        }
        self.config.bitrate_bps = bitrate_bps;
        self.rebuild()
    }

    fn set_fps(&mut self, fps: u32) -> Result<(), CodecError> {
        if fps == self.config.fps {
            return Ok(());
        }
        self.config.fps = fps;
        self.rebuild()
    }

    fn set_resolution(&mut self, width: u32, height: u32) -> Result<(), CodecError> {
        if (width, height) == (self.config.width, self.config.height) {
            return Ok(());
        }
        self.config.width = width;
        self.config.height = height;
        self.rebuild()
    }

    fn config(&self) -> VideoEncoderConfig {
        self.config
    }
}
