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
