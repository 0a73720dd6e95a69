//! TURN over TCP (RFC 8656 §5), for networks that block UDP.
//!
//! webrtc-rs's TURN client speaks UDP only. Rather than fork it, each
//! `turn:…?transport=tcp` server is offered to it as a UDP server on
//! loopback: a [`TurnTcpBridges`] bridge there opens one TCP connection to
//! the real server per client socket and carries the client's datagrams
//! over it, framed as TURN over TCP frames them. The allocation belongs to
//! that TCP connection, exactly as if the client spoke TCP itself;
//! messages pass through untouched (their integrity covers the bytes, not
//! the transport). Written by hand: no crate frames TURN over a stream.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kith_proto::IceServer;
use rtc::ice::url::{ProtoType, SchemeType, Url};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// Client sockets one bridge serves at once: a peer connection has one per
/// local address; more than this is not a call.
const MAX_SESSIONS: usize = 64;
/// Datagrams waiting for a slow TCP connection; more are dropped, as a
/// full UDP path would drop them.
const QUEUE: usize = 512;
/// A TURN allocation is refreshed every few minutes; a session silent for
/// longer than its lifetime (10 min by default) is gone.
const IDLE: Duration = Duration::from_secs(15 * 60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP TURN servers bridged at once; the server's list names one or two,
/// and a longer one must not open a socket and a task per entry.
const MAX_BRIDGES: usize = 8;

/// One bridge per TCP TURN server, kept while the call runs.
#[derive(Debug, Default)]
pub struct TurnTcpBridges {
    bridges: HashMap<String, Bridge>,
}

#[derive(Debug)]
struct Bridge {
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TurnTcpBridges {
    /// `servers` with every TCP TURN URL replaced by the UDP address of its
    /// bridge; UDP, STUN and unparsable URLs pass unchanged. A bridge that
    /// cannot start is left out (logged): the other candidates still work.
    pub async fn route(&mut self, servers: Vec<IceServer>) -> Vec<IceServer> {
        let mut routed = Vec::with_capacity(servers.len());
        for mut server in servers {
            let mut urls = Vec::with_capacity(server.urls.len());
            for raw in server.urls {
                match tcp_turn_server(&raw) {
                    Some(target) => match self.bridge_to(&target).await {
                        Ok(local) => urls.push(format!("turn:{local}?transport=udp")),
                        Err(err) => warn!(%err, url = raw, "cannot bridge TURN over TCP"),
                    },
                    None => urls.push(raw),
                }
            }
            server.urls = urls;
            if !server.urls.is_empty() {
                routed.push(server);
            }
        }
        routed
    }

    async fn bridge_to(&mut self, target: &str) -> io::Result<SocketAddr> {
        if let Some(bridge) = self.bridges.get(target)
            && !bridge.task.is_finished()
        {
            return Ok(bridge.local);
        }
        self.bridges.retain(|_, bridge| !bridge.task.is_finished());
        if self.bridges.len() >= MAX_BRIDGES {
            return Err(io::Error::other(format!(
                "already bridging {MAX_BRIDGES} TURN servers over TCP"
            )));
        }
        let socket = UdpSocket::bind(("127.0.0.1", 0)).await?;
        let local = socket.local_addr()?;
        info!(%local, target, "TURN over TCP bridge");
        let task = tokio::spawn(serve(Arc::new(socket), target.to_owned()));
        self.bridges
            .insert(target.to_owned(), Bridge { local, task });
        Ok(local)
    }
}

/// `host:port` of a `turn:` URL whose transport is TCP.
fn tcp_turn_server(raw: &str) -> Option<String> {
    let url = Url::parse_url(raw).ok()?;
    if url.scheme != SchemeType::Turn || url.proto != ProtoType::Tcp {
        return None;
    }
    Some(if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    })
}

/// Hands each client's datagrams to its session; ends sessions that end.
async fn serve(socket: Arc<UdpSocket>, target: String) {
    let mut sessions: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let (ended_tx, mut ended) = mpsc::channel::<SocketAddr>(MAX_SESSIONS);
    let mut buffer = vec![0u8; 65_536];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buffer) => {
                let (len, client) = match received {
                    Ok(received) => received,
                    // An ICMP error for an earlier send; the socket still works.
                    Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => continue,
                    Err(err) => {
                        warn!(%err, "TURN over TCP bridge socket failed");
                        return;
                    }
                };
                if !sessions.contains_key(&client) {
                    if sessions.len() >= MAX_SESSIONS {
                        debug!(%client, "TURN over TCP bridge full; datagram dropped");
                        continue;
                    }
                    let (tx, rx) = mpsc::channel(QUEUE);
                    tokio::spawn(session(
                        Arc::clone(&socket),
                        client,
                        target.clone(),
                        rx,
                        ended_tx.clone(),
                    ));
                    sessions.insert(client, tx);
                }
                if let Some(tx) = sessions.get(&client) {
                    // Full: the TCP path is backed up; drop as UDP would.
                    let _ = tx.try_send(buffer[..len].to_vec());
                }
            }
            Some(client) = ended.recv() => {
                sessions.remove(&client);
            }
        }
    }
}

/// One client socket's TCP connection to the server, both ways.
async fn session(
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    target: String,
    mut datagrams: mpsc::Receiver<Vec<u8>>,
    ended: mpsc::Sender<SocketAddr>,
) {
    match carry(&socket, client, &target, &mut datagrams).await {
        Ok(()) => debug!(%client, target, "TURN over TCP session ended"),
        Err(err) => warn!(%err, %client, target, "TURN over TCP session ended"),
    }
    let _ = ended.send(client).await;
}

async fn carry(
    socket: &UdpSocket,
    client: SocketAddr,
    target: &str,
    datagrams: &mut mpsc::Receiver<Vec<u8>>,
) -> io::Result<()> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting took over 5 s"))??;
    // TURN messages are small and latency matters more than batching.
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = stream.into_split();
    // Bounded: whole frames leave it at once, and a frame is at most a
    // 20-byte header, a 16-bit length and 3 bytes of padding.
    let mut inbound = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            datagram = tokio::time::timeout(IDLE, datagrams.recv()) => {
                let Ok(Some(mut datagram)) = datagram else {
                    return Ok(());
                };
                pad_for_stream(&mut datagram);
                writer.write_all(&datagram).await?;
            }
            read = reader.read(&mut chunk) => {
                let read = read?;
                if read == 0 {
                    return Ok(());
                }
                inbound.extend_from_slice(&chunk[..read]);
                let mut start = 0;
                while let Some(frame) = next_frame(&inbound[start..])? {
                    let message = &inbound[start..start + frame.message];
                    // Loopback: a send fails only when the client has gone.
                    let _ = socket.send_to(message, client).await;
                    start += frame.consumed;
                }
                inbound.drain(..start);
            }
        }
    }
}

/// Where the next message in a TURN-over-TCP stream ends.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    /// The message itself, as a datagram carries it.
    message: usize,
    /// The message and its padding.
    consumed: usize,
}

/// The first whole message of `stream`, if it has arrived. STUN messages
/// carry their length after a 20-byte header and are always a multiple of
/// 4 bytes; ChannelData (first two bits 01) after a 4-byte header, padded
/// to 4 bytes on a stream (RFC 8656 §12.5). Anything else is not TURN.
fn next_frame(stream: &[u8]) -> io::Result<Option<Frame>> {
    let [first, _, high, low, ..] = *stream else {
        return Ok(None);
    };
    let length = usize::from(u16::from_be_bytes([high, low]));
    let frame = match first >> 6 {
        0b00 => Frame {
            message: 20 + length,
            consumed: 20 + length,
        },
        0b01 => Frame {
            message: 4 + length,
            consumed: (4 + length).next_multiple_of(4),
        },
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the TURN server sent something that is neither STUN nor ChannelData",
            ));
        }
    };
    Ok((stream.len() >= frame.consumed).then_some(frame))
}

/// ChannelData goes onto a stream padded to 4 bytes; STUN already is.
fn pad_for_stream(datagram: &mut Vec<u8>) {
    if datagram.first().is_some_and(|b| b >> 6 == 0b01) {
        datagram.resize(datagram.len().next_multiple_of(4), 0);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_tcp_turn_urls_are_bridged() {
        assert_eq!(
            tcp_turn_server("turn:10.0.0.1:3478?transport=tcp").as_deref(),
            Some("10.0.0.1:3478")
        );
        assert_eq!(
            tcp_turn_server("turn:turn.example.org?transport=tcp").as_deref(),
            Some("turn.example.org:3478")
        );
        assert_eq!(tcp_turn_server("turn:10.0.0.1:3478?transport=udp"), None);
        assert_eq!(tcp_turn_server("turn:10.0.0.1:3478"), None);
        assert_eq!(tcp_turn_server("stun:10.0.0.1:3478"), None);
        assert_eq!(tcp_turn_server("not a url"), None);
    }

    #[test]
    fn stun_messages_end_after_header_and_length() {
        // A binding request with 8 bytes of attributes, then the next message.
        let mut stream = vec![0x00, 0x01, 0x00, 0x08];
        stream.resize(28, 0);
        stream.push(0x01);
        assert_eq!(
            next_frame(&stream).unwrap(),
            Some(Frame {
                message: 28,
                consumed: 28
            })
        );
        assert_eq!(next_frame(&stream[..27]).unwrap(), None);
    }

    #[test]
    fn channel_data_is_padded_on_the_stream_but_not_in_the_datagram() {
        // Channel 0x4000, 5 bytes of data, 3 bytes of padding.
        let mut datagram = vec![0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5];
        pad_for_stream(&mut datagram);
        assert_eq!(datagram.len(), 12);
        assert_eq!(
            next_frame(&datagram).unwrap(),
            Some(Frame {
                message: 9,
                consumed: 12
            })
        );
        assert_eq!(next_frame(&datagram[..10]).unwrap(), None);
        // STUN is never padded.
        let mut stun = vec![0x00, 0x01, 0x00, 0x00];
        stun.resize(20, 0);
        pad_for_stream(&mut stun);
        assert_eq!(stun.len(), 20);
    }

    #[test]
    fn a_stream_that_is_not_turn_is_refused() {
        assert!(next_frame(&[0xc0, 0, 0, 0]).is_err());
        assert_eq!(next_frame(&[0x00, 0x01]).unwrap(), None);
    }

    #[tokio::test]
    async fn a_long_server_list_gets_a_bounded_number_of_bridges() {
        let mut bridges = TurnTcpBridges::default();
        let urls = (1..=MAX_BRIDGES + 3)
            .map(|port| format!("turn:127.0.0.1:{port}?transport=tcp"))
            .collect();
        let routed = bridges
            .route(vec![IceServer {
                urls,
                username: None,
                credential: None,
            }])
            .await;
        assert_eq!(routed[0].urls.len(), MAX_BRIDGES, "{routed:?}");
        assert_eq!(bridges.bridges.len(), MAX_BRIDGES);
    }

    /// A TCP echo server stands in for the TURN server: what the client
    /// sends comes back to the client's socket whole and in order, padding
    /// removed, one datagram per message.
    #[tokio::test]
    async fn datagrams_cross_the_bridge_and_back() {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let server = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let (mut r, mut w) = stream.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
        let mut bridges = TurnTcpBridges::default();
        let routed = bridges
            .route(vec![IceServer {
                urls: vec![
                    format!("turn:{server}?transport=tcp"),
                    "stun:10.0.0.1:3478".to_owned(),
                ],
                username: Some("u".into()),
                credential: Some("p".into()),
            }])
            .await;
        let bridged = &routed[0].urls[0];
        assert!(bridged.starts_with("turn:127.0.0.1:"), "{routed:?}");
        assert!(bridged.ends_with("?transport=udp"), "{routed:?}");
        assert_eq!(routed[0].urls[1], "stun:10.0.0.1:3478");
        let bridge = Url::parse_url(bridged).unwrap();
        let client = UdpSocket::bind(("127.0.0.1", 0)).await.unwrap();
        client.connect(("127.0.0.1", bridge.port)).await.unwrap();
        let channel_data = [0x40, 0x01, 0x00, 0x03, 7, 8, 9];
        let mut stun = vec![0x01, 0x01, 0x00, 0x04, 0x21, 0x12, 0xa4, 0x42];
        stun.resize(24, 5);
        client.send(&channel_data).await.unwrap();
        client.send(&stun).await.unwrap();
        let mut buffer = [0u8; 64];
        for expected in [&channel_data[..], &stun[..]] {
            let len = tokio::time::timeout(Duration::from_secs(10), client.recv(&mut buffer))
                .await
                .expect("the echo comes back")
                .unwrap();
            assert_eq!(&buffer[..len], expected);
        }
    }
}
