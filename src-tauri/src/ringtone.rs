//! The incoming-call ring, played natively (WebKitGTK plays media only
//! through GStreamer and not from the app's own scheme): `assets/ring.wav`
//! on the default speakers, then a pause, until stopped.

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kith_media::audio_io::{DeviceChoice, Speaker};
use kith_media::frame::{AudioFrame, Channels, SAMPLES_PER_FRAME};
use tracing::{debug, warn};

const RING_WAV: &[u8] = include_bytes!("../../assets/ring.wav");
const PAUSE: Duration = Duration::from_secs(2);

/// Rings while it lives (or until `stop`).
#[derive(Debug, Default)]
pub struct RingTone {
    playing: Option<Arc<AtomicBool>>,
}

impl RingTone {
    pub fn set(&mut self, on: bool) {
        if on == self.playing.is_some() {
            return;
        }
        if let Some(flag) = self.playing.take() {
            flag.store(false, Ordering::Relaxed);
            return;
        }
        let flag = Arc::new(AtomicBool::new(true));
        let running = Arc::clone(&flag);
        let spawned = std::thread::Builder::new()
            .name("kith-ring".into())
            .spawn(move || ring(&running));
        match spawned {
            Ok(_) => self.playing = Some(flag),
            Err(error) => warn!(%error, "cannot start the ring tone"),
        }
    }
}

impl Drop for RingTone {
    fn drop(&mut self) {
        self.set(false);
    }
}

fn ring(running: &AtomicBool) {
    let samples = match decode() {
        Ok(samples) => samples,
        Err(error) => {
            warn!(%error, "the ring tone asset is unreadable");
            return;
        }
    };
    let mut speaker = match Speaker::open(&DeviceChoice::Default, Channels::Mono) {
        Ok(speaker) => speaker,
        Err(error) => {
            // No speakers: the window still shows the call.
            debug!(%error, "no speaker for the ring tone");
            return;
        }
    };
    let mut frame = AudioFrame::silent(Channels::Mono, 0);
    let started = Instant::now();
    let mut sent = 0u32;
    let per_cycle = samples.len().div_ceil(SAMPLES_PER_FRAME) + (PAUSE.as_millis() / 10) as usize;
    'ringing: while running.load(Ordering::Relaxed) {
        for index in 0..per_cycle {
            if !running.load(Ordering::Relaxed) {
                break 'ringing;
            }
            let start = (index * SAMPLES_PER_FRAME).min(samples.len());
            let chunk = &samples[start..(start + SAMPLES_PER_FRAME).min(samples.len())];
            frame.samples.fill(0.0);
            frame.samples[..chunk.len()].copy_from_slice(chunk);
            speaker.write_frame(&frame);
            frame.position += SAMPLES_PER_FRAME as u64;
            sent += 1;
            // Keep about 60 ms queued: pace the writes on the clock.
            let due = started + Duration::from_millis(10 * u64::from(sent.saturating_sub(6)));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
}

fn decode() -> Result<Vec<f32>, hound::Error> {
    let reader = hound::WavReader::new(Cursor::new(RING_WAV))?;
    reader
        .into_samples::<i16>()
        .map(|sample| sample.map(|s| f32::from(s) / 32768.0))
        .collect()
}
