//! Packets for the interceptors' unit tests, and the dice of simulated
//! links.

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

/// A link's dice, seeded so a simulated run is repeatable.
pub struct Dice(rand::rngs::StdRng);

impl Default for Dice {
    fn default() -> Self {
        Self(rand::SeedableRng::seed_from_u64(0x9E37_79B9_7F4A_7C15))
    }
}

impl Dice {
    /// A number in [0, 1).
    pub fn roll(&mut self) -> f64 {
        rand::Rng::random(&mut self.0)
    }
}
