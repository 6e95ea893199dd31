//! Giving the memory of ended sessions back to the system: when is a trim due (a pure
//! policy fed the time) and the call itself (`malloc_trim`, glibc only).
//!
//! Why: a burst of a few hundred sessions grows the heap by about half a MiB each, and
//! glibc's allocator keeps freed pages mapped in its arenas, so the resident size stays at
//! the burst's peak long after the sessions have gone (measured in docs/security.md,
//! "Faults"). Trimming once the sessions are gone returns it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sync::lock;

/// How long after a session ends the trim runs: the sessions ending within it share one
/// trim, and a peer's last tasks (closing its sockets, its DTLS) have finished by then.
pub const TRIM_AFTER: Duration = Duration::from_secs(1);

/// When the next trim is due: at most one per [`TRIM_AFTER`] window, always one after the
/// last session ended. Pure: fed the time.
#[derive(Debug)]
pub(super) struct TrimPolicy {
    after: Duration,
    due: Option<Instant>,
}

impl TrimPolicy {
    pub(super) fn new(after: Duration) -> Self {
        TrimPolicy { after, due: None }
    }

    /// A session ended at `now`: when to trim, if no trim is already scheduled (then that
    /// one covers this session too).
    pub(super) fn ended(&mut self, now: Instant) -> Option<Instant> {
        if self.due.is_some() {
            return None;
        }
        let at = now + self.after;
        self.due = Some(at);
        Some(at)
    }

    /// The scheduled trim's time has come (`now`): whether to trim. A session ending from
    /// now on schedules the next one.
    pub(super) fn fire(&mut self, now: Instant) -> bool {
        match self.due {
            Some(at) if now >= at => {
                self.due = None;
                true
            }
            _ => false,
        }
    }
}

/// The publisher's trimmer: sessions report their end, the trim runs when the policy says.
#[derive(Debug)]
pub(super) struct Trimmer {
    policy: Mutex<TrimPolicy>,
}

impl Default for Trimmer {
    fn default() -> Self {
        Trimmer {
            policy: Mutex::new(TrimPolicy::new(TRIM_AFTER)),
        }
    }
}

impl Trimmer {
    /// A session has ended: schedules a trim (on the current tokio runtime) unless one is
    /// already scheduled.
    pub(super) fn session_ended(self: &Arc<Self>) {
        let Some(at) = lock(&self.policy).ended(Instant::now()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = Arc::clone(self);
        runtime.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            if lock(&this.policy).fire(Instant::now()) {
                // It walks the heap: off the async workers.
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        });
    }
}

/// Returns the allocator's free memory to the system, as far as it can.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    let started = Instant::now();
    // SAFETY: malloc_trim only walks and releases glibc's own free lists; it takes the
    // arenas' locks itself and is safe to call from any thread at any time.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(
        "malloc_trim: {} in {:?}",
        if released == 1 {
            "memory returned"
        } else {
            "nothing to return"
        },
        started.elapsed()
    );
}

/// Other allocators give freed memory back on their own (or offer no way to ask).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trim_per_window_and_always_one_after_the_last_end() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut p = TrimPolicy::new(s);
        assert!(!p.fire(t0), "nothing ended: no trim");
        assert_eq!(p.ended(t0), Some(t0 + s));
        // Ends within the window share the scheduled trim.
        assert_eq!(p.ended(t0 + s / 2), None);
        assert_eq!(p.ended(t0 + s * 9 / 10), None);
        assert!(!p.fire(t0 + s / 2), "not yet due");
        assert!(p.fire(t0 + s));
        assert!(!p.fire(t0 + s), "one trim per schedule");
        // An end after the trim schedules the next one.
        assert_eq!(p.ended(t0 + s * 3 / 2), Some(t0 + s * 5 / 2));
        assert!(p.fire(t0 + s * 3));
    }
}
