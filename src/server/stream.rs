//! A published stream: its tracks with their encoders, and for an ingested (WHIP) one the
//! session feeding it and its tracks as received.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::encode::pipeline::TrackEncoders;
use crate::peer::RemoteTrack;
use crate::sync::lock;
use crate::track::MediaStreamTrack;

/// The streams by name.
pub(super) type Streams = Mutex<HashMap<String, Arc<Published>>>;

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

    /// Every track's encoders.
    pub(super) fn encoders(&self) -> Vec<TrackEncoders> {
        lock(&self.tracks).iter().map(|(_, e)| e.clone()).collect()
    }

    /// The tracks as they are now.
    pub(super) fn tracks(&self) -> Vec<MediaStreamTrack> {
        lock(&self.tracks).iter().map(|(t, _)| t.clone()).collect()
    }
}
