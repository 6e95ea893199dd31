//! Freezes from arrival times alone (pure): for video without the pattern's strip. The
//! frame interval is the median gap between arrivals; a freeze is a gap of more than
//! [`FREEZE_INTERVALS`] of them. State is a histogram of gaps, bounded whatever the run.

use crate::media::{Freezes, FREEZE_INTERVALS};

/// Gaps are kept to the millisecond up to this; longer ones count as this long (and their
/// real length still makes the longest freeze).
const MAX_GAP_MS: usize = 10_000;

/// Freezes of a stream judged by when its frames arrived.
#[derive(Debug, Clone, Default)]
pub struct ArrivalAnalyzer {
    last_ms: Option<u64>,
    /// One bucket per millisecond of gap (allocated on the second frame).
    gaps: Vec<u32>,
    gap_count: u64,
    /// The longest gap of each length class above the cap, kept exactly.
    longest_ms: u64,
}

impl ArrivalAnalyzer {
    pub fn new() -> Self {
        ArrivalAnalyzer::default()
    }

    /// A frame arrived at `arrival_ms` (wall clock).
    pub fn push(&mut self, arrival_ms: u64) {
        if let Some(last) = self.last_ms {
            let gap = arrival_ms.saturating_sub(last);
            if self.gaps.is_empty() {
                self.gaps = vec![0; MAX_GAP_MS + 1];
            }
            self.gaps[(gap as usize).min(MAX_GAP_MS)] += 1;
            self.gap_count += 1;
            self.longest_ms = self.longest_ms.max(gap);
        }
        self.last_ms = Some(arrival_ms.max(self.last_ms.unwrap_or(0)));
    }

    /// The median gap between arrivals, ms (`None` before two frames).
    pub fn frame_interval_ms(&self) -> Option<f64> {
        let rank = self.gap_count.div_ceil(2).max(1);
        let mut seen = 0;
        for (ms, n) in self.gaps.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank {
                return Some(ms.max(1) as f64);
            }
        }
        None
    }

    /// The freezes so far, at `now_ms`: one still going on then counts.
    pub fn freezes(&self, now_ms: u64) -> Freezes {
        let Some(interval) = self.frame_interval_ms() else {
            return Freezes::default();
        };
        let limit = FREEZE_INTERVALS * interval;
        let mut freezes = Freezes::default();
        for (ms, n) in self.gaps.iter().enumerate() {
            if *n > 0 && ms as f64 > limit {
                freezes.count += u64::from(*n);
                freezes.longest_ms = freezes.longest_ms.max(ms as u64);
            }
        }
        if freezes.count > 0 {
            freezes.longest_ms = freezes.longest_ms.max(self.longest_ms);
        }
        if let Some(last) = self.last_ms {
            let since = now_ms.saturating_sub(last);
            if since as f64 > limit {
                freezes.count += 1;
                freezes.longest_ms = freezes.longest_ms.max(since);
            }
        }
        freezes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_over_three_median_intervals_is_a_freeze() {
        let mut a = ArrivalAnalyzer::new();
        let mut t = 1_000u64;
        for _ in 0..30 {
            a.push(t);
            t += 33;
        }
        assert_eq!(a.frame_interval_ms(), Some(33.0));
        assert_eq!(a.freezes(t - 33), Freezes::default());
        // 99 ms is three intervals, not more: no freeze; 500 ms is one.
        a.push(t - 33 + 99);
        t = t - 33 + 99 + 500;
        a.push(t);
        assert_eq!(
            a.freezes(t),
            Freezes {
                count: 1,
                longest_ms: 500
            }
        );
        // Nothing since: still frozen at report time.
        assert_eq!(a.freezes(t + 2_000).longest_ms, 2_000);
        assert_eq!(ArrivalAnalyzer::new().freezes(5), Freezes::default());
    }
}
