//! Real-time pacing shared by every source: the [`Pacer`] that releases frame slots, the
//! frame interval of a rate, and the wall clock frames are stamped with.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Releases slots at a fixed interval in real time. A source that falls behind by more
/// than one interval skips ahead instead of bursting to catch up.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Instant,
    start: Instant,
}

impl Pacer {
    pub fn new(interval: Duration) -> Self {
        let now = Instant::now();
        Pacer {
            interval,
            next: now,
            start: now,
        }
    }

    /// Changes the interval from the next slot on.
    pub fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
    }

    /// Sleeps until the next slot and returns its time on the source's timeline.
    pub fn wait(&mut self) -> Duration {
        let now = Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        } else if now - self.next > self.interval {
            self.next = now;
        }
        let slot = self.next;
        self.next += self.interval;
        slot - self.start
    }
}

/// Milliseconds since the UNIX epoch, now.
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The frame interval of a frame rate.
pub fn frame_interval(frame_rate: f64) -> Duration {
    Duration::from_secs_f64(1.0 / frame_rate.max(0.001))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_keeps_time_and_skips_ahead() {
        let mut p = Pacer::new(Duration::from_millis(5));
        let start = Instant::now();
        let slots: Vec<Duration> = (0..6).map(|_| p.wait()).collect();
        assert!(start.elapsed() >= Duration::from_millis(24));
        assert_eq!(slots[5] - slots[0], Duration::from_millis(25));
        // Fall far behind: the next slot is now, not a burst of missed ones.
        std::thread::sleep(Duration::from_millis(30));
        let before = Instant::now();
        p.wait();
        p.wait();
        assert!(before.elapsed() >= Duration::from_millis(4));
    }
}
