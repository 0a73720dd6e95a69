//! WAV files as an audio source (looping, any rate and channel count) and an
//! audio sink (48 kHz, 16-bit), for tests and bots.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::audio_io::mix::ChannelMixer;
use crate::audio_io::resample::RateConverter;
use crate::frame::{AudioFrame, Channels, SAMPLE_RATE, SAMPLES_PER_FRAME};

/// Why a WAV file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("cannot open {path}: {problem}")]
    Open { path: PathBuf, problem: String },
    #[error("{path} is not a usable WAV file: {problem}")]
    Malformed { path: PathBuf, problem: String },
    #[error("cannot write {path}: {problem}")]
    Write { path: PathBuf, problem: String },
}

/// Reads a WAV file as 10 ms 48 kHz frames, starting over at the end.
pub struct WavSource {
    path: PathBuf,
    reader: hound::WavReader<BufReader<File>>,
    spec: hound::WavSpec,
    channels: Channels,
    mixer: ChannelMixer,
    converter: RateConverter,
    ready: VecDeque<f32>,
    scratch: Vec<f32>,
    mixed: Vec<f32>,
    position: u64,
}

impl std::fmt::Debug for WavSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSource")
            .field("path", &self.path)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl WavSource {
    pub fn open(path: impl AsRef<Path>, channels: Channels) -> Result<Self, WavError> {
        let path = path.as_ref().to_path_buf();
        let reader = Self::reader(&path)?;
        let spec = reader.spec();
        let malformed = |problem: String| WavError::Malformed {
            path: path.clone(),
            problem,
        };
        if spec.channels == 0 || spec.sample_rate == 0 || reader.len() == 0 {
            return Err(malformed("it has no audio".into()));
        }
        let mixer = ChannelMixer::new(usize::from(spec.channels), channels.count())
            .ok_or_else(|| malformed(format!("{} channels cannot be mixed down", spec.channels)))?;
        let converter = RateConverter::new(spec.sample_rate, SAMPLE_RATE, channels.count())
            .map_err(malformed)?;
        Ok(Self {
            path,
            reader,
            spec,
            channels,
            mixer,
            converter,
            ready: VecDeque::new(),
            scratch: Vec::new(),
            mixed: Vec::new(),
            position: 0,
        })
    }

    fn reader(path: &Path) -> Result<hound::WavReader<BufReader<File>>, WavError> {
        let file = File::open(path).map_err(|err| WavError::Open {
            path: path.to_path_buf(),
            problem: err.to_string(),
        })?;
        // Once the file is open, anything hound cannot read is the file's fault.
        hound::WavReader::new(BufReader::new(file)).map_err(|err| WavError::Malformed {
            path: path.to_path_buf(),
            problem: err.to_string(),
        })
    }

    /// Reads up to `frames` device frames (all channels) as f32.
    fn read_chunk(&mut self, frames: usize) -> Result<usize, WavError> {
        self.scratch.clear();
        let wanted = frames * usize::from(self.spec.channels);
        let malformed = |err: hound::Error, path: &Path| WavError::Malformed {
            path: path.to_path_buf(),
            problem: err.to_string(),
        };
        match self.spec.sample_format {
            hound::SampleFormat::Float => {
                for sample in self.reader.samples::<f32>().take(wanted) {
                    self.scratch
                        .push(sample.map_err(|e| malformed(e, &self.path))?);
                }
            }
            hound::SampleFormat::Int => {
                let scale = 1.0 / (1u64 << (self.spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
                for sample in self.reader.samples::<i32>().take(wanted) {
                    self.scratch
                        .push(sample.map_err(|e| malformed(e, &self.path))? as f32 * scale);
                }
            }
        }
        Ok(self.scratch.len() / usize::from(self.spec.channels))
    }

    /// The next 10 ms.
    pub fn next_frame(&mut self) -> Result<AudioFrame, WavError> {
        let wanted = SAMPLES_PER_FRAME * self.channels.count();
        while self.ready.len() < wanted {
            let chunk = (self.spec.sample_rate as usize / 100).max(1);
            if self.read_chunk(chunk)? == 0 {
                // Loop: reopen and read from the start.
                self.reader = Self::reader(&self.path)?;
                if self.read_chunk(chunk)? == 0 {
                    return Err(WavError::Malformed {
                        path: self.path.clone(),
                        problem: "it has no audio".into(),
                    });
                }
            }
            self.mixed.clear();
            self.mixer.mix_into(&self.scratch, &mut self.mixed);
            self.converter.process(&self.mixed, &mut self.ready);
        }
        let mut frame = AudioFrame::silent(self.channels, self.position);
        for (slot, sample) in frame.samples.iter_mut().zip(self.ready.drain(..wanted)) {
            *slot = sample;
        }
        self.position += SAMPLES_PER_FRAME as u64;
        Ok(frame)
    }
}

/// Writes 10 ms frames to a 48 kHz 16-bit WAV file.
pub struct WavSink {
    path: PathBuf,
    writer: hound::WavWriter<std::io::BufWriter<File>>,
    channels: Channels,
}

impl std::fmt::Debug for WavSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavSink")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl WavSink {
    pub fn create(path: impl AsRef<Path>, channels: Channels) -> Result<Self, WavError> {
        let path = path.as_ref().to_path_buf();
        let spec = hound::WavSpec {
            channels: channels.count() as u16,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(&path, spec).map_err(|err| WavError::Open {
            path: path.clone(),
            problem: err.to_string(),
        })?;
        Ok(Self {
            path,
            writer,
            channels,
        })
    }

    /// Appends a frame; a frame with another channel count is mixed to the sink's.
    pub fn write(&mut self, frame: &AudioFrame) -> Result<(), WavError> {
        let mixer = ChannelMixer::new(frame.channels.count(), self.channels.count());
        let mut mixed = Vec::with_capacity(SAMPLES_PER_FRAME * self.channels.count());
        match mixer {
            Some(mixer) => {
                mixer.mix_into(&frame.samples, &mut mixed);
            }
            None => mixed.extend_from_slice(&frame.samples),
        }
        for sample in mixed {
            let value = (sample.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16;
            self.writer
                .write_sample(value)
                .map_err(|err| WavError::Write {
                    path: self.path.clone(),
                    problem: err.to_string(),
                })?;
        }
        Ok(())
    }

    /// Writes the header's final length; dropping the sink does this too, silently.
    pub fn finish(self) -> Result<(), WavError> {
        let path = self.path;
        self.writer.finalize().map_err(|err| WavError::Write {
            path,
            problem: err.to_string(),
        })
    }
}
