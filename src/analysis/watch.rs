//! The threads that read received tracks: each track's decoded frames, subscribed like any
//! track's, fed to its analysis on a thread of its own; the A/V offset paired across the
//! tracks of one receiver. Stopping joins the threads; a report can be taken at any time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::shared::{ReceiverAnalyses, TrackReport};
use crate::sync::lock;
use crate::track::MediaStreamTrack;

/// Frames a track's analysis may fall behind by before frames are dropped (counted).
const QUEUE: usize = 64;
/// How often a waiting thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// Reads the tracks one receiver got (a `view` session, a bot's peer) and reports on them.
#[derive(Default)]
pub struct ReceiveAnalysis {
    analyses: ReceiverAnalyses,
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
        let analysis = self.analyses.track(track.kind(), track.id());
        let frames = track.subscribe(QUEUE);
        let stop = Arc::clone(&self.stop);
        let feed = move |analysis: &super::shared::TrackAnalysis| {
            while !stop.load(Ordering::Relaxed) {
                let frame = match frames.recv_timeout(POLL) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => continue,
                    Err(_) => {
                        analysis.end();
                        break;
                    }
                };
                analysis.set_not_analyzed(frames.dropped());
                analysis.push(&frame);
            }
        };
        let feeder = analysis.clone();
        let handle = std::thread::Builder::new()
            .name(format!("{} analysis", track.kind()))
            .spawn(move || feed(&feeder));
        let handle = match handle {
            Ok(handle) => handle,
            Err(e) => {
                analysis.discard();
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
        self.analyses.report()
    }

    /// Whether any watched track has had a frame.
    pub fn any_media(&self) -> bool {
        self.analyses.any_media()
    }
}

impl Drop for ReceiveAnalysis {
    fn drop(&mut self) {
        self.stop();
    }
}
