//! A compact `getStats()`: per outbound and inbound stream, the round-trip time and the
//! selected ICE candidate pair.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde::Serialize;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidate, RTCStatsReport};

use super::{DtlsState, IceState, PeerState};

/// One sent stream (one local track to this peer).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundStats {
    pub ssrc: u32,
    pub kind: &'static str,
    /// The codec sent, e.g. `video/H264` (empty for a stream that is not ours).
    pub mime_type: String,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub retransmitted_packets_sent: u64,
    /// Video frames (or audio packets) of this track written to the peer.
    pub frames_sent: u64,
    pub key_frames_sent: u64,
    /// The encoder tier this peer is fed from (0 = the highest bitrate; video only) and
    /// how often it moved between tiers.
    pub tier: Option<usize>,
    pub tier_switches: u64,
    /// Tier moves given up (the new tier sent no usable keyframe within 2 s).
    pub tier_moves_abandoned: u64,
    /// RTCP NACK, PLI and FIR messages the peer sent about this stream.
    pub nack_count: u32,
    pub pli_count: u32,
    pub fir_count: u32,
    /// The congestion controller's target for this connection (video), bits per second.
    pub target_bitrate: f64,
    /// Bits per second sent over the time since the previous `stats()` call (at least
    /// 200 ms; `None` on the first call).
    pub bitrate: Option<f64>,
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

/// One end of the candidate pair in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateStats {
    /// `host`, `srflx`, `prflx` or `relay`.
    #[serde(rename = "type")]
    pub candidate_type: String,
    /// `udp` or `tcp`.
    pub protocol: String,
    /// `ip:port` (for a relay candidate: the address the TURN server relays from).
    pub address: String,
}

/// The ICE candidate pair media flows on: whether the peer came direct (`host`), through
/// a NAT (`srflx`, `prflx`) or through TURN (`relay`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CandidatePairStats {
    pub local: CandidateStats,
    pub remote: CandidateStats,
}

/// A peer connection's statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerStats {
    pub state: PeerState,
    pub ice_state: IceState,
    pub dtls_state: DtlsState,
    /// Video frames and audio packets written to this peer, keyframes among them.
    pub frames_sent: u64,
    pub keyframes_sent: u64,
    /// PLI and FIR received from this peer.
    pub keyframe_requests_received: u64,
    /// Of those, requests held by this peer's keyframe budget (at most one passed on to a
    /// shared encoder per second; the held ones merged into it).
    pub keyframe_requests_throttled: u64,
    /// The congestion controller's estimate toward this peer, bits per second.
    pub bandwidth_estimate: f64,
    pub outbound: Vec<OutboundStats>,
    pub inbound: Vec<InboundStats>,
    /// Round-trip time of the nominated candidate pair (STUN), milliseconds.
    pub rtt_ms: Option<f64>,
    /// The candidate pair in use (`None` before ICE has selected one).
    pub selected_candidate_pair: Option<CandidatePairStats>,
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
            mime_type: String::new(),
            packets_sent: o.sent_rtp_stream_stats.packets_sent,
            bytes_sent: o.sent_rtp_stream_stats.bytes_sent,
            retransmitted_packets_sent: o.retransmitted_packets_sent,
            frames_sent: 0,
            key_frames_sent: 0,
            tier: None,
            tier_switches: 0,
            tier_moves_abandoned: 0,
            nack_count: o.nack_count,
            pli_count: o.pli_count,
            fir_count: o.fir_count,
            target_bitrate: o.target_bitrate,
            bitrate: None,
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
        selected_candidate_pair: None,
        state,
        ice_state: IceState::New,
        dtls_state: DtlsState::New,
        frames_sent: 0,
        keyframes_sent: 0,
        keyframe_requests_received: 0,
        keyframe_requests_throttled: 0,
        bandwidth_estimate: 0.0,
        outbound,
        inbound,
        rtt_ms,
    }
}

fn candidate(c: &RTCIceCandidate) -> CandidateStats {
    let address = match c.address.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, c.port).to_string(),
        Err(_) => format!("{}:{}", c.address, c.port),
    };
    CandidateStats {
        candidate_type: c.typ.to_string(),
        protocol: c.protocol.to_string().to_ascii_lowercase(),
        address,
    }
}

/// The candidate pair the ICE transport has selected, read from the transport of the
/// first sender or receiver that has one (webrtc-rs 0.21's stats report names the pair
/// but leaves its remote candidate out).
pub(super) async fn selected_pair(pc: &dyn PeerConnection) -> Option<CandidatePairStats> {
    let mut transports = Vec::new();
    for r in pc.get_receivers().await {
        transports.push(r.transport().await);
    }
    for s in pc.get_senders().await {
        transports.push(s.transport().await);
    }
    for dtls in transports.into_iter().flatten().flatten() {
        if let Ok(Some(pair)) = dtls.ice_transport().get_selected_candidate_pair().await {
            return Some(CandidatePairStats {
                local: candidate(pair.local()),
                remote: candidate(pair.remote()),
            });
        }
    }
    None
}

/// The shortest interval a bitrate is measured over; calls closer together repeat the last.
const MIN_BITRATE_INTERVAL: Duration = Duration::from_millis(200);

/// Bitrates of sent streams, measured between `stats()` calls from their byte counts (what
/// a page computes from two `getStats()` reports).
#[derive(Debug, Default)]
pub(super) struct BitrateMeter {
    /// Per SSRC: when and how many bytes at the last measurement, and its result.
    last: HashMap<u32, (Instant, u64, Option<f64>)>,
}

impl BitrateMeter {
    /// The bits per second `ssrc` sent since the last measurement; `None` the first time.
    pub(super) fn measure(&mut self, ssrc: u32, bytes: u64, now: Instant) -> Option<f64> {
        let Some(&(at, before, last)) = self.last.get(&ssrc) else {
            self.last.insert(ssrc, (now, bytes, None));
            return None;
        };
        let elapsed = now.duration_since(at);
        if elapsed < MIN_BITRATE_INTERVAL {
            return last;
        }
        let rate = bytes.saturating_sub(before) as f64 * 8.0 / elapsed.as_secs_f64();
        self.last.insert(ssrc, (now, bytes, Some(rate)));
        Some(rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates_are_measured_between_calls() {
        let mut meter = BitrateMeter::default();
        let t0 = Instant::now();
        assert_eq!(meter.measure(7, 1_000, t0), None);
        // Too soon: nothing measured yet.
        assert_eq!(
            meter.measure(7, 2_000, t0 + Duration::from_millis(100)),
            None
        );
        let rate = meter.measure(7, 126_000, t0 + Duration::from_secs(1));
        assert_eq!(rate, Some(1_000_000.0));
        // Too soon again: the last result stands.
        let again = meter.measure(7, 200_000, t0 + Duration::from_millis(1_100));
        assert_eq!(again, Some(1_000_000.0));
        assert_eq!(meter.measure(8, 5, t0), None, "streams are separate");
    }
}
