//! A published stream: its tracks with their encoders, and for an ingested (WHIP) one the
//! session feeding it and its tracks as received.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::replug::Reopen;
use crate::encode::pipeline::TrackEncoders;
use crate::peer::RemoteTrack;
use crate::sync::lock;
use crate::track::MediaStreamTrack;

/// The streams by name.
pub(super) type Streams = Mutex<HashMap<String, Arc<Published>>>;

/// How long the name of an ingested stream whose publisher left (or of a captured one
/// whose device is unplugged) stays *vacant*: viewers get `503` with `Retry-After` (not
/// `404`) until a new publisher takes it (the device is replugged) or this runs out.
pub const VACANT_FOR: Duration = Duration::from_secs(300);

/// A stream: its tracks with their encoders (one per codec its viewers negotiate, started
/// by the first viewer of that codec). Captured streams have their tracks from the start; an
/// ingested (WHIP) one gains them as the publisher's media arrives.
#[derive(Default)]
pub(super) struct Published {
    pub(super) tracks: Mutex<Vec<(MediaStreamTrack, TrackEncoders)>>,
    /// The WHIP session feeding it, if ingested.
    pub(super) ingest: Option<String>,
    /// An ingested stream's tracks as received from the publisher (for their receive-side
    /// counters on `/status`: packets, bytes, decoded frames, PLIs sent, drops).
    pub(super) received: Mutex<Vec<RemoteTrack>>,
    /// Held while the stream's camera is being flipped (one flip at a time).
    pub(super) flipping: Mutex<()>,
    /// When its publisher left (an ingested stream with no publisher now, kept so that
    /// returning viewers are told to retry).
    pub(super) vacated: Option<Instant>,
    /// A captured stream: how to capture and publish it again when its unplugged device
    /// is replugged (none: it is withdrawn for good when a track ends).
    pub(super) reopen: Option<Arc<Reopen>>,
}

impl Published {
    /// A captured stream of `tracks`.
    pub(super) fn captured(tracks: Vec<(MediaStreamTrack, TrackEncoders)>) -> Self {
        Published {
            tracks: Mutex::new(tracks),
            ..Published::default()
        }
    }

    /// An ingested stream fed by WHIP session `session`, its tracks still to come.
    pub(super) fn ingested(session: &str) -> Self {
        Published {
            ingest: Some(session.to_owned()),
            ..Published::default()
        }
    }

    /// The stream `session` fed, vacant since `now`: no tracks, waiting for a publisher.
    pub(super) fn vacated(session: &str, now: Instant) -> Self {
        Published {
            ingest: Some(session.to_owned()),
            vacated: Some(now),
            ..Published::default()
        }
    }

    /// Whether its publisher has left (a new one may take the name).
    pub(super) fn is_vacant(&self) -> bool {
        self.vacated.is_some()
    }

    /// Every track's encoders.
    pub(super) fn encoders(&self) -> Vec<TrackEncoders> {
        lock(&self.tracks).iter().map(|(_, e)| e.clone()).collect()
    }

    /// The tracks as they are now.
    pub(super) fn tracks(&self) -> Vec<MediaStreamTrack> {
        lock(&self.tracks).iter().map(|(t, _)| t.clone()).collect()
    }
}

/// Stream `name` as viewers see it at `now`: a vacancy older than [`VACANT_FOR`] is
/// removed (the name is unknown again).
pub(super) fn lookup(streams: &Streams, name: &str, now: Instant) -> Option<Arc<Published>> {
    let mut streams = lock(streams);
    let expired = streams
        .get(name)?
        .vacated
        .is_some_and(|t| now.saturating_duration_since(t) >= VACANT_FOR);
    if expired {
        streams.remove(name);
        return None;
    }
    streams.get(name).cloned()
}

/// Removes every vacancy older than [`VACANT_FOR`] at `now`.
pub(super) fn prune_vacancies(streams: &mut HashMap<String, Arc<Published>>, now: Instant) {
    streams.retain(|_, p| {
        p.vacated
            .is_none_or(|t| now.saturating_duration_since(t) < VACANT_FOR)
    });
}
