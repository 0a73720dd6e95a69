//! An interceptor that lets keyframe requests (PLI, FIR) through to the
//! application. webrtc-rs 0.21 ends inbound RTCP at its interceptor chain
//! unless an interceptor marks a packet for delivery; without this, a peer's
//! PLI never reaches our encoder. Modelled on webrtc-rs's rtcp-processing
//! example; there is no ready-made one in the crate. It also counts the
//! NACKs the peer sends (webrtc-rs's outbound stats read 0).

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

use crate::repairs::RepairCounts;

/// Its place in the chain: after every interceptor that reads RTCP.
pub const SLOT: usize = 14_000;

#[derive(Default)]
pub struct KeyframeRequestFilter {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
    repairs: RepairCounts,
}

impl KeyframeRequestFilter {
    /// Counts each NACK the peer sends in `repairs`.
    pub fn counting(repairs: RepairCounts) -> Self {
        Self {
            repairs,
            ..Self::default()
        }
    }
}

impl std::fmt::Debug for KeyframeRequestFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyframeRequestFilter")
            .finish_non_exhaustive()
    }
}

fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestFilter {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for _ in packets
                .iter()
                .filter(|p| p.as_any().is::<TransportLayerNack>())
            {
                self.repairs.nack_received();
            }
            let requests: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| is_keyframe_request(p.as_ref()))
                .cloned()
                .collect();
            if requests.is_empty() {
                if msg.message.attributes.is_empty() {
                    // The other interceptors have acted on it; nothing for us.
                    return Ok(());
                }
                // It carries something for the application, above all the
                // congestion controller's `TargetBitrateChanged`: without it
                // the estimate never reaches the stats, the encoder never
                // slows down, and the pacer's queue starves the whole call.
                // Pass it on as an empty carrier, as webrtc-rs's own terminus
                // does.
                msg.message.packet = Packet::Rtcp(Vec::new());
            } else {
                msg.message.packet = Packet::Rtcp(requests);
                msg.message.add(Attribute::DeliverToApplication);
            }
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for KeyframeRequestFilter {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use rtc::interceptor::AttributedPacket;
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::shared::TransportContext;

    use super::*;

    fn inbound(packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> Option<TaggedPacket> {
        let mut filter = KeyframeRequestFilter::default();
        filter
            .handle_read(TaggedPacket {
                now: Instant::now(),
                transport: TransportContext::default(),
                message: AttributedPacket::new(Packet::Rtcp(packets)),
            })
            .expect("reads");
        filter.poll_read()
    }

    #[test]
    fn a_pli_in_a_compound_packet_is_marked_for_the_application_alone() {
        let pli = PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 42,
        };
        let out = inbound(vec![Box::new(ReceiverReport::default()), Box::new(pli)])
            .expect("the PLI goes on");
        assert!(out.message.has(&Attribute::DeliverToApplication));
        let Packet::Rtcp(packets) = &out.message.packet else {
            panic!("RTCP")
        };
        assert_eq!(packets.len(), 1);
        assert!(packets[0].as_any().is::<PictureLossIndication>());
    }

    #[test]
    fn nacks_are_counted_and_stop_here() {
        let repairs = RepairCounts::default();
        let mut filter = KeyframeRequestFilter::counting(repairs.clone());
        let nack = || -> Box<dyn rtc::rtcp::Packet> { Box::new(TransportLayerNack::default()) };
        filter
            .handle_read(TaggedPacket {
                now: Instant::now(),
                transport: TransportContext::default(),
                message: AttributedPacket::new(Packet::Rtcp(vec![
                    nack(),
                    Box::new(ReceiverReport::default()),
                    nack(),
                ])),
            })
            .expect("reads");
        assert!(filter.poll_read().is_none());
        assert_eq!(repairs.nacks_received_total(), 2);
    }

    #[test]
    fn other_rtcp_stops_here() {
        assert!(inbound(vec![Box::new(ReceiverReport::default())]).is_none());
    }

    #[test]
    fn the_bandwidth_estimate_passes_as_an_empty_carrier() {
        let mut filter = KeyframeRequestFilter::default();
        let mut message =
            AttributedPacket::new(Packet::Rtcp(vec![Box::new(ReceiverReport::default())]));
        message.add(Attribute::TargetBitrateChanged {
            bits_per_second: 300_000.0,
        });
        filter
            .handle_read(TaggedPacket {
                now: Instant::now(),
                transport: TransportContext::default(),
                message,
            })
            .expect("reads");
        let out = filter.poll_read().expect("the estimate goes on");
        assert!(out.message.has(&Attribute::TargetBitrateChanged {
            bits_per_second: 0.0
        }));
        assert!(!out.message.has(&Attribute::DeliverToApplication));
        assert!(matches!(&out.message.packet, Packet::Rtcp(p) if p.is_empty()));
    }
}
