//! The impairment of one direction of a path, a sans-I/O state machine fed the time:
//! packets go in with [`Impairment::push`], come out with [`Impairment::poll_output`] when
//! due, and [`Impairment::poll_timeout`] says when to ask next. In between, in the order a
//! real path applies them: burst loss (a Gilbert chain), a rate-limited bottleneck (a token
//! bucket in front of a bounded queue, dropping the tail when full), delay with jitter,
//! and reordering (a packet held back past the next one).
//!
//! Deterministic: the loss, jitter and reorder draws each come from their own ChaCha8
//! stream seeded by the spec's seed, one draw of each per packet pushed, so the same seed
//! decides the same for each packet (by its place in the order of arrival) whatever the
//! timing; only the rate's drops depend on when packets arrive. Bounded: at most [`MAX_IN_FLIGHT`] packets are held.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::spec::ImpairSpec;

/// Packets held at most (queued, delayed or held back); more are dropped (counted).
pub const MAX_IN_FLIGHT: usize = 8192;
/// A packet held back to be reordered goes out anyway once it is this late and no packet
/// came after it.
pub const REORDER_HOLD: Duration = Duration::from_millis(50);
/// The token bucket's depth (the burst sent at full speed), as time at the rate; at least
/// [`MIN_BUCKET_BYTES`].
pub const BUCKET_TIME: Duration = Duration::from_millis(20);
pub const MIN_BUCKET_BYTES: usize = 3_000;
/// The bottleneck queue's size, as time at the rate; at least [`MIN_QUEUE_BYTES`].
pub const QUEUE_TIME: Duration = Duration::from_millis(250);
pub const MIN_QUEUE_BYTES: usize = 6_000;

/// What an impairment did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImpairCounters {
    /// Packets pushed.
    pub received: u64,
    /// Dropped by the loss model.
    pub dropped_loss: u64,
    /// Dropped at the bottleneck (its queue was full).
    pub dropped_rate: u64,
    /// Dropped because [`MAX_IN_FLIGHT`] packets were held already.
    pub dropped_overflow: u64,
    /// Let through later than they came (delay, jitter or the bottleneck's queue).
    pub delayed: u64,
    /// Let through after a packet that came after them.
    pub reordered: u64,
    /// Let through so far.
    pub delivered: u64,
}

impl ImpairCounters {
    /// Every packet dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_loss + self.dropped_rate + self.dropped_overflow
    }
}

/// A two-state (Gilbert) loss chain: in the bad state every packet is lost. Its mean time
/// in the bad state is the mean burst length, its share of time the loss rate.
#[derive(Debug)]
struct LossChain {
    /// Good → bad, and bad → good, per packet.
    enter: f64,
    leave: f64,
    bad: bool,
    rng: ChaCha8Rng,
}

impl LossChain {
    fn configure(&mut self, loss: f64, burst: Option<f64>) {
        if loss >= 1.0 {
            (self.enter, self.leave) = (1.0, 0.0);
            return;
        }
        // Independent losses have mean bursts of 1 / (1 − loss): no shorter mean is
        // possible at that rate, and at it the chain is a coin toss per packet.
        let leave = burst.map_or(1.0 - loss, |b| (1.0 / b).min(1.0 - loss));
        self.enter = loss * leave / (1.0 - loss);
        self.leave = leave;
    }

    fn lose(&mut self) -> bool {
        let x: f64 = self.rng.random();
        self.bad = if self.bad {
            x >= self.leave
        } else {
            x < self.enter
        };
        self.bad
    }
}

/// A token bucket in front of a bounded FIFO: when each packet leaves it, computed as
/// it arrives (GCRA), and how many bytes wait in it.
#[derive(Debug)]
struct Bottleneck {
    bytes_per_second: f64,
    depth: f64,
    limit: usize,
    /// When the bucket is full again (the theoretical arrival time).
    full_at: Option<Instant>,
    /// Packets waiting: when each leaves and its size.
    waiting: VecDeque<(Instant, usize)>,
    queued: usize,
}

impl Bottleneck {
    fn new(bits_per_second: u64) -> Self {
        let bytes_per_second = bits_per_second as f64 / 8.0;
        let at_rate = |d: Duration| (bytes_per_second * d.as_secs_f64()) as usize;
        Bottleneck {
            bytes_per_second,
            depth: at_rate(BUCKET_TIME).max(MIN_BUCKET_BYTES) as f64,
            limit: at_rate(QUEUE_TIME).max(MIN_QUEUE_BYTES),
            full_at: None,
            waiting: VecDeque::new(),
            queued: 0,
        }
    }

    /// When a packet of `size` bytes arriving at `now` leaves, or `None` when the queue
    /// has no room for it.
    fn admit(&mut self, size: usize, now: Instant) -> Option<Instant> {
        while let Some(&(leaves, bytes)) = self.waiting.front() {
            if leaves > now {
                break;
            }
            self.waiting.pop_front();
            self.queued -= bytes;
        }
        if self.queued + size > self.limit {
            return None;
        }
        let full_at = self.full_at.unwrap_or(now);
        // It leaves once the bucket holds its size (a packet over the depth needs it full).
        let need = (self.depth - size as f64).max(0.0) / self.bytes_per_second;
        let leaves = full_at
            .checked_sub(Duration::from_secs_f64(need))
            .map_or(now, |t| t.max(now));
        self.full_at = Some(
            leaves.max(full_at) + Duration::from_secs_f64(size as f64 / self.bytes_per_second),
        );
        if leaves > now {
            self.waiting.push_back((leaves, size));
            self.queued += size;
        }
        Some(leaves)
    }
}

/// A packet held back to go out after the next one.
#[derive(Debug)]
struct Held<P> {
    packet: P,
    due: Instant,
}

/// One direction of an impaired path; `P` is a packet (its bytes count against the rate).
#[derive(Debug)]
pub struct Impairment<P> {
    spec: ImpairSpec,
    loss: LossChain,
    bottleneck: Option<Bottleneck>,
    jitter_rng: ChaCha8Rng,
    reorder_rng: ChaCha8Rng,
    /// Packets to let through, in order, each with the time it is due.
    queue: VecDeque<(Instant, P)>,
    held: Option<Held<P>>,
    /// The latest due time given: delay and jitter keep packets in order.
    last_due: Option<Instant>,
    counters: ImpairCounters,
}

/// The seed of one of the model's random streams (distinct streams from one seed).
fn stream(seed: u64, n: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(n);
    rng
}

impl<P: AsRef<[u8]>> Impairment<P> {
    pub fn new(spec: ImpairSpec) -> Self {
        let mut loss = LossChain {
            enter: 0.0,
            leave: 1.0,
            bad: false,
            rng: stream(spec.seed, 1),
        };
        loss.configure(spec.loss, spec.burst);
        Impairment {
            bottleneck: spec.rate.map(Bottleneck::new),
            jitter_rng: stream(spec.seed, 2),
            reorder_rng: stream(spec.seed, 3),
            loss,
            spec,
            queue: VecDeque::new(),
            held: None,
            last_due: None,
            counters: ImpairCounters::default(),
        }
    }

    pub fn spec(&self) -> &ImpairSpec {
        &self.spec
    }

    /// Changes the conditions from now on (a scheduled change): the random streams go on
    /// from where they are (the seed is the first spec's), packets already in keep their
    /// times, and a new rate starts with an empty bottleneck.
    pub fn set_spec(&mut self, spec: ImpairSpec) {
        self.loss.configure(spec.loss, spec.burst);
        if spec.rate != self.spec.rate {
            self.bottleneck = spec.rate.map(Bottleneck::new);
        }
        self.spec = ImpairSpec {
            seed: self.spec.seed,
            ..spec
        };
    }

    pub fn counters(&self) -> ImpairCounters {
        self.counters
    }

    /// Packets inside now (queued or held back).
    pub fn in_flight(&self) -> usize {
        self.queue.len() + usize::from(self.held.is_some())
    }

    /// A packet arriving at `now`.
    pub fn push(&mut self, packet: P, now: Instant) {
        self.release_held(now);
        self.counters.received += 1;
        // Every draw is made for every packet, so each packet's fate is decided by its
        // place in the arrival order, whatever happened to the others.
        let lost = self.loss.lose();
        let swing: f64 = self.jitter_rng.random::<f64>() * 2.0 - 1.0;
        let hold = self.reorder_rng.random::<f64>() < self.spec.reorder;
        if lost {
            self.counters.dropped_loss += 1;
            return;
        }
        if self.in_flight() >= MAX_IN_FLIGHT {
            self.counters.dropped_overflow += 1;
            return;
        }
        let leaves = match &mut self.bottleneck {
            Some(b) => match b.admit(packet.as_ref().len(), now) {
                Some(t) => t,
                None => {
                    self.counters.dropped_rate += 1;
                    return;
                }
            },
            None => now,
        };
        let delay = self.spec.delay.as_secs_f64() + swing * self.spec.jitter.as_secs_f64();
        let mut due = leaves + Duration::from_secs_f64(delay.max(0.0));
        if let Some(last) = self.last_due {
            due = due.max(last);
        }
        self.last_due = Some(due);
        if due > now {
            self.counters.delayed += 1;
        }
        if let Some(held) = self.held.take() {
            // The held packet goes right after this one.
            self.queue.push_back((due, packet));
            self.queue.push_back((due, held.packet));
            self.counters.reordered += 1;
        } else if hold {
            self.held = Some(Held { packet, due });
        } else {
            self.queue.push_back((due, packet));
        }
    }

    /// The next packet due by `now`, if any.
    pub fn poll_output(&mut self, now: Instant) -> Option<P> {
        self.release_held(now);
        if self.queue.front().is_some_and(|(due, _)| *due <= now) {
            self.counters.delivered += 1;
            return self.queue.pop_front().map(|(_, p)| p);
        }
        None
    }

    /// When [`poll_output`](Self::poll_output) next has something (or a held packet is
    /// released); `None` when nothing is inside.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let queued = self.queue.front().map(|(due, _)| *due);
        let held = self.held.as_ref().map(|h| h.due + REORDER_HOLD);
        match (queued, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A held packet that no later one came to overtake goes out as it is.
    fn release_held(&mut self, now: Instant) {
        if self
            .held
            .as_ref()
            .is_some_and(|h| h.due + REORDER_HOLD <= now)
        {
            if let Some(h) = self.held.take() {
                // Nothing came after it: the queue's last packet is due no later.
                self.queue.push_back((h.due, h.packet));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test packet: its number in the first 8 bytes, padded to its size.
    fn packet(id: u64, size: usize) -> Vec<u8> {
        let mut p = id.to_le_bytes().to_vec();
        p.resize(size.max(8), 0);
        p
    }

    fn id(p: &[u8]) -> u64 {
        u64::from_le_bytes(p[..8].try_into().unwrap())
    }

    fn spec(s: &str) -> ImpairSpec {
        s.parse().unwrap()
    }

    /// Everything `model` lets through before `until`, with when, on a fake clock.
    fn drain(model: &mut Impairment<Vec<u8>>, until: Instant, out: &mut Vec<(Instant, u64)>) {
        while let Some(t) = model.poll_timeout().filter(|t| *t <= until) {
            while let Some(p) = model.poll_output(t) {
                out.push((t, id(&p)));
            }
        }
    }

    /// Pushes `n` packets of `size` bytes, one every `every`, from `start`; what came out
    /// and when.
    fn run(
        model: &mut Impairment<Vec<u8>>,
        start: Instant,
        n: u64,
        every: Duration,
        size: usize,
    ) -> Vec<(Instant, u64)> {
        let mut out = Vec::new();
        for i in 0..n {
            let now = start + every * i as u32;
            drain(model, now, &mut out);
            model.push(packet(i, size), now);
        }
        drain(
            model,
            start + every * n as u32 + Duration::from_secs(60),
            &mut out,
        );
        assert_eq!(model.in_flight(), 0);
        out
    }

    /// Lengths of the runs of consecutive lost packet numbers.
    fn bursts(delivered: &[(Instant, u64)], n: u64) -> Vec<u64> {
        let mut got = vec![false; n as usize];
        for (_, i) in delivered {
            got[*i as usize] = true;
        }
        let mut out = Vec::new();
        let mut run = 0;
        for g in got {
            if g {
                if run > 0 {
                    out.push(run);
                }
                run = 0;
            } else {
                run += 1;
            }
        }
        out
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn nothing_impaired_lets_everything_through_at_once_in_order() {
        let start = Instant::now();
        let mut m = Impairment::new(ImpairSpec::default());
        assert_eq!(m.poll_timeout(), None);
        let out = run(&mut m, start, 1000, MS, 1200);
        assert_eq!(out.len(), 1000);
        for (k, (t, i)) in out.iter().enumerate() {
            assert_eq!((*t, *i), (start + MS * k as u32, k as u64));
        }
        let c = m.counters();
        assert_eq!(
            (c.received, c.delivered, c.dropped(), c.delayed, c.reordered),
            (1000, 1000, 0, 0, 0)
        );
    }

    #[test]
    fn independent_loss_is_within_tolerance_over_100k_packets() {
        let n = 100_000;
        let mut m = Impairment::new(spec("loss=5%,seed=1"));
        let out = run(&mut m, Instant::now(), n, MS, 100);
        let c = m.counters();
        let rate = c.dropped_loss as f64 / n as f64;
        assert!((rate - 0.05).abs() < 0.004, "loss {rate}");
        assert_eq!(c.delivered + c.dropped_loss, n);
        assert_eq!(out.len() as u64, c.delivered);
        // Independent losses: mean burst 1 / (1 − 0.05) ≈ 1.05.
        let b = bursts(&out, n);
        let mean = b.iter().sum::<u64>() as f64 / b.len() as f64;
        assert!((mean - 1.053).abs() < 0.03, "mean burst {mean}");
    }

    #[test]
    fn bursts_have_the_mean_length_asked_for() {
        let n = 100_000;
        let mut m = Impairment::new(spec("loss=5%,burst=3,seed=2"));
        let out = run(&mut m, Instant::now(), n, MS, 100);
        let rate = m.counters().dropped_loss as f64 / n as f64;
        assert!((rate - 0.05).abs() < 0.008, "loss {rate}");
        let b = bursts(&out, n);
        let mean = b.iter().sum::<u64>() as f64 / b.len() as f64;
        assert!((mean - 3.0).abs() < 0.3, "mean burst {mean}");
        assert!(
            b.iter().any(|l| *l >= 8),
            "a geometric burst length has a tail"
        );
        // Everything and nothing.
        let mut all = Impairment::new(spec("loss=100%"));
        assert!(run(&mut all, Instant::now(), 100, MS, 100).is_empty());
        let mut none = Impairment::new(spec("loss=0%,burst=5"));
        assert_eq!(run(&mut none, Instant::now(), 100, MS, 100).len(), 100);
    }

    #[test]
    fn the_same_seed_gives_the_same_drops_whatever_the_timing() {
        let s = "loss=10%,burst=2,jitter=5ms,reorder=2%,seed=7";
        let ids = |out: Vec<(Instant, u64)>| {
            let mut v: Vec<u64> = out.into_iter().map(|(_, i)| i).collect();
            v.sort_unstable();
            v
        };
        let a = run(
            &mut Impairment::new(spec(s)),
            Instant::now(),
            10_000,
            MS,
            100,
        );
        let b = run(
            &mut Impairment::new(spec(s)),
            Instant::now(),
            10_000,
            MS,
            100,
        );
        assert_eq!(
            a.iter().map(|p| p.1).collect::<Vec<_>>(),
            b.iter().map(|p| p.1).collect::<Vec<_>>()
        );
        // Other packet timing (and sizes): the same packets are lost.
        let c = run(
            &mut Impairment::new(spec(s)),
            Instant::now(),
            10_000,
            MS * 7,
            900,
        );
        assert_eq!(ids(a.clone()), ids(c));
        let other = run(
            &mut Impairment::new(spec("loss=10%,burst=2,jitter=5ms,reorder=2%,seed=8")),
            Instant::now(),
            10_000,
            MS,
            100,
        );
        assert_ne!(ids(a), ids(other));
    }

    #[test]
    fn delay_and_jitter_stay_within_bounds_and_keep_order() {
        let start = Instant::now();
        let mut m = Impairment::new(spec("delay=80ms,jitter=20ms,seed=3"));
        let out = run(&mut m, start, 5_000, MS * 10, 1000);
        assert_eq!(out.len(), 5_000);
        let mut lo = Duration::MAX;
        let mut hi = Duration::ZERO;
        for (k, (t, i)) in out.iter().enumerate() {
            assert_eq!(*i, k as u64, "jitter alone does not reorder");
            let latency = *t - (start + MS * 10 * *i as u32);
            lo = lo.min(latency);
            hi = hi.max(latency);
        }
        assert!(lo >= MS * 60 && hi <= MS * 100, "{lo:?}..{hi:?}");
        assert!(
            lo < MS * 62 && hi > MS * 98,
            "the whole ±20 ms is used: {lo:?}..{hi:?}"
        );
        assert_eq!(m.counters().delayed, 5_000);
        // Jitter larger than the delay never makes a packet leave before it came.
        let mut m = Impairment::new(spec("delay=5ms,jitter=30ms,seed=3"));
        let out = run(&mut m, start, 1_000, MS * 10, 100);
        assert!(out.iter().all(|(t, i)| *t >= start + MS * 10 * *i as u32));
    }

    #[test]
    fn reordering_holds_a_packet_past_the_next_one() {
        let n = 100_000;
        let mut m = Impairment::new(spec("reorder=1%,seed=4"));
        let out = run(&mut m, Instant::now(), n, MS, 100);
        assert_eq!(out.len() as u64, n);
        let c = m.counters();
        let share = c.reordered as f64 / n as f64;
        assert!((share - 0.01).abs() < 0.0015, "reordered {share}");
        // Each reordered packet comes right after the one that overtook it.
        let mut swapped = 0;
        for w in out.windows(2) {
            if w[1].1 < w[0].1 {
                assert_eq!(w[1].1 + 1, w[0].1);
                swapped += 1;
            }
        }
        assert_eq!(swapped, c.reordered);
        // A held packet with nothing after it goes out REORDER_HOLD late, not reordered.
        let start = Instant::now();
        let mut m = Impairment::new(spec("reorder=100%"));
        m.push(packet(1, 100), start);
        assert_eq!(m.poll_output(start), None);
        assert_eq!(m.poll_timeout(), Some(start + REORDER_HOLD));
        assert_eq!(m.poll_output(start + REORDER_HOLD).map(|p| id(&p)), Some(1));
        assert_eq!(m.counters().reordered, 0);
    }

    #[test]
    fn the_rate_is_shaped_and_the_queue_drops_its_tail() {
        let start = Instant::now();
        // 1200-byte packets every 4 ms = 2.4 Mbit/s into 800 kbit/s, for 10 s.
        let mut m = Impairment::new(spec("rate=800kbit"));
        let out = run(&mut m, start, 2_500, MS * 4, 1200);
        let c = m.counters();
        assert!(c.dropped_rate > 1_500, "{c:?}");
        assert_eq!(c.dropped_loss, 0);
        assert_eq!(c.delivered + c.dropped_rate, 2_500);
        // What came out over the 10 s is the rate, give or take the bucket and the queue.
        let within = out
            .iter()
            .filter(|(t, _)| *t < start + Duration::from_secs(10))
            .count();
        let bits = within as f64 * 1200.0 * 8.0;
        assert!(
            (bits / 10.0 - 800_000.0).abs() < 40_000.0,
            "{} bit/s",
            bits / 10.0
        );
        // The queue is bounded: nothing waits longer than it takes to send the queue.
        let waited = out
            .iter()
            .map(|(t, i)| *t - (start + MS * 4 * *i as u32))
            .max()
            .unwrap();
        assert!(waited <= QUEUE_TIME + MS * 15, "{waited:?}");
        // Under the rate nothing is dropped and nothing waits.
        let mut m = Impairment::new(spec("rate=800kbit"));
        let out = run(&mut m, start, 1_000, MS * 20, 1200);
        assert_eq!(out.len(), 1_000);
        assert_eq!(m.counters().delayed, 0);
    }

    #[test]
    fn memory_is_bounded() {
        let start = Instant::now();
        let mut m = Impairment::new(spec("delay=10s"));
        for i in 0..(MAX_IN_FLIGHT as u64 + 100) {
            m.push(packet(i, 10), start);
        }
        assert_eq!(m.in_flight(), MAX_IN_FLIGHT);
        assert_eq!(m.counters().dropped_overflow, 100);
        assert_eq!(m.poll_timeout(), Some(start + Duration::from_secs(10)));
    }

    #[test]
    fn a_new_spec_applies_from_then_on() {
        let start = Instant::now();
        let mut m = Impairment::new(spec("seed=9"));
        run(&mut m, start, 1_000, MS, 100);
        assert_eq!(m.counters().dropped(), 0);
        m.set_spec(spec("loss=50%"));
        assert_eq!(m.spec().seed, 9, "the seed stays the first one's");
        run(&mut m, start + Duration::from_secs(2), 1_000, MS, 100);
        let lost = m.counters().dropped_loss;
        assert!((400..600).contains(&lost), "{lost}");
    }
}
