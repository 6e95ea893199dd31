//! [`Publisher`]: the streams we send and the WHEP/WHIP sessions on them, as the signaling
//! crate's [`Endpoint`] — offers answered, trickle, ICE restarts, sessions ended or reaped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use usermedia_signaling::{
    Answer, Direction, Endpoint, EndpointError, IceRestart, PermissionDecision, PermissionRequest,
    SessionDescription, SessionInfo, UnknownRequest,
};

use super::encoders::encode_track_with;
use super::flip::FlipError;
use super::ingest::{release_viewers, unpublish_ingest, vacate_ingest};
use super::replug::Reopen;
use super::status::Status;
use super::stream::{lookup, Published, Streams};
use super::track_end::watch_track;
use super::trim::Trimmer;
use crate::devices::MediaDevices;
use crate::encode::pipeline::BitrateLadder;
use crate::encode::{EncodeError, VideoCodec};
use crate::peer::impair::ImpairSchedule;
use crate::peer::{AnswerRole, Peer, PeerError, PeerFactory, PeerState};
use crate::sync::lock;
use crate::track::MediaStreamTrack;

/// How long a session may take to connect before it is reaped (the signaling server counts
/// a client address's sessions that have not connected for as long, at most
/// `max_pending_per_address` of them).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// An open session: a viewer (WHEP) or a publisher (WHIP) of a stream.
pub(super) struct Session {
    pub(super) stream: String,
    pub(super) peer: Arc<Peer>,
    pub(super) direction: Direction,
    /// The entity tag: the session id, then a new one per ICE restart.
    pub(super) etag: String,
}

/// The sessions by id.
pub(super) type Sessions = Mutex<HashMap<String, Session>>;

/// A WHIP publish in progress: the stream name is taken before the offer's awaits, so a
/// client hanging up mid-request (the handler future dropped at an await) must give it
/// back. Dropped armed, it unpublishes the session's stream; [`PublishGuard::keep`] once
/// the session is registered (from then on ending the session unpublishes it).
pub(super) struct PublishGuard {
    streams: Arc<Streams>,
    session: String,
    armed: bool,
}

impl PublishGuard {
    pub(super) fn new(streams: &Arc<Streams>, session: &str) -> Self {
        PublishGuard {
            streams: Arc::clone(streams),
            session: session.to_owned(),
            armed: true,
        }
    }

    /// The publish is complete: nothing to roll back.
    pub(super) fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for PublishGuard {
    fn drop(&mut self) {
        if self.armed {
            tracing::info!(
                "session {}: the WHIP request went away before its answer; unpublished",
                self.session
            );
            unpublish_ingest(&self.streams, &self.session);
        }
    }
}

/// Streams we send and the sessions viewing them.
pub struct Publisher {
    factory: PeerFactory,
    /// Makes the viewers' peers: `factory`, or its impaired twin
    /// ([`with_viewer_impairment`](Self::with_viewer_impairment)).
    viewer_factory: PeerFactory,
    pub(super) streams: Arc<Streams>,
    /// Bitrates of ingested video transcoded for viewers of another codec.
    pub(super) ingest_ladder: BitrateLadder,
    /// The video codecs we send: one, or `None` for whichever each viewer offers first.
    pub(super) video_codec: Option<VideoCodec>,
    pub(super) sessions: Arc<Sessions>,
    /// The devices streams are captured from: `/status` reports their use, a flip opens
    /// the other camera from them.
    pub(super) devices: Option<Arc<MediaDevices>>,
    /// Hands the memory of ended sessions back to the system.
    trimmer: Arc<Trimmer>,
    /// Captures and publishes a stream again when its unplugged device is replugged.
    reopen_on_replug: bool,
}

impl Publisher {
    pub fn new(factory: PeerFactory) -> Self {
        Publisher {
            viewer_factory: factory.clone(),
            factory,
            streams: Arc::default(),
            ingest_ladder: BitrateLadder::from(1_500_000),
            video_codec: None,
            sessions: Arc::default(),
            devices: None,
            trimmer: Arc::default(),
            reopen_on_replug: true,
        }
    }

    /// Impairs each viewer's path by `schedule` (`--impair-viewers`), independently: the
    /// `n`-th viewer's draws come from seeds derived from the schedule's seed and `n`.
    /// Publishers (WHIP) are not impaired.
    pub fn with_viewer_impairment(mut self, schedule: Option<ImpairSchedule>) -> Self {
        self.viewer_factory = self.factory.with_impairment(schedule);
        self
    }

    /// Sends video only in `codec` (`None`: H.264 or VP8, the first a viewer offers).
    pub fn with_video_codec(mut self, codec: Option<VideoCodec>) -> Self {
        self.video_codec = codec;
        self
    }

    /// Transcodes ingested video (for viewers of a codec other than the publisher's) at
    /// these tiers (default: derived from 1.5 Mbit/s).
    pub fn with_ingest_ladder(mut self, ladder: impl Into<BitrateLadder>) -> Self {
        self.ingest_ladder = ladder.into();
        self
    }

    /// Reports these devices' use in `/status` and `/indicator`, lists and answers their
    /// permission prompt's requests (`/permissions`), and flips cameras among them
    /// ([`flip`](Self::flip)).
    pub fn with_devices(mut self, devices: Arc<MediaDevices>) -> Self {
        self.devices = Some(devices);
        self
    }

    /// Whether a captured stream whose device is unplugged (a devices-file `unplug`) is
    /// captured again from the same constraints and published under the same name at the
    /// device's scripted replug, new viewers getting `503` with `Retry-After` meanwhile
    /// (default: yes; needs [`with_devices`](Self::with_devices)). Without it, or without a
    /// replug to come, the stream is withdrawn for good, as for a failure.
    pub fn with_reopen_on_replug(mut self, reopen: bool) -> Self {
        self.reopen_on_replug = reopen;
        self
    }

    /// Publishes `tracks` as `name`: per track one encoder per codec its viewers negotiate
    /// and bitrate tier (H.264 or VP8 at the tiers of `video_bitrate`, Opus at 64 kbit/s),
    /// each started by the first viewer of its codec and tier and shared by every later one.
    ///
    /// When one of the tracks ends while published (its device failed or was unplugged,
    /// or it was stopped), the stream is withdrawn: its other tracks are stopped and its
    /// viewers' sessions end (watched on the tokio runtime this is called on, if any). An
    /// unplugged device with a replug to come: see
    /// [`with_reopen_on_replug`](Self::with_reopen_on_replug).
    pub fn publish(
        &self,
        name: &str,
        tracks: Vec<MediaStreamTrack>,
        video_bitrate: impl Into<BitrateLadder>,
    ) -> Result<(), EncodeError> {
        let ladder = video_bitrate.into();
        let mut list = Vec::new();
        for t in tracks {
            let e = encode_track_with(&t, ladder.clone(), self.video_codec)?;
            list.push((t, e));
        }
        let tracks: Vec<MediaStreamTrack> = list.iter().map(|(t, _)| t.clone()).collect();
        let mut published = Published::captured(list);
        if self.reopen_on_replug {
            if let Some(devices) = &self.devices {
                published.reopen = Reopen::of(devices, &tracks, &ladder, self.video_codec);
            }
        }
        lock(&self.streams).insert(name.to_owned(), Arc::new(published));
        for track in &tracks {
            watch_track(&self.streams, &self.sessions, name, track);
        }
        Ok(())
    }

    /// The tracks of stream `name` as they are now: captured tracks, or an ingested
    /// stream's remote tracks (which a bot can subscribe to, record or inspect).
    pub fn tracks(&self, name: &str) -> Vec<MediaStreamTrack> {
        let published = lock(&self.streams).get(name).cloned();
        published.map(|p| p.tracks()).unwrap_or_default()
    }

    /// Sessions open now.
    pub fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Closes every session (shutdown).
    pub async fn close_all(&self) {
        let sessions: Vec<Session> = lock(&self.sessions).drain().map(|(_, s)| s).collect();
        for s in sessions {
            s.peer.close().await;
        }
    }

    /// Removes the session when its peer fails or closes; reaps it if it never connects.
    pub(super) fn watch(&self, id: String, peer: &Arc<Peer>) {
        let sessions = Arc::clone(&self.sessions);
        let streams = Arc::clone(&self.streams);
        let trimmer = Arc::clone(&self.trimmer);
        let weak = Arc::downgrade(peer);
        let mut state = peer.watch_state();
        tokio::spawn(async move {
            let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
                loop {
                    match *state.borrow_and_update() {
                        PeerState::Connected => return true,
                        PeerState::Failed | PeerState::Closed => return false,
                        _ => {}
                    }
                    if state.changed().await.is_err() {
                        return false;
                    }
                }
            })
            .await
            .unwrap_or(false);
            if connected {
                while state.changed().await.is_ok() {
                    if matches!(*state.borrow(), PeerState::Failed | PeerState::Closed) {
                        break;
                    }
                }
            }
            let removed = lock(&sessions).remove(&id);
            // A publisher gone: its viewers are released, its stream left vacant.
            if let Some(name) = vacate_ingest(&streams, &id, Instant::now()) {
                release_viewers(&sessions, &name, &format!("the publisher of {name:?} left")).await;
            }
            if let Some(session) = removed {
                tracing::info!("session {id} on {:?} ended", session.stream);
                session.peer.close().await;
            } else if let Some(peer) = weak.upgrade() {
                peer.close().await;
            }
            trimmer.session_ended();
        });
    }

    pub(super) async fn new_peer(&self) -> Result<Arc<Peer>, EndpointError> {
        self.factory
            .create()
            .await
            .map(Arc::new)
            .map_err(create_error)
    }

    async fn new_viewer_peer(&self) -> Result<Arc<Peer>, EndpointError> {
        self.viewer_factory
            .create()
            .await
            .map(Arc::new)
            .map_err(create_error)
    }

    /// The peer of session `session`.
    fn peer(&self, session: &str) -> Result<Arc<Peer>, EndpointError> {
        lock(&self.sessions)
            .get(session)
            .map(|s| Arc::clone(&s.peer))
            .ok_or_else(|| EndpointError::UnknownSession(session.to_owned()))
    }
}

#[async_trait::async_trait]
impl Endpoint for Publisher {
    type Status = Status;

    async fn offer(
        &self,
        direction: Direction,
        stream: &str,
        offer: SessionDescription,
    ) -> Result<Answer, EndpointError> {
        if direction == Direction::Ingest {
            return self.ingest(stream, offer).await;
        }
        let published = lookup(&self.streams, stream, Instant::now())
            .ok_or_else(|| EndpointError::UnknownStream(stream.to_owned()))?;
        let encoders = published.encoders();
        if encoders.is_empty() {
            // An ingested stream whose media has not arrived yet.
            return Err(EndpointError::TooManySessions {
                retry_after_secs: 1,
            });
        }
        let peer = self.new_viewer_peer().await?;
        // A viewer's answer never receives: sending m-lines in its offer are answered
        // `inactive` and nothing it sends is decoded.
        let sdp = match peer
            .answer_as(offer.as_str(), AnswerRole::Send, &encoders)
            .await
        {
            Ok(sdp) => sdp,
            Err(e) => {
                peer.close().await;
                return Err(offer_error(e));
            }
        };
        let id = uuid::Uuid::new_v4().to_string();
        tracing::info!("session {id}: a viewer of {stream:?}");
        lock(&self.sessions).insert(
            id.clone(),
            Session {
                stream: stream.to_owned(),
                peer: Arc::clone(&peer),
                direction: Direction::View,
                etag: id.clone(),
            },
        );
        self.watch(id.clone(), &peer);
        Ok(Answer { session: id, sdp })
    }

    async fn trickle(&self, session: &str, fragment: &str) -> Result<(), EndpointError> {
        let peer = self.peer(session)?;
        // Candidates of another ICE generation: a restart sent as trickle.
        let given = fragment
            .lines()
            .find_map(|l| l.trim_end_matches('\r').strip_prefix("a=ice-ufrag:"));
        if let (Some(given), Some(current)) = (given, peer.remote_ice_ufrag().await) {
            if given.trim() != current {
                return Err(EndpointError::PreconditionRequired(format!(
                    "the fragment's ice-ufrag {given:?} is not the session's ({current:?}); \
                     new ICE credentials are an ICE restart, which needs If-Match: *"
                )));
            }
        }
        peer.add_candidates(fragment)
            .await
            .map(|_| ())
            .map_err(|e| EndpointError::BadOffer(e.to_string()))
    }

    async fn session(&self, session: &str) -> Option<SessionInfo> {
        lock(&self.sessions).get(session).map(|s| SessionInfo {
            stream: s.stream.clone(),
            direction: s.direction,
            etag: s.etag.clone(),
        })
    }

    async fn connected(&self, session: &str) -> bool {
        self.peer(session)
            .is_ok_and(|p| *p.watch_state().borrow() == PeerState::Connected)
    }

    async fn restart_ice(
        &self,
        session: &str,
        fragment: &str,
    ) -> Result<IceRestart, EndpointError> {
        let peer = self.peer(session)?;
        let ours = peer
            .restart_ice_answer(fragment)
            .await
            .map_err(restart_error)?;
        let etag = uuid::Uuid::new_v4().simple().to_string();
        match lock(&self.sessions).get_mut(session) {
            Some(s) => s.etag.clone_from(&etag),
            None => return Err(EndpointError::UnknownSession(session.to_owned())),
        }
        Ok(IceRestart {
            fragment: ours,
            etag,
        })
    }

    async fn end(&self, session: &str) -> Result<(), EndpointError> {
        let removed = lock(&self.sessions).remove(session);
        if let Some(name) = vacate_ingest(&self.streams, session, Instant::now()) {
            release_viewers(
                &self.sessions,
                &name,
                &format!("the publisher of {name:?} left"),
            )
            .await;
        }
        match removed {
            Some(s) => {
                s.peer.close().await;
                Ok(())
            }
            None => Err(EndpointError::UnknownSession(session.to_owned())),
        }
    }

    async fn flip(&self, stream: &str) -> Result<serde_json::Value, EndpointError> {
        match self.flip_blocking(stream).await {
            Ok(camera) => serde_json::to_value(camera)
                .map_err(|e| EndpointError::Internal(format!("the flip's report: {e}"))),
            Err(FlipError::UnknownStream(s)) => Err(EndpointError::UnknownStream(s)),
            Err(
                e @ (FlipError::CannotFlip { .. }
                | FlipError::Open {
                    source: crate::error::MediaError::NotAllowedError { .. },
                    ..
                }),
            ) => Err(EndpointError::Unprocessable(e.to_string())),
            Err(e) => Err(EndpointError::Internal(e.to_string())),
        }
    }

    async fn status(&self) -> Status {
        Status::of(&self.streams, &self.sessions, self.devices.as_deref()).await
    }

    async fn permission_requests(&self) -> Vec<PermissionRequest> {
        super::permissions::requests(self.devices.as_deref())
    }

    async fn answer_permission(
        &self,
        id: &str,
        decision: PermissionDecision,
    ) -> Result<(), UnknownRequest> {
        super::permissions::answer(self.devices.as_deref(), id, decision)
    }

    async fn indicator(&self) -> Option<serde_json::Value> {
        super::permissions::indicator(self.devices.as_deref())
    }
}

// How a peer's failure reads over HTTP. The only place the server looks into
// `PeerError`'s variants: a description the peer cannot take is the client's (400),
// capacity is 503, anything else is ours (500).

/// A peer that cannot be created: at capacity, or an internal failure.
fn create_error(e: PeerError) -> EndpointError {
    match e {
        PeerError::TooManyPeers(_) => EndpointError::TooManySessions {
            retry_after_secs: 5,
        },
        e => EndpointError::Internal(e.to_string()),
    }
}

/// An offer the peer cannot answer.
pub(super) fn offer_error(e: PeerError) -> EndpointError {
    match e {
        PeerError::Sdp(m) => EndpointError::BadOffer(m),
        PeerError::SdpRejected { context, source } => {
            EndpointError::BadOffer(format!("{context}: {source}"))
        }
        other => EndpointError::Internal(other.to_string()),
    }
}

/// An ICE restart the peer cannot carry out.
fn restart_error(e: PeerError) -> EndpointError {
    match e {
        PeerError::Sdp(m) => EndpointError::BadOffer(format!("ICE restart: {m}")),
        PeerError::SdpRejected { context, source } => {
            EndpointError::BadOffer(format!("ICE restart: {context}: {source}"))
        }
        other => EndpointError::Internal(format!("ICE restart: {other}")),
    }
}
