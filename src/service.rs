//! The media side of `usermedia serve`: published streams (a track set and one encoder per
//! track) and the WHEP sessions viewing them, behind the signaling crate's [`Endpoint`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use usermedia_signaling::{Answer, Direction, Endpoint, EndpointError, SessionDescription};

use crate::devices::MediaDevices;
use crate::encode::pipeline::{CodecConfig, EncodedTrack};
use crate::encode::EncodeError;
use crate::peer::{Peer, PeerError, PeerFactory, PeerState};
use crate::track::MediaStreamTrack;
use crate::MediaKind;

/// How long a session may take to connect before it is reaped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Published {
    tracks: Vec<MediaStreamTrack>,
    encoded: Vec<EncodedTrack>,
}

struct Session {
    stream: String,
    peer: Arc<Peer>,
}

/// Streams we send and the sessions viewing them.
pub struct Publisher {
    factory: PeerFactory,
    streams: Mutex<HashMap<String, Arc<Published>>>,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    devices: Option<Arc<MediaDevices>>,
}

impl Publisher {
    pub fn new(factory: PeerFactory) -> Self {
        Publisher {
            factory,
            streams: Mutex::new(HashMap::new()),
            sessions: Arc::default(),
            devices: None,
        }
    }

    /// Reports these devices' use in `/status`.
    pub fn with_devices(mut self, devices: Arc<MediaDevices>) -> Self {
        self.devices = Some(devices);
        self
    }

    /// Publishes `tracks` as `name`: one encoder per track (H.264 at `video_bitrate`,
    /// Opus at 64 kbit/s), shared by every viewer.
    pub fn publish(
        &self,
        name: &str,
        tracks: Vec<MediaStreamTrack>,
        video_bitrate: u32,
    ) -> Result<(), EncodeError> {
        let mut encoded = Vec::new();
        for t in &tracks {
            let codec = match t.kind() {
                MediaKind::Video => CodecConfig::H264 {
                    bitrate: video_bitrate,
                },
                MediaKind::Audio => CodecConfig::Opus { bitrate: 64_000 },
            };
            encoded.push(EncodedTrack::start(t, codec)?);
        }
        lock(&self.streams).insert(name.to_owned(), Arc::new(Published { tracks, encoded }));
        Ok(())
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
            if let Some(session) = removed {
                tracing::info!("session {id} on {:?} ended", session.stream);
                session.peer.close().await;
            } else if let Some(peer) = weak.upgrade() {
                peer.close().await;
            }
        });
    }
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
            return Err(EndpointError::NotImplemented(
                "WHIP ingest is not available yet".into(),
            ));
        }
        let published = lock(&self.streams)
            .get(stream)
            .cloned()
            .ok_or_else(|| EndpointError::UnknownStream(stream.to_owned()))?;
        let peer = match self.factory.create().await {
            Ok(p) => Arc::new(p),
            Err(PeerError::TooManyPeers(_)) => {
                return Err(EndpointError::TooManySessions {
                    retry_after_secs: 5,
                })
            }
            Err(e) => return Err(EndpointError::Internal(e.to_string())),
        };
        let sdp = match peer.answer_with(offer.as_str(), &published.encoded).await {
            Ok(sdp) => sdp,
            Err(e) => {
                peer.close().await;
                return Err(match e {
                    PeerError::Sdp(m) => EndpointError::BadOffer(m),
                    other => EndpointError::Internal(other.to_string()),
                });
            }
        };
        let id = uuid::Uuid::new_v4().to_string();
        tracing::info!("session {id}: a viewer of {stream:?}");
        lock(&self.sessions).insert(
            id.clone(),
            Session {
                stream: stream.to_owned(),
                peer: Arc::clone(&peer),
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
        peer.add_candidates(fragment)
            .await
            .map(|_| ())
            .map_err(|e| EndpointError::BadOffer(e.to_string()))
    }

    async fn end(&self, session: &str) -> Result<(), EndpointError> {
        let removed = lock(&self.sessions).remove(session);
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
        let sessions: Vec<(String, String, Arc<Peer>)> = lock(&self.sessions)
            .iter()
            .map(|(id, s)| (id.clone(), s.stream.clone(), Arc::clone(&s.peer)))
            .collect();
        let mut peers = Vec::new();
        for (id, stream, peer) in &sessions {
            peers.push(json!({ "session": id, "stream": stream, "stats": peer.stats().await }));
        }
        let streams: Vec<Value> = streams
            .iter()
            .map(|(name, p)| {
                json!({
                    "name": name,
                    "viewers": sessions.iter().filter(|(_, s, _)| s == name).count(),
                    "tracks": p.tracks.iter().zip(&p.encoded).map(|(t, e)| json!({
                        "kind": t.kind(),
                        "label": t.label(),
                        "settings": t.get_settings(),
                        "encoder": e.stats(),
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
