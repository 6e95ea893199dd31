//! The media layer under tracks and devices: what a source is ([`Source`], the
//! [`MediaFrame`] it yields, the [`SourceError`] it fails with), how a track (re)opens a
//! device's source without knowing devices ([`SourceOpener`]), real-time pacing, the
//! device-thread limits hardware sources live by, and frame delivery — the worker thread
//! that runs one source for the tracks attached to it, each track's subscribers and
//! timeline, and the count of open sources per device — and the quality a receiver reads
//! from the pattern's strip on the frames it decoded.
//!
//! Dependencies run one way: `devices` → `track` → `media` → (`constraints`, `frame`).

mod delivery;
// Its helpers serve the hardware sources (camera, microphone) only.
#[cfg_attr(not(feature = "hardware"), allow(dead_code))]
mod device_thread;
mod events;
mod opener;
mod pacing;
mod quality;
mod source;
mod timeline;
mod usage;
mod worker;

pub use delivery::{FrameReceiver, TrackEnded};
pub use device_thread::{
    stall_limit, DEVICE_CLOSE_LIMIT, DEVICE_FIRST_FRAME_LIMIT, DEVICE_OPEN_LIMIT,
    DEVICE_STALL_LIMIT,
};
pub use events::{TrackEvent, TrackEventReceiver};
pub use opener::SourceOpener;
pub use pacing::{frame_interval, wall_clock_ms, Pacer};
pub use quality::{
    Freezes, Latency, QualityAnalyzer, QualityReport, StripFrame, FREEZE_INTERVALS, MAX_LATENCY_MS,
    QUALITY_WINDOW,
};
pub use source::{Cause, MediaFrame, Source, SourceError};

pub(crate) use delivery::TrackOutput;
#[cfg_attr(not(feature = "hardware"), allow(unused_imports))]
pub(crate) use device_thread::{join_device_thread, recv_from_device, wait_until_open};
pub(crate) use opener::{not_readable, open_readable};
pub(crate) use source::{audio_settings, video_settings};
pub(crate) use usage::UsageRegistry;
pub(crate) use worker::Worker;

#[cfg(test)]
pub(crate) mod testing {
    //! What the media layer's tests share.
    use std::sync::Arc;
    use std::time::Duration;

    use super::MediaFrame;
    use crate::frame::VideoFrame;

    /// A 16×16 black video frame stamped `ms` into its source's timeline.
    pub(crate) fn video_at(ms: u64) -> MediaFrame {
        MediaFrame::Video(Arc::new(
            VideoFrame::black(16, 16).with_times(Duration::from_millis(ms), 0),
        ))
    }
}
