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
use tracing::{debug, info, warn};

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
    /// An opened output to play on from now on.
    Speaker(Box<Speaker>),
    FarEnd(RenderHandle),
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
                Speaker::open(&DeviceChoice::Default, Channels::Mono).map_err(|err| {
                    crate::device_errors::audio(kith_call_core::DeviceKind::Speaker, err)
                })?,
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

    /// Plays on another output from the next 10 ms on (and on one at all
    /// when the mixer started without speakers). The device is opened here,
    /// on the caller's thread, so a missing one is an error to the caller
    /// and the old output keeps playing.
    pub fn switch_speaker(&self, choice: DeviceChoice) -> Result<(), CallError> {
        let speaker = Speaker::open(&choice, Channels::Mono)
            .map_err(|err| crate::device_errors::audio(kith_call_core::DeviceKind::Speaker, err))?;
        self.control
            .send(Control::Speaker(Box::new(speaker)))
            .map_err(|_| CallError::Stopped)
    }

    /// Feeds what the speakers play to this echo canceller from now on
    /// (one made after the call started, see `AudioSend::take_far_end`).
    pub fn set_far_end(&self, far_end: RenderHandle) {
        let _ = self.control.send(Control::FarEnd(far_end));
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
                Ok(Control::Speaker(new)) => {
                    info!(device = new.device_name(), "speaker switched");
                    // The old device's stream closes here.
                    speaker = Some(*new);
                }
                Ok(Control::FarEnd(handle)) => far_end = Some(handle),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_speaker_that_cannot_open_is_an_error_and_the_mix_goes_on() {
        let path = std::env::temp_dir().join(format!("kith-mixer-{}.wav", std::process::id()));
        let mixer = match Mixer::start(MixerOutputs {
            speaker: false,
            record_wav: Some(path.clone()),
            far_end: None,
        }) {
            Ok(mixer) => mixer,
            Err(err) => panic!("mixer did not start: {err}"),
        };
        // No such device whether or not a sound server runs here.
        let missing = mixer.switch_speaker(DeviceChoice::Name("kith-test-no-such-speaker".into()));
        assert!(
            matches!(
                missing,
                Err(CallError::Device {
                    device: kith_call_core::DeviceKind::Speaker,
                    ..
                })
            ),
            "{missing:?}"
        );
        let input = mixer.add_input();
        let mut frame = AudioFrame::silent(Channels::Mono, 0);
        frame.samples.iter_mut().for_each(|s| *s = 0.5);
        for _ in 0..PREBUFFER + 4 {
            let _ = input.try_send(frame.clone());
        }
        std::thread::sleep(Duration::from_millis(300));
        drop(input);
        drop(mixer);
        // The mix kept going to the recording: the loud frames are in it.
        let recorded = kith_media::audio::wav::WavSource::open(&path, Channels::Mono);
        let _ = std::fs::remove_file(&path);
        let mut recorded = match recorded {
            Ok(recorded) => recorded,
            Err(err) => panic!("no recording: {err}"),
        };
        let mut loud = 0;
        for _ in 0..30 {
            match recorded.next_frame() {
                Ok(frame) if frame.rms() > 0.4 => loud += 1,
                Ok(_) => {}
                Err(err) => panic!("bad recording: {err}"),
            }
        }
        assert!(loud >= PREBUFFER, "{loud} loud frames");
    }
}
