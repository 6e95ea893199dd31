//! The `abs-capture-time` RTP header extension
//! (<http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time>), pure: a frame's
//! capture time as a 64-bit NTP timestamp (UQ32.32 seconds since 1900), written on the
//! first packet of each frame we send and read on receive, and the id an SDP maps it to.
//! With it a receiver (Chrome's `getStats`, our remote tracks) computes the delay from
//! capture to receive, even through relays that re-time RTP.

use bytes::Bytes;

/// The extension's URI, as SDP `a=extmap` lines name it.
pub const ABS_CAPTURE_TIME_URI: &str =
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";

/// Seconds from the NTP epoch (1900) to the UNIX epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Wall-clock ms since the UNIX epoch → NTP UQ32.32.
pub fn ntp_from_unix_ms(ms: u64) -> u64 {
    let seconds = ms / 1000 + NTP_UNIX_OFFSET;
    let fraction = ((ms % 1000) << 32) / 1000;
    (seconds << 32) | fraction
}

/// NTP UQ32.32 → wall-clock ms since the UNIX epoch (rounded to the nearest ms); `None`
/// before 1970.
pub fn unix_ms_from_ntp(ntp: u64) -> Option<u64> {
    let seconds = (ntp >> 32).checked_sub(NTP_UNIX_OFFSET)?;
    let fraction = ntp & 0xffff_ffff;
    Some(seconds * 1000 + ((fraction * 1000 + (1 << 31)) >> 32))
}

/// The extension's payload for a capture at `ms` (the 8-byte form: no clock offset).
pub fn encode(ms: u64) -> Bytes {
    Bytes::copy_from_slice(&ntp_from_unix_ms(ms).to_be_bytes())
}

/// The capture time an extension payload carries (the 8- or the 16-byte form; the
/// estimated clock offset of the latter is not applied), ms since the UNIX epoch.
pub fn decode(payload: &[u8]) -> Option<u64> {
    if payload.len() != 8 && payload.len() != 16 {
        return None;
    }
    let ntp = u64::from_be_bytes(payload[..8].try_into().ok()?);
    unix_ms_from_ntp(ntp)
}

/// The id `sdp` maps the extension to (`a=extmap:ID[/direction] URI`); one id per
/// session, as BUNDLE requires the same id for the same URI in every section.
pub fn extmap_id(sdp: &str) -> Option<u8> {
    sdp.lines().find_map(|line| {
        let rest = line.trim_end_matches('\r').strip_prefix("a=extmap:")?;
        let (id, rest) = rest.split_once(' ')?;
        let uri = rest.split_ascii_whitespace().next()?;
        let id: u8 = id.split('/').next()?.parse().ok()?;
        (uri == ABS_CAPTURE_TIME_URI && (1..=255).contains(&id)).then_some(id)
    })
}

/// Observations a [`CaptureClock`] keeps: a unit may complete only when the next
/// frame's first packet (and its extension) has arrived.
const RECENT: usize = 8;

/// Capture times of a received stream: each unit's from the extension of its packets, or,
/// for a frame without it, extrapolated from the newest by the RTP clock (as the
/// extension's spec says a receiver does).
#[derive(Debug, Clone, Default)]
pub(crate) struct CaptureClock {
    /// The newest (RTP timestamp, capture ms) read from the extension, oldest first.
    recent: std::collections::VecDeque<(u32, u64)>,
}

impl CaptureClock {
    /// A packet of RTP timestamp `rtp` carried capture time `ms`.
    pub(crate) fn observe(&mut self, rtp: u32, ms: u64) {
        if self.recent.back().is_some_and(|(at, _)| *at == rtp) {
            return;
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((rtp, ms));
    }

    /// The capture time of the unit of RTP timestamp `rtp` at `clock_rate` Hz; `None` when
    /// the sender never sent the extension.
    pub(crate) fn capture_ms(&self, rtp: u32, clock_rate: u32) -> Option<u64> {
        if let Some((_, ms)) = self.recent.iter().rev().find(|(at, _)| *at == rtp) {
            return Some(*ms);
        }
        let (at, ms) = *self.recent.back()?;
        let ticks = i64::from(rtp.wrapping_sub(at) as i32);
        let delta = ticks * 1000 / i64::from(clock_rate.max(1));
        Some(ms.saturating_add_signed(delta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_times_round_trip_to_the_millisecond() {
        for ms in [0, 1, 999, 1_000, 1_765_000_000_123, 1_765_000_000_999] {
            assert_eq!(decode(&encode(ms)), Some(ms), "{ms}");
        }
        // 2026-12-06T00:00:00Z is 3,974,083,200 s after 1900.
        assert_eq!(ntp_from_unix_ms(1_796_515_200_000) >> 32, 4_005_504_000);
        assert_eq!(ntp_from_unix_ms(500) & 0xffff_ffff, 1 << 31);
        // The 16-byte form (with a clock offset) reads too; other sizes do not.
        let mut long = encode(42).to_vec();
        long.extend_from_slice(&[0xff; 8]);
        assert_eq!(decode(&long), Some(42));
        assert_eq!(decode(&[0; 4]), None);
        assert_eq!(unix_ms_from_ntp(5 << 32), None, "before 1970");
    }

    #[test]
    fn the_id_is_read_from_the_extmap_lines() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
                   a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
                   a=extmap:7/sendrecv http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time\r\n";
        assert_eq!(extmap_id(sdp), Some(7));
        assert_eq!(
            extmap_id("v=0\r\na=extmap:2 urn:3gpp:video-orientation\r\n"),
            None
        );
        assert_eq!(
            extmap_id("a=extmap:x http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"),
            None
        );
    }

    #[test]
    fn frames_without_the_extension_are_extrapolated_by_the_rtp_clock() {
        let mut clock = CaptureClock::default();
        assert_eq!(clock.capture_ms(1000, 90_000), None);
        clock.observe(90_000, 10_000);
        assert_eq!(clock.capture_ms(90_000, 90_000), Some(10_000));
        assert_eq!(clock.capture_ms(93_000, 90_000), Some(10_033));
        assert_eq!(clock.capture_ms(87_000, 90_000), Some(9_967));
        // A frame's own observation wins over extrapolating from a newer one.
        clock.observe(93_000, 10_034);
        assert_eq!(clock.capture_ms(90_000, 90_000), Some(10_000));
        assert_eq!(clock.capture_ms(93_000, 90_000), Some(10_034));
        // Across the RTP timestamp's wrap.
        clock.observe(u32::MAX - 899, 20_000);
        assert_eq!(clock.capture_ms(2_100, 90_000), Some(20_033));
    }
}
