//! What a hardware source needs to run its device on a thread of its own without letting
//! a wedged driver hang a track: the open, stall and close limits, and the helpers that
//! wait for the device thread within them.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::pacing::frame_interval;
use super::source::{Cause, SourceError};

/// The shortest time a hardware source waits for data from its device before declaring it
/// gone: a stalled driver or a lost error callback must end the track, not hang it (and
/// with it `stop()`, which waits for the source to close). Slow modes get longer: see
/// [`stall_limit`].
pub const DEVICE_STALL_LIMIT: Duration = Duration::from_secs(2);

/// How many frame intervals a device may stay silent in steady state: a 0.5 fps camera
/// delivers exactly every 2 s, and one late frame must not end its track.
const STALL_INTERVALS: u32 = 3;

/// How long a device may take to deliver its first frame after opening: cameras settle
/// auto-exposure (and some drivers allocate buffers) before the first frame.
pub const DEVICE_FIRST_FRAME_LIMIT: Duration = Duration::from_secs(5);

/// How long opening a device may take before it is reported unreadable: a driver that
/// hangs in open must not hang getUserMedia or applyConstraints (which hold the track's
/// locks while a source opens).
pub const DEVICE_OPEN_LIMIT: Duration = Duration::from_secs(5);

/// How long to wait for the next item from a device delivering at `rate` items per second
/// (`None`: unknown or not periodic, such as audio blocks) before declaring it stalled:
/// [`DEVICE_STALL_LIMIT`] or [`STALL_INTERVALS`] intervals, whichever is longer, and at
/// least [`DEVICE_FIRST_FRAME_LIMIT`] for the first item after opening.
pub fn stall_limit(rate: Option<f64>, first: bool) -> Duration {
    let steady = match rate {
        Some(r) if r.is_finite() && r > 0.0 => {
            (frame_interval(r) * STALL_INTERVALS).max(DEVICE_STALL_LIMIT)
        }
        _ => DEVICE_STALL_LIMIT,
    };
    if first {
        steady.max(DEVICE_FIRST_FRAME_LIMIT)
    } else {
        steady
    }
}

/// Why waiting for a device thread to open its device failed.
#[derive(Debug)]
pub(crate) struct OpenFailed {
    /// `SourceError::Open` or `CannotOpen`, naming the device.
    pub error: SourceError,
    /// The thread is still inside the driver's open (it did not answer in time): it cannot
    /// be joined, only told to stop and left to finish on its own.
    pub hung: bool,
}

/// Waits up to `limit` for a device thread's answer on `ready`: the opened device's value,
/// or why it failed (kept as the error's cause). `what` names the device in the error.
pub(crate) fn wait_until_open<T, E: Into<Cause>>(
    ready: &Receiver<Result<T, E>>,
    limit: Duration,
    what: &str,
) -> Result<T, OpenFailed> {
    match ready.recv_timeout(limit) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(OpenFailed {
            error: SourceError::cannot_open(what, e),
            hung: false,
        }),
        Err(RecvTimeoutError::Disconnected) => Err(OpenFailed {
            error: SourceError::Open(format!("{what}: capture thread failed")),
            hung: false,
        }),
        Err(RecvTimeoutError::Timeout) => Err(OpenFailed {
            error: SourceError::Open(format!("{what} did not open in {} s", limit.as_secs_f64())),
            hung: true,
        }),
    }
}

/// How long dropping a hardware source waits for its device thread to close the device.
/// Beyond it the thread is left to finish on its own (logged), so a wedged driver cannot
/// hang the caller; within it, the device is closed before its lease is released.
pub const DEVICE_CLOSE_LIMIT: Duration = Duration::from_secs(2);

/// The next item from a device thread, or [`SourceError::Ended`] when the device sends
/// nothing for `limit` or its thread is gone. `what` names the device in the message.
pub(crate) fn recv_from_device<T>(
    rx: &Receiver<T>,
    limit: Duration,
    what: &str,
) -> Result<T, SourceError> {
    rx.recv_timeout(limit).map_err(|e| match e {
        RecvTimeoutError::Timeout => SourceError::Ended(format!(
            "{what}: no data from device for {} s",
            limit.as_secs_f64()
        )),
        RecvTimeoutError::Disconnected => {
            SourceError::Ended(format!("{what}: capture thread stopped"))
        }
    })
}

/// Joins a device thread, waiting at most `limit`. Returns whether it finished (the device
/// is closed); otherwise logs and leaves the thread detached.
pub(crate) fn join_device_thread(
    handle: std::thread::JoinHandle<()>,
    limit: Duration,
    what: &str,
) -> bool {
    let deadline = Instant::now() + limit;
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            tracing::warn!(
                "{what}: the device thread did not close the device within {} s; \
                 releasing it anyway",
                limit.as_secs_f64()
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if handle.join().is_err() {
        tracing::warn!("{what}: the device thread panicked");
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_device_ends_after_the_limit() {
        let (tx, rx) = std::sync::mpsc::channel::<u32>();
        let start = Instant::now();
        let err = recv_from_device(&rx, Duration::from_millis(50), "mic x").unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert!(
            matches!(&err, SourceError::Ended(m) if m == "mic x: no data from device for 0.05 s"),
            "{err:?}"
        );
        tx.send(7).unwrap();
        assert_eq!(
            recv_from_device(&rx, Duration::from_secs(5), "mic x").ok(),
            Some(7)
        );
        drop(tx);
        assert!(matches!(
            recv_from_device(&rx, Duration::from_secs(5), "mic x"),
            Err(SourceError::Ended(m)) if m.contains("capture thread stopped")
        ));
    }

    #[test]
    fn the_stall_limit_allows_three_intervals_and_a_slow_first_frame() {
        let s = Duration::from_secs;
        // Fast modes and audio: the 2 s floor.
        assert_eq!(stall_limit(Some(30.0), false), s(2));
        assert_eq!(stall_limit(Some(1.0), false), s(3));
        assert_eq!(stall_limit(None, false), s(2));
        // A 0.5 fps camera delivers every 2 s: three intervals.
        assert_eq!(stall_limit(Some(0.5), false), s(6));
        assert!(stall_limit(Some(0.5), false) > frame_interval(0.5));
        // The first frame after opening gets at least 5 s.
        assert_eq!(stall_limit(Some(30.0), true), s(5));
        assert_eq!(stall_limit(None, true), s(5));
        assert_eq!(stall_limit(Some(0.1), true), s(30));
        // A driver that reports no rate (0, NaN) gets the floor, not an endless wait.
        assert_eq!(stall_limit(Some(0.0), false), s(2));
        assert_eq!(stall_limit(Some(f64::NAN), false), s(2));
    }

    #[test]
    fn opening_waits_for_the_device_thread_within_the_limit() {
        let (tx, rx) = std::sync::mpsc::channel::<Result<u32, String>>();
        // A driver hung in open: NotReadable (Open) naming the device, after the limit.
        let start = Instant::now();
        let failed =
            wait_until_open(&rx, Duration::from_millis(50), "camera /dev/video3").unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert!(failed.hung);
        assert!(
            matches!(&failed.error, SourceError::Open(m) if m == "camera /dev/video3 did not open in 0.05 s"),
            "{:?}",
            failed.error
        );
        assert_eq!(
            DEVICE_OPEN_LIMIT.as_secs_f64().to_string(),
            "5",
            "the message reads \"did not open in 5 s\""
        );
        // Opened, or failed to open: answered at once.
        tx.send(Ok(7)).unwrap();
        assert_eq!(
            wait_until_open(&rx, Duration::from_secs(30), "cam").ok(),
            Some(7)
        );
        tx.send(Err("busy".into())).unwrap();
        let failed = wait_until_open(&rx, Duration::from_secs(30), "cam").unwrap_err();
        assert!(!failed.hung);
        // The thread's error is the cause, named after the device.
        assert!(
            matches!(&failed.error, SourceError::CannotOpen { what, cause }
                if what == "cam" && cause.to_string() == "busy"),
            "{:?}",
            failed.error
        );
        assert_eq!(failed.error.to_string(), "cam: busy");
        // The thread died without answering.
        drop(tx);
        let failed = wait_until_open(&rx, Duration::from_secs(30), "cam").unwrap_err();
        assert!(!failed.hung);
        assert!(
            matches!(&failed.error, SourceError::Open(m) if m == "cam: capture thread failed"),
            "{:?}",
            failed.error
        );
    }

    #[test]
    fn joining_a_device_thread_waits_for_it_within_the_limit() {
        let closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&closed);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        assert!(join_device_thread(t, Duration::from_secs(30), "cam"));
        // Joined means the thread's work (closing the device) is done.
        assert!(closed.load(std::sync::atomic::Ordering::SeqCst));
        // A wedged thread is given up on after the limit, not waited for forever.
        let (_hold, wait) = std::sync::mpsc::channel::<()>();
        let wedged = std::thread::spawn(move || {
            let _ = wait.recv_timeout(Duration::from_secs(30));
        });
        let start = Instant::now();
        assert!(!join_device_thread(
            wedged,
            Duration::from_millis(50),
            "cam"
        ));
        assert!(start.elapsed() < Duration::from_secs(20));
    }
}
