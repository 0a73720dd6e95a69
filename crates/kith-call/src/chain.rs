//! The interceptor chain every peer connection runs. webrtc-rs's own parts
//! where they do the job (RTCP reports, the NACK responder, TWCC, the
//! congestion controller); ours where theirs fell short: the RTX unwrapper,
//! the NACK requester, the pacer, the estimator and the keyframe-request
//! filter.

use rtc::interceptor::{
    CongestionControlBuilder, NackResponderBuilder, Registry, Slot, TwccReceiverBuilder,
    TwccSenderBuilder,
};
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpHeaderExtensionCapability, RtpCodecKind, TYPE_RTCP_FB_NACK,
    TYPE_RTCP_FB_TRANSPORT_CC,
};

use crate::error::CallError;
use crate::estimator::{Estimator, SharedEstimate};
use crate::nack::NackRequester;
use crate::pacer::PriorityPacer;
use crate::repairs::RepairCounts;
use crate::rtcp_filter;

/// Registers on `engine` the feedback the chain needs the remote to send
/// (NACK and PLI for video, transport-wide CC for both kinds) and builds the
/// chain.
pub fn registry(
    engine: &mut MediaEngine,
    estimator: Estimator,
    shared: SharedEstimate,
    repairs: RepairCounts,
) -> Result<Registry, CallError> {
    for parameter in ["", "pli"] {
        engine.register_feedback(
            RTCPFeedback {
                typ: TYPE_RTCP_FB_NACK.to_owned(),
                parameter: parameter.to_owned(),
            },
            RtpCodecKind::Video,
        );
    }
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        engine.register_feedback(
            RTCPFeedback {
                typ: TYPE_RTCP_FB_TRANSPORT_CC.to_owned(),
                parameter: String::new(),
            },
            kind,
        );
        engine
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned(),
                },
                kind,
                None,
            )
            .map_err(CallError::webrtc(
                "register the transport-wide CC extension",
            ))?;
    }
    Ok(configure_rtcp_reports(Registry::new())
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(
            Slot::from(crate::rtx::SLOT),
            crate::rtx::RtxUnwrapper::default(),
        )
        .with(
            Slot::NackGenerator,
            NackRequester::counting(repairs.clone()),
        )
        .with(
            Slot::CongestionControl,
            CongestionControlBuilder::new(estimator).build(),
        )
        .with(
            Slot::Pacer,
            PriorityPacer::new(shared).counting(repairs.clone()),
        )
        // The sequence numbers the send history keys on, and what we
        // report about what we receive, for the remote's estimator.
        .with(Slot::TwccSender, TwccSenderBuilder::new().build())
        .with(Slot::TwccReceiver, TwccReceiverBuilder::new().build())
        .with(
            Slot::from(rtcp_filter::SLOT),
            rtcp_filter::KeyframeRequestFilter::counting(repairs.clone()),
        ))
}
