//! The `Source` contract every capture device implements — virtual (pattern, tone, files)
//! and real (camera, microphone) alike — and the real-time pacing they share.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use crate::constraints::MediaTrackSettings;
use crate::frame::{AudioFrame, VideoFrame};

/// One unit of media from a source: a video frame or a block of audio. Cheap to clone,
/// so one capture can reach many consumers.
#[derive(Debug, Clone)]
pub enum MediaFrame {
    Video(Arc<VideoFrame>),
    Audio(Arc<AudioFrame>),
}

/// Why a source could not open or stopped delivering.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// The device or file could not be opened: busy, missing, unreadable or malformed.
    #[error("{0}")]
    Open(String),
    /// The source is gone for good (device unplugged, file vanished): its tracks end.
    #[error("source ended: {0}")]
    Ended(String),
    /// The source cannot produce the requested settings.
    #[error("cannot switch to the requested settings: {0}")]
    Unsupported(String),
}

/// A capture device as the track machinery drives it, on its own thread.
///
/// Contract: `next_frame` blocks until the next frame is due and returns it at exactly the
/// settings the source was opened or last reconfigured with (size and frame rate, or
/// sample rate and channel count), paced in real time. `reconfigure` takes effect from the
/// next frame, so a live change costs at most one frame interval.
pub trait Source: Send {
    fn next_frame(&mut self) -> Result<MediaFrame, SourceError>;
    fn reconfigure(&mut self, settings: &MediaTrackSettings) -> Result<(), SourceError>;

    /// Called once, before the first frame, on a source opened for a running track (its
    /// new settings needed a new source), with the last frame the track delivered from the
    /// previous one, as that source made it. A source that numbers its frames continues
    /// the numbering from there, so receivers counting frames to measure loss (the
    /// pattern's strip) see no jump back. Default: nothing to continue.
    fn continue_after(&mut self, _last: &MediaFrame) {}
}

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
    /// `SourceError::Open`, naming the device.
    pub error: SourceError,
    /// The thread is still inside the driver's open (it did not answer in time): it cannot
    /// be joined, only told to stop and left to finish on its own.
    pub hung: bool,
}

/// Waits up to `limit` for a device thread's answer on `ready`: the opened device's value,
/// or why it failed. `what` names the device in the error.
pub(crate) fn wait_until_open<T>(
    ready: &std::sync::mpsc::Receiver<Result<T, String>>,
    limit: Duration,
    what: &str,
) -> Result<T, OpenFailed> {
    use std::sync::mpsc::RecvTimeoutError;
    match ready.recv_timeout(limit) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(OpenFailed {
            error: SourceError::Open(format!("{what}: {e}")),
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
    rx: &std::sync::mpsc::Receiver<T>,
    limit: Duration,
    what: &str,
) -> Result<T, SourceError> {
    use std::sync::mpsc::RecvTimeoutError;
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

/// (width, height, frame rate) of video settings; missing members are a bug upstream,
/// reported rather than unwrapped.
pub(crate) fn video_settings(
    settings: &MediaTrackSettings,
) -> Result<(u32, u32, f64), SourceError> {
    match (settings.width, settings.height, settings.frame_rate) {
        (Some(w), Some(h), Some(f)) if w > 0 && h > 0 && f > 0.0 => Ok((w, h, f)),
        _ => Err(SourceError::Unsupported(
            "video settings need width, height and frameRate".into(),
        )),
    }
}

/// (sample rate, channels) of audio settings.
pub(crate) fn audio_settings(settings: &MediaTrackSettings) -> Result<(u32, u16), SourceError> {
    match (settings.sample_rate, settings.channel_count) {
        (Some(r), Some(c)) if r > 0 && (1..=32).contains(&c) => Ok((r, c as u16)),
        _ => Err(SourceError::Unsupported(
            "audio settings need sampleRate and channelCount".into(),
        )),
    }
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

    #[test]
    fn a_silent_device_ends_after_the_limit() {
        let (tx, rx) = std::sync::mpsc::channel::<u32>();
        let start = Instant::now();
        let err = recv_from_device(&rx, Duration::from_millis(50), "mic x").unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert_eq!(
            err,
            SourceError::Ended("mic x: no data from device for 0.05 s".into())
        );
        tx.send(7).unwrap();
        assert_eq!(
            recv_from_device(&rx, Duration::from_secs(5), "mic x"),
            Ok(7)
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
        assert_eq!(
            failed.error,
            SourceError::Open("camera /dev/video3 did not open in 0.05 s".into())
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
        assert_eq!(failed.error, SourceError::Open("cam: busy".into()));
        // The thread died without answering.
        drop(tx);
        let failed = wait_until_open(&rx, Duration::from_secs(30), "cam").unwrap_err();
        assert!(!failed.hung);
        assert_eq!(
            failed.error,
            SourceError::Open("cam: capture thread failed".into())
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
