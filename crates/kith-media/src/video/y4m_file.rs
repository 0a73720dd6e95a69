//! YUV4MPEG2 files: a looping video source and a sink that records frames.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::frame::VideoFrame;

/// Why a Y4M file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Y4mError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid YUV4MPEG2 file: {problem}")]
    Malformed { path: PathBuf, problem: String },
    #[error(
        "{path} uses colour space {colorspace}; Kith reads 8-bit 4:2:0 (C420, C420jpeg, C420paldv, C420mpeg2)"
    )]
    UnsupportedColorspace { path: PathBuf, colorspace: String },
    #[error("{path} has no complete frame (it is empty or cut short)")]
    Empty { path: PathBuf },
    #[error("cannot write {path}: {problem}")]
    Write { path: PathBuf, problem: String },
    #[error("frame is {got_w}x{got_h} but {path} is {want_w}x{want_h}")]
    SizeMismatch {
        path: PathBuf,
        got_w: u32,
        got_h: u32,
        want_w: u32,
        want_h: u32,
    },
}

fn describe(err: &y4m::Error) -> String {
    match err {
        y4m::Error::EOF => "ends in the middle of a header or frame".into(),
        y4m::Error::BadInput => "header has invalid parameters".into(),
        y4m::Error::UnknownColorspace => "header names an unknown colour space".into(),
        y4m::Error::ParseError(inner) => format!("header does not parse ({inner})"),
        y4m::Error::IoError(inner) => format!("read failed ({inner})"),
        y4m::Error::OutOfMemory => "frame size is implausibly large".into(),
    }
}

/// Reads frames from a Y4M file, starting over at the end.
pub struct Y4mSource {
    path: PathBuf,
    decoder: y4m::Decoder<BufReader<File>>,
    width: u32,
    height: u32,
    fps: (u32, u32),
    frames_in_pass: u64,
}

impl Y4mSource {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Y4mError> {
        let path = path.as_ref().to_path_buf();
        let decoder = Self::decoder(&path)?;
        let width = u32::try_from(decoder.get_width()).unwrap_or(0);
        let height = u32::try_from(decoder.get_height()).unwrap_or(0);
        if width == 0 || height == 0 {
            return Err(Y4mError::Malformed {
                path,
                problem: "width or height is zero".into(),
            });
        }
        let rate = decoder.get_framerate();
        let fps = (
            u32::try_from(rate.num).unwrap_or(30),
            u32::try_from(rate.den).unwrap_or(1).max(1),
        );
        Ok(Self {
            path,
            decoder,
            width,
            height,
            fps,
            frames_in_pass: 0,
        })
    }

    fn decoder(path: &Path) -> Result<y4m::Decoder<BufReader<File>>, Y4mError> {
        let file = File::open(path).map_err(|source| Y4mError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let decoder = y4m::decode(BufReader::new(file)).map_err(|err| Y4mError::Malformed {
            path: path.to_path_buf(),
            problem: describe(&err),
        })?;
        match decoder.get_colorspace() {
            y4m::Colorspace::C420
            | y4m::Colorspace::C420jpeg
            | y4m::Colorspace::C420paldv
            | y4m::Colorspace::C420mpeg2 => Ok(decoder),
            other => Err(Y4mError::UnsupportedColorspace {
                path: path.to_path_buf(),
                colorspace: format!("{other:?}"),
            }),
        }
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Frame rate as numerator and denominator.
    pub fn frame_rate(&self) -> (u32, u32) {
        self.fps
    }

    /// The next frame, stamped `capture_us`; wraps to the first frame at the end.
    pub fn next_frame(&mut self, capture_us: u64) -> Result<VideoFrame, Y4mError> {
        loop {
            match self.decoder.read_frame() {
                Ok(frame) => {
                    let mut data =
                        Vec::with_capacity(VideoFrame::byte_len(self.width, self.height));
                    data.extend_from_slice(frame.get_y_plane());
                    data.extend_from_slice(frame.get_u_plane());
                    data.extend_from_slice(frame.get_v_plane());
                    self.frames_in_pass += 1;
                    return VideoFrame::from_i420(self.width, self.height, data, capture_us)
                        .ok_or_else(|| Y4mError::Malformed {
                            path: self.path.clone(),
                            problem: "a frame's planes have the wrong size".into(),
                        });
                }
                Err(y4m::Error::EOF) if self.frames_in_pass > 0 => {
                    self.decoder = Self::decoder(&self.path)?;
                    self.frames_in_pass = 0;
                }
                Err(y4m::Error::EOF) => {
                    return Err(Y4mError::Empty {
                        path: self.path.clone(),
                    });
                }
                Err(err) => {
                    return Err(Y4mError::Malformed {
                        path: self.path.clone(),
                        problem: describe(&err),
                    });
                }
            }
        }
    }
}

/// Writes frames to a Y4M file (C420jpeg). All frames must have one size.
/// Unbuffered on purpose: a frame is a few large writes, and nothing is left
/// unwritten when the sink is dropped.
pub struct Y4mSink {
    path: PathBuf,
    encoder: y4m::Encoder<File>,
    width: u32,
    height: u32,
}

impl Y4mSink {
    pub fn create(
        path: impl AsRef<Path>,
        width: u32,
        height: u32,
        fps: u32,
    ) -> Result<Self, Y4mError> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path).map_err(|source| Y4mError::Open {
            path: path.clone(),
            source,
        })?;
        let encoder = y4m::encode(
            width as usize,
            height as usize,
            y4m::Ratio::new(fps.max(1) as usize, 1),
        )
        .with_colorspace(y4m::Colorspace::C420jpeg)
        .write_header(file)
        .map_err(|err| Y4mError::Write {
            path: path.clone(),
            problem: describe(&err),
        })?;
        Ok(Self {
            path,
            encoder,
            width,
            height,
        })
    }

    pub fn write(&mut self, frame: &VideoFrame) -> Result<(), Y4mError> {
        if (frame.width, frame.height) != (self.width, self.height) {
            return Err(Y4mError::SizeMismatch {
                path: self.path.clone(),
                got_w: frame.width,
                got_h: frame.height,
                want_w: self.width,
                want_h: self.height,
            });
        }
        let planes = y4m::Frame::new([frame.y(), frame.u(), frame.v()], None);
        self.encoder
            .write_frame(&planes)
            .map_err(|err| Y4mError::Write {
                path: self.path.clone(),
                problem: describe(&err),
            })
    }
}

impl std::fmt::Debug for Y4mSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Y4mSource")
            .field("path", &self.path)
            .field("size", &(self.width, self.height))
            .field("fps", &self.fps)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Y4mSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Y4mSink")
            .field("path", &self.path)
            .field("size", &(self.width, self.height))
            .finish_non_exhaustive()
    }
}
