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

/// How long a hardware source waits for data from its device before declaring it gone: a
/// stalled driver or a lost error callback must end the track, not hang it (and with it
/// `stop()`, which waits for the source to close).
pub const DEVICE_STALL_LIMIT: Duration = Duration::from_secs(2);

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
