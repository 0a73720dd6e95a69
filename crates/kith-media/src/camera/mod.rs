//! Camera capture: list cameras, open one in the mode closest to a request,
//! and pull frames converted to I420.
//!
//! No camera (or a busy, unplugged or stalled one) is a [`CameraError`],
//! never a panic or a hang; callers fall back to the synthetic source.

mod capture;
mod convert;
mod devices;
mod error;

pub use capture::{Camera, CameraRequest, FRAME_TIMEOUT, Mode, OPEN_TIMEOUT, choose_format};
pub use convert::{PixelFormat, to_i420};
pub use devices::{CameraChoice, CameraInfo, list_cameras};
pub use error::CameraError;
