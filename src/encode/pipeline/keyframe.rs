//! The keyframe gate: decides, frame by frame, whether the encoder forces a keyframe. Pure:
//! no threads, no clock of its own (the caller passes the time).

use std::time::{Duration, Instant};

/// Minimum spacing of keyframes forced by requests (new sinks are not limited).
pub const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(200);

/// Keyframes wanted and when the last was forced. A new sink's keyframe is forced at the
/// next frame; requests (PLI/FIR, a sink that lost sync) are merged and forced at most one
/// per `min_interval`, the others waiting for it rather than being lost.
#[derive(Debug, Clone)]
pub(super) struct KeyframeGate {
    min_interval: Duration,
    /// A sink joined: force the next frame, unlimited.
    now: bool,
    /// A request waiting for the rate limit.
    requested: bool,
    last_forced: Option<Instant>,
}

impl Default for KeyframeGate {
    fn default() -> Self {
        KeyframeGate::new(KEYFRAME_MIN_INTERVAL)
    }
}

impl KeyframeGate {
    pub(super) fn new(min_interval: Duration) -> Self {
        KeyframeGate {
            min_interval,
            now: false,
            requested: false,
            last_forced: None,
        }
    }

    /// A keyframe is needed: `at_once` for a new sink (not rate-limited), else a request.
    pub(super) fn want(&mut self, at_once: bool) {
        if at_once {
            self.now = true;
        } else {
            self.requested = true;
        }
    }

    /// Whether the frame encoded at `now` is forced to a keyframe; if so, what was wanted
    /// is taken.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        let limited = self
            .last_forced
            .is_some_and(|t| now.saturating_duration_since(t) < self.min_interval);
        let force = self.now || (self.requested && !limited);
        if force {
            self.now = false;
            self.requested = false;
            self.last_forced = Some(now);
        }
        force
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_wanted_nothing_forced() {
        let mut gate = KeyframeGate::default();
        let t0 = Instant::now();
        assert!(!gate.take(t0));
        assert!(!gate.take(t0 + ms(1000)));
    }

    #[test]
    fn a_request_is_forced_at_the_next_frame_then_rate_limited_and_merged() {
        let mut gate = KeyframeGate::default();
        let t0 = Instant::now();
        gate.want(false);
        assert!(gate.take(t0), "prompt: the next frame");
        assert!(!gate.take(t0 + ms(33)), "taken: once");
        // A burst of requests within the interval: merged into one, forced once it passed.
        for n in 1..=5 {
            gate.want(false);
            assert!(!gate.take(t0 + ms(33 * n)), "rate-limited at {} ms", 33 * n);
        }
        assert!(
            gate.take(t0 + KEYFRAME_MIN_INTERVAL),
            "waited for, not lost"
        );
        assert!(!gate.take(t0 + KEYFRAME_MIN_INTERVAL + ms(33)));
    }

    #[test]
    fn at_most_one_forced_keyframe_per_interval_under_constant_requests() {
        let mut gate = KeyframeGate::default();
        let t0 = Instant::now();
        // 600 ms of requests every 20 ms, frames every 33 ms (as the encoder test does).
        let mut forced = 0;
        for frame in 0..18u64 {
            let t = t0 + ms(33 * frame);
            gate.want(false);
            forced += u32::from(gate.take(t));
        }
        assert!((2..=4).contains(&forced), "{forced} keyframes in 600 ms");
    }

    #[test]
    fn a_new_sink_is_not_rate_limited() {
        let mut gate = KeyframeGate::default();
        let t0 = Instant::now();
        gate.want(false);
        assert!(gate.take(t0));
        gate.want(true);
        assert!(
            gate.take(t0 + ms(1)),
            "a joining sink's keyframe is at once"
        );
        // It also served a request that was waiting.
        gate.want(false);
        gate.want(true);
        assert!(gate.take(t0 + ms(2)));
        assert!(!gate.take(t0 + ms(300)), "both taken by one keyframe");
    }
}
