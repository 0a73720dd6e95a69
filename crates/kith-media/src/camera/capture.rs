//! Opening a camera and pulling frames from it.
//!
//! nokhwa's `Camera` is not `Send` and its frame read blocks with no timeout,
//! so each open camera gets its own thread that owns the device and keeps
//! only the newest raw frame. [`Camera::next_frame`] waits (at most
//! [`FRAME_TIMEOUT`]) for that frame and converts it on the caller's thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nokhwa::NokhwaError;
use nokhwa::utils::{CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType};

use super::convert::{PixelFormat, to_i420};
use super::devices::{CameraChoice, list_cameras, resolve};
use super::error::CameraError;
use crate::frame::{VideoFrame, now_us};

/// Longest [`Camera::next_frame`] waits before giving up.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest [`Camera::open`] waits for the device to configure and start.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Formats Kith can convert, in order of preference.
const WANTED: [FrameFormat; 3] = [FrameFormat::MJPEG, FrameFormat::YUYV, FrameFormat::NV12];

/// What the caller would like; the device may only come close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraRequest {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// One offered (or negotiated) mode: width, height, fps, pixel format.
pub type Mode = (u32, u32, u32, PixelFormat);

fn pixel_format(f: FrameFormat) -> Option<PixelFormat> {
    match f {
        FrameFormat::MJPEG => Some(PixelFormat::Mjpeg),
        FrameFormat::YUYV => Some(PixelFormat::Yuyv),
        FrameFormat::NV12 => Some(PixelFormat::Nv12),
        FrameFormat::GRAY | FrameFormat::RAWRGB | FrameFormat::RAWBGR => None,
    }
}

fn frame_format(p: PixelFormat) -> Option<FrameFormat> {
    match p {
        PixelFormat::Mjpeg => Some(FrameFormat::MJPEG),
        PixelFormat::Yuyv => Some(FrameFormat::YUYV),
        PixelFormat::Nv12 => Some(FrameFormat::NV12),
        PixelFormat::I420 => None,
    }
}

/// Picks the offered mode closest to `request`: nearest resolution first
/// (ties go to the larger one), then nearest frame rate (rates at or above
/// the request beat slower ones), then MJPEG over YUYV over NV12.
pub fn choose_format(offered: &[Mode], request: CameraRequest) -> Option<Mode> {
    let rank = |p: PixelFormat| match p {
        PixelFormat::Mjpeg => 0,
        PixelFormat::Yuyv => 1,
        PixelFormat::Nv12 => 2,
        PixelFormat::I420 => 3,
    };
    offered
        .iter()
        .filter(|m| m.0 > 0 && m.1 > 0 && frame_format(m.3).is_some())
        .min_by_key(|&&(w, h, fps, fmt)| {
            let res_dist = w.abs_diff(request.width) + h.abs_diff(request.height);
            let smaller =
                u64::from(w) * u64::from(h) < u64::from(request.width) * u64::from(request.height);
            let slower = fps < request.fps;
            (
                res_dist,
                smaller,
                slower,
                fps.abs_diff(request.fps),
                rank(fmt),
            )
        })
        .copied()
}

/// Newest raw frame from the device thread, or why the thread stopped.
#[derive(Debug, Default)]
struct Slot {
    latest: Option<(Vec<u8>, u64)>,
    failure: Option<CameraError>,
}

#[derive(Debug, Default)]
struct Shared {
    slot: Mutex<Slot>,
    ready: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fail(&self, error: CameraError) {
        let mut slot = self.lock();
        if slot.failure.is_none() {
            slot.failure = Some(error);
        }
        drop(slot);
        self.ready.notify_all();
    }
}

/// Marks the camera dead however the device thread ends (even by panic).
struct EndGuard(Arc<Shared>, String);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.fail(CameraError::Unplugged {
            name: self.1.clone(),
            detail: "camera thread ended".into(),
        });
    }
}

/// An open camera delivering I420 frames.
#[derive(Debug)]
pub struct Camera {
    name: String,
    mode: Mode,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl Camera {
    /// Opens the chosen camera in the offered mode closest to `request`.
    pub fn open(choice: &CameraChoice, request: CameraRequest) -> Result<Self, CameraError> {
        let info = resolve(choice, &list_cameras()?)?;
        let name = format!("{} ({})", info.name, info.index);
        let index = info.index;
        let camera = Self::start(name.clone(), move |name: &str| {
            open_device(index, request, name)
        })?;
        tracing::info!(camera = %name, mode = ?camera.mode, ?request, "camera open");
        Ok(camera)
    }

    /// Runs `open` on a new device thread, then reads frames there until
    /// dropped or the source fails.
    fn start<S, F>(name: String, open: F) -> Result<Self, CameraError>
    where
        S: FrameSource,
        F: FnOnce(&str) -> Result<(S, Mode), CameraError> + Send + 'static,
    {
        let shared = Arc::new(Shared::default());
        let (opened_tx, opened_rx) = mpsc::sync_channel(1);
        let worker = {
            let shared = Arc::clone(&shared);
            let name = name.clone();
            std::thread::Builder::new()
                .name("kith-camera".into())
                .spawn(move || run_device(open, &name, shared, opened_tx))
                .map_err(|e| CameraError::Backend(format!("cannot start camera thread: {e}")))?
        };
        let mut camera = Self {
            name: name.clone(),
            mode: (0, 0, 0, PixelFormat::I420),
            shared,
            worker: Some(worker),
        };
        match opened_rx.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok(mode)) => {
                camera.mode = mode;
                Ok(camera)
            }
            Ok(Err(e)) => Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(CameraError::Timeout {
                name,
                waited: OPEN_TIMEOUT,
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(CameraError::Backend(format!(
                "camera {name}: device thread ended while opening"
            ))),
        }
    }

    /// The negotiated width, height, fps and pixel format.
    pub fn format(&self) -> (u32, u32, u32, PixelFormat) {
        self.mode
    }

    /// Waits for the next frame (never one already returned) and converts it
    /// to I420. `capture_us` is when the frame was taken off the device.
    pub fn next_frame(&mut self) -> Result<VideoFrame, CameraError> {
        let deadline = Instant::now() + FRAME_TIMEOUT;
        let mut slot = self.shared.lock();
        loop {
            if let Some((data, capture_us)) = slot.latest.take() {
                drop(slot);
                let (w, h, _, format) = self.mode;
                return to_i420(&data, w, h, format, capture_us);
            }
            if let Some(error) = &slot.failure {
                return Err(error.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(CameraError::Timeout {
                    name: self.name.clone(),
                    waited: FRAME_TIMEOUT,
                });
            }
            slot = self
                .shared
                .ready
                .wait_timeout(slot, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let Some(worker) = self.worker.take() else {
            return;
        };
        // The thread notices `stop` after its current read, which a stalled
        // device may never finish; don't hang the caller for it.
        let deadline = Instant::now() + Duration::from_secs(1);
        while !worker.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if worker.is_finished() {
            if worker.join().is_err() {
                tracing::warn!(camera = %self.name, "camera thread panicked");
            }
        } else {
            tracing::warn!(camera = %self.name, "camera thread still blocked; leaving it");
        }
    }
}

/// Maps a nokhwa error to ours, spotting busy and vanished devices.
fn classify(error: &NokhwaError, name: &str, reading: bool) -> CameraError {
    let text = error.to_string();
    let lower = text.to_lowercase();
    if lower.contains("busy") || lower.contains("os error 16") {
        CameraError::Busy {
            name: name.to_string(),
            detail: text,
        }
    } else if reading
        || lower.contains("no such device")
        || lower.contains("os error 19")
        || lower.contains("os error 2)")
    {
        CameraError::Unplugged {
            name: name.to_string(),
            detail: text,
        }
    } else {
        CameraError::Backend(format!("camera {name}: {text}"))
    }
}

/// Opens and configures the device; returns it and the negotiated mode.
fn open_device(
    index: u32,
    request: CameraRequest,
    name: &str,
) -> Result<(NokhwaSource, Mode), CameraError> {
    let any_wanted = RequestedFormat::with_formats(RequestedFormatType::None, &WANTED);
    let mut camera = nokhwa::Camera::new(CameraIndex::Index(index), any_wanted).map_err(|e| {
        if matches!(&e, NokhwaError::GetPropertyError { property, .. } if property == "CameraFormat") {
            CameraError::UnsupportedFormat {
                detail: format!("camera {name} offers no MJPEG, YUYV or NV12 mode"),
            }
        } else {
            classify(&e, name, false)
        }
    })?;
    let offered: Vec<Mode> = camera
        .compatible_camera_formats()
        .map_err(|e| classify(&e, name, false))?
        .into_iter()
        .filter_map(|f| {
            Some((
                f.width(),
                f.height(),
                f.frame_rate(),
                pixel_format(f.format())?,
            ))
        })
        .collect();
    tracing::debug!(camera = %name, ?offered, "camera modes");
    let (w, h, fps, fmt) =
        choose_format(&offered, request).ok_or_else(|| CameraError::UnsupportedFormat {
            detail: format!("camera {name} offers no MJPEG, YUYV or NV12 mode"),
        })?;
    let target = CameraFormat::new_from(w, h, frame_format(fmt).unwrap_or(FrameFormat::MJPEG), fps);
    if camera.camera_format() != target {
        let exact = [target.format()];
        camera
            .set_camera_requset(RequestedFormat::with_formats(
                RequestedFormatType::Exact(target),
                &exact,
            ))
            .map_err(|e| classify(&e, name, false))?;
    }
    camera
        .open_stream()
        .map_err(|e| classify(&e, name, false))?;
    let actual = camera.camera_format();
    let format = pixel_format(actual.format()).ok_or_else(|| CameraError::UnsupportedFormat {
        detail: format!("camera {name} switched to {}", actual.format()),
    })?;
    Ok((
        NokhwaSource {
            camera,
            name: name.to_string(),
        },
        (actual.width(), actual.height(), actual.frame_rate(), format),
    ))
}

/// Where the device thread gets raw frames; a trait so tests can stand in
/// for a camera that stalls or vanishes.
trait FrameSource {
    /// Blocks for the next raw frame.
    fn read_frame(&mut self) -> Result<Vec<u8>, CameraError>;
    /// Stops streaming (called once, on the device thread).
    fn stop(&mut self);
}

struct NokhwaSource {
    camera: nokhwa::Camera,
    name: String,
}

impl FrameSource for NokhwaSource {
    fn read_frame(&mut self) -> Result<Vec<u8>, CameraError> {
        self.camera
            .frame_raw()
            .map(std::borrow::Cow::into_owned)
            .map_err(|e| classify(&e, &self.name, true))
    }

    fn stop(&mut self) {
        if let Err(e) = self.camera.stop_stream() {
            tracing::debug!(camera = %self.name, error = %e, "stopping camera stream");
        }
    }
}

/// Body of the per-camera thread.
fn run_device<S: FrameSource>(
    open: impl FnOnce(&str) -> Result<(S, Mode), CameraError>,
    name: &str,
    shared: Arc<Shared>,
    opened: mpsc::SyncSender<Result<Mode, CameraError>>,
) {
    let _guard = EndGuard(Arc::clone(&shared), name.to_string());
    let mut source = match open(name) {
        Ok((source, mode)) => {
            // The receiver may have timed out and gone; then just stop.
            if opened.send(Ok(mode)).is_err() {
                return;
            }
            source
        }
        Err(e) => {
            let _ = opened.send(Err(e));
            return;
        }
    };
    while !shared.stop.load(Ordering::Relaxed) {
        match source.read_frame() {
            Ok(data) => {
                let capture_us = now_us();
                let mut slot = shared.lock();
                slot.latest = Some((data, capture_us));
                drop(slot);
                shared.ready.notify_all();
            }
            Err(e) => {
                tracing::warn!(camera = %name, error = %e, "camera read failed");
                shared.fail(e);
                break;
            }
        }
    }
    source.stop();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::VecDeque;

    use super::*;

    enum Then {
        Fail(CameraError),
        Stall(Duration),
    }

    struct Fake {
        frames: VecDeque<Vec<u8>>,
        then: Option<Then>,
        gap: Duration,
    }

    impl FrameSource for Fake {
        fn read_frame(&mut self) -> Result<Vec<u8>, CameraError> {
            std::thread::sleep(self.gap);
            if let Some(frame) = self.frames.pop_front() {
                return Ok(frame);
            }
            match self.then.take() {
                Some(Then::Fail(e)) => Err(e),
                Some(Then::Stall(d)) => {
                    std::thread::sleep(d);
                    Err(CameraError::Backend("stalled".into()))
                }
                None => Err(CameraError::Backend("fake ran dry".into())),
            }
        }
        fn stop(&mut self) {}
    }

    const MODE: Mode = (2, 2, 30, PixelFormat::Yuyv);

    fn fake(frames: Vec<Vec<u8>>, then: Then, gap_ms: u64) -> Result<Camera, CameraError> {
        Camera::start("fake (9)".into(), move |_: &str| {
            Ok((
                Fake {
                    frames: frames.into(),
                    then: Some(then),
                    gap: Duration::from_millis(gap_ms),
                },
                MODE,
            ))
        })
    }

    fn yuyv_2x2(y: u8) -> Vec<u8> {
        vec![y, 100, y, 200, y, 100, y, 200]
    }

    #[test]
    fn frames_then_unplug_gives_frames_then_unplugged() {
        let unplugged = CameraError::Unplugged {
            name: "fake (9)".into(),
            detail: "No such device (os error 19)".into(),
        };
        let frames = vec![yuyv_2x2(50), yuyv_2x2(60), yuyv_2x2(70)];
        let mut cam = fake(frames, Then::Fail(unplugged), 30).unwrap();
        assert_eq!(cam.format(), MODE);
        let before = now_us();
        let mut seen = Vec::new();
        let err = loop {
            match cam.next_frame() {
                Ok(f) => {
                    assert!(f.capture_us >= before && f.capture_us <= now_us());
                    assert_eq!((f.u(), f.v()), (&[100][..], &[200][..]));
                    seen.push(f.y()[0]);
                }
                Err(e) => break e,
            }
        };
        assert!(
            !seen.is_empty() && seen.windows(2).all(|w| w[0] < w[1]),
            "{seen:?}"
        );
        assert!(matches!(err, CameraError::Unplugged { .. }), "{err:?}");
        // Stays failed, immediately.
        let t = Instant::now();
        assert!(matches!(
            cam.next_frame(),
            Err(CameraError::Unplugged { .. })
        ));
        assert!(t.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn stalled_camera_times_out_and_drop_does_not_hang() {
        let mut cam = fake(vec![], Then::Stall(Duration::from_secs(4)), 0).unwrap();
        let t = Instant::now();
        let err = cam.next_frame().unwrap_err();
        let waited = t.elapsed();
        assert!(matches!(err, CameraError::Timeout { .. }), "{err:?}");
        assert!(err.to_string().contains("2000 ms"), "{err}");
        assert!(
            waited >= Duration::from_millis(1900) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        let t = Instant::now();
        drop(cam);
        assert!(t.elapsed() < Duration::from_millis(1500));
    }

    #[test]
    fn corrupt_frame_is_an_error_and_capture_continues() {
        let frames = vec![vec![1, 2, 3], yuyv_2x2(80)];
        let mut cam = fake(frames, Then::Stall(Duration::from_secs(1)), 100).unwrap();
        let err = cam.next_frame().unwrap_err();
        assert!(matches!(err, CameraError::CorruptFrame { .. }), "{err:?}");
        assert_eq!(cam.next_frame().unwrap().y(), &[80; 4]);
    }

    #[test]
    fn busy_open_is_reported() {
        let err = Camera::start("fake (9)".into(), |name: &str| -> Result<(Fake, Mode), _> {
            Err(classify(
                &NokhwaError::OpenStreamError("Device or resource busy (os error 16)".into()),
                name,
                false,
            ))
        })
        .unwrap_err();
        assert!(matches!(err, CameraError::Busy { .. }), "{err:?}");
        assert!(err.to_string().contains("busy"), "{err}");
    }

    #[test]
    fn classify_maps_errors() {
        let read = NokhwaError::ReadFrameError("No such device (os error 19)".into());
        assert!(matches!(
            classify(&read, "c", true),
            CameraError::Unplugged { .. }
        ));
        let gone = NokhwaError::OpenDeviceError("/dev/video0".into(), "No such device".into());
        assert!(matches!(
            classify(&gone, "c", false),
            CameraError::Unplugged { .. }
        ));
        let other = NokhwaError::GeneralError("weird".into());
        assert!(matches!(
            classify(&other, "c", false),
            CameraError::Backend(_)
        ));
    }
}
