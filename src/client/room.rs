//! A participant in a WebSocket call room (`/ws?room=R` of `usermedia serve`): our side of
//! the signaling crate's room protocol, one peer connection per other participant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use usermedia_signaling::{ClientMessage, HttpClient, ServerMessage};

use super::datachannel::{Chat, ChatMessage, CHAT_LABEL, DATA_CHANNEL_WAIT};
use super::session::SessionError;
use crate::encode::pipeline::TrackEncoders;
use crate::peer::{ImpairLink, ImpairReport, Peer, PeerFactory, RemoteTrack};
use crate::sync::lock;

/// How long a connection's remote tracks are waited for, one at a time.
const REMOTE_TRACK_WAIT: Duration = Duration::from_secs(3600);

/// A participant in a WebSocket call room (`/ws?room=R`): sends its tracks to everyone in
/// the room and receives theirs (full mesh; it offers to those already there).
pub struct CallBot {
    remote: mpsc::Receiver<CallEvent>,
    task: tokio::task::JoinHandle<()>,
    /// Each impaired connection's path, by the other participant's id.
    links: Links,
    /// Our own id in the room, once the server has said it.
    id: tokio::sync::watch::Receiver<Option<String>>,
}

/// The impaired paths of a bot's connections, in the order they were made.
type Links = Arc<Mutex<Vec<(String, ImpairLink)>>>;

/// What happens in the room, as [`CallBot::next_event`] tells it.
pub enum CallEvent {
    /// Participant `from` sends `track`.
    Track { from: String, track: RemoteTrack },
    /// Participant `from` left (its connection is closed).
    Left { from: String },
    /// A chat message another participant sent on a data channel (only with a chat:
    /// [`join_room_saying`]).
    Message(ChatMessage),
}

impl CallBot {
    /// The next track another participant sends (departures skipped).
    pub async fn next_remote_track(&mut self, timeout: Duration) -> Option<RemoteTrack> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self
                .next_event(deadline - tokio::time::Instant::now())
                .await?
            {
                CallEvent::Track { track, .. } => return Some(track),
                CallEvent::Left { .. } | CallEvent::Message(_) => continue,
            }
        }
    }

    /// Our id in the room (as the others see us), once the server has said it; `None`
    /// if it has not within `timeout`.
    pub async fn id(&self, timeout: Duration) -> Option<String> {
        let mut id = self.id.clone();
        tokio::time::timeout(timeout, id.wait_for(Option::is_some))
            .await
            .ok()?
            .ok()?;
        let known = id.borrow().clone();
        known
    }

    /// The next arrival of a track or departure of a participant.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<CallEvent> {
        tokio::time::timeout(timeout, self.remote.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next chat message another participant sends on a data channel, within
    /// `timeout` (the tracks and departures that come first are skipped: to follow
    /// everything, use [`next_event`](Self::next_event)).
    pub async fn next_message(&mut self, timeout: Duration) -> Option<ChatMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self
                .next_event(deadline - tokio::time::Instant::now())
                .await?
            {
                CallEvent::Message(message) => return Some(message),
                CallEvent::Track { .. } | CallEvent::Left { .. } => continue,
            }
        }
    }

    /// What the impairment of each connection's path did ([`PeerConfig::impair`]
    /// (crate::peer::PeerConfig::impair)), by the other participant's id, in the order
    /// the connections were made (those closed since included); empty when not impaired.
    pub fn impairments(&self) -> Vec<(String, ImpairReport)> {
        lock(&self.links)
            .iter()
            .map(|(id, link)| (id.clone(), link.report()))
            .collect()
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
    let client = HttpClient::new()?;
    join_room_with(&client, ws_url, factory, tracks).await
}

/// [`join_room`] with `client`'s TLS trust for `wss://` (e.g. a private CA).
pub async fn join_room_with(
    client: &HttpClient,
    ws_url: &str,
    factory: PeerFactory,
    tracks: Vec<TrackEncoders>,
) -> Result<CallBot, SessionError> {
    join_room_saying(client, ws_url, factory, tracks, None).await
}

/// [`join_room_with`], with a chat: every connection negotiates a `chat` data channel
/// (the one who offers opens it); `chat` says its text on each as it opens, and the
/// messages received come out as [`CallEvent::Message`]. `None`: no chat.
pub async fn join_room_saying(
    client: &HttpClient,
    ws_url: &str,
    factory: PeerFactory,
    tracks: Vec<TrackEncoders>,
    chat: Option<(Chat, mpsc::Receiver<ChatMessage>)>,
) -> Result<CallBot, SessionError> {
    let (chat, messages) = match chat {
        Some((chat, rx)) => (Some(chat), Some(rx)),
        None => (None, None),
    };
    let websocket_error = |e| SessionError::WebSocket {
        url: ws_url.to_owned(),
        source: Box::new(e),
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
            .map_err(websocket_error)?;
    let (mut sink, mut stream) = socket.split();
    sink.send(Message::text(ClientMessage::Join.to_json()))
        .await
        .map_err(websocket_error)?;
    let (remote_tx, remote) = mpsc::channel(16);
    if let Some(mut messages) = messages {
        // The messages join the tracks and departures, in the order they arrive.
        let tx = remote_tx.clone();
        tokio::spawn(async move {
            while let Some(message) = messages.recv().await {
                if tx.send(CallEvent::Message(message)).await.is_err() {
                    break;
                }
            }
        });
    }
    let links = Links::default();
    let room_links = Arc::clone(&links);
    let (id_tx, id) = tokio::sync::watch::channel(None);
    let task = tokio::spawn(async move {
        let mut room = Room {
            factory,
            tracks,
            peers: HashMap::new(),
            remote: remote_tx,
            links: room_links,
            chat,
        };
        while let Some(Ok(message)) = stream.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(message) = serde_json::from_str::<ServerMessage>(&text) else {
                continue;
            };
            if let ServerMessage::Peers { you, .. } = &message {
                let _ = id_tx.send(Some(you.clone()));
            }
            for reply in room.handle(message).await {
                if sink.send(Message::text(reply.to_json())).await.is_err() {
                    break;
                }
            }
        }
        room.close().await;
    });
    Ok(CallBot {
        remote,
        task,
        links,
        id,
    })
}

/// The bot's side of the room: a peer per other participant.
struct Room {
    factory: PeerFactory,
    tracks: Vec<TrackEncoders>,
    peers: HashMap<String, Arc<Peer>>,
    /// Where every connection's remote tracks (and departures) go (the bot's owner).
    remote: mpsc::Sender<CallEvent>,
    links: Links,
    /// The chat on every connection's data channel (none: no data channel).
    chat: Option<Chat>,
}

impl Room {
    /// Acts on a message from the server; returns what to send back.
    async fn handle(&mut self, message: ServerMessage) -> Vec<ClientMessage> {
        match message {
            // We joined: offer to everyone already there.
            ServerMessage::Peers { peers, .. } => {
                let mut offers = Vec::new();
                for id in peers {
                    let Some(peer) = self.connect(&id).await else {
                        continue;
                    };
                    if let Some(chat) = &self.chat {
                        match peer.create_data_channel(CHAT_LABEL).await {
                            Ok(channel) => chat.attach(id.clone(), channel),
                            Err(e) => tracing::warn!("call: no data channel to {id}: {e}"),
                        }
                    }
                    for t in &self.tracks {
                        let _ = peer.add_track(t).await;
                    }
                    if let Ok(sdp) = peer.create_offer().await {
                        offers.push(ClientMessage::Offer {
                            to: id.clone(),
                            sdp,
                        });
                    }
                    self.keep(id, peer);
                }
                offers
            }
            // A newcomer offers to us.
            ServerMessage::Offer { from, sdp } => {
                let Some(peer) = self.connect(&from).await else {
                    return Vec::new();
                };
                let answer = peer.answer_with(&sdp, &self.tracks).await;
                self.keep(from.clone(), peer);
                match answer {
                    Ok(sdp) => vec![ClientMessage::Answer { to: from, sdp }],
                    Err(e) => {
                        tracing::warn!("call: cannot answer {from}: {e}");
                        Vec::new()
                    }
                }
            }
            ServerMessage::Answer { from, sdp } => {
                if let Some(peer) = self.peers.get(&from) {
                    if let Err(e) = peer.accept_answer(&sdp).await {
                        tracing::warn!("call: answer from {from}: {e}");
                    }
                }
                Vec::new()
            }
            ServerMessage::Leave { from } => {
                if let Some(peer) = self.peers.remove(&from) {
                    peer.close().await;
                    let _ = self.remote.send(CallEvent::Left { from }).await;
                }
                Vec::new()
            }
            ServerMessage::Error { message } => {
                tracing::warn!("call room: {message:?}");
                Vec::new()
            }
            // Newcomers offer to us; candidates come inside the SDP.
            ServerMessage::Join { .. } | ServerMessage::Candidate { .. } => Vec::new(),
        }
    }

    /// Keeps the connection to participant `id` (and its impaired path's report).
    fn keep(&mut self, id: String, peer: Arc<Peer>) {
        if let Some(link) = peer.impair_link() {
            lock(&self.links).push((id.clone(), link));
        }
        self.peers.insert(id, peer);
    }

    /// A new connection to participant `id` whose remote tracks go to the bot's owner; `None` if no peer can
    /// be created (at capacity).
    async fn connect(&self, from: &str) -> Option<Arc<Peer>> {
        let peer = Arc::new(self.factory.create().await.ok()?);
        if let Some(chat) = self.chat.clone() {
            // The data channel the other side opens (when it offers).
            let weak = Arc::downgrade(&peer);
            let id = from.to_owned();
            tokio::spawn(async move {
                let Some(peer) = weak.upgrade() else { return };
                if let Some(channel) = peer.next_data_channel(DATA_CHANNEL_WAIT).await {
                    chat.attach(id, channel);
                }
            });
        }
        let weak = Arc::downgrade(&peer);
        let tx = self.remote.clone();
        let from = from.to_owned();
        tokio::spawn(async move {
            while let Some(peer) = weak.upgrade() {
                let next = peer.next_remote_track(REMOTE_TRACK_WAIT).await;
                drop(peer);
                let Some(track) = next else { break };
                let event = CallEvent::Track {
                    from: from.clone(),
                    track,
                };
                if tx.send(event).await.is_err() {
                    break;
                }
            }
        });
        Some(peer)
    }

    /// Closes every connection (the socket ended).
    async fn close(&mut self) {
        for (_, peer) in self.peers.drain() {
            peer.close().await;
        }
    }
}
