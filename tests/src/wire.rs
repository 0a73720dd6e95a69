//! A point-to-point IP link between two network namespaces that runs in the
//! test process: a TUN device in each namespace and a thread per direction
//! that carries every packet from one to the other after a delay, with
//! jitter. This kernel has no netem, and a delay has to hold packets
//! somewhere; a userspace wire is the smallest such place. Loss (nftables)
//! and rate caps (tc on the TUN device) apply to it as to a veth.
//!
//! Written by hand: opening a TUN device is one ioctl, not worth a crate.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One-way delay of each direction, and how much later than that a packet
/// may arrive (uniform). Packets never overtake each other, as on a real
/// path whose queue varies.
#[derive(Debug, Clone, Copy)]
pub struct Delay {
    pub ms: u32,
    pub jitter_ms: u32,
}

/// Packets a direction holds at most (a router queue); more are dropped.
const QUEUE: usize = 8192;
/// How often a blocked thread looks whether the wire is being taken down.
const TICK: Duration = Duration::from_millis(50);

/// The two devices and the threads between them; stopped when dropped.
#[derive(Debug)]
pub struct Wire {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Opens a new TUN device (IP packets, no extra header) in this process's
/// network namespace; it stays attached to the returned file when moved to
/// another namespace.
pub fn open_tun(name: &str) -> std::io::Result<File> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(std::io::Error::other(format!(
            "interface name {name} is too long"
        )));
    }
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
    };
    let file = match open() {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            // A container may lack the node though the kernel has TUN.
            make_tun_node()?;
            open()?
        }
        opened => opened?,
    };
    // SAFETY: ifreq is plain data; all zeroes is a valid (empty) request.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    request.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one ifreq, which outlives the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut request) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file)
}

/// `/dev/net/tun` (character device 10:200), as the kernel documents it.
fn make_tun_node() -> std::io::Result<()> {
    std::fs::create_dir_all("/dev/net")?;
    let path = c"/dev/net/tun";
    // SAFETY: a valid C string; mknod only reads it.
    let rc = unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(10, 200)) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Wire {
    /// Carries packets between the two devices, each way after `delay`.
    pub fn connect(a: File, b: File, delay: Delay) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (a, b) = (Arc::new(a), Arc::new(b));
        let mut threads = Vec::new();
        for (from, to) in [(a.clone(), b.clone()), (b, a)] {
            let (queue, held) = sync_channel(QUEUE);
            let stop_reading = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("wire-in".into())
                    .spawn(move || take_in(&from, &queue, delay, &stop_reading))?,
            );
            let stop_writing = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("wire-out".into())
                    .spawn(move || hand_out(&to, &held, &stop_writing))?,
            );
        }
        Ok(Self { stop, threads })
    }
}

/// Reads packets as they are sent and queues each with the time it is due.
fn take_in(from: &File, queue: &SyncSender<(Instant, Vec<u8>)>, delay: Delay, stop: &AtomicBool) {
    let mut buffer = vec![0u8; 65_536];
    let mut last_due = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match readable(from) {
            Some(true) => {}
            Some(false) => continue,
            None => return,
        }
        let Ok(len) = (&*from).read(&mut buffer) else {
            return;
        };
        let extra = if delay.jitter_ms == 0 {
            0
        } else {
            rand::random_range(0..=delay.jitter_ms)
        };
        let due = Instant::now() + Duration::from_millis(u64::from(delay.ms + extra));
        last_due = last_due.max(due);
        match queue.try_send((last_due, buffer[..len].to_vec())) {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

/// Writes each queued packet out of the other device when it is due.
fn hand_out(to: &File, held: &Receiver<(Instant, Vec<u8>)>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let (due, packet) = match held.recv_timeout(TICK) {
            Ok(item) => item,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        // A packet the stack refuses (its namespace is going away) is lost,
        // as on a wire.
        let _ = (&*to).write(&packet);
    }
}

/// Waits up to a tick for a packet to read; `None` once the device is gone.
fn readable(file: &File) -> Option<bool> {
    let mut poll = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, valid for the call.
    let ready = unsafe { libc::poll(&mut poll, 1, TICK.as_millis() as libc::c_int) };
    if ready < 0 || poll.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
        return None;
    }
    Some(ready > 0 && poll.revents & libc::POLLIN != 0)
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
