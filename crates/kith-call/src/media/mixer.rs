//! Mixes the decoded audio of every peer, 10 ms at a time, and sends the mix
//! to the speakers, to the echo canceller as its far end, and to a WAV file.
//! Each peer's frames wait in a small queue that is filled to a few frames
//! before play starts (the audio jitter buffer).

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded, unbounded};
use kith_media::audio::wav::WavSink;
use kith_media::audio_io::{DeviceChoice, Speaker};
use kith_media::frame::{AudioFrame, Channels};
use kith_media::processing::RenderHandle;
use tracing::{debug, warn};

use crate::error::CallError;

/// Frames queued per peer before its audio starts playing (60 ms).
const PREBUFFER: usize = 6;
/// A queue longer than this (drift, a burst) is trimmed back to PREBUFFER.
const MAX_QUEUE: usize = 25;
/// Capacity of one peer's queue.
pub const INPUT_CAPACITY: usize = 50;

/// Where the mix goes.
#[derive(Debug, Default)]
pub struct MixerOutputs {
    pub speaker: bool,
    pub record_wav: Option<PathBuf>,
    pub far_end: Option<RenderHandle>,
}

enum Control {
    Add(Receiver<AudioFrame>),
}

/// The running mixer; dropping it stops its thread (and closes the WAV file).
#[derive(Debug)]
pub struct Mixer {
    control: Sender<Control>,
    thread: Option<JoinHandle<()>>,
}

impl Mixer {
    pub fn start(outputs: MixerOutputs) -> Result<Self, CallError> {
        let speaker = if outputs.speaker {
            Some(
                Speaker::open(&DeviceChoice::Default, Channels::Mono)
                    .map_err(CallError::media("speakers"))?,
            )
        } else {
            None
        };
        let wav = match &outputs.record_wav {
            Some(path) => Some(
                WavSink::create(path, Channels::Mono)
                    .map_err(CallError::media("audio recording"))?,
            ),
            None => None,
        };
        let (control, control_rx) = unbounded();
        let far_end = outputs.far_end;
        let span = tracing::Span::current();
        let thread = std::thread::Builder::new()
            .name("audio-mixer".into())
            .spawn(move || {
                let _entered = span.enter();
                run(control_rx, speaker, wav, far_end)
            })
            .map_err(CallError::media("start the mixer"))?;
        Ok(Self {
            control,
            thread: Some(thread),
        })
    }

    /// A new peer's audio: returns the sender its decoder writes to.
    pub fn add_input(&self) -> Sender<AudioFrame> {
        let (tx, rx) = bounded(INPUT_CAPACITY);
        let _ = self.control.send(Control::Add(rx));
        tx
    }
}

impl Drop for Mixer {
    fn drop(&mut self) {
        let (closed, _) = unbounded();
        self.control = closed;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Input {
    frames: Receiver<AudioFrame>,
    playing: bool,
}

/// True once the peer's decoder is gone and its queue is played out.
fn finished(input: &Input) -> bool {
    input.frames.is_empty() && matches!(input.frames.try_recv(), Err(TryRecvError::Disconnected))
}

fn run(
    control: Receiver<Control>,
    mut speaker: Option<Speaker>,
    mut wav: Option<WavSink>,
    mut far_end: Option<RenderHandle>,
) {
    const TICK: Duration = Duration::from_millis(10);
    let mut inputs: Vec<Input> = Vec::new();
    let mut next = Instant::now();
    let mut position = 0u64;
    let mut mix = AudioFrame::silent(Channels::Mono, 0);
    loop {
        loop {
            match control.try_recv() {
                Ok(Control::Add(frames)) => inputs.push(Input {
                    frames,
                    playing: false,
                }),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if let Some(wav) = wav.take()
                        && let Err(err) = wav.finish()
                    {
                        warn!(%err, "audio recording was not finished cleanly");
                    }
                    return;
                }
            }
        }
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += TICK;
        if next + TICK * 10 < Instant::now() {
            next = Instant::now() + TICK;
        }
        position += 1;
        mix.position = position;
        mix.samples.iter_mut().for_each(|s| *s = 0.0);
        inputs.retain(|input| !finished(input));
        for input in &mut inputs {
            let queued = input.frames.len();
            if !input.playing {
                if queued < PREBUFFER {
                    continue;
                }
                input.playing = true;
            }
            if queued > MAX_QUEUE {
                for _ in 0..queued - PREBUFFER {
                    let _ = input.frames.try_recv();
                }
            }
            match input.frames.try_recv() {
                Ok(frame) => {
                    for (out, sample) in mix.samples.iter_mut().zip(frame.samples.iter()) {
                        *out += sample;
                    }
                }
                // Ran dry: fill up again before playing on.
                Err(_) => input.playing = false,
            }
        }
        mix.samples.iter_mut().for_each(|s| *s = s.clamp(-1.0, 1.0));
        if let Some(speaker) = &mut speaker {
            speaker.write_frame(&mix);
            if let Some(far_end) = &mut far_end {
                while let Some(played) = speaker.take_played() {
                    if let Err(err) = far_end.process_render(&played) {
                        debug!(%err, "far end not taken");
                    }
                }
            }
        }
        if let Some(sink) = &mut wav
            && let Err(err) = sink.write(&mix)
        {
            warn!(%err, "audio recording stopped");
            wav = None;
        }
    }
}
