//! One receiver's analyses, shared between whatever feeds them (a decoder thread, a
//! [`ReceiveAnalysis`](super::ReceiveAnalysis) thread) and whoever reports: each track's
//! analysis and the A/V offset paired across the receiver's tracks, behind one lock.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::audio::{AudioAnalysis, AudioReport};
use super::av_offset::AvOffset;
use super::video::{VideoAnalysis, VideoReport};
use crate::constraints::MediaKind;
use crate::media::{wall_clock_ms, MediaFrame};
use crate::sync::lock;

/// One track's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackReport {
    pub kind: MediaKind,
    pub id: String,
    #[serde(flatten)]
    pub media: MediaReport,
    /// Frames the analysis had no room for (it fell behind the decoder).
    pub frames_not_analyzed: u64,
}

/// A track's report by kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MediaReport {
    Video(VideoReport),
    Audio {
        #[serde(flatten)]
        audio: AudioReport,
        /// The tone's marker against the pattern's marker block, ms (audio later:
        /// positive); `None` without both markers.
        av_offset_ms: Option<i64>,
    },
}

enum Analysis {
    Video(Box<VideoAnalysis>),
    Audio(AudioAnalysis),
}

struct Watched {
    kind: MediaKind,
    id: String,
    analysis: Analysis,
    not_analyzed: u64,
    /// When the track ended (wall clock ms): reports stop the clock there, so the time
    /// after a sender has gone is not a freeze.
    ended_ms: Option<u64>,
}

#[derive(Default)]
struct Shared {
    tracks: Vec<Watched>,
    av: AvOffset,
}

/// The analyses of one receiver's tracks (a peer connection's, a `view` session's).
/// Cloning shares them.
#[derive(Clone, Default)]
pub struct ReceiverAnalyses {
    shared: Arc<Mutex<Shared>>,
}

/// One track's analysis within its receiver's: fed its decoded frames, reports at any time.
/// Cloning shares it.
#[derive(Clone)]
pub struct TrackAnalysis {
    shared: Arc<Mutex<Shared>>,
    index: usize,
}

impl ReceiverAnalyses {
    pub fn new() -> Self {
        ReceiverAnalyses::default()
    }

    /// A new track's analysis (its audio pairs with this receiver's video for the A/V
    /// offset).
    pub fn track(&self, kind: MediaKind, id: &str) -> TrackAnalysis {
        let mut shared = lock(&self.shared);
        shared.tracks.push(Watched {
            kind,
            id: id.to_owned(),
            analysis: match kind {
                MediaKind::Video => Analysis::Video(Box::default()),
                MediaKind::Audio => Analysis::Audio(AudioAnalysis::new()),
            },
            not_analyzed: 0,
            ended_ms: None,
        });
        TrackAnalysis {
            shared: Arc::clone(&self.shared),
            index: shared.tracks.len() - 1,
        }
    }

    /// Every track's report, now, in the order they were added.
    pub fn report(&self) -> Vec<TrackReport> {
        let now = wall_clock_ms();
        let shared = lock(&self.shared);
        (0..shared.tracks.len())
            .map(|i| report_of(&shared, i, now))
            .collect()
    }

    /// Whether any track has had a frame.
    pub fn any_media(&self) -> bool {
        lock(&self.shared).tracks.iter().any(|w| match &w.analysis {
            Analysis::Video(v) => v.report(0).frames > 0,
            Analysis::Audio(a) => a.report().seconds > 0.0,
        })
    }
}

impl TrackAnalysis {
    /// Takes one decoded frame (its `capture_time_ms` is when it was decoded, wall clock).
    pub fn push(&self, frame: &MediaFrame) {
        let mut shared = lock(&self.shared);
        let Shared { tracks, av } = &mut *shared;
        if let Some(watched) = tracks.get_mut(self.index) {
            analyze(&mut watched.analysis, av, frame);
        }
    }

    /// Frames that never reached the analysis (its feeder fell behind), so far.
    pub fn set_not_analyzed(&self, frames: u64) {
        if let Some(w) = lock(&self.shared).tracks.get_mut(self.index) {
            w.not_analyzed = frames;
        }
    }

    /// Marks the track ended now (the first call counts): its reports are then taken at
    /// that instant, so a freeze cannot grow after the sender has gone.
    pub fn end(&self) {
        if let Some(w) = lock(&self.shared).tracks.get_mut(self.index) {
            w.ended_ms.get_or_insert_with(wall_clock_ms);
        }
    }

    /// This track's report, now.
    pub fn report(&self) -> TrackReport {
        report_of(&lock(&self.shared), self.index, wall_clock_ms())
    }

    /// Takes the track back out if it is still the last one added (a feeder that could
    /// not start).
    pub(super) fn discard(&self) {
        let mut shared = lock(&self.shared);
        if shared.tracks.len() == self.index + 1 {
            shared.tracks.pop();
        }
    }
}

fn report_of(shared: &Shared, index: usize, now: u64) -> TrackReport {
    let w = &shared.tracks[index];
    let now = w.ended_ms.map_or(now, |ended| ended.min(now));
    TrackReport {
        kind: w.kind,
        id: w.id.clone(),
        media: match &w.analysis {
            Analysis::Video(v) => MediaReport::Video(v.report(now)),
            Analysis::Audio(a) => MediaReport::Audio {
                audio: a.report(),
                av_offset_ms: shared.av.median_ms(),
            },
        },
        frames_not_analyzed: w.not_analyzed,
    }
}

fn analyze(analysis: &mut Analysis, av: &mut AvOffset, frame: &MediaFrame) {
    match (analysis, frame) {
        (Analysis::Video(v), MediaFrame::Video(f)) => {
            if let Some(at) = v.push(f.y(), f.width(), f.height(), f.capture_time_ms) {
                av.video(at);
            }
        }
        (Analysis::Audio(a), MediaFrame::Audio(f)) => {
            let samples = f.to_i16();
            for at in a.push(&samples, f.channels, f.sample_rate, f.capture_time_ms) {
                av.audio(at);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::VideoFrame;

    fn grey_at(ms: u64) -> MediaFrame {
        let mut f = VideoFrame::black(320, 240);
        f.planes_mut().0.fill(128);
        f.capture_time_ms = ms;
        MediaFrame::Video(Arc::new(f))
    }

    fn freezes(report: &TrackReport) -> (u64, u64) {
        match &report.media {
            MediaReport::Video(v) => (v.freezes.count, v.freezes.longest_ms),
            MediaReport::Audio { .. } => panic!("audio"),
        }
    }

    #[test]
    fn an_ended_track_does_not_freeze_after_its_end() {
        let analyses = ReceiverAnalyses::new();
        let track = analyses.track(MediaKind::Video, "v");
        let t0 = wall_clock_ms();
        for k in 0..30u64 {
            track.push(&grey_at(t0 + k * 33));
        }
        let last = t0 + 29 * 33;
        // Still live two seconds later: a freeze is going on.
        let live = report_of(&lock(&analyses.shared), 0, last + 2_000);
        assert_eq!(freezes(&live).0, 1);
        // Ended right after its last frame: two seconds later there is no freeze.
        lock(&analyses.shared).tracks[0].ended_ms = Some(last + 10);
        let ended = report_of(&lock(&analyses.shared), 0, last + 2_000);
        assert_eq!(freezes(&ended), (0, 0));
        // end() keeps the first instant it was called.
        track.end();
        assert_eq!(lock(&analyses.shared).tracks[0].ended_ms, Some(last + 10));
    }
}
