//! Noticing that a chosen device has gone away.
//!
//! PulseAudio moves a stream whose device disappears to another device and tells
//! cpal nothing, so without this the app would never learn that its chosen
//! microphone or speaker is gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;
use std::time::Duration;

use cpal::traits::DeviceTrait;

use super::devices;
use super::error::Direction;
use super::shared::StreamShared;

const INTERVAL: Duration = Duration::from_secs(1);

/// Stops the watcher thread when dropped.
#[derive(Debug)]
pub(crate) struct PresenceWatch {
    stop: Arc<AtomicBool>,
    thread: Thread,
}

impl Drop for PresenceWatch {
    fn drop(&mut self) {
        // Not joined: a hung sound server must not hang whoever closes the device.
        // The thread exits at its next wake-up.
        self.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Watches `device` when it is a PulseAudio device; other backends report
/// unplugging through the stream's error callback themselves.
pub(crate) fn watch(
    device: &cpal::Device,
    name: &str,
    direction: Direction,
    shared: &Arc<StreamShared>,
) -> Option<PresenceWatch> {
    let on_pulse = device
        .id()
        .is_ok_and(|id| id.host() == cpal::HostId::PulseAudio);
    if !on_pulse {
        return None;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (name, shared, stop_flag) = (name.to_owned(), Arc::clone(shared), Arc::clone(&stop));
    let spawned = std::thread::Builder::new()
        .name("kith-audio-watch".to_owned())
        .spawn(move || watch_loop(&name, direction, &shared, &stop_flag));
    match spawned {
        Ok(handle) => Some(PresenceWatch {
            stop,
            thread: handle.thread().clone(),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start audio device watcher");
            None
        }
    }
}

fn watch_loop(name: &str, direction: Direction, shared: &StreamShared, stop: &AtomicBool) {
    // Its own connection, so listing never contends with the streaming one.
    let host = match cpal::host_from_id(cpal::HostId::PulseAudio) {
        Ok(host) => host,
        Err(e) => {
            tracing::debug!(error = %e, "device watcher cannot reach PulseAudio");
            return;
        }
    };
    loop {
        std::thread::park_timeout(INTERVAL);
        if stop.load(Ordering::Acquire) || shared.is_stopped() {
            return;
        }
        match devices::list(&host, direction) {
            Ok(list) if list.iter().any(|d| devices::device_name(d) == name) => {}
            Ok(_) => {
                shared.device_gone();
                return;
            }
            Err(e) => {
                // The stream's own error callback reports a dead server.
                tracing::debug!(error = %e, "device watcher stopped");
                return;
            }
        }
    }
}
