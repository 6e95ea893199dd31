//! Pure limit policies fed the time: a token-bucket [`RateLimit`] (room messages) and
//! [`PendingPerAddress`], the sessions each client address has opened that have not
//! connected yet. No clocks or tasks here: callers pass `now`, so tests use a fake clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A token bucket: `burst` messages at once, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct RateLimit {
    burst: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket at `now`.
    pub fn new(burst: u32, per_second: u32, now: Instant) -> Self {
        RateLimit {
            burst: f64::from(burst.max(1)),
            per_second: f64::from(per_second),
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    /// Whether one more message may pass at `now` (it takes a token if so).
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Sessions per client address that have not connected yet, each with its deadline.
/// One address may hold at most `cap` at a time, so one client that opens offers it never
/// completes cannot take every slot; an entry past its deadline no longer counts.
#[derive(Debug, Clone)]
pub struct PendingPerAddress {
    cap: usize,
    deadline: Duration,
    pending: HashMap<IpAddr, Vec<(String, Instant)>>,
}

/// A new session refused: its address already holds this many pending ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyPending(pub usize);

impl PendingPerAddress {
    pub fn new(cap: usize, deadline: Duration) -> Self {
        PendingPerAddress {
            cap,
            deadline,
            pending: HashMap::new(),
        }
    }

    /// How long a pending session counts against its address.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Whether `address` may open one more session at `now`.
    pub fn admit(&mut self, address: IpAddr, now: Instant) -> Result<(), TooManyPending> {
        self.expire(now);
        let held = self.pending.get(&address).map_or(0, Vec::len);
        if held >= self.cap {
            Err(TooManyPending(held))
        } else {
            Ok(())
        }
    }

    /// Session `id` was created for `address` at `now` and has not connected yet.
    pub fn opened(&mut self, address: IpAddr, id: &str, now: Instant) {
        self.pending
            .entry(address)
            .or_default()
            .push((id.to_owned(), now + self.deadline));
    }

    /// Session `id` connected or ended: it no longer counts.
    pub fn settled(&mut self, id: &str) {
        self.pending.retain(|_, list| {
            list.retain(|(s, _)| s != id);
            !list.is_empty()
        });
    }

    /// The ids pending for every address (to ask which have connected).
    pub fn ids(&self) -> Vec<String> {
        self.pending
            .values()
            .flatten()
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn expire(&mut self, now: Instant) {
        self.pending.retain(|_, list| {
            list.retain(|(_, until)| *until > now);
            !list.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(3, 2, t0);
        assert!(r.allow(t0) && r.allow(t0) && r.allow(t0));
        assert!(!r.allow(t0), "the burst is spent");
        assert!(!r.allow(t0 + Duration::from_millis(400)));
        assert!(r.allow(t0 + Duration::from_millis(500)), "refilled at 2/s");
        assert!(!r.allow(t0 + Duration::from_millis(600)));
        // Idle for long: back to the burst, not more.
        let later = t0 + Duration::from_secs(60);
        assert!(r.allow(later) && r.allow(later) && r.allow(later));
        assert!(!r.allow(later));
        // A clock going backwards takes nothing extra.
        assert!(!r.allow(t0));
    }

    #[test]
    fn pending_sessions_are_capped_per_address_until_they_settle_or_expire() {
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut p = PendingPerAddress::new(2, Duration::from_secs(15));
        for id in ["1", "2"] {
            assert_eq!(p.admit(a, t0), Ok(()));
            p.opened(a, id, t0);
        }
        assert_eq!(p.admit(a, t0), Err(TooManyPending(2)));
        assert_eq!(p.admit(b, t0), Ok(()), "another address is not held back");
        p.settled("1");
        assert_eq!(p.admit(a, t0), Ok(()));
        p.opened(a, "3", t0 + Duration::from_secs(10));
        assert_eq!(
            p.admit(a, t0 + Duration::from_secs(10)),
            Err(TooManyPending(2))
        );
        // "2" passes its deadline at 15 s; "3" still counts until 25 s.
        assert_eq!(p.admit(a, t0 + Duration::from_secs(15)), Ok(()));
        let mut ids = p.ids();
        ids.sort();
        assert_eq!(ids, ["3"]);
        assert_eq!(p.admit(a, t0 + Duration::from_secs(25)), Ok(()));
        assert!(p.ids().is_empty());
    }
}
