//! Packets for the interceptors' unit tests.

use std::time::Instant;

use rtc::interceptor::{AttributedPacket, Packet, TaggedPacket};
use rtc::shared::TransportContext;

/// An RTP packet of `ssrc` numbered `seq`, as the chain hands it on at `now`.
pub fn rtp(now: Instant, ssrc: u32, seq: u16, payload: &[u8]) -> TaggedPacket {
    TaggedPacket {
        now,
        transport: TransportContext::default(),
        message: AttributedPacket::new(Packet::Rtp(rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                ssrc,
                sequence_number: seq,
                ..Default::default()
            },
            payload: payload.to_vec().into(),
        })),
    }
}
