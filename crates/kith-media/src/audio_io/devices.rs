//! Finding the audio backend and its devices.

use cpal::traits::{DeviceTrait, HostTrait};
use cpal::{SupportedStreamConfig, SupportedStreamConfigRange};

use super::DeviceChoice;
use super::error::{AudioIoError, Direction};
use super::format::{LISTED_RATES, StreamOptions, StreamPlan, plan};
use super::matching::{DeviceLabel, resolve};
use crate::frame::Channels;

/// One audio device as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioDeviceInfo {
    /// Position in the list, usable as [`DeviceChoice::Index`] while devices do not change.
    pub index: usize,
    /// Stable backend name (PulseAudio sink/source name, or ALSA PCM name); what
    /// [`DeviceChoice::Name`] matches first.
    pub name: String,
    /// Human-readable description, e.g. "Built-in Audio Analog Stereo".
    pub description: String,
    pub is_default: bool,
    /// Most channels any supported format offers.
    pub max_channels: u16,
    /// Common rates (8 kHz to 192 kHz) the device accepts.
    pub sample_rates: Vec<u32>,
    /// The device's own format, when it reports one: (rate, channels).
    pub native: Option<(u32, u16)>,
}

/// Prefers the PulseAudio host: it names every sink and source and lets us open
/// any of them. ALSA is the fallback, reaching PulseAudio only via its `pulse` and
/// `default` PCMs.
pub(crate) fn host() -> Result<cpal::Host, AudioIoError> {
    if cpal::available_hosts().contains(&cpal::HostId::PulseAudio) {
        match cpal::host_from_id(cpal::HostId::PulseAudio) {
            Ok(host) => return Ok(host),
            Err(e) => tracing::warn!(error = %e, "PulseAudio is not answering; trying ALSA"),
        }
    } else {
        tracing::debug!(
            "no PulseAudio socket via PULSE_SERVER or XDG_RUNTIME_DIR; using ALSA devices"
        );
    }
    cpal::host_from_id(cpal::HostId::Alsa).map_err(|e| AudioIoError::AudioSystemUnavailable {
        reason: e.to_string(),
    })
}

pub(crate) fn device_name(device: &cpal::Device) -> String {
    device
        .id()
        .map(|id| id.id().to_owned())
        .or_else(|_| device.description().map(|d| d.name().to_owned()))
        .unwrap_or_else(|_| "unnamed device".to_owned())
}

fn label(device: &cpal::Device) -> DeviceLabel {
    let name = device_name(device);
    let description = device
        .description()
        .map(|d| d.name().to_owned())
        .unwrap_or_else(|_| name.clone());
    DeviceLabel { name, description }
}

/// What a device says it can do.
#[derive(Debug, Default)]
pub(crate) struct DeviceFormats {
    pub(crate) ranges: Vec<SupportedStreamConfigRange>,
    pub(crate) default: Option<SupportedStreamConfig>,
}

/// Asks the device for its formats; an error only when it answers neither
/// question, which means it cannot be reached (e.g. ALSA's `pulse` with no server).
pub(crate) fn formats(
    device: &cpal::Device,
    name: &str,
    direction: Direction,
) -> Result<DeviceFormats, AudioIoError> {
    let (ranges, default) = match direction {
        Direction::Input => (
            device.supported_input_configs().map(Iterator::collect),
            device.default_input_config(),
        ),
        Direction::Output => (
            device.supported_output_configs().map(Iterator::collect),
            device.default_output_config(),
        ),
    };
    match (ranges, default) {
        (Err(e), Err(_)) => Err(AudioIoError::from_cpal(name, &e)),
        (ranges, default) => Ok(DeviceFormats {
            ranges: ranges.unwrap_or_else(|e| {
                tracing::debug!(device = name, error = %e, "device did not list its formats");
                Vec::new()
            }),
            default: default.ok(),
        }),
    }
}

pub(crate) fn list(
    host: &cpal::Host,
    direction: Direction,
) -> Result<Vec<cpal::Device>, AudioIoError> {
    let devices = match direction {
        Direction::Input => host.input_devices().map(Iterator::collect),
        Direction::Output => host.output_devices().map(Iterator::collect),
    };
    devices.map_err(|e| AudioIoError::from_cpal("device list", &e))
}

fn default_device(host: &cpal::Host, direction: Direction) -> Option<cpal::Device> {
    match direction {
        Direction::Input => host.default_input_device(),
        Direction::Output => host.default_output_device(),
    }
}

fn describe(
    index: usize,
    device: &cpal::Device,
    direction: Direction,
    default_name: &str,
) -> AudioDeviceInfo {
    let DeviceLabel { name, description } = label(device);
    let DeviceFormats { ranges, default } = formats(device, &name, direction).unwrap_or_default();
    AudioDeviceInfo {
        index,
        is_default: name == default_name,
        description,
        max_channels: ranges.iter().map(|r| r.channels()).max().unwrap_or(0),
        sample_rates: LISTED_RATES
            .into_iter()
            .filter(|rate| ranges.iter().any(|r| r.contains_rate(*rate)))
            .collect(),
        native: default.map(|c| (c.sample_rate(), c.channels())),
        name,
    }
}

pub(crate) fn infos(direction: Direction) -> Result<Vec<AudioDeviceInfo>, AudioIoError> {
    let host = host()?;
    let default = default_device(&host, direction)
        .map(|d| device_name(&d))
        .unwrap_or_default();
    Ok(list(&host, direction)?
        .iter()
        .enumerate()
        .map(|(i, d)| describe(i, d, direction, &default))
        .collect())
}

/// The device `choice` names, with the name we report for it.
pub(crate) fn choose(
    choice: &DeviceChoice,
    direction: Direction,
) -> Result<(cpal::Device, String), AudioIoError> {
    let host = host()?;
    if *choice == DeviceChoice::Default {
        let device =
            default_device(&host, direction).ok_or(AudioIoError::NoDevice { direction })?;
        let name = device_name(&device);
        return Ok((device, name));
    }
    let mut devices = list(&host, direction)?;
    let labels: Vec<DeviceLabel> = devices.iter().map(label).collect();
    let index = resolve(choice, &labels, direction)?;
    let device = devices.swap_remove(index);
    Ok((device, labels[index].name.clone()))
}

/// Picks the device `choice` names and the stream format to open it with.
pub(crate) fn open_plan(
    choice: &DeviceChoice,
    direction: Direction,
    channels: Channels,
    options: &StreamOptions,
    period_ms: u32,
) -> Result<(cpal::Device, String, StreamPlan), AudioIoError> {
    let (device, device_name) = choose(choice, direction)?;
    let formats = formats(&device, &device_name, direction)?;
    let plan = plan(
        &formats.ranges,
        formats.default.as_ref(),
        channels.count() as u16,
        options.format,
        period_ms,
    )
    .ok_or_else(|| AudioIoError::UnsupportedFormat {
        device: device_name.clone(),
        reason: "it offers no sample format this app can convert".to_owned(),
    })?;
    Ok((device, device_name, plan))
}
