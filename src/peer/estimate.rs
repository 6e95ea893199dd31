//! The send-side estimate toward one peer, as pure policy: which of GCC's packet reports
//! carry a verdict, and the peer's REMB as an upper bound on GCC's target.
//!
//! webrtc-rs 0.21's congestion-control history records every packet of every stream we
//! send, and reports each packet older than the newest acknowledged one as *lost* when no
//! feedback named it. With TWCC feedback a stream that did not negotiate the
//! transport-wide sequence number can never be acknowledged, so all its packets come out
//! lost. Janus's VideoRoom negotiates transport-cc on video only: our Opus packets (about
//! 60 % of the packets we send at the floor) read as 60 % loss, and GCC's loss half held the
//! target at `--min-video-bitrate` while its delay half climbed to the maximum. Only
//! packets that carried a transport-wide sequence number are given to GCC.

use rtc::interceptor::PacketReport;

/// The reports feedback can have a verdict on: with TWCC, those of packets that carried
/// a transport-wide sequence number. The others were never named by any feedback, and
/// their "lost" says nothing of the path.
pub(super) fn with_verdict(reports: &[PacketReport]) -> Vec<PacketReport> {
    reports.iter().filter(|r| r.is_twcc).cloned().collect()
}

/// The highest REMB we accept, bits per second: far above any rate we send, so a
/// nonsensical value from the network cannot overflow anything downstream.
const REMB_LIMIT: f64 = 1e10;

/// A REMB's bitrate made sane: `None` for what is not a finite, positive number (a REMB of
/// 0 is no usable cap: it would only hold the encoder at its floor).
pub(super) fn remb_bitrate(bitrate: f32) -> Option<f64> {
    let bps = f64::from(bitrate);
    (bps.is_finite() && bps > 0.0).then(|| bps.min(REMB_LIMIT))
}

/// The estimate our encoders follow: GCC's target, capped by the peer's latest REMB (an
/// SFU such as Janus REMBs its room's bitrate to publishers), never below `min` (the
/// floor congestion control itself keeps).
pub(super) fn combined(gcc: f64, remb: Option<f64>, min: f64) -> f64 {
    match remb {
        Some(cap) => gcc.min(cap.max(min)),
        None => gcc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::{BandwidthEstimator, Gcc};
    use rtc::rtcp::transport_feedbacks::cc_feedback_report::Ecn;
    use std::time::{Duration, Instant};

    fn report(ssrc: u32, id: u64, twcc: bool, departure: Instant, arrival_ms: u64) -> PacketReport {
        PacketReport {
            ssrc,
            id,
            rtp_sequence_number: id as u16,
            is_twcc: twcc,
            twcc_sequence_number: if twcc { id as u16 } else { 0 },
            size: if twcc { 1200 } else { 120 },
            // What webrtc-rs reports: acknowledged video arrived, audio never named.
            arrived: twcc,
            departure,
            arrival: twcc.then(|| Duration::from_millis(arrival_ms)),
            ecn: Ecn::default(),
        }
    }

    /// 10 s of the Janus pattern on a fake clock: every 200 ms, 6 video packets
    /// acknowledged by TWCC and 10 audio packets without a transport-wide number.
    fn janus_like(filter: bool) -> f64 {
        let epoch = Instant::now();
        let mut gcc = Gcc::new(1_000_000.0, 150_000.0, 1_500_000.0);
        let mut id = 0;
        for batch in 0..50u64 {
            let at = epoch + Duration::from_millis(batch * 200);
            let mut reports = Vec::new();
            for i in 0..16u64 {
                let departure = at + Duration::from_millis(i * 12);
                let arrival = batch * 200 + i * 12 + 5;
                reports.push(report(
                    if i % 8 < 3 { 1 } else { 2 },
                    id,
                    i % 8 < 3,
                    departure,
                    arrival,
                ));
                id += 1;
            }
            let feed = if filter {
                with_verdict(&reports)
            } else {
                reports
            };
            gcc.on_reports(at + Duration::from_millis(200), &feed);
        }
        gcc.target_bitrate()
    }

    #[test]
    fn packets_without_a_transport_sequence_number_are_not_loss() {
        assert_eq!(
            janus_like(false),
            150_000.0,
            "webrtc-rs's reports as they come: the floor"
        );
        let target = janus_like(true);
        assert!(
            target >= 1_000_000.0,
            "only packets with a verdict: {target}"
        );
    }

    #[test]
    fn a_remb_caps_the_estimate_within_the_floor() {
        assert_eq!(combined(1_200_000.0, None, 150_000.0), 1_200_000.0);
        assert_eq!(combined(1_200_000.0, Some(500_000.0), 150_000.0), 500_000.0);
        assert_eq!(
            combined(1_200_000.0, Some(2_000_000.0), 150_000.0),
            1_200_000.0
        );
        assert_eq!(combined(1_200_000.0, Some(100_000.0), 150_000.0), 150_000.0);
        assert_eq!(remb_bitrate(f32::NAN), None);
        assert_eq!(remb_bitrate(-1.0), None);
        assert_eq!(remb_bitrate(0.0), None);
        assert_eq!(remb_bitrate(f32::INFINITY), None);
        assert_eq!(remb_bitrate(f32::MAX), Some(REMB_LIMIT));
        assert_eq!(remb_bitrate(2_000_000.0), Some(2_000_000.0));
    }
}
