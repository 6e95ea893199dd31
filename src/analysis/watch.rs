//! The threads that read received tracks: each track's decoded frames, subscribed like any
//! track's, fed to its analysis on a thread of its own; the A/V offset paired across the
//! tracks of one receiver. Stopping joins the threads; a report can be taken at any time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use super::audio::{AudioAnalysis, AudioReport};
use super::av_offset::AvOffset;
use super::video::{VideoAnalysis, VideoReport};
use crate::constraints::MediaKind;
use crate::media::{wall_clock_ms, MediaFrame};
use crate::sync::lock;
use crate::track::MediaStreamTrack;

/// Frames a track's analysis may fall behind by before frames are dropped (counted).
const QUEUE: usize = 64;
/// How often a waiting thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);

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

/// Reads the tracks one receiver got (a `view` session, a bot's peer) and reports on them.
#[derive(Default)]
pub struct ReceiveAnalysis {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl ReceiveAnalysis {
    pub fn new() -> Self {
        ReceiveAnalysis::default()
    }

    /// Starts reading `track`'s frames on a thread of its own, until it ends or
    /// [`stop`](Self::stop).
    pub fn watch(&self, track: &MediaStreamTrack) -> std::io::Result<()> {
        let index = {
            let mut shared = lock(&self.shared);
            shared.tracks.push(Watched {
                kind: track.kind(),
                id: track.id().to_owned(),
                analysis: match track.kind() {
                    MediaKind::Video => Analysis::Video(Box::default()),
                    MediaKind::Audio => Analysis::Audio(AudioAnalysis::new()),
                },
                not_analyzed: 0,
            });
            shared.tracks.len() - 1
        };
        let frames = track.subscribe(QUEUE);
        let shared = Arc::clone(&self.shared);
        let stop = Arc::clone(&self.stop);
        let handle = std::thread::Builder::new()
            .name(format!("{} analysis", track.kind()))
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let frame = match frames.recv_timeout(POLL) {
                        Ok(Some(frame)) => frame,
                        Ok(None) => continue,
                        Err(_) => break,
                    };
                    let mut shared = lock(&shared);
                    let Shared { tracks, av } = &mut *shared;
                    let watched = &mut tracks[index];
                    watched.not_analyzed = frames.dropped();
                    analyze(&mut watched.analysis, av, &frame);
                }
            });
        let handle = match handle {
            Ok(handle) => handle,
            Err(e) => {
                let mut shared = lock(&self.shared);
                if shared.tracks.len() == index + 1 {
                    shared.tracks.pop();
                }
                return Err(e);
            }
        };
        lock(&self.threads).push(handle);
        Ok(())
    }

    /// Stops reading (every thread joined); reports stay available.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let threads: Vec<JoinHandle<()>> = lock(&self.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }

    /// Every watched track's report, now.
    pub fn report(&self) -> Vec<TrackReport> {
        let now = wall_clock_ms();
        let shared = lock(&self.shared);
        shared
            .tracks
            .iter()
            .map(|w| TrackReport {
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
            })
            .collect()
    }

    /// Whether any watched track has had a frame.
    pub fn any_media(&self) -> bool {
        lock(&self.shared).tracks.iter().any(|w| match &w.analysis {
            Analysis::Video(v) => v.report(0).frames > 0,
            Analysis::Audio(a) => a.report().seconds > 0.0,
        })
    }
}

impl Drop for ReceiveAnalysis {
    fn drop(&mut self) {
        self.stop();
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
