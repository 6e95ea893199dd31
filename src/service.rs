//! The media side of `usermedia serve`: published streams (a track set and one encoder per
//! track) and the WHEP sessions viewing them, behind the signaling crate's [`Endpoint`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use usermedia_signaling::{
    Answer, Direction, Endpoint, EndpointError, IceRestart, SessionDescription, SessionInfo,
};

use crate::devices::MediaDevices;
use crate::encode::pipeline::{
    BitrateLadder, CodecConfig, EncodedTrack, TrackEncoders, AUDIO_BITRATE,
};
use crate::encode::{EncodeError, VideoCodec};
use crate::peer::{Peer, PeerError, PeerFactory, PeerState};
use crate::sync::lock;
use crate::track::MediaStreamTrack;
use crate::MediaKind;

/// How long a session may take to connect before it is reaped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A stream: its tracks with their encoders (one per codec its viewers negotiate, started
/// by the first viewer of that codec). Captured streams have their tracks from the start; an
/// ingested (WHIP) one gains them as the publisher's media arrives.
#[derive(Default)]
struct Published {
    tracks: Mutex<Vec<(MediaStreamTrack, TrackEncoders)>>,
    /// The WHIP session feeding it, if ingested.
    ingest: Option<String>,
    /// An ingested stream's tracks as received from the publisher (for their receive-side
    /// counters on `/status`: packets, bytes, decoded frames, PLIs sent, drops).
    received: Mutex<Vec<crate::peer::RemoteTrack>>,
}

impl Published {
    fn encoders(&self) -> Vec<TrackEncoders> {
        lock(&self.tracks).iter().map(|(_, e)| e.clone()).collect()
    }
}

/// The encoders usermedia uses for a track it sends: video in H.264 or VP8, whichever each
/// peer negotiates (H.264 preferred when we offer), at the tiers of `video_bitrate` (a
/// bitrate: the ladder derived from it; or a [`BitrateLadder`]); audio in Opus at 64
/// kbit/s. Each encoder starts when the first peer needs it.
pub fn encode_track(
    track: &MediaStreamTrack,
    video_bitrate: impl Into<BitrateLadder>,
) -> Result<TrackEncoders, EncodeError> {
    encode_track_with(track, video_bitrate, None)
}

/// [`encode_track`] with the video codecs limited: `Some(codec)` sends only that codec,
/// `None` either.
pub fn encode_track_with(
    track: &MediaStreamTrack,
    video_bitrate: impl Into<BitrateLadder>,
    video_codec: Option<VideoCodec>,
) -> Result<TrackEncoders, EncodeError> {
    if track.ready_state() == crate::track::TrackState::Ended {
        return Err(EncodeError::Mismatch(format!(
            "the {} track {:?} has ended",
            track.kind(),
            track.label()
        )));
    }
    Ok(TrackEncoders::new(track, video_bitrate, video_codec))
}

struct Session {
    stream: String,
    peer: Arc<Peer>,
    direction: Direction,
    /// The entity tag: the session id, then a new one per ICE restart.
    etag: String,
}

/// Streams we send and the sessions viewing them.
pub struct Publisher {
    factory: PeerFactory,
    streams: Arc<Mutex<HashMap<String, Arc<Published>>>>,
    /// Bitrates of ingested video transcoded for viewers of another codec.
    ingest_ladder: BitrateLadder,
    /// The video codecs we send: one, or `None` for whichever each viewer offers first.
    video_codec: Option<VideoCodec>,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    devices: Option<Arc<MediaDevices>>,
}

impl Publisher {
    pub fn new(factory: PeerFactory) -> Self {
        Publisher {
            factory,
            streams: Arc::default(),
            ingest_ladder: BitrateLadder::from(1_500_000),
            video_codec: None,
            sessions: Arc::default(),
            devices: None,
        }
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

    /// Reports these devices' use in `/status`.
    pub fn with_devices(mut self, devices: Arc<MediaDevices>) -> Self {
        self.devices = Some(devices);
        self
    }

    /// Publishes `tracks` as `name`: per track one encoder per codec its viewers negotiate
    /// and bitrate tier (H.264 or VP8 at the tiers of `video_bitrate`, Opus at 64 kbit/s),
    /// each started by the first viewer of its codec and tier and shared by every later one.
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
        let published = Published {
            tracks: Mutex::new(list),
            ..Published::default()
        };
        lock(&self.streams).insert(name.to_owned(), Arc::new(published));
        Ok(())
    }

    /// The tracks of stream `name` as they are now: captured tracks, or an ingested
    /// stream's remote tracks (which a bot can subscribe to, record or inspect).
    pub fn tracks(&self, name: &str) -> Vec<MediaStreamTrack> {
        let published = lock(&self.streams).get(name).cloned();
        published
            .map(|p| lock(&p.tracks).iter().map(|(t, _)| t.clone()).collect())
            .unwrap_or_default()
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
    fn watch(&self, id: String, peer: &Arc<Peer>) {
        let sessions = Arc::clone(&self.sessions);
        let streams = Arc::clone(&self.streams);
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
            unpublish_ingest(&streams, &id);
            if let Some(session) = removed {
                tracing::info!("session {id} on {:?} ended", session.stream);
                session.peer.close().await;
            } else if let Some(peer) = weak.upgrade() {
                peer.close().await;
            }
        });
    }

    /// WHIP: answers the publisher's offer and publishes its tracks as they arrive: viewers
    /// of the publisher's codec get its units forwarded (no re-encode; keyframe
    /// requests passed on as PLIs); viewers of another codec get it transcoded, once per
    /// codec.
    async fn ingest(
        &self,
        stream: &str,
        offer: SessionDescription,
    ) -> Result<Answer, EndpointError> {
        let id = uuid::Uuid::new_v4().to_string();
        {
            let mut streams = lock(&self.streams);
            if streams.contains_key(stream) {
                return Err(EndpointError::Conflict(stream.to_owned()));
            }
            streams.insert(
                stream.to_owned(),
                Arc::new(Published {
                    ingest: Some(id.clone()),
                    ..Published::default()
                }),
            );
        }
        let peer = match self.new_peer().await {
            Ok(p) => p,
            Err(e) => {
                unpublish_ingest(&self.streams, &id);
                return Err(e);
            }
        };
        let sdp = match peer.answer(offer.as_str()).await {
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
            for _ in 0..4 {
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

    async fn new_peer(&self) -> Result<Arc<Peer>, EndpointError> {
        match self.factory.create().await {
            Ok(p) => Ok(Arc::new(p)),
            Err(PeerError::TooManyPeers(_)) => Err(EndpointError::TooManySessions {
                retry_after_secs: 5,
            }),
            Err(e) => Err(EndpointError::Internal(e.to_string())),
        }
    }
}

/// The encoders of an ingested track: a passthrough of what the publisher sends (when its
/// codec is one we may send), beside which an encoder of the decoded track starts for any
/// other codec a viewer negotiates.
fn ingest_encoders(
    remote: &crate::peer::RemoteTrack,
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

fn offer_error(e: PeerError) -> EndpointError {
    match e {
        PeerError::Sdp(m) => EndpointError::BadOffer(m),
        other => EndpointError::Internal(other.to_string()),
    }
}

/// Removes the stream fed by ingest session `session`, if any.
/// The stream `name` if WHIP session `session` still feeds it. A late track of an ended
/// session must not land in a new publisher's stream of the same name (nor pin the closed
/// peer's track in its `received`).
fn ingest_target(
    streams: &Mutex<HashMap<String, Arc<Published>>>,
    name: &str,
    session: &str,
) -> Option<Arc<Published>> {
    lock(streams)
        .get(name)
        .filter(|p| p.ingest.as_deref() == Some(session))
        .cloned()
}

fn unpublish_ingest(streams: &Mutex<HashMap<String, Arc<Published>>>, session: &str) {
    lock(streams).retain(|_, p| p.ingest.as_deref() != Some(session));
}

#[async_trait::async_trait]
impl Endpoint for Publisher {
    async fn offer(
        &self,
        direction: Direction,
        stream: &str,
        offer: SessionDescription,
    ) -> Result<Answer, EndpointError> {
        if direction == Direction::Ingest {
            return self.ingest(stream, offer).await;
        }
        let published = lock(&self.streams)
            .get(stream)
            .cloned()
            .ok_or_else(|| EndpointError::UnknownStream(stream.to_owned()))?;
        let encoders = published.encoders();
        if encoders.is_empty() {
            // An ingested stream whose media has not arrived yet.
            return Err(EndpointError::TooManySessions {
                retry_after_secs: 1,
            });
        }
        let peer = self.new_peer().await?;
        let sdp = match peer.answer_with(offer.as_str(), &encoders).await {
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
        let peer = lock(&self.sessions)
            .get(session)
            .map(|s| Arc::clone(&s.peer))
            .ok_or_else(|| EndpointError::UnknownSession(session.to_owned()))?;
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

    async fn restart_ice(
        &self,
        session: &str,
        fragment: &str,
    ) -> Result<IceRestart, EndpointError> {
        let peer = lock(&self.sessions)
            .get(session)
            .map(|s| Arc::clone(&s.peer))
            .ok_or_else(|| EndpointError::UnknownSession(session.to_owned()))?;
        let ours = peer
            .restart_ice_answer(fragment)
            .await
            .map_err(|e| match e {
                PeerError::Sdp(m) => EndpointError::BadOffer(format!("ICE restart: {m}")),
                other => EndpointError::Internal(format!("ICE restart: {other}")),
            })?;
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
        unpublish_ingest(&self.streams, session);
        match removed {
            Some(s) => {
                s.peer.close().await;
                Ok(())
            }
            None => Err(EndpointError::UnknownSession(session.to_owned())),
        }
    }

    async fn status(&self) -> Value {
        let streams: Vec<(String, Arc<Published>)> = lock(&self.streams)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        let sessions: Vec<(String, String, Direction, Arc<Peer>)> = lock(&self.sessions)
            .iter()
            .map(|(id, s)| {
                (
                    id.clone(),
                    s.stream.clone(),
                    s.direction,
                    Arc::clone(&s.peer),
                )
            })
            .collect();
        let mut peers = Vec::new();
        for (id, stream, direction, peer) in &sessions {
            let role = if *direction == Direction::View {
                "viewer"
            } else {
                "publisher"
            };
            peers.push(json!({ "session": id, "stream": stream, "role": role, "stats": peer.stats().await }));
        }
        let streams: Vec<Value> = streams
            .iter()
            .map(|(name, p)| {
                json!({
                    "name": name,
                    "viewers": sessions.iter().filter(|(_, s, d, _)| s == name && *d == Direction::View).count(),
                    "ingested": p.ingest.is_some(),
                    "tracks": lock(&p.tracks).iter().map(|(t, e)| json!({
                        "kind": t.kind(),
                        "label": t.label(),
                        "settings": t.get_settings(),
                        // The encoders running: one per codec and bitrate tier viewers
                        // use (`tier` 0 is the highest; `bitrate` the target now,
                        // `minBitrate`..`maxBitrate` the range it follows its viewers in:
                        // 0.9 × the tier's rung up to the next higher rung (the top rung
                        // for tier 0); `passthrough`: an ingested track's units forwarded
                        // as they came, not encoded here).
                        "encoders": e.running().iter().map(|e| {
                            let mut v = json!(e.stats());
                            if let Some(o) = v.as_object_mut() {
                                o.insert("codec".into(), json!(e.codec().name()));
                            }
                            v
                        }).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                    // Ingested: what arrives from the publisher, per track.
                    "received": lock(&p.received).iter().map(|r| json!({
                        "kind": r.kind(),
                        "mimeType": r.mime_type(),
                        "stats": r.stats(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let devices = self
            .devices
            .as_ref()
            .map(|d| d.devices_in_use())
            .unwrap_or_default();
        json!({ "streams": streams, "peers": peers, "devicesInUse": devices })
    }
}

/// Why publishing to or viewing from a WHIP/WHEP server failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error(transparent)]
    Http(#[from] usermedia_signaling::ClientError),
}

/// A session we opened on another WHIP or WHEP server.
pub struct RemoteSession {
    pub peer: Peer,
    pub http: usermedia_signaling::HttpSession,
}

impl RemoteSession {
    /// Restarts ICE (RFC 9725 section 4.3.3): new local credentials and candidates sent
    /// with `PATCH` + `If-Match: *`, the server's new ones applied from its `200`. Media
    /// keeps its negotiated codecs and DTLS session.
    pub async fn restart_ice(&mut self) -> Result<(), SessionError> {
        let ours = self.peer.restart_ice_offer().await?;
        let theirs = self.http.restart_ice(&ours).await?;
        self.peer.accept_ice_restart(&theirs).await?;
        Ok(())
    }

    /// Ends it: DELETE on the server, then the connection closes.
    pub async fn end(self) -> Result<(), SessionError> {
        let deleted = self.http.end().await;
        self.peer.close().await;
        deleted.map_err(SessionError::from)
    }
}

/// Publishes `tracks` (`&EncodedTrack`s or `&TrackEncoders`: the offer lists each video
/// track's codecs, most preferred first, and the answer's choice decides which encoder
/// feeds the session) to a WHIP endpoint (`url`, e.g. `http://sfu/whip/room1`), trusting
/// the system's roots for https://.
pub async fn publish_whip(
    factory: &PeerFactory,
    url: &str,
    token: Option<&str>,
    tracks: impl IntoIterator<Item = impl Into<TrackEncoders>>,
) -> Result<RemoteSession, SessionError> {
    let client = usermedia_signaling::HttpClient::new()?;
    publish_whip_with(&client, factory, url, token, tracks).await
}

/// [`publish_whip`] through `client` (e.g. one trusting a private CA for https://).
pub async fn publish_whip_with(
    client: &usermedia_signaling::HttpClient,
    factory: &PeerFactory,
    url: &str,
    token: Option<&str>,
    tracks: impl IntoIterator<Item = impl Into<TrackEncoders>>,
) -> Result<RemoteSession, SessionError> {
    let peer = factory.create().await?;
    for t in tracks {
        peer.add_track(t).await?;
    }
    let offer = peer.create_offer().await?;
    let http = client.post_offer(url, token, &offer).await?;
    peer.accept_answer(&http.answer).await?;
    Ok(RemoteSession { peer, http })
}

/// Views a stream from a WHEP endpoint; its tracks arrive as [`Peer::next_remote_track`].
pub async fn view_whep(
    factory: &PeerFactory,
    url: &str,
    token: Option<&str>,
) -> Result<RemoteSession, SessionError> {
    let client = usermedia_signaling::HttpClient::new()?;
    view_whep_with(&client, factory, url, token).await
}

/// [`view_whep`] through `client` (e.g. one trusting a private CA for https://).
pub async fn view_whep_with(
    client: &usermedia_signaling::HttpClient,
    factory: &PeerFactory,
    url: &str,
    token: Option<&str>,
) -> Result<RemoteSession, SessionError> {
    let peer = factory.create().await?;
    peer.add_receiver(MediaKind::Video).await?;
    peer.add_receiver(MediaKind::Audio).await?;
    let offer = peer.create_offer().await?;
    let http = client.post_offer(url, token, &offer).await?;
    peer.accept_answer(&http.answer).await?;
    Ok(RemoteSession { peer, http })
}

/// A participant in a WebSocket call room (`/ws?room=R`): sends its tracks to everyone in
/// the room and receives theirs (full mesh; it offers to those already there).
pub struct CallBot {
    remote: tokio::sync::mpsc::Receiver<crate::peer::RemoteTrack>,
    task: tokio::task::JoinHandle<()>,
}

impl CallBot {
    /// The next track another participant sends.
    pub async fn next_remote_track(
        &mut self,
        timeout: Duration,
    ) -> Option<crate::peer::RemoteTrack> {
        tokio::time::timeout(timeout, self.remote.recv())
            .await
            .ok()
            .flatten()
    }

    /// Leaves the room: closes the socket and every connection.
    pub fn leave(self) {
        self.task.abort();
    }
}

impl Drop for CallBot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Joins the call room at `ws_url` (e.g. `ws://127.0.0.1:8080/ws?room=r1`) with `tracks`.
/// Each connection sends the codec it negotiates (we offer H.264 and VP8 to those already
/// there and answer newcomers with the first of their offer), one encoder per codec.
/// `wss://` rooms are trusted as the system's roots say; see [`join_room_with`] for others.
pub async fn join_room(
    ws_url: &str,
    factory: PeerFactory,
    tracks: Vec<TrackEncoders>,
) -> Result<CallBot, SessionError> {
    let client = usermedia_signaling::HttpClient::new()?;
    join_room_with(&client, ws_url, factory, tracks).await
}

/// [`join_room`] with `client`'s TLS trust for `wss://` (e.g. a private CA).
pub async fn join_room_with(
    client: &usermedia_signaling::HttpClient,
    ws_url: &str,
    factory: PeerFactory,
    tracks: Vec<TrackEncoders>,
) -> Result<CallBot, SessionError> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let http_error = |m: String| {
        SessionError::Http(usermedia_signaling::ClientError::Transport {
            url: ws_url.to_owned(),
            message: m,
        })
    };
    let connector = if ws_url.starts_with("wss://") {
        Some(tokio_tungstenite::Connector::Rustls(
            client.websocket_tls(ws_url)?,
        ))
    } else {
        None
    };
    let (socket, _) =
        tokio_tungstenite::connect_async_tls_with_config(ws_url, None, false, connector)
            .await
            .map_err(|e| http_error(e.to_string()))?;
    let (mut sink, mut stream) = socket.split();
    sink.send(Message::text(json!({ "type": "join" }).to_string()))
        .await
        .map_err(|e| http_error(e.to_string()))?;
    let (remote_tx, remote) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(async move {
        let mut peers: HashMap<String, Arc<Peer>> = HashMap::new();
        // Hands each connection's remote tracks to the bot's owner.
        let forward = |peer: &Arc<Peer>| {
            let weak = Arc::downgrade(peer);
            let tx = remote_tx.clone();
            tokio::spawn(async move {
                while let Some(peer) = weak.upgrade() {
                    let next = peer.next_remote_track(Duration::from_secs(3600)).await;
                    drop(peer);
                    let Some(track) = next else { break };
                    if tx.send(track).await.is_err() {
                        break;
                    }
                }
            });
        };
        while let Some(Ok(message)) = stream.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(msg) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let from = msg["from"].as_str().unwrap_or_default().to_owned();
            let reply = match msg["type"].as_str() {
                Some("peers") => {
                    let mut offers = Vec::new();
                    for id in msg["peers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        let Ok(peer) = factory.create().await else {
                            continue;
                        };
                        let peer = Arc::new(peer);
                        for t in &tracks {
                            let _ = peer.add_track(t).await;
                        }
                        forward(&peer);
                        if let Ok(sdp) = peer.create_offer().await {
                            offers.push(json!({ "type": "offer", "to": id, "sdp": sdp }));
                        }
                        peers.insert(id.to_owned(), peer);
                    }
                    offers
                }
                Some("offer") => {
                    let sdp = msg["sdp"].as_str().unwrap_or_default();
                    let Ok(peer) = factory.create().await else {
                        continue;
                    };
                    let peer = Arc::new(peer);
                    forward(&peer);
                    let answer = peer.answer_with(sdp, &tracks).await;
                    peers.insert(from.clone(), peer);
                    match answer {
                        Ok(sdp) => vec![json!({ "type": "answer", "to": from, "sdp": sdp })],
                        Err(e) => {
                            tracing::warn!("call: cannot answer {from}: {e}");
                            Vec::new()
                        }
                    }
                }
                Some("answer") => {
                    if let (Some(peer), Some(sdp)) = (peers.get(&from), msg["sdp"].as_str()) {
                        if let Err(e) = peer.accept_answer(sdp).await {
                            tracing::warn!("call: answer from {from}: {e}");
                        }
                    }
                    Vec::new()
                }
                Some("leave") => {
                    if let Some(peer) = peers.remove(&from) {
                        peer.close().await;
                    }
                    Vec::new()
                }
                Some("error") => {
                    tracing::warn!("call room: {}", msg["message"]);
                    Vec::new()
                }
                _ => Vec::new(),
            };
            for r in reply {
                if sink.send(Message::text(r.to_string())).await.is_err() {
                    break;
                }
            }
        }
        for (_, peer) in peers.drain() {
            peer.close().await;
        }
    });
    Ok(CallBot { remote, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_track_goes_only_to_its_own_session_stream() {
        let streams = Mutex::new(HashMap::new());
        let ingested = |session: &str| {
            Arc::new(Published {
                ingest: Some(session.to_owned()),
                ..Published::default()
            })
        };
        lock(&streams).insert("cam".to_owned(), ingested("old"));
        assert!(ingest_target(&streams, "cam", "old").is_some());
        // The old session ended and a new publisher took the name.
        unpublish_ingest(&streams, "old");
        assert!(ingest_target(&streams, "cam", "old").is_none());
        lock(&streams).insert("cam".to_owned(), ingested("new"));
        assert!(ingest_target(&streams, "cam", "old").is_none());
        assert!(ingest_target(&streams, "cam", "new").is_some());
        // A captured stream of that name takes no ingested track either.
        lock(&streams).insert("cap".to_owned(), Arc::new(Published::default()));
        assert!(ingest_target(&streams, "cap", "old").is_none());
    }
}
