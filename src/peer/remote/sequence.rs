//! Which RTP packets of a video track reach the frame assembler, by sequence number (pure,
//! fed the time). A packet far outside the assembler's window (found by the `rtp_vp8` fuzz
//! target: the rtc crate's sample builder, used before, purged such a jump in O(n²) steps)
//! is held back; two in a row there are a new sequence (the sender restarted: RFC 3550
//! A.1 treats a jump the same way) and the assembler starts again on it, at most once per
//! [`RESTART_INTERVAL`].

use std::time::{Duration, Instant};

/// The least time between two restarts of the assembler (each starts an empty one).
pub(super) const RESTART_INTERVAL: Duration = Duration::from_secs(1);

/// What becomes of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Within the window: to the assembler.
    Take,
    /// Far outside it: dropped.
    Drop,
    /// The second of a new sequence: the assembler starts again with it.
    Restart,
}

#[derive(Debug)]
pub(super) struct SequenceGuard {
    /// How far (in sequence numbers, either way) from the highest seen a packet may be.
    window: u16,
    highest: Option<u16>,
    /// The sequence number that would confirm a jump (the one after a dropped packet).
    probation: Option<u16>,
    last_restart: Option<Instant>,
}

impl SequenceGuard {
    pub(super) fn new(window: u16) -> Self {
        SequenceGuard {
            window,
            highest: None,
            probation: None,
            last_restart: None,
        }
    }

    /// The verdict on a packet numbered `seq` arriving at `now`.
    pub(super) fn admit(&mut self, seq: u16, now: Instant) -> Verdict {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            return Verdict::Take;
        };
        let delta = i32::from(seq.wrapping_sub(highest) as i16);
        if delta.abs() <= i32::from(self.window) {
            if delta > 0 {
                self.highest = Some(seq);
            }
            self.probation = None;
            return Verdict::Take;
        }
        let may_restart = self
            .last_restart
            .is_none_or(|at| now.saturating_duration_since(at) >= RESTART_INTERVAL);
        if self.probation == Some(seq) && may_restart {
            self.highest = Some(seq);
            self.probation = None;
            self.last_restart = Some(now);
            return Verdict::Restart;
        }
        self.probation = Some(seq.wrapping_add(1));
        Verdict::Drop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_within_the_window_pass_in_any_order_across_the_wrap() {
        let mut g = SequenceGuard::new(256);
        let now = Instant::now();
        for seq in [65530, 65532, 65531, 2, 1, 65535, 200, 10] {
            assert_eq!(g.admit(seq, now), Verdict::Take, "{seq}");
        }
        assert_eq!(
            g.admit(457, now),
            Verdict::Drop,
            "257 past the highest (200)"
        );
    }

    #[test]
    fn a_far_packet_is_dropped_and_two_in_a_row_restart_at_most_once_a_second() {
        let mut g = SequenceGuard::new(256);
        let t0 = Instant::now();
        assert_eq!(g.admit(100, t0), Verdict::Take);
        assert_eq!(g.admit(30_000, t0), Verdict::Drop);
        assert_eq!(g.admit(101, t0), Verdict::Take, "the old sequence goes on");
        assert_eq!(g.admit(30_001, t0), Verdict::Drop, "not right after 30 000");
        assert_eq!(g.admit(30_002, t0), Verdict::Restart);
        assert_eq!(g.admit(30_003, t0), Verdict::Take);
        assert_eq!(
            g.admit(101, t0),
            Verdict::Drop,
            "the old sequence is far now"
        );
        // Another jump within the second: dropped however consecutive.
        assert_eq!(g.admit(5_000, t0), Verdict::Drop);
        assert_eq!(g.admit(5_001, t0), Verdict::Drop);
        let later = t0 + RESTART_INTERVAL;
        assert_eq!(g.admit(5_002, later), Verdict::Restart);
        assert_eq!(g.admit(5_003, later), Verdict::Take);
    }
}
