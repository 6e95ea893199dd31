//! What a receiver really got, from the pattern's strip on each decoded frame (pure): frames
//! skipped, repeated and reordered, freezes, and latency from capture to decode. Fed
//! (frame number, capture time, decode time) — the strip is read by
//! `devices::pattern::read_strip` — it keeps bounded state, whatever the run's length.
//!
//! Definitions (docs/interop.md): a frame is *new* when its number is above every number
//! seen; *skipped* numbers lie between the first and the newest and were never seen;
//! *repeated* frames carry a number seen before; *reordered* ones a lower number not seen
//! before (it filled a gap late). A *freeze* is no new frame for more than three frame
//! intervals; the interval is given or measured from the strip's capture times. Latency
//! is the decode time minus the capture time (both wall clock, ms mod 2^32), for each
//! frame number's first sighting.

use std::collections::BTreeSet;

use serde::Serialize;

/// Frame numbers below the newest whose sightings are remembered (about 34 s at 30 fps):
/// an older frame arriving is counted as reordered without un-skipping it.
pub const QUALITY_WINDOW: u64 = 1024;
/// Latencies are kept to the millisecond up to this; longer ones count as this long.
pub const MAX_LATENCY_MS: u32 = 10_000;
/// A freeze is no new frame for more than this many frame intervals.
pub const FREEZE_INTERVALS: f64 = 3.0;

/// One decoded frame, as its strip reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StripFrame {
    /// The strip's frame number.
    pub number: u32,
    /// The strip's capture time: wall-clock ms since the UNIX epoch, mod 2^32.
    pub capture_ms: u32,
    /// When it was decoded: wall-clock ms since the UNIX epoch.
    pub decoded_ms: u64,
}

/// Freezes seen: how many, and the longest (ms between the new frames around it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Freezes {
    pub count: u64,
    pub longest_ms: u64,
}

/// Latency percentiles, milliseconds (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub p50: u32,
    pub p95: u32,
    pub p99: u32,
}

/// What the frames so far say.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityReport {
    /// Frames fed in.
    pub frames: u64,
    /// Frame numbers from the first seen to the newest, both included.
    pub span: u64,
    pub frames_skipped: u64,
    pub frames_repeated: u64,
    pub frames_reordered: u64,
    pub freezes: Freezes,
    /// `None` before any frame.
    pub latency_ms: Option<Latency>,
    /// The frame interval freezes are judged by (given, or measured from capture times).
    pub frame_interval_ms: Option<f64>,
}

/// The newest frame and what it says of the sender's clock.
#[derive(Debug, Clone, Copy)]
struct Newest {
    /// Its number, unwrapped (frame numbers wrap at 2^32).
    number: i64,
    capture_ms: u32,
    decoded_ms: u64,
}

/// Reads a track's quality from the strips of its decoded frames.
#[derive(Debug, Clone)]
pub struct QualityAnalyzer {
    given_interval_ms: Option<f64>,
    first: Option<Newest>,
    newest: Option<Newest>,
    /// Numbers within [`QUALITY_WINDOW`] below the newest never seen yet.
    missing: BTreeSet<i64>,
    frames: u64,
    skipped: u64,
    repeated: u64,
    reordered: u64,
    freezes: Freezes,
    /// Latency histogram, one bucket per millisecond (allocated on the first frame).
    latency: Vec<u32>,
    latencies: u64,
}

impl Default for QualityAnalyzer {
    fn default() -> Self {
        QualityAnalyzer::new()
    }
}

impl QualityAnalyzer {
    /// An analyzer measuring the frame interval from the strip's capture times.
    pub fn new() -> Self {
        QualityAnalyzer {
            given_interval_ms: None,
            first: None,
            newest: None,
            missing: BTreeSet::new(),
            frames: 0,
            skipped: 0,
            repeated: 0,
            reordered: 0,
            freezes: Freezes::default(),
            latency: Vec::new(),
            latencies: 0,
        }
    }

    /// An analyzer judging freezes by `fps`'s frame interval (a non-positive or
    /// non-finite rate is ignored: the interval is measured).
    pub fn with_frame_rate(fps: f64) -> Self {
        QualityAnalyzer {
            given_interval_ms: (fps.is_finite() && fps > 0.0).then(|| 1000.0 / fps),
            ..QualityAnalyzer::new()
        }
    }

    /// The frame interval, ms: given, or from the capture times of the first and newest
    /// frames (`None` before two distinct frames, or when those times make no sense).
    pub fn frame_interval_ms(&self) -> Option<f64> {
        if self.given_interval_ms.is_some() {
            return self.given_interval_ms;
        }
        let (first, newest) = (self.first?, self.newest?);
        let frames = newest.number - first.number;
        let ms = newest.capture_ms.wrapping_sub(first.capture_ms);
        let interval = f64::from(ms) / frames as f64;
        (frames > 0 && interval > 0.0 && interval <= 10_000.0).then_some(interval)
    }

    /// Takes the next decoded frame.
    pub fn push(&mut self, frame: StripFrame) {
        self.frames += 1;
        let Some(newest) = self.newest else {
            let first = Newest {
                number: i64::from(frame.number),
                capture_ms: frame.capture_ms,
                decoded_ms: frame.decoded_ms,
            };
            (self.first, self.newest) = (Some(first), Some(first));
            self.record_latency(frame);
            return;
        };
        let ahead = i64::from(frame.number.wrapping_sub(newest.number as u32) as i32);
        let number = newest.number + ahead;
        if ahead > 0 {
            let gap = (ahead - 1) as u64;
            self.skipped += gap;
            let from = (newest.number + 1).max(number - QUALITY_WINDOW as i64);
            self.missing.extend(from..number);
            let floor = number - QUALITY_WINDOW as i64;
            self.missing = self.missing.split_off(&floor);
            self.newest = Some(Newest {
                number,
                capture_ms: frame.capture_ms,
                decoded_ms: frame.decoded_ms,
            });
            let since = frame.decoded_ms.saturating_sub(newest.decoded_ms);
            if self.is_freeze(since) {
                self.freezes.count += 1;
                self.freezes.longest_ms = self.freezes.longest_ms.max(since);
            }
            self.record_latency(frame);
        } else if ahead == 0 {
            self.repeated += 1;
        } else if self.missing.remove(&number) {
            self.reordered += 1;
            self.skipped -= 1;
            self.record_latency(frame);
        } else if self.first.is_some_and(|f| number >= f.number)
            && number >= newest.number - QUALITY_WINDOW as i64
        {
            self.repeated += 1;
        } else {
            // Older than the window or than the first frame: late, but not seen before
            // as far as we know.
            self.reordered += 1;
        }
    }

    fn is_freeze(&self, since_ms: u64) -> bool {
        self.frame_interval_ms()
            .is_some_and(|i| since_ms as f64 > FREEZE_INTERVALS * i)
    }

    fn record_latency(&mut self, frame: StripFrame) {
        let age = (frame.decoded_ms as u32).wrapping_sub(frame.capture_ms) as i32;
        // A capture time in the future (clocks apart) counts as no latency.
        let ms = age.clamp(0, MAX_LATENCY_MS as i32) as usize;
        if self.latency.is_empty() {
            self.latency = vec![0; MAX_LATENCY_MS as usize + 1];
        }
        self.latency[ms] += 1;
        self.latencies += 1;
    }

    fn percentile(&self, p: f64) -> u32 {
        let rank = ((p / 100.0) * self.latencies as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (ms, n) in self.latency.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank {
                return ms as u32;
            }
        }
        MAX_LATENCY_MS
    }

    /// The report at `now_ms` (wall clock): a freeze still going on then counts.
    pub fn report(&self, now_ms: u64) -> QualityReport {
        let mut freezes = self.freezes;
        if let Some(newest) = self.newest {
            let since = now_ms.saturating_sub(newest.decoded_ms);
            if self.is_freeze(since) {
                freezes.count += 1;
                freezes.longest_ms = freezes.longest_ms.max(since);
            }
        }
        QualityReport {
            frames: self.frames,
            span: match (self.first, self.newest) {
                (Some(f), Some(n)) => (n.number - f.number + 1) as u64,
                _ => 0,
            },
            frames_skipped: self.skipped,
            frames_repeated: self.repeated,
            frames_reordered: self.reordered,
            freezes,
            latency_ms: (self.latencies > 0).then(|| Latency {
                p50: self.percentile(50.0),
                p95: self.percentile(95.0),
                p99: self.percentile(99.0),
            }),
            frame_interval_ms: self.frame_interval_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    /// Frame `number` captured at `capture` ms after T0 and decoded `latency` ms later.
    fn frame(number: u32, capture: u64, latency: u64) -> StripFrame {
        StripFrame {
            number,
            capture_ms: (T0 + capture) as u32,
            decoded_ms: T0 + capture + latency,
        }
    }

    /// Feeds `frames` and reports at the last decode time.
    fn analyze(mut a: QualityAnalyzer, frames: &[StripFrame]) -> QualityReport {
        for f in frames {
            a.push(*f);
        }
        a.report(frames.last().map_or(T0, |f| f.decoded_ms))
    }

    /// Frames `from..to` at 30 fps (33.3 ms apart), each decoded 40 ms after capture.
    fn clean(from: u32, to: u32) -> Vec<StripFrame> {
        (from..to)
            .map(|n| frame(n, u64::from(n) * 100 / 3, 40))
            .collect()
    }

    #[test]
    fn a_clean_run_has_nothing_to_report_but_its_latency() {
        let r = analyze(QualityAnalyzer::new(), &clean(0, 300));
        assert_eq!(
            (
                r.frames,
                r.span,
                r.frames_skipped,
                r.frames_repeated,
                r.frames_reordered
            ),
            (300, 300, 0, 0, 0)
        );
        assert_eq!(r.freezes, Freezes::default());
        assert_eq!(
            r.latency_ms,
            Some(Latency {
                p50: 40,
                p95: 40,
                p99: 40
            })
        );
        let interval = r.frame_interval_ms.unwrap();
        assert!((interval - 33.3).abs() < 0.1, "{interval}");
        assert_eq!(QualityAnalyzer::new().report(T0).latency_ms, None);
    }

    #[test]
    fn a_one_second_freeze_and_a_forty_frame_jump() {
        // Frames 0..=59 live; frame 59 shown again for 1 s (30 decodes); then the sender
        // jumps 40 numbers ahead (frames 60..=99 never sent) and goes on from 100.
        let mut frames = clean(0, 60);
        let stuck = frames[59];
        for k in 1..=30 {
            frames.push(StripFrame {
                decoded_ms: stuck.decoded_ms + k * 100 / 3,
                ..stuck
            });
        }
        let resume = 59 * 100 / 3 + 1033;
        for (k, n) in (100..160).enumerate() {
            frames.push(frame(n, resume + k as u64 * 100 / 3, 40));
        }
        let r = analyze(QualityAnalyzer::with_frame_rate(30.0), &frames);
        assert_eq!(r.frames_repeated, 30);
        assert_eq!(r.frames_skipped, 40);
        assert_eq!(r.frames_reordered, 0);
        assert_eq!(r.freezes.count, 1);
        assert!(
            (1030..=1040).contains(&r.freezes.longest_ms),
            "{:?}",
            r.freezes
        );
        assert_eq!(r.span, 160);
    }

    #[test]
    fn late_frames_are_reordered_and_fill_their_gap() {
        let numbers = [0, 1, 3, 2, 4, 6, 5, 5, 2, 7];
        let frames: Vec<StripFrame> = numbers
            .iter()
            .map(|n| frame(*n, u64::from(*n) * 33, 10))
            .collect();
        let r = analyze(QualityAnalyzer::new(), &frames);
        assert_eq!(r.frames_reordered, 2, "2 and 5 came late");
        assert_eq!(r.frames_repeated, 2, "5 and 2 came twice");
        assert_eq!(r.frames_skipped, 0);
        // Losses: every tenth frame of 0..100 never arrives.
        let lossy: Vec<StripFrame> = clean(0, 100)
            .into_iter()
            .filter(|f| f.number % 10 != 5)
            .collect();
        let r = analyze(QualityAnalyzer::new(), &lossy);
        assert_eq!((r.frames, r.span, r.frames_skipped), (90, 100, 10));
        assert_eq!(r.freezes.count, 0, "a lost frame is no freeze");
    }

    #[test]
    fn a_freeze_is_more_than_three_intervals_without_a_new_frame() {
        let at = |n: u32, decoded: u64| StripFrame {
            number: n,
            capture_ms: (T0 + u64::from(n) * 100 / 3) as u32,
            decoded_ms: T0 + decoded,
        };
        // 30 fps: three intervals are 100 ms.
        let r = analyze(
            QualityAnalyzer::with_frame_rate(30.0),
            &[at(0, 0), at(1, 100)],
        );
        assert_eq!(r.freezes.count, 0);
        let r = analyze(
            QualityAnalyzer::with_frame_rate(30.0),
            &[at(0, 0), at(1, 101), at(2, 400)],
        );
        assert_eq!(
            r.freezes,
            Freezes {
                count: 2,
                longest_ms: 299
            }
        );
        // Measured from capture times: the same.
        let r = analyze(QualityAnalyzer::new(), &[at(0, 0), at(3, 100), at(4, 240)]);
        assert_eq!(
            r.freezes,
            Freezes {
                count: 1,
                longest_ms: 140
            }
        );
        // Still frozen when the report is made.
        let mut a = QualityAnalyzer::with_frame_rate(30.0);
        a.push(at(0, 0));
        assert_eq!(
            a.report(T0 + 500).freezes,
            Freezes {
                count: 1,
                longest_ms: 500
            }
        );
        assert_eq!(a.report(T0 + 50).freezes.count, 0);
    }

    #[test]
    fn latency_percentiles_are_nearest_rank() {
        let frames: Vec<StripFrame> = (1..=100)
            .map(|n| frame(n, u64::from(n) * 33, u64::from(n)))
            .collect();
        let r = analyze(QualityAnalyzer::new(), &frames);
        assert_eq!(
            r.latency_ms,
            Some(Latency {
                p50: 50,
                p95: 95,
                p99: 99
            })
        );
        // A capture time ahead of the decoder's clock is 0; a huge age is capped.
        let skewed = StripFrame {
            number: 1,
            capture_ms: (T0 + 5) as u32,
            decoded_ms: T0,
        };
        let r = analyze(QualityAnalyzer::new(), &[skewed]);
        assert_eq!(r.latency_ms.unwrap().p50, 0);
        let old = StripFrame {
            number: 1,
            capture_ms: T0 as u32,
            decoded_ms: T0 + 60_000,
        };
        assert_eq!(
            analyze(QualityAnalyzer::new(), &[old])
                .latency_ms
                .unwrap()
                .p99,
            MAX_LATENCY_MS
        );
    }

    #[test]
    fn numbers_and_times_wrap() {
        // Frame numbers wrap at 2^32, capture times at 2^32 ms (49.7 days).
        let start = u32::MAX - 5;
        let frames: Vec<StripFrame> = (0..20u32)
            .map(|k| StripFrame {
                number: start.wrapping_add(k),
                capture_ms: (u32::MAX - 100).wrapping_add(k * 33),
                decoded_ms: (1u64 << 32) - 101 + u64::from(k) * 33 + 25,
            })
            .collect();
        let r = analyze(QualityAnalyzer::new(), &frames);
        assert_eq!((r.span, r.frames_skipped, r.frames_repeated), (20, 0, 0));
        assert_eq!(r.latency_ms.unwrap().p99, 25);
        assert_eq!(r.frame_interval_ms, Some(33.0));
    }

    #[test]
    fn state_stays_bounded_over_a_huge_jump() {
        let mut a = QualityAnalyzer::new();
        a.push(frame(0, 0, 1));
        a.push(frame(1_000_000, 33, 1));
        assert!(a.missing.len() <= QUALITY_WINDOW as usize);
        // A frame from before the window is late, not a repeat, and stays skipped.
        a.push(frame(5, 40, 1));
        let r = a.report(T0 + 40);
        assert_eq!((r.frames_skipped, r.frames_reordered), (999_999, 1));
    }
}
