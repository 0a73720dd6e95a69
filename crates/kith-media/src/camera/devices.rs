//! Which cameras exist, and which one the user meant.

use nokhwa::utils::{ApiBackend, CameraIndex};

use super::error::CameraError;

/// One camera the platform reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraInfo {
    /// Platform index (on Linux the `N` of `/dev/videoN`).
    pub index: u32,
    /// Human-readable name, e.g. `"HD Webcam C615"`.
    pub name: String,
    /// Backend-specific detail, e.g. the device path.
    pub description: String,
}

/// How the user picked a camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraChoice {
    /// The camera with this platform index.
    Index(u32),
    /// The camera whose name is exactly this, or the only one containing it
    /// (case-insensitive).
    Name(String),
}

impl CameraChoice {
    fn describe(&self) -> String {
        match self {
            CameraChoice::Index(i) => format!("camera index {i}"),
            CameraChoice::Name(n) => format!("camera named {n:?}"),
        }
    }
}

fn backend() -> Result<ApiBackend, CameraError> {
    nokhwa::native_api_backend()
        .ok_or_else(|| CameraError::Backend("no camera backend for this platform".into()))
}

/// Cameras attached now. No camera is `Ok(vec![])`, not an error.
pub fn list_cameras() -> Result<Vec<CameraInfo>, CameraError> {
    let found = nokhwa::query(backend()?).map_err(|e| CameraError::Backend(e.to_string()))?;
    let mut cameras: Vec<CameraInfo> = found
        .into_iter()
        .filter_map(|info| match info.index() {
            CameraIndex::Index(index) => Some(CameraInfo {
                index: *index,
                name: info.human_name(),
                description: info.description().to_string(),
            }),
            CameraIndex::String(other) => {
                tracing::debug!(id = %other, "skipping camera without a numeric index");
                None
            }
        })
        .collect();
    cameras.sort_by_key(|c| c.index);
    Ok(cameras)
}

/// Finds the camera `choice` names among `cameras`.
pub(crate) fn resolve(
    choice: &CameraChoice,
    cameras: &[CameraInfo],
) -> Result<CameraInfo, CameraError> {
    let found = match choice {
        CameraChoice::Index(i) => cameras.iter().find(|c| c.index == *i),
        CameraChoice::Name(name) => {
            let wanted = name.to_lowercase();
            cameras.iter().find(|c| c.name == *name).or_else(|| {
                let mut matching = cameras
                    .iter()
                    .filter(|c| !wanted.is_empty() && c.name.to_lowercase().contains(&wanted));
                match (matching.next(), matching.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            })
        }
    };
    found.cloned().ok_or_else(|| CameraError::NotFound {
        wanted: choice.describe(),
        available: cameras
            .iter()
            .map(|c| format!("{} ({})", c.name, c.index))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn cams() -> Vec<CameraInfo> {
        [
            "HD Webcam C615",
            "Integrated Camera",
            "Integrated IR Camera",
        ]
        .iter()
        .enumerate()
        .map(|(i, n)| CameraInfo {
            index: i as u32 * 2,
            name: (*n).to_string(),
            description: String::new(),
        })
        .collect()
    }

    #[test]
    fn resolves_index_exact_and_unique_substring() {
        let c = cams();
        assert_eq!(
            resolve(&CameraChoice::Index(2), &c).unwrap().name,
            "Integrated Camera"
        );
        assert_eq!(
            resolve(&CameraChoice::Name("Integrated Camera".into()), &c)
                .unwrap()
                .index,
            2
        );
        assert_eq!(
            resolve(&CameraChoice::Name("webcam".into()), &c)
                .unwrap()
                .index,
            0
        );
    }

    #[test]
    fn ambiguous_or_missing_is_not_found_with_list() {
        let c = cams();
        for choice in [
            CameraChoice::Name("Integrated".into()),
            CameraChoice::Name(String::new()),
            CameraChoice::Index(1),
        ] {
            match resolve(&choice, &c) {
                Err(CameraError::NotFound { available, .. }) => assert_eq!(available.len(), 3),
                other => panic!("{choice:?}: {other:?}"),
            }
        }
    }
}
