//! A compact `getStats()`: per outbound and inbound stream, and the round-trip time.

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde::Serialize;
use webrtc::peer_connection::RTCStatsReport;

use super::{IceState, PeerState};

/// One sent stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundStats {
    pub ssrc: u32,
    pub kind: &'static str,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub retransmitted_packets_sent: u64,
    pub nack_count: u32,
    pub pli_count: u32,
    pub fir_count: u32,
    /// The congestion controller's target for this connection, bits per second.
    pub target_bitrate: f64,
}

/// One received stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundStats {
    pub ssrc: u32,
    pub kind: &'static str,
    pub packets_received: u64,
    pub packets_lost: i64,
    pub bytes_received: u64,
    pub jitter: f64,
    pub nack_count: u32,
    pub pli_count: u32,
}

/// A peer connection's statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerStats {
    pub state: PeerState,
    pub ice_state: IceState,
    /// Video frames and audio packets written to this peer, keyframes among them.
    pub frames_sent: u64,
    pub keyframes_sent: u64,
    /// PLI and FIR received from this peer.
    pub keyframe_requests_received: u64,
    /// The congestion controller's estimate toward this peer, bits per second.
    pub bandwidth_estimate: f64,
    pub outbound: Vec<OutboundStats>,
    pub inbound: Vec<InboundStats>,
    /// Round-trip time of the nominated candidate pair (STUN), milliseconds.
    pub rtt_ms: Option<f64>,
}

fn kind(k: RtpCodecKind) -> &'static str {
    match k {
        RtpCodecKind::Video => "video",
        RtpCodecKind::Audio => "audio",
        _ => "unknown",
    }
}

pub(super) fn from_report(state: PeerState, report: &RTCStatsReport) -> PeerStats {
    let outbound = report
        .outbound_rtp_streams()
        .map(|o| OutboundStats {
            ssrc: o.sent_rtp_stream_stats.rtp_stream_stats.ssrc,
            kind: kind(o.sent_rtp_stream_stats.rtp_stream_stats.kind),
            packets_sent: o.sent_rtp_stream_stats.packets_sent,
            bytes_sent: o.sent_rtp_stream_stats.bytes_sent,
            retransmitted_packets_sent: o.retransmitted_packets_sent,
            nack_count: o.nack_count,
            pli_count: o.pli_count,
            fir_count: o.fir_count,
            target_bitrate: o.target_bitrate,
        })
        .collect();
    let inbound = report
        .inbound_rtp_streams()
        .map(|i| InboundStats {
            ssrc: i.received_rtp_stream_stats.rtp_stream_stats.ssrc,
            kind: kind(i.received_rtp_stream_stats.rtp_stream_stats.kind),
            packets_received: i.received_rtp_stream_stats.packets_received,
            packets_lost: i.received_rtp_stream_stats.packets_lost,
            bytes_received: i.bytes_received,
            jitter: i.received_rtp_stream_stats.jitter,
            nack_count: i.nack_count,
            pli_count: i.pli_count,
        })
        .collect();
    // webrtc-rs 0.21 leaves remote-inbound RTT at 0; the STUN RTT of the pair is real.
    let rtt_ms = report
        .candidate_pairs()
        .filter(|p| p.nominated && p.current_round_trip_time > 0.0)
        .map(|p| p.current_round_trip_time * 1000.0)
        .next();
    PeerStats {
        state,
        ice_state: IceState::New,
        frames_sent: 0,
        keyframes_sent: 0,
        keyframe_requests_received: 0,
        bandwidth_estimate: 0.0,
        outbound,
        inbound,
        rtt_ms,
    }
}
