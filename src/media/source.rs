//! The `Source` contract every source of media implements — capture devices (pattern,
//! tone, files, camera, microphone) and a peer's decoded track alike — with the frame it
//! yields and the error it fails with.

use std::sync::Arc;
use std::time::Duration;

use crate::constraints::MediaTrackSettings;
use crate::frame::{AudioFrame, VideoFrame};

/// One unit of media from a source: a video frame or a block of audio. Cheap to clone,
/// so one capture can reach many consumers.
#[derive(Debug, Clone)]
pub enum MediaFrame {
    Video(Arc<VideoFrame>),
    Audio(Arc<AudioFrame>),
}

impl MediaFrame {
    /// The frame's time on its source's timeline.
    pub(crate) fn timestamp(&self) -> Duration {
        match self {
            MediaFrame::Video(f) => f.timestamp,
            MediaFrame::Audio(a) => a.timestamp,
        }
    }
}

/// The error underneath a source failure: an I/O error, a file's parse error
/// (`Y4mError`, `WavError`), a driver's error. Boxed because the layer that defines
/// sources does not know every device's error type; callers can downcast it.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a source could not open or stopped delivering.
///
/// The `Display` text of a variant with a cause includes the cause's text: it becomes the
/// message of the spec's `NotReadableError` and a track's end reason, which are plain
/// strings. The cause itself stays reachable through [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The device or file could not be opened, and nothing underneath says more (no
    /// answer in time, not that kind of device, support not built in).
    #[error("{0}")]
    Open(String),
    /// The device or file named by `what` could not be opened: busy, missing, unreadable
    /// or malformed, as `cause` says.
    #[error("{what}: {cause}")]
    CannotOpen {
        what: String,
        #[source]
        cause: Cause,
    },
    /// The source is gone for good (device unplugged, silent, file vanished): its tracks
    /// end.
    #[error("source ended: {0}")]
    Ended(String),
    /// The source named by `what` is gone for good because of `cause` (a read error from
    /// the file or the driver): its tracks end.
    #[error("source ended: {what}: {cause}")]
    Lost {
        what: String,
        #[source]
        cause: Cause,
    },
    /// The source cannot produce the requested settings.
    #[error("cannot switch to the requested settings: {0}")]
    Unsupported(String),
}

impl SourceError {
    /// `what` could not be opened because of `cause`.
    pub fn cannot_open(what: impl Into<String>, cause: impl Into<Cause>) -> Self {
        SourceError::CannotOpen {
            what: what.into(),
            cause: cause.into(),
        }
    }

    /// `what` is gone because of `cause`.
    pub fn lost(what: impl Into<String>, cause: impl Into<Cause>) -> Self {
        SourceError::Lost {
            what: what.into(),
            cause: cause.into(),
        }
    }
}

/// A source of media as the track machinery drives it, on its own thread.
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

    /// Whether the source cannot provide media now (asked after every frame): its tracks
    /// are then `muted` and deliver that frame black or silent. Default: never (a scripted
    /// device's `mute` event says otherwise).
    fn muted(&self) -> bool {
        false
    }
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
    use std::error::Error as _;

    #[test]
    fn a_cause_is_in_the_message_and_kept_as_the_source() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = SourceError::cannot_open("/tmp/clip.y4m", io);
        assert_eq!(e.to_string(), "/tmp/clip.y4m: no such file");
        let cause = e.source().expect("a cause");
        let io = cause
            .downcast_ref::<std::io::Error>()
            .expect("an io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        let e = SourceError::lost("camera /dev/video0", "read failed".to_string());
        assert_eq!(
            e.to_string(),
            "source ended: camera /dev/video0: read failed"
        );
        assert!(SourceError::Ended("gone".into()).source().is_none());
    }
}
