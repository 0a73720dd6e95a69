//! Just enough of STUN (RFC 5389) and TURN (RFC 5766) to ask a TURN server for
//! an allocation with long-term credentials. Hand-written for the test: the
//! Rust TURN clients come with a whole WebRTC stack and async runtime, and
//! this checks one request and its answer.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const ALLOCATE_REQUEST: u16 = 0x0003;
const ALLOCATE_SUCCESS: u16 = 0x0103;
const ALLOCATE_ERROR: u16 = 0x0113;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_ERROR_CODE: u16 = 0x0009;
const ATTR_REALM: u16 = 0x0014;
const ATTR_NONCE: u16 = 0x0015;
const ATTR_XOR_RELAYED_ADDRESS: u16 = 0x0016;
const ATTR_REQUESTED_TRANSPORT: u16 = 0x0019;
const UDP_PROTOCOL: u8 = 17;

#[derive(Debug)]
pub enum StunError {
    Io(std::io::Error),
    /// The server answered with this error code.
    Refused(u16),
    Malformed(&'static str),
}

impl From<std::io::Error> for StunError {
    fn from(err: std::io::Error) -> Self {
        StunError::Io(err)
    }
}

struct Message {
    kind: u16,
    transaction: [u8; 12],
    attributes: Vec<(u16, Vec<u8>)>,
}

impl Message {
    fn request(kind: u16) -> Self {
        Message {
            kind,
            transaction: rand::random(),
            attributes: Vec::new(),
        }
    }

    fn attr(&self, kind: u16) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v.as_slice())
    }

    fn encode(&self, integrity_key: Option<&[u8]>) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in &self.attributes {
            push_attr(&mut body, *kind, value);
        }
        let mut out = header(self.kind, body.len(), &self.transaction);
        out.extend_from_slice(&body);
        if let Some(key) = integrity_key {
            // The length covers the MESSAGE-INTEGRITY attribute being added.
            let length = u16::try_from(body.len() + 24).unwrap();
            out[2..4].copy_from_slice(&length.to_be_bytes());
            let mut mac = Hmac::<Sha1>::new_from_slice(key).unwrap();
            mac.update(&out);
            let digest = mac.finalize().into_bytes();
            push_attr(&mut out, ATTR_MESSAGE_INTEGRITY, &digest);
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Message, StunError> {
        if bytes.len() < 20 || u32::from_be_bytes(bytes[4..8].try_into().unwrap()) != MAGIC_COOKIE {
            return Err(StunError::Malformed("not a STUN message"));
        }
        let kind = u16::from_be_bytes([bytes[0], bytes[1]]);
        let length = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        let body = bytes
            .get(20..20 + length)
            .ok_or(StunError::Malformed("truncated"))?;
        let mut attributes = Vec::new();
        let mut at = 0;
        while at + 4 <= body.len() {
            let kind = u16::from_be_bytes([body[at], body[at + 1]]);
            let len = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
            let value = body
                .get(at + 4..at + 4 + len)
                .ok_or(StunError::Malformed("attribute overruns message"))?;
            attributes.push((kind, value.to_vec()));
            at += 4 + len.div_ceil(4) * 4;
        }
        Ok(Message {
            kind,
            transaction: bytes[8..20].try_into().unwrap(),
            attributes,
        })
    }
}

fn header(kind: u16, length: usize, transaction: &[u8; 12]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + length);
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&u16::try_from(length).unwrap().to_be_bytes());
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(transaction);
    out
}

fn push_attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + (4 - value.len() % 4) % 4, 0);
}

fn exchange(
    socket: &UdpSocket,
    server: SocketAddr,
    request: &Message,
    key: Option<&[u8]>,
) -> Result<Message, StunError> {
    let bytes = request.encode(key);
    let mut buf = [0u8; 1500];
    for _ in 0..5 {
        socket.send_to(&bytes, server)?;
        match socket.recv(&mut buf) {
            Ok(n) => {
                let reply = Message::decode(&buf[..n])?;
                if reply.transaction == request.transaction {
                    return Ok(reply);
                }
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Err(StunError::Io(std::io::ErrorKind::TimedOut.into()))
}

fn error_code(message: &Message) -> u16 {
    message
        .attr(ATTR_ERROR_CODE)
        .filter(|v| v.len() >= 4)
        .map(|v| u16::from(v[2] & 0x7) * 100 + u16::from(v[3]))
        .unwrap_or(0)
}

/// A STUN binding request; Ok once the server answers anything.
pub fn binding(server: SocketAddr, wait: Duration) -> Result<(), StunError> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(wait))?;
    exchange(&socket, server, &Message::request(BINDING_REQUEST), None).map(|_| ())
}

/// A TURN Allocate with long-term credentials; returns the relayed address.
pub fn allocate(
    server: SocketAddr,
    username: &str,
    password: &str,
    realm_hint: &str,
) -> Result<SocketAddr, StunError> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(500)))?;
    let transport = vec![UDP_PROTOCOL, 0, 0, 0];

    let mut first = Message::request(ALLOCATE_REQUEST);
    first
        .attributes
        .push((ATTR_REQUESTED_TRANSPORT, transport.clone()));
    let challenge = exchange(&socket, server, &first, None)?;
    if challenge.kind != ALLOCATE_ERROR || error_code(&challenge) != 401 {
        return Err(StunError::Malformed("expected a 401 challenge"));
    }
    let realm = challenge
        .attr(ATTR_REALM)
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .unwrap_or_else(|| realm_hint.to_owned());
    let nonce = challenge
        .attr(ATTR_NONCE)
        .ok_or(StunError::Malformed("no nonce"))?
        .to_vec();

    let key = Md5::digest(format!("{username}:{realm}:{password}").as_bytes());
    let mut second = Message::request(ALLOCATE_REQUEST);
    second.attributes = vec![
        (ATTR_REQUESTED_TRANSPORT, transport),
        (ATTR_USERNAME, username.as_bytes().to_vec()),
        (ATTR_REALM, realm.into_bytes()),
        (ATTR_NONCE, nonce),
    ];
    let answer = exchange(&socket, server, &second, Some(&key))?;
    match answer.kind {
        ALLOCATE_SUCCESS => {
            let value = answer
                .attr(ATTR_XOR_RELAYED_ADDRESS)
                .filter(|v| v.len() >= 8 && v[1] == 0x01)
                .ok_or(StunError::Malformed("no IPv4 relayed address"))?;
            let port = u16::from_be_bytes([value[2], value[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
            let ip = u32::from_be_bytes(value[4..8].try_into().unwrap()) ^ MAGIC_COOKIE;
            Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        ALLOCATE_ERROR => Err(StunError::Refused(error_code(&answer))),
        _ => Err(StunError::Malformed("unexpected answer type")),
    }
}
