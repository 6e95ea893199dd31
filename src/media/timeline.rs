//! A track's timeline: where a source's timestamps land on the track it feeds, so a
//! source opened for a running track continues the track's time instead of restarting it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::source::MediaFrame;

/// Moves `frame` later on the timeline by `offset`. The worker holds the only reference
/// to a frame fresh from its source, so this normally writes in place (no pixel copy).
fn shift(frame: &mut MediaFrame, offset: Duration) {
    match frame {
        MediaFrame::Video(f) => Arc::make_mut(f).timestamp += offset,
        MediaFrame::Audio(a) => Arc::make_mut(a).timestamp += offset,
    }
}

/// Maps a source's timestamps onto a track's timeline. A new track's source starts the
/// timeline; a source opened for a running track (a reopen) continues it, so the track's
/// timestamps keep increasing and the gap in them is the real gap between the frames.
pub(super) struct Timeline {
    /// The track's last timestamp and when it was delivered, until the first frame.
    continue_from: Option<(Duration, Instant)>,
    offset: Duration,
}

impl Timeline {
    pub(super) fn new(continue_from: Option<(Duration, Instant)>) -> Self {
        Timeline {
            continue_from,
            offset: Duration::ZERO,
        }
    }

    pub(super) fn place(&mut self, frame: &mut MediaFrame) {
        if let Some((last, at)) = self.continue_from.take() {
            let now = (last + at.elapsed()).max(last + Duration::from_micros(1));
            self.offset = now.saturating_sub(frame.timestamp());
        }
        if !self.offset.is_zero() {
            shift(frame, self.offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::testing::video_at;

    #[test]
    fn a_new_source_continues_the_timeline() {
        // A fresh track: the source's timeline is the track's.
        let mut t = Timeline::new(None);
        let mut f = video_at(0);
        t.place(&mut f);
        assert_eq!(f.timestamp(), Duration::ZERO);
        // A reopen 50 ms after the track's last frame at 5 s: the new source's first frame
        // (its own time zero) lands 50 ms later, and the next ones follow it.
        let at = Instant::now() - Duration::from_millis(50);
        let mut t = Timeline::new(Some((Duration::from_secs(5), at)));
        let mut first = video_at(0);
        t.place(&mut first);
        let ts = first.timestamp();
        assert!(ts >= Duration::from_millis(5050), "{ts:?}");
        assert!(ts < Duration::from_secs(65), "{ts:?}");
        let mut next = video_at(33);
        t.place(&mut next);
        assert_eq!(next.timestamp(), ts + Duration::from_millis(33));
    }
}
