//! A captured stream whose track ends while it is published (its device failed or went
//! away, or its owner stopped its last live track): the stream is withdrawn — gone from `/status`, a new
//! viewer gets 404 — its other tracks are stopped (their devices released) and its viewers
//! are released, as when an ingested stream's publisher leaves. Other streams are not
//! touched. When the track ended because its device was unplugged and a replug is
//! scripted, the name is held vacant until then (`replug.rs`).

use std::sync::Arc;

use super::ingest::release_viewers;
use super::publisher::Sessions;
use super::replug::{reopen_after, vacancy};
use super::stream::Streams;
use crate::sync::lock;
use crate::track::{MediaStreamTrack, TrackState};

/// Watches `track` of the captured stream `name` (on the current tokio runtime; without
/// one, nothing watches it and an ended track leaves its viewers connected but without
/// media).
pub(super) fn watch_track(
    streams: &Arc<Streams>,
    sessions: &Arc<Sessions>,
    name: &str,
    track: &MediaStreamTrack,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::debug!("no runtime: the end of stream {name:?}'s tracks is not watched");
        return;
    };
    let streams = Arc::clone(streams);
    let sessions = Arc::clone(sessions);
    let name = name.to_owned();
    let track = track.clone();
    runtime.spawn(async move {
        let ended = track.ended().await;
        // Still this stream's track? (A flip replaced it, or the stream was published
        // again: nothing to do.) A track its owner stopped while another of the stream's
        // tracks is live leaves the stream published with the rest (as a browser's sender
        // of a stopped track): the owner decides about the others.
        let (withdrawn, held) = {
            let mut streams = lock(&streams);
            let current = streams.get(&name).is_some_and(|p| {
                let tracks = lock(&p.tracks);
                let others_live = tracks
                    .iter()
                    .any(|(t, _)| t.id() != track.id() && t.ready_state() == TrackState::Live);
                p.ingest.is_none()
                    && tracks.iter().any(|(t, _)| t.id() == track.id())
                    && !(ended.reason == "stopped" && others_live)
            });
            let withdrawn = if current { streams.remove(&name) } else { None };
            // Unplugged with a replug to come: the name is held vacant until then.
            let held = withdrawn.as_ref().and_then(|p| {
                let reopen = p.reopen.as_ref()?;
                let wait = reopen.replug_in(&track)?;
                let vacancy = vacancy(reopen);
                streams.insert(name.clone(), Arc::clone(&vacancy));
                Some((vacancy, Arc::clone(reopen), wait))
            });
            (withdrawn, held)
        };
        let Some(published) = withdrawn else {
            return;
        };
        let why = format!(
            "the {} track of stream {name:?} ended ({})",
            track.kind(),
            ended.reason
        );
        if ended.reason == "stopped" {
            tracing::info!("{why}; the stream is withdrawn");
        } else {
            tracing::warn!("{why}; the stream is withdrawn");
        }
        for other in published.tracks() {
            other.stop();
        }
        release_viewers(&sessions, &name, &why).await;
        if let Some((vacancy, reopen, wait)) = held {
            tracing::info!(
                "stream {name:?}: new viewers are told to retry; it is published again at \
                 the replug, in {:.1} s",
                wait.as_secs_f64()
            );
            reopen_after(&streams, &sessions, &name, vacancy, reopen, wait);
        }
    });
}
