//! Locking shared by the threads of tracks, encoders, peers and the service.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, using the data even if another thread panicked while holding it: every
/// critical section in this crate assigns whole values, so a poisoned lock still guards
/// consistent data, and one panicking consumer must not take capture down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
