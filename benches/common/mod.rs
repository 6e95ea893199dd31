//! What the bench binaries measure about their own process (the library's
//! `usermedia::bench::process`).
#![allow(dead_code)]

use usermedia::bench::process::ProcessUsage;

/// CPU seconds (user + system, all threads) of this process so far.
pub fn cpu_seconds() -> f64 {
    ProcessUsage::of_self()
        .expect("read /proc/self")
        .cpu_seconds
}

/// Resident memory of this process, MiB.
pub fn rss_mib() -> f64 {
    ProcessUsage::of_self().expect("read /proc/self").rss_bytes as f64 / (1024.0 * 1024.0)
}
