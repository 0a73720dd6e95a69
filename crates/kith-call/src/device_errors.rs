//! kith-media's device errors as the call's typed ones, so a UI can tell
//! "no camera" from "camera busy" from "unplugged" without reading text.

use kith_call_core::{CallError, DeviceKind, DeviceProblem};
use kith_media::audio_io::AudioIoError;
use kith_media::camera::CameraError;

pub fn camera(err: CameraError) -> CallError {
    let problem = match &err {
        CameraError::NotFound { .. } => DeviceProblem::Missing,
        CameraError::Busy { .. } => DeviceProblem::Busy,
        CameraError::Unplugged { .. } => DeviceProblem::Unplugged,
        _ => DeviceProblem::Failed,
    };
    CallError::device(DeviceKind::Camera, problem, err.to_string())
}

/// An audio device error; `device` says which end (microphone or speaker).
pub fn audio(device: DeviceKind, err: AudioIoError) -> CallError {
    let problem = match &err {
        AudioIoError::NoDevice { .. }
        | AudioIoError::DeviceNotFound { .. }
        | AudioIoError::AudioSystemUnavailable { .. } => DeviceProblem::Missing,
        AudioIoError::DeviceUnavailable { .. } | AudioIoError::PermissionDenied { .. } => {
            DeviceProblem::Busy
        }
        AudioIoError::DeviceLost { .. } => DeviceProblem::Unplugged,
        _ => DeviceProblem::Failed,
    };
    CallError::device(device, problem, err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_errors_keep_what_the_user_can_act_on() {
        let missing = camera(CameraError::NotFound {
            wanted: "index 97".into(),
            available: Vec::new(),
        });
        assert!(matches!(
            missing,
            CallError::Device {
                device: DeviceKind::Camera,
                problem: DeviceProblem::Missing,
                ..
            }
        ));
        let busy = camera(CameraError::Busy {
            name: "cam".into(),
            detail: "EBUSY".into(),
        });
        assert!(matches!(
            busy,
            CallError::Device {
                problem: DeviceProblem::Busy,
                ..
            }
        ));
        let lost = audio(
            DeviceKind::Microphone,
            AudioIoError::DeviceLost {
                device: "usb".into(),
                reason: "gone".into(),
            },
        );
        assert!(matches!(
            lost,
            CallError::Device {
                device: DeviceKind::Microphone,
                problem: DeviceProblem::Unplugged,
                ..
            }
        ));
    }
}
