//! WHIP ingest: a remote publisher's tracks published as a stream, forwarded as they come
//! to viewers of the publisher's codec and transcoded for the others.

use std::sync::Arc;
use std::time::Instant;

use usermedia_signaling::{Answer, Direction, EndpointError, SessionDescription};

use super::encoders::encode_track_with;
use super::publisher::{offer_error, PublishGuard, Publisher, Session, Sessions, CONNECT_TIMEOUT};
use super::stream::{prune_vacancies, Published, Streams};
use crate::encode::pipeline::{
    BitrateLadder, CodecConfig, EncodedTrack, TrackEncoders, AUDIO_BITRATE,
};
use crate::encode::{EncodeError, VideoCodec};
use crate::peer::{AnswerRole, RemoteTrack};
use crate::sync::lock;

/// Tracks a publisher sends at most (audio and video, with room to spare).
const MAX_INGESTED_TRACKS: usize = 4;

impl Publisher {
    /// WHIP: answers the publisher's offer and publishes its tracks as they arrive: viewers
    /// of the publisher's codec get its units forwarded (no re-encode; keyframe
    /// requests passed on as PLIs); viewers of another codec get it transcoded, once per
    /// codec.
    pub(super) async fn ingest(
        &self,
        stream: &str,
        offer: SessionDescription,
    ) -> Result<Answer, EndpointError> {
        let id = uuid::Uuid::new_v4().to_string();
        {
            let mut streams = lock(&self.streams);
            prune_vacancies(&mut streams, Instant::now());
            // A vacant name (its publisher left) is taken over.
            if streams.get(stream).is_some_and(|p| !p.is_vacant()) {
                return Err(EndpointError::Conflict(stream.to_owned()));
            }
            streams.insert(stream.to_owned(), Arc::new(Published::ingested(&id)));
        }
        // Rolled back if this future is dropped (the client hung up) before the session exists.
        let guard = PublishGuard::new(&self.streams, &id);
        let peer = match self.new_peer().await {
            Ok(p) => p,
            Err(e) => {
                unpublish_ingest(&self.streams, &id);
                return Err(e);
            }
        };
        // A publisher's answer never sends.
        let no_tracks = std::iter::empty::<TrackEncoders>();
        let sdp = match peer
            .answer_as(offer.as_str(), AnswerRole::Receive, no_tracks)
            .await
        {
            Ok(sdp) => sdp,
            Err(e) => {
                unpublish_ingest(&self.streams, &id);
                peer.close().await;
                return Err(offer_error(e));
            }
        };
        tracing::info!("session {id}: publishing {stream:?}");
        lock(&self.sessions).insert(
            id.clone(),
            Session {
                stream: stream.to_owned(),
                peer: Arc::clone(&peer),
                direction: Direction::Ingest,
                etag: id.clone(),
            },
        );
        self.watch(id.clone(), &peer);
        guard.keep();
        let (streams, name, bitrate, video_codec) = (
            Arc::clone(&self.streams),
            stream.to_owned(),
            self.ingest_ladder.clone(),
            self.video_codec,
        );
        let weak = Arc::downgrade(&peer);
        let session = id.clone();
        tokio::spawn(async move {
            // Tracks appear with their first packets; a publisher sends at most a few.
            for _ in 0..MAX_INGESTED_TRACKS {
                let Some(peer) = weak.upgrade() else { break };
                let Some(remote) = peer.next_remote_track(CONNECT_TIMEOUT).await else {
                    break;
                };
                // Ours only: once this session has ended, a new publisher may hold the name.
                let Some(published) = ingest_target(&streams, &name, &session) else {
                    break;
                };
                match ingest_encoders(&remote, bitrate.clone(), video_codec) {
                    Ok(e) => {
                        lock(&published.tracks).push((remote.track().clone(), e));
                        lock(&published.received).push(remote);
                    }
                    Err(e) => tracing::warn!("ingested {} of {name:?}: {e}", remote.kind()),
                }
            }
        });
        Ok(Answer { session: id, sdp })
    }
}

/// The encoders of an ingested track: a passthrough of what the publisher sends (when its
/// codec is one we may send), beside which an encoder of the decoded track starts for any
/// other codec a viewer negotiates.
fn ingest_encoders(
    remote: &RemoteTrack,
    video_bitrate: BitrateLadder,
    video_codec: Option<VideoCodec>,
) -> Result<TrackEncoders, EncodeError> {
    let codec = match remote.video_codec() {
        Some(c) if VideoCodec::allowed(video_codec).contains(&c) => {
            CodecConfig::video(c, video_bitrate.max())
        }
        // A codec we may not send: transcoding only.
        Some(_) => return encode_track_with(remote.track(), video_bitrate, video_codec),
        None => CodecConfig::Opus {
            bitrate: AUDIO_BITRATE,
        },
    };
    if remote.ended() {
        return Err(EncodeError::Mismatch(format!(
            "the ingested {} track has ended",
            remote.kind()
        )));
    }
    let (passthrough, feeder) = EncodedTrack::passthrough(codec, remote.keyframe_requester());
    let encoders =
        TrackEncoders::with_passthrough(remote.track(), video_bitrate, video_codec, passthrough)?;
    remote.forward_encoded(move |unit| feeder.push(unit));
    tracing::info!(
        "forwarding the ingested {} track as it comes ({})",
        remote.kind(),
        codec.name()
    );
    Ok(encoders)
}

/// The stream `name` if WHIP session `session` still feeds it. A late track of an ended
/// session must not land in a new publisher's stream of the same name (nor pin the closed
/// peer's track in its `received`).
fn ingest_target(streams: &Streams, name: &str, session: &str) -> Option<Arc<Published>> {
    lock(streams)
        .get(name)
        .filter(|p| p.ingest.as_deref() == Some(session) && !p.is_vacant())
        .cloned()
}

/// The publisher of ingest session `session` is gone: its stream, if it still feeds one,
/// is left vacant (viewers told to retry until a new publisher arrives). Returns the
/// stream's name.
pub(super) fn vacate_ingest(streams: &Streams, session: &str, now: Instant) -> Option<String> {
    let mut streams = lock(streams);
    prune_vacancies(&mut streams, now);
    let name = streams
        .iter()
        .find(|(_, p)| p.ingest.as_deref() == Some(session) && !p.is_vacant())
        .map(|(name, _)| name.clone())?;
    streams.insert(name.clone(), Arc::new(Published::vacated(session, now)));
    Some(name)
}

/// Ends every viewer session of `stream`, whose publisher has gone or whose track has
/// ended (`why`, for the log): their peers are closed, so WHEP clients and the served page
/// see the end and can come back.
pub(super) async fn release_viewers(sessions: &Sessions, stream: &str, why: &str) {
    let released: Vec<(String, Session)> = {
        let mut sessions = lock(sessions);
        let ids: Vec<String> = sessions
            .iter()
            .filter(|(_, s)| s.stream == stream && s.direction == Direction::View)
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| sessions.remove(&id).map(|s| (id, s)))
            .collect()
    };
    for (id, session) in released {
        tracing::info!("session {id}: {why}; the viewer is released");
        session.peer.close().await;
    }
}

/// Removes the stream fed by ingest session `session`, if any.
pub(super) fn unpublish_ingest(streams: &Streams, session: &str) {
    lock(streams).retain(|_, p| p.ingest.as_deref() != Some(session));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[test]
    fn a_late_track_goes_only_to_its_own_session_stream() {
        let streams: Streams = Mutex::new(HashMap::new());
        let ingested = |session: &str| Arc::new(Published::ingested(session));
        lock(&streams).insert("cam".to_owned(), ingested("old"));
        assert!(ingest_target(&streams, "cam", "old").is_some());
        // The old session ended and a new publisher took the name.
        unpublish_ingest(&streams, "old");
        assert!(ingest_target(&streams, "cam", "old").is_none());
        lock(&streams).insert("cam".to_owned(), ingested("new"));
        assert!(ingest_target(&streams, "cam", "old").is_none());
        assert!(ingest_target(&streams, "cam", "new").is_some());
        // A publisher gone: its stream is vacant, takes no late track, and the next
        // vacate of the same session finds nothing.
        let now = Instant::now();
        assert_eq!(vacate_ingest(&streams, "new", now).as_deref(), Some("cam"));
        assert!(lock(&streams)["cam"].is_vacant());
        assert!(ingest_target(&streams, "cam", "new").is_none());
        assert_eq!(vacate_ingest(&streams, "new", now), None);
        // Vacant for a while, then unknown.
        assert!(super::super::stream::lookup(&streams, "cam", now).is_some());
        let later = now + super::super::stream::VACANT_FOR;
        assert!(super::super::stream::lookup(&streams, "cam", later).is_none());
        assert!(!lock(&streams).contains_key("cam"));
        // A captured stream of that name takes no ingested track either.
        lock(&streams).insert("cap".to_owned(), Arc::new(Published::default()));
        assert!(ingest_target(&streams, "cap", "old").is_none());
    }
}
