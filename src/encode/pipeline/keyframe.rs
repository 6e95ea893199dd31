//! The keyframe gate: decides, frame by frame, whether the encoder forces a keyframe; and
//! one requester's keyframe budget, so one viewer's PLIs cannot force keyframes on an
//! encoder it shares with others more than once per [`REQUESTER_KEYFRAME_INTERVAL`].
//! Pure: no threads, no clock of its own (the caller passes the time).

use std::time::{Duration, Instant};

/// Minimum spacing of keyframes forced by requests.
pub const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(200);

/// Minimum spacing of keyframes forced for new sinks: a sink that joins within this of
/// the last forced keyframe waits for the next one (at most this long). Without it a join
/// storm was a keyframe storm every viewer paid for: 256 viewers joining in fours forced
/// ~60 keyframes of ~110 KB in a few seconds, seconds of backlog in every connection's
/// pacer (measured with `usermedia bench fanout --viewers 256`). SFUs throttle the same
/// way (LiveKit and mediasoup around half a second).
pub const JOIN_KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(500);

/// Up to this many sinks a join's keyframe is forced at once whatever the last one: a
/// keyframe costs every sink its size, and a small audience pays little for it, while a
/// joiner that waits pays in its first frame (4 viewers connecting together waited
/// ~450 ms for theirs).
pub const SMALL_AUDIENCE: usize = 8;

/// Keyframes wanted and when the last was forced. A new sink's keyframe is forced at the
/// next frame when the audience is small, else unless one was forced within
/// `join_interval`; requests (PLI/FIR, a sink that lost sync) are merged and forced at
/// most one per `min_interval`; either kind waits for its turn rather than being lost.
/// What waits is one spacing: the shortest any of it accepts since the last forced
/// keyframe (one keyframe serves them all).
#[derive(Debug, Clone)]
pub(super) struct KeyframeGate {
    min_interval: Duration,
    join_interval: Duration,
    /// Something waits for a keyframe, forced once this long has run since the last
    /// (zero: the next frame).
    wanted: Option<Duration>,
    last_forced: Option<Instant>,
}

impl Default for KeyframeGate {
    fn default() -> Self {
        KeyframeGate::new(KEYFRAME_MIN_INTERVAL, JOIN_KEYFRAME_MIN_INTERVAL)
    }
}

impl KeyframeGate {
    pub(super) fn new(min_interval: Duration, join_interval: Duration) -> Self {
        KeyframeGate {
            min_interval,
            join_interval,
            wanted: None,
            last_forced: None,
        }
    }

    /// Something waits that accepts `spacing` since the last forced keyframe.
    fn want(&mut self, spacing: Duration) {
        self.wanted = Some(self.wanted.map_or(spacing, |w| w.min(spacing)));
    }

    /// A new sink joined an encoder with `sinks` sinks (itself included): at the next
    /// frame when they are few ([`SMALL_AUDIENCE`]), else as soon as the join interval
    /// allows.
    pub(super) fn want_join(&mut self, sinks: usize) {
        let spacing = if sinks <= SMALL_AUDIENCE {
            Duration::ZERO
        } else {
            self.join_interval
        };
        self.want(spacing);
    }

    /// A keyframe is requested (PLI/FIR, a sink that lost sync): merged and rate-limited.
    pub(super) fn request(&mut self) {
        self.want(self.min_interval);
    }

    /// Whether the frame encoded at `now` is forced to a keyframe; if so, what was wanted
    /// is taken.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        let since = self.last_forced.map(|t| now.saturating_duration_since(t));
        let force = self
            .wanted
            .is_some_and(|spacing| since.is_none_or(|s| s >= spacing));
        if force {
            self.wanted = None;
            self.last_forced = Some(now);
        }
        force
    }
}

/// Minimum spacing of the keyframe requests one requester (a viewer) passes on to a shared
/// encoder: its PLI/FIR storm cannot make the others pay for a keyframe more often.
pub const REQUESTER_KEYFRAME_INTERVAL: Duration = Duration::from_secs(1);

/// One requester's keyframe budget: a request to an encoder shared with others is passed
/// on at once when the last passed on is at least `interval` old; otherwise it is held
/// (merged with any other held one) and passed on when the interval has run, so a viewer
/// that really lost its picture still gets a keyframe, just not more than one per interval.
/// Held requests are counted. A requester alone on its encoder makes nobody else pay:
/// its requests pass (the encoder's own gate still spaces them).
#[derive(Debug, Clone)]
pub struct KeyframeBudget {
    interval: Duration,
    last_passed: Option<Instant>,
    held: bool,
    throttled: u64,
}

impl Default for KeyframeBudget {
    fn default() -> Self {
        KeyframeBudget::new(REQUESTER_KEYFRAME_INTERVAL)
    }
}

impl KeyframeBudget {
    pub fn new(interval: Duration) -> Self {
        KeyframeBudget {
            interval,
            last_passed: None,
            held: false,
            throttled: 0,
        }
    }

    /// A keyframe request arrived at `now`, for an encoder `shared` with other viewers or
    /// not: `true` to pass it on now, `false` if it is held (see [`KeyframeBudget::due`]).
    pub fn request(&mut self, now: Instant, shared: bool) -> bool {
        let within = self
            .last_passed
            .is_some_and(|t| now.saturating_duration_since(t) < self.interval);
        if within && shared {
            self.throttled += 1;
            self.held = true;
            false
        } else {
            self.last_passed = Some(now);
            self.held = false;
            true
        }
    }

    /// When a held request is to be passed on, if one is held.
    pub fn due(&self) -> Option<Instant> {
        match (self.held, self.last_passed) {
            (true, Some(t)) => Some(t + self.interval),
            _ => None,
        }
    }

    /// `true` if a held request is due at `now` (it is then passed on and taken).
    pub fn poll(&mut self, now: Instant) -> bool {
        if self.due().is_some_and(|due| now >= due) {
            self.held = false;
            self.last_passed = Some(now);
            true
        } else {
            false
        }
    }

    /// Requests that were held (merged into a later one) so far.
    pub fn throttled(&self) -> u64 {
        self.throttled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl KeyframeBudget {
        fn request_shared(&mut self, now: Instant) -> bool {
            self.request(now, true)
        }
    }

    #[test]
    fn a_requester_alone_on_its_encoder_is_not_held() {
        let mut budget = KeyframeBudget::default();
        let t0 = Instant::now();
        for n in 0..10u64 {
            assert!(budget.request(t0 + ms(100 * n), false));
        }
        assert_eq!((budget.throttled(), budget.due()), (0, None));
        // Another viewer joined: the budget counts from the last one passed on.
        assert!(!budget.request(t0 + ms(1000), true));
        assert_eq!(budget.due(), Some(t0 + ms(1900)));
    }

    #[test]
    fn one_requester_passes_at_most_one_request_per_interval() {
        let mut budget = KeyframeBudget::default();
        let t0 = Instant::now();
        assert!(
            budget.request_shared(t0),
            "the first request passes at once"
        );
        assert_eq!(budget.due(), None);
        // A storm: a PLI every 10 ms for 3 s.
        let mut passed = 1;
        for n in 1..300u64 {
            let t = t0 + ms(10 * n);
            passed += u32::from(budget.poll(t));
            passed += u32::from(budget.request_shared(t));
        }
        assert!((3..=4).contains(&passed), "{passed} passed in 3 s");
        assert!(budget.throttled() >= 290, "{}", budget.throttled());
    }

    #[test]
    fn a_held_request_is_passed_on_when_the_interval_has_run_not_lost() {
        let mut budget = KeyframeBudget::default();
        let t0 = Instant::now();
        assert!(budget.request_shared(t0));
        assert!(!budget.request_shared(t0 + ms(300)));
        assert!(
            !budget.request_shared(t0 + ms(400)),
            "merged with the held one"
        );
        assert_eq!(budget.due(), Some(t0 + REQUESTER_KEYFRAME_INTERVAL));
        assert!(!budget.poll(t0 + ms(999)));
        assert!(budget.poll(t0 + ms(1000)), "due: passed on once");
        assert!(!budget.poll(t0 + ms(1500)), "taken");
        assert_eq!(budget.due(), None);
        assert_eq!(budget.throttled(), 2);
        // Quiet for an interval: the next request passes at once again.
        assert!(budget.request_shared(t0 + ms(2000)));
    }

    #[test]
    fn requesters_have_their_own_budgets() {
        let t0 = Instant::now();
        let (mut storm, mut calm) = (KeyframeBudget::default(), KeyframeBudget::default());
        assert!(storm.request_shared(t0));
        assert!(!storm.request_shared(t0 + ms(100)));
        assert!(
            calm.request_shared(t0 + ms(150)),
            "another viewer's request is served"
        );
        // The gate still merges what both pass on into at most one per 200 ms.
        let mut gate = KeyframeGate::default();
        gate.request();
        assert!(gate.take(t0));
        gate.request();
        assert!(gate.take(t0 + ms(200)));
    }

    /// An audience that is not small: joins are throttled.
    const LARGE: usize = SMALL_AUDIENCE + 1;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The keyframes forced over `frames` frames 33 ms apart, `want` told before each.
    fn forced_over(frames: u64, mut want: impl FnMut(&mut KeyframeGate)) -> u32 {
        let mut gate = KeyframeGate::default();
        let t0 = Instant::now();
        (0..frames)
            .map(|frame| {
                want(&mut gate);
                u32::from(gate.take(t0 + ms(33 * frame)))
            })
            .sum()
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
        gate.request();
        assert!(gate.take(t0), "prompt: the next frame");
        assert!(!gate.take(t0 + ms(33)), "taken: once");
        // A burst of requests within the interval: merged into one, forced once it passed.
        for n in 1..=5 {
            gate.request();
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
        // 600 ms of requests, frames every 33 ms (as the encoder test does).
        let forced = forced_over(18, KeyframeGate::request);
        assert!((2..=4).contains(&forced), "{forced} keyframes in 600 ms");
    }

    #[test]
    fn a_new_sink_is_served_at_once_unless_a_keyframe_was_just_forced() {
        let mut gate = KeyframeGate::default();
        let t0 = Instant::now();
        gate.want_join(LARGE);
        assert!(gate.take(t0), "the first sink's keyframe is at once");
        // Another joins 100 ms later: it waits for the join interval, and is not lost.
        gate.want_join(LARGE);
        assert!(!gate.take(t0 + ms(100)));
        assert!(!gate.take(t0 + JOIN_KEYFRAME_MIN_INTERVAL - ms(1)));
        assert!(gate.take(t0 + JOIN_KEYFRAME_MIN_INTERVAL));
        // Quiet for a while: a join is at once again.
        gate.want_join(LARGE);
        assert!(gate.take(t0 + ms(2000)));
        // A waiting join and a waiting request are served by one keyframe.
        gate.request();
        gate.want_join(LARGE);
        assert!(gate.take(t0 + ms(2000) + JOIN_KEYFRAME_MIN_INTERVAL));
        assert!(!gate.take(t0 + ms(4000)), "both taken by one keyframe");
    }

    #[test]
    fn a_join_storm_forces_at_most_one_keyframe_per_join_interval() {
        // Four viewers join with every frame for 3 s (the fan-out bench's 256 viewers).
        let forced = forced_over(90, |gate| gate.want_join(LARGE));
        assert!((6..=7).contains(&forced), "{forced} keyframes in 3 s");
    }

    #[test]
    fn joins_to_a_small_audience_are_served_at_once() {
        let mut gate = KeyframeGate::default();
        let t0 = Instant::now();
        for sinks in 1..=SMALL_AUDIENCE {
            gate.want_join(sinks);
            assert!(
                gate.take(t0 + ms(33 * sinks as u64)),
                "join {sinks} at once"
            );
        }
        // The next one waits for the join interval, counted from the last forced.
        let last = t0 + ms(33 * SMALL_AUDIENCE as u64);
        gate.want_join(SMALL_AUDIENCE + 1);
        assert!(!gate.take(last + ms(33)));
        assert!(gate.take(last + JOIN_KEYFRAME_MIN_INTERVAL));
    }
}
