//! Turning a [`DeviceChoice`] into one entry of a device list.

use super::DeviceChoice;
use super::error::{AudioIoError, Direction};

/// The two strings a person may know a device by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceLabel {
    /// Stable id from the backend (PulseAudio sink/source name, ALSA PCM name).
    pub(crate) name: String,
    /// Human description, e.g. "Built-in Audio Analog Stereo".
    pub(crate) description: String,
}

/// Index into `labels` for a `Index` or `Name` choice. `Default` is resolved by the
/// backend, not here.
pub(crate) fn resolve(
    choice: &DeviceChoice,
    labels: &[DeviceLabel],
    direction: Direction,
) -> Result<usize, AudioIoError> {
    let not_found = |wanted: String| AudioIoError::DeviceNotFound {
        direction,
        wanted,
        available: labels.iter().map(|l| l.name.clone()).collect(),
    };
    match choice {
        DeviceChoice::Default => Err(not_found("the default device".to_owned())),
        DeviceChoice::Index(i) => {
            if *i < labels.len() {
                Ok(*i)
            } else {
                Err(not_found(format!("#{i}")))
            }
        }
        DeviceChoice::Name(wanted) => {
            if let Some(i) = labels.iter().position(|l| l.name == *wanted) {
                return Ok(i);
            }
            if let Some(i) = labels.iter().position(|l| l.description == *wanted) {
                return Ok(i);
            }
            let needle = wanted.to_lowercase();
            if needle.is_empty() {
                return Err(not_found(wanted.clone()));
            }
            let hits: Vec<usize> = labels
                .iter()
                .enumerate()
                .filter(|(_, l)| {
                    l.name.to_lowercase().contains(&needle)
                        || l.description.to_lowercase().contains(&needle)
                })
                .map(|(i, _)| i)
                .collect();
            match hits.as_slice() {
                [one] => Ok(*one),
                [] => Err(not_found(wanted.clone())),
                many => Err(AudioIoError::AmbiguousDevice {
                    direction,
                    wanted: wanted.clone(),
                    matches: many.iter().map(|i| labels[*i].name.clone()).collect(),
                }),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn labels() -> Vec<DeviceLabel> {
        [
            (
                "alsa_output.pci.analog-stereo",
                "Built-in Audio Analog Stereo",
            ),
            (
                "alsa_output.usb-headset.analog-stereo",
                "USB Headset Analog Stereo",
            ),
            ("kith_spk", "Null Output"),
            ("kith_spk2", "Null Output"),
        ]
        .into_iter()
        .map(|(n, d)| DeviceLabel {
            name: n.into(),
            description: d.into(),
        })
        .collect()
    }

    fn name(s: &str) -> DeviceChoice {
        DeviceChoice::Name(s.into())
    }

    #[test]
    fn exact_name_wins_over_substring() {
        assert_eq!(
            resolve(&name("kith_spk"), &labels(), Direction::Output).unwrap(),
            2
        );
    }

    #[test]
    fn unique_substring_of_name_or_description() {
        assert_eq!(
            resolve(&name("usb"), &labels(), Direction::Output).unwrap(),
            1
        );
        assert_eq!(
            resolve(&name("built-in"), &labels(), Direction::Output).unwrap(),
            0
        );
        assert_eq!(
            resolve(&name("kith_spk2"), &labels(), Direction::Output).unwrap(),
            3
        );
    }

    #[test]
    fn ambiguous_substring_lists_matches() {
        match resolve(&name("analog"), &labels(), Direction::Output) {
            Err(AudioIoError::AmbiguousDevice { matches, .. }) => assert_eq!(matches.len(), 2),
            other => panic!("{other:?}"),
        }
        // An exact description shared by two devices picks the first; names disambiguate.
        assert_eq!(
            resolve(&name("Null Output"), &labels(), Direction::Output).unwrap(),
            2
        );
    }

    #[test]
    fn missing_name_lists_available() {
        match resolve(&name("no-such-device"), &labels(), Direction::Input) {
            Err(AudioIoError::DeviceNotFound {
                wanted,
                available,
                direction,
            }) => {
                assert_eq!(wanted, "no-such-device");
                assert_eq!(available.len(), 4);
                assert_eq!(direction, Direction::Input);
            }
            other => panic!("{other:?}"),
        }
        assert!(resolve(&name(""), &labels(), Direction::Input).is_err());
    }

    #[test]
    fn index_in_and_out_of_range() {
        assert_eq!(
            resolve(&DeviceChoice::Index(3), &labels(), Direction::Output).unwrap(),
            3
        );
        assert!(matches!(
            resolve(&DeviceChoice::Index(4), &labels(), Direction::Output),
            Err(AudioIoError::DeviceNotFound { .. })
        ));
    }
}
