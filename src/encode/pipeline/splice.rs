//! A viewer's move between tier encoders as a sans-I/O state machine: fed the units of
//! the tier it is on and of the tier it moves to, and the time, it says what the viewer
//! gets next and when it wants to be woken. It never sleeps, spawns or awaits, so its
//! tests run on a hand-advanced clock; [`TieredReceiver`](super::TieredReceiver) drives it.
//!
//! A move subscribes to the new tier, whose first unit is a keyframe forced at once. The
//! old tier's units keep coming up to the frame before that keyframe, then the new tier's
//! take over: one unbroken stream, no frame twice and none missing. Details:
//! - an old-tier unit is held back briefly ([`SpliceConfig::hold`]) while a move is
//!   pending, since the new tier's keyframe of the same frame is usually just behind it;
//!   not once the new tier has passed that frame as a delta (no keyframe of it is coming);
//! - the new tier's keyframe waits for the old tier to deliver the frames before it, up to
//!   [`SpliceConfig::catch_up`];
//! - a keyframe of a frame already handed out is refused (it would repeat frames) and the
//!   next one asked for;
//! - a move whose tier gives no usable keyframe within [`SpliceConfig::give_up`] is
//!   abandoned;
//! - a unit already taken is handed out even if the move it was held for ends meanwhile.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::encode::EncodedUnit;

/// How long a move waits for the old tier to catch up with the new tier's keyframe
/// before it gives up on the frames in between.
const SWITCH_CATCH_UP: Duration = Duration::from_millis(250);

/// While a move is pending, how long an old-tier unit may wait for the new tier's keyframe
/// of the same frame (a few milliseconds behind it, normally). Only during a move, and only
/// until the new tier shows it encoded that frame as a delta (then no keyframe of it comes).
const SWITCH_HOLD: Duration = Duration::from_millis(60);

/// A move whose new tier gives no usable keyframe within this long is abandoned: until it
/// lands, old-tier units may be held up to [`SWITCH_HOLD`] each, which would throttle the
/// viewer for as long as the new encoder fails (a rejected keyframe is retried at once,
/// and forced keyframes come at most every
/// [`KEYFRAME_MIN_INTERVAL`](super::KEYFRAME_MIN_INTERVAL), so 2 s is several chances).
const SWITCH_GIVE_UP: Duration = Duration::from_secs(2);

/// The durations a move runs by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpliceConfig {
    /// How long the new tier's keyframe waits for the old tier's frames before it.
    pub(crate) catch_up: Duration,
    /// How long an old-tier unit may wait for the new tier's keyframe of its frame.
    pub(crate) hold: Duration,
    /// How long a move may take before it is abandoned.
    pub(crate) give_up: Duration,
}

impl Default for SpliceConfig {
    fn default() -> Self {
        SpliceConfig {
            catch_up: SWITCH_CATCH_UP,
            hold: SWITCH_HOLD,
            give_up: SWITCH_GIVE_UP,
        }
    }
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    /// Hand this unit to the viewer.
    Unit(EncodedUnit),
    /// Ask the new tier's encoder for a keyframe (its last one was of a frame already
    /// handed out).
    RequestKeyframe,
    /// The move landed: `to` is the current tier now; leave `from`.
    Switched { from: usize, to: usize },
    /// The move to `to` was given up (no usable keyframe in time): leave it, stay on
    /// `from`.
    Abandoned { from: usize, to: usize },
    /// The tier moved to ended (its track did): leave it; no move.
    PendingEnded { tier: usize },
    /// The current tier ended and no move is pending: the stream is over.
    End,
    /// Nothing to do until a unit (or the end) arrives from the tiers flagged, or until
    /// `until` (then call [`Splice::handle_timeout`]).
    Wait {
        current: bool,
        pending: bool,
        until: Option<Instant>,
    },
}

/// A move under way.
#[derive(Debug)]
struct Move {
    tier: usize,
    /// When it started (it is abandoned after `give_up`).
    since: Instant,
    /// The latest timestamp the new tier gave as a delta (or a refused keyframe): an
    /// old-tier unit of that frame or an earlier one gets no keyframe of its own there.
    passed: Option<Duration>,
    /// The new tier's keyframe, waiting until a deadline for the old tier to deliver the
    /// frames before it.
    held: Option<(EncodedUnit, Instant)>,
}

/// What a tier delivered: a unit, or `None` for its end.
#[derive(Debug)]
struct Arrival {
    tier: usize,
    unit: Option<EncodedUnit>,
}

/// One viewer's splice between tiers. See the module's documentation.
#[derive(Debug)]
pub(crate) struct Splice {
    config: SpliceConfig,
    /// The latest time given.
    now: Instant,
    /// The tier whose units it hands out.
    current: usize,
    pending: Option<Move>,
    /// An old-tier unit held back until a deadline while a move is pending.
    waiting: Option<(EncodedUnit, Instant)>,
    /// Timestamp of the last unit handed out.
    last_timestamp: Option<Duration>,
    /// Arrivals not yet taken, in order (a tier's end stays here: it is for good).
    inbox: VecDeque<Arrival>,
    outputs: VecDeque<Output>,
    switches: u64,
    abandoned: u64,
}

/// Which of the two tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Current,
    Pending,
}

impl Splice {
    /// On `tier`, no move pending, at `now`.
    pub(crate) fn new(tier: usize, config: SpliceConfig, now: Instant) -> Self {
        Splice {
            config,
            now,
            current: tier,
            pending: None,
            waiting: None,
            last_timestamp: None,
            inbox: VecDeque::new(),
            outputs: VecDeque::new(),
            switches: 0,
            abandoned: 0,
        }
    }

    pub(crate) fn config(&self) -> &SpliceConfig {
        &self.config
    }

    /// The tier whose units it hands out now.
    pub(crate) fn tier(&self) -> usize {
        self.current
    }

    /// The tier being moved to, if any.
    pub(crate) fn pending_tier(&self) -> Option<usize> {
        self.pending.as_ref().map(|m| m.tier)
    }

    /// Where it is heading: the tier moved to, else the current one.
    pub(crate) fn heading(&self) -> usize {
        self.pending_tier().unwrap_or(self.current)
    }

    /// Completed moves.
    pub(crate) fn switches(&self) -> u64 {
        self.switches
    }

    /// Moves given up for want of a usable keyframe.
    pub(crate) fn abandoned(&self) -> u64 {
        self.abandoned
    }

    /// Starts a move to `tier` at `now` (replacing a move under way; `tier` being the
    /// current one cancels it). The driver has subscribed to that tier's encoder.
    pub(crate) fn start_move(&mut self, tier: usize, now: Instant) {
        self.advance(now);
        if tier == self.current {
            self.cancel_move();
            return;
        }
        self.pending = Some(Move {
            tier,
            since: self.now,
            passed: None,
            held: None,
        });
        self.forget_other_tiers();
    }

    /// Drops the move under way (the estimate came back): it stays on the current tier.
    /// A unit it holds is still handed out.
    pub(crate) fn cancel_move(&mut self) {
        self.pending = None;
        self.forget_other_tiers();
    }

    /// `tier` delivered `unit` (`None`: it ended) at `now`. Units of a tier that is neither
    /// the current nor the pending one are ignored.
    pub(crate) fn handle_unit(&mut self, tier: usize, unit: Option<EncodedUnit>, now: Instant) {
        self.advance(now);
        if tier == self.current || self.pending_tier() == Some(tier) {
            self.inbox.push_back(Arrival { tier, unit });
        }
    }

    /// The time is `now` (a deadline of [`Output::Wait`] has come).
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    /// What to do next; [`Output::Wait`] when nothing until a unit or a deadline.
    pub(crate) fn poll_output(&mut self) -> Output {
        loop {
            if let Some(out) = self.outputs.pop_front() {
                return out;
            }
            if let Some(out) = self.step() {
                return out;
            }
        }
    }

    fn advance(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// One decision: queues outputs (and returns `None`) or returns what to say now.
    fn step(&mut self) -> Option<Output> {
        let now = self.now;
        // A keyframe of the new tier is held: the old tier's frames before it, then it.
        if let Some((key_ts, deadline)) = self.held_key() {
            match self.take(Side::Current) {
                Some(Some(u)) if u.timestamp < key_ts => {
                    self.emit(u);
                    return None;
                }
                // A unit at or past the keyframe's frame, or the old tier's end.
                Some(_) => {}
                None if now < deadline => {
                    return Some(self.wait(true, false, Some(deadline)));
                }
                None => {}
            }
            let key = self.pending.as_mut().and_then(|m| m.held.take());
            self.finish_switch();
            if let Some((key, _)) = key {
                self.emit(key);
            }
            return None;
        }
        if let Some(m) = &self.pending {
            if now >= m.since + self.config.give_up {
                self.abandon();
                return None;
            }
        }
        let Some(m) = &self.pending else {
            // A unit held for a move that was abandoned meanwhile: it is next, not lost.
            if let Some((old, _)) = self.waiting.take() {
                self.emit(old);
                return None;
            }
            return match self.peek(Side::Current) {
                Some(true) => {
                    if let Some(Some(u)) = self.take(Side::Current) {
                        self.emit(u);
                    }
                    None
                }
                // Ended: it stays so.
                Some(false) => Some(Output::End),
                None => Some(self.wait(true, false, None)),
            };
        };
        let give_up_at = m.since + self.config.give_up;
        let passed = m.passed;
        if let Some((old, deadline)) = &self.waiting {
            // An old-tier unit, held back briefly: the new tier's keyframe of the same
            // frame is usually just behind it (a keyframe takes longer to encode), and
            // handing out the old one first would make that keyframe a repeat. Not once the
            // new tier has passed that frame as a delta: that keyframe is not coming.
            let (old_ts, deadline) = (old.timestamp, (*deadline).min(give_up_at));
            if passed.is_none_or(|t| t < old_ts) {
                match self.take(Side::Pending) {
                    Some(Some(u)) if self.usable_key(&u) => {
                        if u.timestamp <= old_ts {
                            // The keyframe replaces the held unit's frame.
                            self.waiting = None;
                            self.finish_switch();
                            self.emit(u);
                            return None;
                        }
                        self.hold_key(u);
                    }
                    Some(Some(u)) => {
                        let earlier = u.timestamp < old_ts;
                        self.passed(u);
                        if earlier {
                            return None;
                        }
                    }
                    Some(None) => self.pending_ended(),
                    None if now < deadline => {
                        return Some(self.wait(false, true, Some(deadline)));
                    }
                    None => {}
                }
            }
            if let Some((old, _)) = self.waiting.take() {
                self.emit(old);
            }
            return None;
        }
        match self.take_either() {
            Some((Side::Current, Some(u))) => {
                self.waiting = Some((u, now + self.config.hold));
            }
            // The old tier ended (its track did): nothing to wait for.
            Some((Side::Current, None)) => self.finish_switch(),
            Some((Side::Pending, Some(u))) if self.usable_key(&u) => self.hold_key(u),
            // A keyframe of a frame already handed out: starting there would repeat
            // frames. Ask for the next one.
            Some((Side::Pending, Some(u))) => self.passed(u),
            Some((Side::Pending, None)) => self.pending_ended(),
            None => return Some(self.wait(true, true, Some(give_up_at))),
        }
        None
    }

    fn wait(&self, current: bool, pending: bool, until: Option<Instant>) -> Output {
        Output::Wait {
            current,
            pending,
            until,
        }
    }

    /// The held keyframe's timestamp and deadline.
    fn held_key(&self) -> Option<(Duration, Instant)> {
        let (key, deadline) = self.pending.as_ref()?.held.as_ref()?;
        Some((key.timestamp, *deadline))
    }

    fn hold_key(&mut self, key: EncodedUnit) {
        let deadline = self.now + self.config.catch_up;
        if let Some(m) = &mut self.pending {
            m.held = Some((key, deadline));
        }
    }

    /// A new-tier unit that cannot start the move: its frame is passed; a keyframe of it
    /// came too late, so the next is asked for.
    fn passed(&mut self, u: EncodedUnit) {
        if let Some(m) = &mut self.pending {
            m.passed = m.passed.max(Some(u.timestamp));
        }
        if u.keyframe {
            self.outputs.push_back(Output::RequestKeyframe);
        }
    }

    /// A keyframe of a frame after every one handed out.
    fn usable_key(&self, u: &EncodedUnit) -> bool {
        u.keyframe && self.last_timestamp.is_none_or(|t| u.timestamp > t)
    }

    fn emit(&mut self, unit: EncodedUnit) {
        self.last_timestamp = Some(unit.timestamp);
        self.outputs.push_back(Output::Unit(unit));
    }

    fn finish_switch(&mut self) {
        if let Some(m) = self.pending.take() {
            let from = std::mem::replace(&mut self.current, m.tier);
            self.switches += 1;
            self.forget_other_tiers();
            self.outputs
                .push_back(Output::Switched { from, to: m.tier });
        }
    }

    fn abandon(&mut self) {
        if let Some(m) = self.pending.take() {
            self.abandoned += 1;
            self.forget_other_tiers();
            self.outputs.push_back(Output::Abandoned {
                from: self.current,
                to: m.tier,
            });
        }
    }

    fn pending_ended(&mut self) {
        if let Some(m) = self.pending.take() {
            self.forget_other_tiers();
            self.outputs
                .push_back(Output::PendingEnded { tier: m.tier });
        }
    }

    /// Drops arrivals from tiers it no longer listens to.
    fn forget_other_tiers(&mut self) {
        let (current, pending) = (self.current, self.pending_tier());
        self.inbox
            .retain(|a| a.tier == current || Some(a.tier) == pending);
    }

    fn tier_of(&self, side: Side) -> Option<usize> {
        match side {
            Side::Current => Some(self.current),
            Side::Pending => self.pending_tier(),
        }
    }

    /// Whether `side` delivered something: `Some(true)` a unit, `Some(false)` its end.
    fn peek(&self, side: Side) -> Option<bool> {
        let tier = self.tier_of(side)?;
        self.inbox
            .iter()
            .find(|a| a.tier == tier)
            .map(|a| a.unit.is_some())
    }

    /// The next arrival from `side`: `Some(None)` is its end.
    fn take(&mut self, side: Side) -> Option<Option<EncodedUnit>> {
        let tier = self.tier_of(side)?;
        let i = self.inbox.iter().position(|a| a.tier == tier)?;
        self.inbox.remove(i).map(|a| a.unit)
    }

    /// The first arrival from either side.
    fn take_either(&mut self) -> Option<(Side, Option<EncodedUnit>)> {
        let a = self.inbox.pop_front()?;
        let side = if a.tier == self.current {
            Side::Current
        } else {
            Side::Pending
        };
        Some((side, a.unit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::pipeline::testing::unit;

    const TOP: usize = 0;
    const LOW: usize = 1;

    /// A splice and its clock: feeds units, advances time by hand and collects what it
    /// hands out.
    struct Rig {
        splice: Splice,
        now: Instant,
        t0: Instant,
        requests: usize,
        events: Vec<Output>,
        /// Every frame handed out and when.
        released: Vec<(u8, Duration)>,
        abandoned_at: Option<Duration>,
    }

    impl Rig {
        fn new(config: SpliceConfig) -> Self {
            let t0 = Instant::now();
            Rig {
                splice: Splice::new(TOP, config, t0),
                now: t0,
                t0,
                requests: 0,
                events: Vec::new(),
                released: Vec::new(),
                abandoned_at: None,
            }
        }

        fn standard() -> Self {
            Rig::new(SpliceConfig::default())
        }

        fn at(&self) -> Duration {
            self.now - self.t0
        }

        fn advance(&mut self, by: Duration) {
            self.now += by;
            self.splice.handle_timeout(self.now);
        }

        fn push(&mut self, tier: usize, n: u8, keyframe: bool) {
            self.splice
                .handle_unit(tier, Some(unit(tier as u8, n, keyframe)), self.now);
        }

        /// Polls until it waits: the units handed out as (tier, frame, keyframe); moves,
        /// abandons and ends go to `events`.
        fn drain(&mut self) -> (Vec<(u8, u8, bool)>, Output) {
            let mut units = Vec::new();
            loop {
                match self.splice.poll_output() {
                    Output::Unit(u) => {
                        self.released.push((u.data[1], self.at()));
                        units.push((u.data[0], u.data[1], u.keyframe));
                    }
                    Output::RequestKeyframe => self.requests += 1,
                    wait @ Output::Wait { .. } => return (units, wait),
                    Output::End => {
                        self.events.push(Output::End);
                        return (units, Output::End);
                    }
                    event => {
                        if matches!(event, Output::Abandoned { .. }) {
                            self.abandoned_at = Some(self.at());
                        }
                        self.events.push(event);
                    }
                }
            }
        }

        /// What it hands out now, with nothing more arriving and no time passing.
        fn out(&mut self) -> Vec<(u8, u8, bool)> {
            self.drain().0
        }

        /// Lets `limit` pass, waking at each deadline it asks for, and collects what it
        /// hands out.
        fn run_for(&mut self, limit: Duration) -> Vec<(u8, u8, bool)> {
            let end = self.now + limit;
            let mut units = Vec::new();
            loop {
                let (mut got, wait) = self.drain();
                units.append(&mut got);
                let next = match wait {
                    Output::Wait { until: Some(t), .. } if t > self.now && t <= end => t,
                    _ if self.now < end => end,
                    _ => return units,
                };
                self.now = next;
                self.splice.handle_timeout(self.now);
            }
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A viewer on the top tier that has been handed frame 0 and starts a move down.
    fn moving() -> Rig {
        let mut rig = Rig::standard();
        rig.push(TOP, 0, true);
        assert_eq!(rig.out(), [(0, 0, true)]);
        rig.splice.start_move(LOW, rig.now);
        rig
    }

    #[test]
    fn without_a_move_units_pass_at_once_and_the_end_is_for_good() {
        let mut rig = Rig::standard();
        assert_eq!(
            rig.drain().1,
            Output::Wait {
                current: true,
                pending: false,
                until: None
            },
            "no deadline: nothing to wake for"
        );
        for n in 0..3 {
            rig.push(TOP, n, n == 0);
        }
        assert_eq!(rig.out(), [(0, 0, true), (0, 1, false), (0, 2, false)]);
        rig.splice.handle_unit(TOP, None, rig.now);
        assert_eq!(rig.drain().1, Output::End);
        assert_eq!(rig.drain().1, Output::End, "ended stays ended");
        assert_eq!((rig.splice.tier(), rig.splice.switches()), (TOP, 0));
    }

    #[test]
    fn a_move_lands_on_the_new_tiers_keyframe_of_the_held_frame() {
        let mut rig = moving();
        // The old tier's frame 1 comes first and is held for the new tier's keyframe...
        rig.push(TOP, 1, false);
        let (units, wait) = rig.drain();
        assert!(units.is_empty(), "held");
        assert_eq!(
            wait,
            Output::Wait {
                current: false,
                pending: true,
                until: Some(rig.now + ms(60))
            }
        );
        // ...which arrives a few milliseconds behind it and replaces it.
        rig.advance(ms(5));
        rig.push(LOW, 1, true);
        assert_eq!(rig.out(), [(1, 1, true)]);
        assert_eq!(rig.events, [Output::Switched { from: TOP, to: LOW }]);
        // From then on the new tier, straight through; the old tier is not listened to.
        rig.push(TOP, 2, false);
        rig.push(LOW, 2, false);
        assert_eq!(rig.out(), [(1, 2, false)]);
        assert_eq!((rig.splice.tier(), rig.splice.switches()), (LOW, 1));
        assert_eq!(rig.splice.pending_tier(), None);
    }

    #[test]
    fn a_later_keyframe_waits_for_the_old_tier_to_catch_up() {
        let mut rig = moving();
        // The new tier's keyframe is of frame 3; the old tier is still at frame 1.
        rig.push(LOW, 3, true);
        assert!(rig.out().is_empty());
        rig.push(TOP, 1, false);
        rig.push(TOP, 2, false);
        assert_eq!(rig.out(), [(0, 1, false), (0, 2, false)]);
        // Its own frame 3 (or anything later) is not needed: the keyframe is next.
        rig.push(TOP, 3, false);
        assert_eq!(rig.out(), [(1, 3, true)]);
        rig.push(LOW, 4, false);
        assert_eq!(rig.out(), [(1, 4, false)]);
        assert_eq!((rig.splice.tier(), rig.splice.switches()), (LOW, 1));
    }

    #[test]
    fn the_old_tier_gets_only_the_catch_up_time_to_deliver() {
        let mut rig = moving();
        rig.push(LOW, 3, true);
        let (units, wait) = rig.drain();
        assert!(units.is_empty());
        assert_eq!(
            wait,
            Output::Wait {
                current: true,
                pending: false,
                until: Some(rig.now + ms(250))
            }
        );
        // Frames 1 and 2 never come: after the catch-up time the keyframe goes out.
        assert!(rig.run_for(ms(249)).is_empty());
        assert_eq!(rig.run_for(ms(1)), [(1, 3, true)]);
        assert_eq!(rig.splice.tier(), LOW);
    }

    #[test]
    fn a_held_unit_waits_at_most_the_hold_time() {
        let mut rig = moving();
        rig.push(TOP, 1, false);
        assert!(rig.run_for(ms(59)).is_empty(), "held");
        assert_eq!(rig.run_for(ms(1)), [(0, 1, false)], "handed out at 60 ms");
        assert_eq!(rig.splice.pending_tier(), Some(LOW), "still moving");
    }

    #[test]
    fn a_unit_held_during_a_move_is_handed_out_after_the_move_is_abandoned() {
        // A hold far longer than the test: nothing may wait it out.
        let mut rig = Rig::new(SpliceConfig {
            hold: Duration::from_secs(30),
            give_up: Duration::from_secs(60),
            ..SpliceConfig::default()
        });
        rig.push(TOP, 0, true);
        assert_eq!(rig.out(), [(0, 0, true)]);
        // Down a tier: the move is pending, the next old-tier unit is held for it (the
        // driver's recv() is cancelled here by the estimate tick).
        rig.splice.start_move(LOW, rig.now);
        rig.push(TOP, 1, false);
        assert!(rig.out().is_empty(), "held, not handed out");
        rig.advance(ms(200));
        assert!(rig.out().is_empty());
        // The estimate went back: the move is dropped.
        rig.splice.cancel_move();
        assert_eq!(rig.splice.pending_tier(), None, "the move was abandoned");
        rig.push(TOP, 2, false);
        assert_eq!(
            rig.out(),
            [(0, 1, false), (0, 2, false)],
            "the held delta first"
        );
        assert_eq!((rig.splice.tier(), rig.splice.switches()), (TOP, 0));
        assert_eq!(rig.at(), ms(200), "no hold waited out");
    }

    #[test]
    fn a_pending_delta_ends_the_hold_and_the_next_keyframe_completes_the_move() {
        let mut rig = Rig::new(SpliceConfig {
            hold: Duration::from_secs(30),
            give_up: Duration::from_secs(60),
            ..SpliceConfig::default()
        });
        rig.push(TOP, 0, true);
        assert_eq!(rig.out(), [(0, 0, true)]);
        rig.splice.start_move(LOW, rig.now);
        // The new tier's first keyframe is of a frame already handed out (refused: the next
        // is asked for); its next frames are deltas, so no keyframe of them is coming: the
        // old tier's go at once.
        rig.push(LOW, 0, true);
        for n in 1..=5 {
            rig.push(LOW, n, false);
            rig.push(TOP, n, false);
        }
        let expected: Vec<_> = (1..=5).map(|n| (0, n, false)).collect();
        assert_eq!(rig.out(), expected);
        assert_eq!(rig.requests, 1, "the refused keyframe asks for another");
        assert_eq!(rig.at(), Duration::ZERO, "nothing waited for the hold");
        // A usable keyframe: the move completes there.
        rig.push(TOP, 6, false);
        rig.push(LOW, 6, true);
        assert_eq!(rig.out(), [(1, 6, true)]);
        assert_eq!((rig.splice.tier(), rig.splice.switches()), (LOW, 1));
    }

    #[test]
    fn a_move_without_a_usable_keyframe_is_abandoned_after_two_seconds() {
        let mut rig = moving();
        // The new tier never delivers; the old tier's frames come every 33 ms.
        for n in 1..=80 {
            rig.push(TOP, n, false);
            let next = rig.now + ms(33);
            rig.run_for(ms(33));
            rig.now = next;
            rig.splice.handle_timeout(rig.now);
        }
        rig.out();
        let frames: Vec<u8> = rig.released.iter().map(|&(n, _)| n).collect();
        let expected: Vec<u8> = (0..=80).collect();
        assert_eq!(frames, expected, "none lost, none repeated");
        let give_up = Duration::from_secs(2);
        assert_eq!(rig.abandoned_at, Some(give_up), "given up at 2 s");
        for &(n, at) in &rig.released {
            let arrived = ms(33 * u64::from(n));
            // Held up at most until the give-up; not at all after it.
            assert!(at <= arrived.max(give_up), "frame {n} at {at:?}");
        }
        assert_eq!(rig.events, [Output::Abandoned { from: TOP, to: LOW }]);
        assert_eq!(rig.splice.abandoned(), 1);
        assert_eq!((rig.splice.tier(), rig.splice.switches()), (TOP, 0));
        assert_eq!(rig.splice.pending_tier(), None);
    }

    #[test]
    fn the_give_up_deadline_wakes_a_move_with_nothing_arriving() {
        let mut rig = moving();
        let (_, wait) = rig.drain();
        let give_up = rig.now + Duration::from_secs(2);
        assert_eq!(
            wait,
            Output::Wait {
                current: true,
                pending: true,
                until: Some(give_up)
            }
        );
        rig.run_for(Duration::from_secs(2));
        assert_eq!(rig.events, [Output::Abandoned { from: TOP, to: LOW }]);
        assert_eq!(rig.at(), Duration::from_secs(2));
    }

    #[test]
    fn the_hold_ends_at_the_give_up_time() {
        let mut rig = Rig::new(SpliceConfig {
            hold: Duration::from_secs(30),
            ..SpliceConfig::default()
        });
        rig.push(TOP, 0, true);
        rig.out();
        rig.splice.start_move(LOW, rig.now);
        rig.advance(ms(1990));
        rig.push(TOP, 1, false);
        assert!(rig.run_for(ms(9)).is_empty());
        assert_eq!(rig.run_for(ms(1)), [(0, 1, false)]);
        assert_eq!(rig.splice.abandoned(), 1);
    }

    #[test]
    fn a_new_move_replaces_the_one_under_way() {
        let mut rig = moving();
        rig.push(LOW, 3, false);
        assert!(rig.out().is_empty());
        rig.splice.start_move(2, rig.now);
        // Units still queued from the first move's tier are not taken.
        rig.push(LOW, 4, true);
        rig.push(TOP, 1, false);
        rig.push(2, 1, true);
        assert_eq!(rig.out(), [(2, 1, true)]);
        assert_eq!(rig.events, [Output::Switched { from: TOP, to: 2 }]);
    }

    #[test]
    fn when_the_old_tier_ends_the_move_completes() {
        let mut rig = moving();
        rig.splice.handle_unit(TOP, None, rig.now);
        rig.push(LOW, 1, false);
        assert_eq!(rig.out(), [(1, 1, false)]);
        assert_eq!(rig.events, [Output::Switched { from: TOP, to: LOW }]);
    }

    #[test]
    fn when_the_new_tier_ends_the_move_is_dropped() {
        let mut rig = moving();
        rig.push(TOP, 1, false);
        rig.splice.handle_unit(LOW, None, rig.now);
        assert_eq!(rig.out(), [(0, 1, false)]);
        assert_eq!(rig.events, [Output::PendingEnded { tier: LOW }]);
        assert_eq!(
            (rig.splice.abandoned(), rig.splice.pending_tier()),
            (0, None)
        );
    }
}
