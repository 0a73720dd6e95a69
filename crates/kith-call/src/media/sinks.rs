//! Where decoded (and local preview) media goes besides the counters: the
//! newest picture for a UI to show, a Y4M recording, and how loud each
//! participant is.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use kith_media::frame::{AudioFrame, VideoFrame};
use kith_media::video::scale::Scaler;
use kith_media::video::y4m_file::Y4mSink;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Takes every decoded frame of one stream, on the decoder's thread: it
/// must return quickly, since the next frame waits for it.
pub trait VideoSink: Send {
    fn frame(&mut self, frame: &VideoFrame);
}

/// A reader asking for more than this on a side gets this: a UI request is
/// not trusted to size an allocation made for every frame.
const MAX_VIEW_SIDE: u32 = 7680;

/// The newest frame of one stream, for whoever shows it. The producer never
/// waits for a reader and nothing queues: a slow reader skips to the newest.
#[derive(Clone, Debug)]
pub struct LatestFrame {
    shared: Arc<LatestShared>,
}

#[derive(Debug)]
struct LatestShared {
    slot: watch::Sender<Option<Arc<VideoFrame>>>,
    /// `width << 32 | height`; 0 when frames go out at their own size.
    /// Atomic so a reader's request never contends with the producer.
    size: AtomicU64,
    /// Only the producer locks it; the mutex is there so clones of the
    /// handle can share one set of scaling buffers.
    scaler: Mutex<Scaler>,
    published: AtomicU64,
}

impl Default for LatestFrame {
    fn default() -> Self {
        Self::new()
    }
}

impl LatestFrame {
    pub fn new() -> Self {
        let (slot, _) = watch::channel(None);
        Self {
            shared: Arc::new(LatestShared {
                slot,
                size: AtomicU64::new(0),
                scaler: Mutex::new(Scaler::default()),
                published: AtomicU64::new(0),
            }),
        }
    }

    /// Wakes on every publish; `borrow_and_update` gives the newest frame.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<VideoFrame>>> {
        self.shared.slot.subscribe()
    }

    pub fn latest(&self) -> Option<Arc<VideoFrame>> {
        self.shared.slot.borrow().clone()
    }

    /// Frames from now on are scaled to `size` (`None`: their own size).
    /// The last request wins, whoever made it.
    pub fn set_size(&self, size: Option<(u32, u32)>) {
        let packed = match size {
            Some((width, height)) if width > 0 && height > 0 => {
                let width = u64::from(width.min(MAX_VIEW_SIDE));
                let height = u64::from(height.min(MAX_VIEW_SIDE));
                (width << 32) | height
            }
            _ => 0,
        };
        self.shared.size.store(packed, Ordering::Relaxed);
    }

    pub fn size(&self) -> Option<(u32, u32)> {
        match self.shared.size.load(Ordering::Relaxed) {
            0 => None,
            packed => Some(((packed >> 32) as u32, packed as u32)),
        }
    }

    pub fn frames_published(&self) -> u64 {
        self.shared.published.load(Ordering::Relaxed)
    }

    fn publish(&self, frame: &VideoFrame) {
        let frame = match self.size() {
            Some((width, height)) if (width, height) != (frame.width, frame.height) => {
                let mut scaler = match self.shared.scaler.lock() {
                    Ok(scaler) => scaler,
                    // A panic mid-scale leaves only scratch buffers behind.
                    Err(poisoned) => poisoned.into_inner(),
                };
                match scaler.scale(frame, width, height) {
                    Ok(scaled) => scaled,
                    Err(err) => {
                        debug!(%err, "cannot scale a frame for display");
                        return;
                    }
                }
            }
            _ => frame.clone(),
        };
        // `send_replace` also works with no reader yet: one may subscribe later.
        self.shared.slot.send_replace(Some(Arc::new(frame)));
        self.shared.published.fetch_add(1, Ordering::Relaxed);
    }
}

impl VideoSink for LatestFrame {
    fn frame(&mut self, frame: &VideoFrame) {
        self.publish(frame);
    }
}

/// Records decoded frames to a Y4M file at the size of the first frame
/// (later frames of another size are scaled to it, since Y4M has one size).
/// A write error stops the recording, not the call.
#[derive(Debug)]
pub struct Y4mRecorder {
    path: PathBuf,
    fps: u32,
    sink: Option<(Y4mSink, (u32, u32))>,
    scaler: Scaler,
    failed: bool,
}

impl Y4mRecorder {
    /// The file is created at the first frame; `fps` only labels it.
    pub fn new(path: PathBuf, fps: u32) -> Self {
        Self {
            path,
            fps: fps.max(1),
            sink: None,
            scaler: Scaler::default(),
            failed: false,
        }
    }
}

impl VideoSink for Y4mRecorder {
    fn frame(&mut self, frame: &VideoFrame) {
        if self.failed {
            return;
        }
        if self.sink.is_none() {
            match Y4mSink::create(&self.path, frame.width, frame.height, self.fps) {
                Ok(sink) => {
                    info!(path = %self.path.display(), width = frame.width, height = frame.height, "recording video");
                    self.sink = Some((sink, (frame.width, frame.height)));
                }
                Err(err) => {
                    warn!(%err, "cannot record video");
                    self.failed = true;
                    return;
                }
            }
        }
        let Some((sink, (width, height))) = &mut self.sink else {
            return;
        };
        let (width, height) = (*width, *height);
        let result = if (frame.width, frame.height) == (width, height) {
            sink.write(frame)
        } else {
            match self.scaler.scale(frame, width, height) {
                Ok(scaled) => sink.write(&scaled),
                Err(err) => {
                    debug!(%err, "cannot scale a frame for the recording");
                    return;
                }
            }
        };
        if let Err(err) = result {
            warn!(%err, "recording stopped");
            self.failed = true;
        }
    }
}

/// RFC 6464's range: 0 dBov is the loudest, 127 is silence.
pub const SILENT_DBOV: u8 = 127;
/// Louder than -50 dBov counts as speaking: quiet speech sits around -40,
/// a quiet room's noise (after noise suppression) below -60.
const SPEAKING_DBOV: f32 = 50.0;
/// How fast the level falls after a loud moment, in dB per second, like a
/// VU meter's fall-back: a speaking indicator then holds for about 300 ms
/// after speech stops instead of flickering between syllables.
const RELEASE_DB_PER_S: f32 = 100.0;

/// How loud one participant is right now (RFC 6464-style dBov), fed with
/// every decoded 10 ms frame: a louder frame takes effect at once, and the
/// level falls back at a fixed rate after that. The fall is computed from
/// the time of the last loud frame, so it goes on when packets stop (Opus
/// DTX sends almost nothing during silence).
#[derive(Clone, Debug)]
pub struct AudioLevel {
    /// `f32` level bits << 32 | milliseconds since [`epoch`] of the update,
    /// in one atomic so a reader never pairs a level with the wrong time.
    state: Arc<AtomicU64>,
}

/// Shared origin of the update times, so they fit in 32 bits of ms (49 days).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn ms_since_epoch(at: Instant) -> u32 {
    u32::try_from(at.saturating_duration_since(epoch()).as_millis()).unwrap_or(u32::MAX)
}

/// The level of one frame in dBov, 0 (full scale) to 127 (silence).
fn frame_dbov(frame: &AudioFrame) -> f32 {
    let rms = frame.rms();
    if !rms.is_finite() || rms <= 0.0 {
        return f32::from(SILENT_DBOV);
    }
    (-20.0 * rms.log10()).clamp(0.0, f32::from(SILENT_DBOV))
}

fn pack(level: f32, at_ms: u32) -> u64 {
    (u64::from(level.to_bits()) << 32) | u64::from(at_ms)
}

impl Default for AudioLevel {
    fn default() -> Self {
        Self::new()
    }
}

impl AudioLevel {
    pub fn new() -> Self {
        let now = ms_since_epoch(Instant::now());
        Self {
            state: Arc::new(AtomicU64::new(pack(f32::from(SILENT_DBOV), now))),
        }
    }

    /// Takes one decoded frame.
    pub fn update(&self, frame: &AudioFrame) {
        self.update_at(frame, Instant::now());
    }

    /// The current level: 0 is the loudest, 127 silence.
    pub fn dbov(&self) -> u8 {
        self.dbov_at(Instant::now()).round() as u8
    }

    /// True while the participant is louder than -50 dBov (with the release
    /// hold after it).
    pub fn speaking(&self) -> bool {
        self.dbov_at(Instant::now()) < SPEAKING_DBOV
    }

    fn update_at(&self, frame: &AudioFrame, at: Instant) {
        let level = frame_dbov(frame).min(self.dbov_at(at));
        // One writer per participant (its decoder), so no compare-and-swap.
        self.state
            .store(pack(level, ms_since_epoch(at)), Ordering::Relaxed);
    }

    fn dbov_at(&self, at: Instant) -> f32 {
        let packed = self.state.load(Ordering::Relaxed);
        let level = f32::from_bits((packed >> 32) as u32);
        let elapsed_ms = ms_since_epoch(at).saturating_sub(packed as u32);
        (level + RELEASE_DB_PER_S * elapsed_ms as f32 / 1000.0).min(f32::from(SILENT_DBOV))
    }
}

/// What the UI reads about one participant's media.
#[derive(Clone, Debug, Default)]
pub struct ParticipantMedia {
    pub video: LatestFrame,
    pub audio_level: AudioLevel,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kith_media::frame::Channels;
    use kith_media::video::synthetic::SyntheticCamera;

    use super::*;

    fn frame(capture_us: u64) -> VideoFrame {
        VideoFrame::filled(64, 36, 16, 128, 128, capture_us)
    }

    #[test]
    fn a_slow_reader_sees_only_the_newest_frame() {
        let mut latest = LatestFrame::new();
        let mut reader = latest.subscribe();
        let reader_handle = latest.clone();
        for capture_us in 1..=50 {
            latest.frame(&frame(capture_us));
        }
        assert!(reader.has_changed().unwrap_or(false));
        let seen = reader.borrow_and_update().clone();
        assert_eq!(seen.map(|f| f.capture_us), Some(50));
        // Nothing queued behind it.
        assert!(!reader.has_changed().unwrap_or(true));
        assert_eq!(reader_handle.latest().map(|f| f.capture_us), Some(50));
        assert_eq!(reader_handle.frames_published(), 50);
    }

    #[test]
    fn a_requested_size_is_honoured_and_the_last_request_wins() {
        let mut producer = LatestFrame::new();
        let reader = producer.clone();
        let camera = SyntheticCamera::new(320, 180);
        producer.frame(&camera.draw(0, 1));
        assert_eq!(
            reader.latest().map(|f| (f.width, f.height)),
            Some((320, 180))
        );
        reader.set_size(Some((640, 360)));
        reader.set_size(Some((160, 90)));
        producer.frame(&camera.draw(1, 2));
        let shown = reader.latest();
        assert_eq!(shown.as_ref().map(|f| (f.width, f.height)), Some((160, 90)));
        assert_eq!(shown.map(|f| f.capture_us), Some(2));
        reader.set_size(None);
        producer.frame(&camera.draw(2, 3));
        assert_eq!(
            reader.latest().map(|f| (f.width, f.height)),
            Some((320, 180))
        );
        // An absurd request is clamped rather than allocated.
        reader.set_size(Some((u32::MAX, 10)));
        assert_eq!(reader.size(), Some((MAX_VIEW_SIDE, 10)));
    }

    fn tone(amplitude: f32) -> AudioFrame {
        let mut frame = AudioFrame::silent(Channels::Mono, 0);
        for (i, s) in frame.samples.iter_mut().enumerate() {
            *s = amplitude * (i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 48_000.0).sin();
        }
        frame
    }

    #[test]
    fn a_tone_is_loud_and_speaking() {
        let level = AudioLevel::new();
        let start = Instant::now();
        for i in 0..10 {
            level.update_at(&tone(0.25), start + Duration::from_millis(10 * i));
        }
        // A 0.25 sine has an RMS of 0.177: -15 dBov.
        let now = start + Duration::from_millis(90);
        let dbov = level.dbov_at(now);
        assert!((14.0..16.5).contains(&dbov), "{dbov}");
        assert!(level.dbov_at(now) < SPEAKING_DBOV);
        assert!(level.speaking());
    }

    #[test]
    fn silence_is_127_and_a_tone_fades_to_it() {
        let level = AudioLevel::new();
        assert_eq!(level.dbov(), SILENT_DBOV);
        assert!(!level.speaking());
        let start = Instant::now();
        for i in 0..10 {
            level.update_at(&AudioFrame::silent(Channels::Mono, i), start);
        }
        assert_eq!(level.dbov_at(start), f32::from(SILENT_DBOV));

        level.update_at(&tone(0.25), start);
        let mut at = start;
        // Silence after the tone: still "speaking" for the hold, then not.
        for _ in 0..20 {
            at += Duration::from_millis(10);
            level.update_at(&AudioFrame::silent(Channels::Mono, 0), at);
        }
        assert!(level.dbov_at(at) < SPEAKING_DBOV, "held for 200 ms");
        for _ in 0..30 {
            at += Duration::from_millis(10);
            level.update_at(&AudioFrame::silent(Channels::Mono, 0), at);
        }
        assert!(level.dbov_at(at) >= SPEAKING_DBOV, "released after 500 ms");
        // No packets at all (DTX): the level still falls to silence.
        let later = at + Duration::from_secs(2);
        assert_eq!(level.dbov_at(later), f32::from(SILENT_DBOV));
    }
}
