//! The bitrate ladder (the rungs a track's video is encoded at) and the tier policy: which
//! rung a viewer's bandwidth estimate puts it on, and when it moves. Pure: time is passed in.

use std::time::{Duration, Instant};

/// A derived ladder keeps no rung below this: lower, a video encoder spends its bits on
/// keyframes and the picture is mush; such viewers share the lowest rung (and pull it down
/// within its range).
pub const MIN_RUNG: u32 = 150_000;

/// The video bitrates a track is encoded at: one encoder per rung (and codec) that has
/// viewers, each viewer on the highest rung its bandwidth estimate allows. So one viewer
/// on a bad link gets its own, lower-rate encoder instead of pulling every viewer down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitrateLadder {
    /// Rungs derived from the highest: `max`, `max`/2.5, `max`/6 (2.5 M / 1 M / 416 k for a
    /// 2.5 Mbit/s track), rungs below [`MIN_RUNG`] left out, and fewer for small pictures
    /// (three from 1280×720, two from 640×360, else one): small video is cheap to send
    /// whole.
    Derived { max: u32 },
    /// These rungs exactly (any order; duplicates and zeros are dropped).
    Explicit(Vec<u32>),
}

impl From<u32> for BitrateLadder {
    fn from(max: u32) -> Self {
        BitrateLadder::Derived { max }
    }
}

impl From<Vec<u32>> for BitrateLadder {
    fn from(rungs: Vec<u32>) -> Self {
        BitrateLadder::Explicit(rungs)
    }
}

impl BitrateLadder {
    /// The rungs, highest first, for a picture of `size` (unknown: the full ladder). Never
    /// empty (a zero `max` gives one rung of 0, which the encoders clamp).
    pub fn rungs(&self, size: Option<(u32, u32)>) -> Vec<u32> {
        let mut rungs = match self {
            BitrateLadder::Derived { max } => {
                let tiers = match size {
                    Some((w, h)) if w * h >= 1280 * 720 => 3,
                    Some((w, h)) if w * h >= 640 * 360 => 2,
                    Some(_) => 1,
                    None => 3,
                };
                let all = [*max, (*max as f64 / 2.5) as u32, *max / 6];
                let mut rungs: Vec<u32> = all
                    .into_iter()
                    .take(tiers)
                    .enumerate()
                    .filter(|&(i, r)| i == 0 || r >= MIN_RUNG)
                    .map(|(_, r)| r)
                    .collect();
                rungs.dedup();
                rungs
            }
            BitrateLadder::Explicit(list) => list.iter().copied().filter(|&r| r > 0).collect(),
        };
        rungs.sort_unstable_by(|a, b| b.cmp(a));
        rungs.dedup();
        if rungs.is_empty() {
            rungs.push(0);
        }
        rungs
    }

    /// The highest rung.
    pub fn max(&self) -> u32 {
        self.rungs(None)[0]
    }
}

/// When a viewer changes tier. Down is prompt (the link cannot carry the rung: frames
/// would queue and be lost); up waits until the estimate has stayed clearly above the
/// higher rung for a while, so a viewer does not bounce between tiers (each move costs a
/// keyframe).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierPolicy {
    /// Move up to a rung once the estimate is at least this multiple of it (capped at the
    /// top rung: congestion control never estimates above its configured maximum)...
    pub up_margin: f64,
    /// ...for this long without a break.
    pub up_after: Duration,
    /// Move down at once when the estimate falls below this multiple of the current rung.
    pub down_margin: f64,
}

impl Default for TierPolicy {
    fn default() -> Self {
        TierPolicy {
            up_margin: 1.2,
            up_after: Duration::from_secs(4),
            down_margin: 0.9,
        }
    }
}

/// One viewer's tier and its progress towards a higher one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierState {
    tier: usize,
    /// The higher tier the estimate qualifies for, and since when.
    above: Option<(usize, Instant)>,
}

impl TierState {
    /// A viewer's first tier: the highest rung at or below `estimate` (no estimate: the
    /// top; below every rung: the lowest).
    pub fn initial(rungs: &[u32], estimate: f64) -> Self {
        TierState {
            tier: fitting(rungs, estimate),
            above: None,
        }
    }

    /// Settled on `tier`, with no progress towards a higher one (a move given up).
    pub(crate) fn settled(tier: usize) -> Self {
        TierState { tier, above: None }
    }

    pub fn tier(&self) -> usize {
        self.tier
    }

    /// Takes a new `estimate` (bits per second) at `now`; returns the tier to be on.
    pub fn update(
        &mut self,
        rungs: &[u32],
        policy: &TierPolicy,
        estimate: f64,
        now: Instant,
    ) -> usize {
        let last = rungs.len().saturating_sub(1);
        self.tier = self.tier.min(last);
        if estimate <= 0.0 || rungs.len() < 2 {
            return self.tier;
        }
        let current = rungs[self.tier] as f64;
        if self.tier < last && estimate < current * policy.down_margin {
            self.tier = fitting(rungs, estimate).max(self.tier + 1);
            self.above = None;
            return self.tier;
        }
        let top = rungs[0] as f64;
        let qualifies =
            (0..self.tier).find(|&t| estimate >= (rungs[t] as f64 * policy.up_margin).min(top));
        match (qualifies, self.above) {
            (None, _) => self.above = None,
            (Some(t), Some((_, since))) => {
                if now.duration_since(since) >= policy.up_after {
                    self.tier = t;
                    self.above = None;
                } else {
                    self.above = Some((t, since));
                }
            }
            (Some(t), None) => self.above = Some((t, now)),
        }
        self.tier
    }
}

/// The highest rung at or below `estimate`; the top without an estimate.
fn fitting(rungs: &[u32], estimate: f64) -> usize {
    if estimate <= 0.0 {
        return 0;
    }
    rungs
        .iter()
        .position(|&r| r as f64 <= estimate)
        .unwrap_or(rungs.len().saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_are_derived_by_size_or_given() {
        let derived = BitrateLadder::from(2_500_000);
        assert_eq!(
            derived.rungs(Some((1280, 720))),
            [2_500_000, 1_000_000, 416_666]
        );
        assert_eq!(derived.rungs(Some((640, 480))), [2_500_000, 1_000_000]);
        assert_eq!(derived.rungs(Some((320, 240))), [2_500_000]);
        // Rungs under MIN_RUNG are left out.
        assert_eq!(
            BitrateLadder::from(500_000).rungs(Some((1920, 1080))),
            [500_000, 200_000]
        );
        assert_eq!(
            BitrateLadder::from(vec![300_000, 0, 2_000_000, 300_000]).rungs(None),
            [2_000_000, 300_000]
        );
        assert_eq!(BitrateLadder::Explicit(vec![]).rungs(None), [0]);
    }

    #[test]
    fn tiers_go_down_at_once_and_up_only_after_a_steady_surplus() {
        let rungs = [2_500_000, 1_000_000, 300_000];
        let policy = TierPolicy::default();
        assert_eq!(
            TierState::initial(&rungs, 0.0).tier(),
            0,
            "unknown: the top"
        );
        assert_eq!(TierState::initial(&rungs, 2_600_000.0).tier(), 0);
        assert_eq!(TierState::initial(&rungs, 1_500_000.0).tier(), 1);
        assert_eq!(TierState::initial(&rungs, 100_000.0).tier(), 2);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_millis(s);
        let mut state = TierState::initial(&rungs, 2_500_000.0);
        // Slightly under the rung: stays (a margin against the estimate's jitter).
        assert_eq!(state.update(&rungs, &policy, 2_300_000.0, at(0)), 0);
        // Clearly under: down at once, past any rung it cannot carry either.
        assert_eq!(state.update(&rungs, &policy, 400_000.0, at(1000)), 2);
        // Up only after 4 s above 1.2 × the next rung.
        assert_eq!(state.update(&rungs, &policy, 1_300_000.0, at(2000)), 2);
        assert_eq!(state.update(&rungs, &policy, 1_300_000.0, at(5000)), 2);
        // A dip restarts the wait.
        assert_eq!(state.update(&rungs, &policy, 1_100_000.0, at(5500)), 2);
        assert_eq!(state.update(&rungs, &policy, 1_300_000.0, at(6000)), 2);
        assert_eq!(state.update(&rungs, &policy, 1_300_000.0, at(9000)), 2);
        assert_eq!(state.update(&rungs, &policy, 1_300_000.0, at(10_000)), 1);
        // The top rung needs the estimate at the rung (congestion control's ceiling).
        assert_eq!(state.update(&rungs, &policy, 2_500_000.0, at(11_000)), 1);
        assert_eq!(state.update(&rungs, &policy, 2_500_000.0, at(15_000)), 0);
        // No estimate: no move.
        assert_eq!(state.update(&rungs, &policy, 0.0, at(16_000)), 0);
    }
}
