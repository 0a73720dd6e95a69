//! The async runtime a connection runs on: webrtc-rs's tokio runtime, with
//! bigger buffers on the UDP sockets it binds.
//!
//! webrtc-rs binds its sockets with the kernel's default buffers (208 KiB
//! here) and never enlarges them. A data channel's burst overflowed the
//! receiving socket even on loopback (the kernel's `UdpRcvbufErrors` rose by
//! thousands over a bench run), and SCTP recovers a lost chunk on timers (a
//! 200 ms delayed SACK, a 1 s minimum RTO): 16 KiB messages moved at
//! 4.4 MB/s against Chromium's 21.7. A keyframe burst from the pacer at
//! 2.5× the estimate is the same kind of burst. webrtc-rs takes a
//! [`Runtime`] and hands it every socket it binds, so this wraps tokio's and
//! sizes each socket on the way.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::debug;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
    TokioRuntime,
};

/// What each UDP socket asks for, each way. The kernel caps it at
/// `net.core.rmem_max`/`wmem_max` (4 MiB on this machine; 208 KiB on a
/// kernel left at its defaults, where this changes nothing).
pub const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// The runtime every peer connection is built with.
pub fn runtime() -> Arc<dyn Runtime> {
    Arc::new(BufferedRuntime(TokioRuntime))
}

struct BufferedRuntime(TokioRuntime);

impl fmt::Debug for BufferedRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BufferedRuntime")
    }
}

fn enlarge(socket: &std::net::UdpSocket) {
    #[cfg(unix)]
    {
        use rustix::net::sockopt;
        if let Err(err) = sockopt::set_socket_recv_buffer_size(socket, SOCKET_BUFFER_BYTES) {
            debug!(%err, "cannot enlarge a socket's receive buffer");
        }
        if let Err(err) = sockopt::set_socket_send_buffer_size(socket, SOCKET_BUFFER_BYTES) {
            debug!(%err, "cannot enlarge a socket's send buffer");
        }
    }
    #[cfg(not(unix))]
    let _ = socket;
}

impl Runtime for BufferedRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.0.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.0.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        enlarge(&socket);
        self.0.wrap_udp_socket(socket)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.0.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.0.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.0.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.0.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.0.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.0.block_on(future);
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio, buffered"
    }
}
