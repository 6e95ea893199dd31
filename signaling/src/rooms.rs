//! WebSocket call rooms at `/ws?room=R`: a relay of [`crate::room_protocol`] messages for
//! full-mesh calls. Bounded: messages over 64 KiB are refused before they are buffered,
//! each connection may send so many messages a second (the offender is disconnected with
//! a close reason), connections and rooms are capped, and a socket that does not join
//! within [`RoomLimits::join_within`] is closed. When viewing needs a token, so does
//! joining (the room name is read as a stream name for the token check); with allowed
//! origins configured, the upgrade's `Origin` must be one of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use tokio::sync::mpsc;

use crate::auth::Role;
use crate::http::ServerConfig;
use crate::limits::RateLimit;
use crate::room_protocol::{ClientMessage, InvalidMessage, ServerMessage};
use crate::sync_lock as lock;

/// Largest message accepted (SDP with candidates fits easily).
const MAX_MESSAGE: usize = 64 * 1024;

/// The bounds on call rooms ([`ServerConfig::room_limits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomLimits {
    /// Open WebSocket connections at most; more are refused with `503`.
    pub max_connections: usize,
    /// Rooms at most; joining a new room beyond that is refused.
    pub max_rooms: usize,
    /// Messages a connection may send in a burst…
    pub message_burst: u32,
    /// …and per second after it.
    pub messages_per_second: u32,
    /// A connection that has not joined by then is closed.
    pub join_within: Duration,
}

impl Default for RoomLimits {
    fn default() -> Self {
        RoomLimits {
            max_connections: 256,
            max_rooms: 64,
            message_burst: 50,
            messages_per_second: 20,
            join_within: Duration::from_secs(10),
        }
    }
}

/// The rooms and who is in them.
#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<String, HashMap<String, mpsc::Sender<String>>>>,
    connections: AtomicUsize,
    /// The server's tokens, origins and room limits (rooms check them on the upgrade).
    config: ServerConfig,
}

impl Rooms {
    /// The rooms of a server with `config` (its tokens, origins and room limits).
    pub(crate) fn with_config(config: &ServerConfig) -> Self {
        Rooms {
            config: config.clone(),
            ..Rooms::default()
        }
    }

    fn send(&self, room: &str, to: &str, message: &ServerMessage) -> bool {
        let target = lock(&self.rooms).get(room).and_then(|p| p.get(to)).cloned();
        match target {
            Some(tx) => tx.try_send(message.to_json()).is_ok(),
            None => false,
        }
    }

    fn broadcast(&self, room: &str, except: &str, message: &ServerMessage) {
        let targets: Vec<mpsc::Sender<String>> = lock(&self.rooms)
            .get(room)
            .map(|p| {
                p.iter()
                    .filter(|(id, _)| *id != except)
                    .map(|(_, tx)| tx.clone())
                    .collect()
            })
            .unwrap_or_default();
        let text = message.to_json();
        for tx in targets {
            let _ = tx.try_send(text.clone());
        }
    }

    fn leave(&self, room: &str, id: &str) {
        let mut rooms = lock(&self.rooms);
        if let Some(p) = rooms.get_mut(room) {
            p.remove(id);
            if p.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// Adds `id` to `room`: the others already there, or why not.
    fn join(
        &self,
        room: &str,
        id: &str,
        tx: &mpsc::Sender<String>,
    ) -> Result<Vec<String>, &'static str> {
        let mut all = lock(&self.rooms);
        if !all.contains_key(room) && all.len() >= self.config.room_limits.max_rooms {
            return Err("too many rooms on this server");
        }
        let participants = all.entry(room.to_owned()).or_default();
        if participants.len() >= self.config.max_room_participants {
            return Err("the room is full");
        }
        let others = participants.keys().cloned().collect();
        participants.insert(id.to_owned(), tx.clone());
        Ok(others)
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct RoomQuery {
    room: Option<String>,
    token: Option<String>,
}

/// One open connection, counted until dropped.
struct Connection(Arc<Rooms>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) async fn upgrade(
    State(rooms): State<Arc<Rooms>>,
    Query(q): Query<RoomQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let room = q
        .room
        .filter(|r| !r.is_empty() && r.len() <= 128)
        .unwrap_or_else(|| "default".into());
    let config = &rooms.config;
    if !crate::http::origin_allowed(&config.allowed_origins, headers.get(header::ORIGIN)) {
        return crate::http::problem(StatusCode::FORBIDDEN, "this Origin may not join rooms");
    }
    if config.token_for_viewing {
        let checked =
            crate::auth::check_role(config, &headers, q.token.as_deref(), &room, Role::View);
        if let Some(r) = crate::http::denied(checked, &room) {
            return r;
        }
    }
    let open = rooms.connections.fetch_add(1, Ordering::Relaxed);
    let connection = Connection(Arc::clone(&rooms));
    if open >= rooms.config.room_limits.max_connections {
        let mut r = crate::http::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many call-room connections; try again later",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(5));
        return r;
    }
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            participant(rooms, room, socket).await;
            drop(connection);
        })
}

/// Closes `socket` with a policy-violation close frame naming `reason`.
async fn close_with(socket: &mut WebSocket, reason: &str) {
    let frame = CloseFrame {
        code: 1008,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

fn error(message: &str) -> String {
    ServerMessage::error(message).to_json()
}

/// The error reply to a message that is not a [`ClientMessage`], as the participant's
/// state makes it: a relayed type before joining is unexpected whatever its fields.
pub(crate) fn invalid(e: &InvalidMessage, joined: bool) -> String {
    match e {
        InvalidMessage::Malformed { kind, .. } if !joined => {
            error(&InvalidMessage::UnknownType(kind.clone()).to_string())
        }
        InvalidMessage::Malformed { has_to: false, .. } => error("a relayed message needs \"to\""),
        other => error(&other.to_string()),
    }
}

async fn participant(rooms: Arc<Rooms>, room: String, mut socket: WebSocket) {
    let id = uuid_like();
    let (tx, mut rx) = mpsc::channel::<String>(64);
    let mut joined = false;
    let limits = rooms.config.room_limits.clone();
    let mut rate = RateLimit::new(
        limits.message_burst,
        limits.messages_per_second,
        std::time::Instant::now(),
    );
    let join_deadline = tokio::time::sleep(limits.join_within);
    tokio::pin!(join_deadline);
    loop {
        tokio::select! {
            () = &mut join_deadline, if !joined => {
                close_with(&mut socket, "did not join in time").await;
                break;
            }
            outgoing = rx.recv() => {
                let Some(text) = outgoing else { break };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                if !rate.allow(std::time::Instant::now()) {
                    tracing::warn!("room {room:?}: participant {id} sent too fast, disconnected");
                    close_with(&mut socket, "too many messages").await;
                    break;
                }
                let msg = match ClientMessage::parse(&text) {
                    Ok(msg) => msg,
                    Err(e @ InvalidMessage::NotJson) => {
                        let _ = socket.send(Message::Text(invalid(&e, joined).into())).await;
                        continue;
                    }
                    Err(e) => {
                        let _ = tx.try_send(invalid(&e, joined));
                        continue;
                    }
                };
                match msg {
                    ClientMessage::Join if !joined => {
                        // The others already in the room, or Err when it is full.
                        let others = match rooms.join(&room, &id, &tx) {
                            Ok(others) => others,
                            Err(why) => {
                                let _ = socket.send(Message::Text(error(why).into())).await;
                                break;
                            }
                        };
                        joined = true;
                        let peers = ServerMessage::Peers { you: id.clone(), peers: others };
                        let _ = tx.try_send(peers.to_json());
                        rooms.broadcast(&room, &id, &ServerMessage::Join { from: id.clone() });
                    }
                    ClientMessage::Leave => break,
                    other => {
                        let kind = other.kind();
                        match other.relay(&id) {
                            Some((to, relayed)) if joined => {
                                if !rooms.send(&room, &to, &relayed) {
                                    let _ = tx.try_send(error(&format!("no participant {to:?} in this room")));
                                }
                            }
                            _ => {
                                let unexpected = InvalidMessage::UnknownType(kind.to_owned());
                                let _ = tx.try_send(error(&unexpected.to_string()));
                            }
                        }
                    }
                }
            }
        }
    }
    if joined {
        rooms.leave(&room, &id);
        rooms.broadcast(&room, &id, &ServerMessage::Leave { from: id.clone() });
    }
}

/// A random participant id (hex, 16 chars).
fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error reply to `text` from a participant that has or has not joined.
    fn reply(text: &str, joined: bool) -> String {
        let e = ClientMessage::parse(text).expect_err(text);
        invalid(&e, joined)
    }

    #[test]
    fn bad_messages_get_the_same_error_replies_as_ever() {
        let err = |m: &str| format!(r#"{{"type":"error","message":{}}}"#, serde_json::json!(m));
        assert_eq!(reply("nope", true), err("not JSON"));
        assert_eq!(reply("{}", true), err("a message needs a \"type\""));
        assert_eq!(
            reply(r#"{"type":null}"#, false),
            err("a message needs a \"type\"")
        );
        assert_eq!(
            reply(r#"{"type":"dance"}"#, true),
            err("unexpected message type \"dance\"")
        );
        // A relayed type before joining is unexpected, whatever its fields.
        assert_eq!(
            reply(r#"{"type":"offer"}"#, false),
            err("unexpected message type \"offer\"")
        );
        assert_eq!(
            reply(r#"{"type":"offer","sdp":"S"}"#, true),
            err("a relayed message needs \"to\"")
        );
        assert_eq!(
            reply(r#"{"type":"candidate","to":7,"candidate":null}"#, true),
            err("a relayed message needs \"to\"")
        );
        assert!(reply(r#"{"type":"answer","to":"b"}"#, true).contains("malformed \\\"answer\\\""));
    }
}
