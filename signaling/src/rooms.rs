//! WebSocket call rooms at `/ws?room=R`: a relay of [`crate::room_protocol`] messages for
//! full-mesh calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use tokio::sync::mpsc;

use crate::room_protocol::{ClientMessage, InvalidMessage, ServerMessage};

/// Largest message accepted (SDP with candidates fits easily).
const MAX_MESSAGE: usize = 64 * 1024;

/// The rooms and who is in them.
#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<String, HashMap<String, mpsc::Sender<String>>>>,
    pub(crate) max_participants: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Rooms {
    pub fn new(max_participants: usize) -> Self {
        Rooms {
            rooms: Mutex::new(HashMap::new()),
            max_participants,
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
}

#[derive(serde::Deserialize)]
pub(crate) struct RoomQuery {
    room: Option<String>,
}

pub(crate) async fn upgrade(
    State(rooms): State<Arc<Rooms>>,
    Query(q): Query<RoomQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let room = q
        .room
        .filter(|r| !r.is_empty() && r.len() <= 128)
        .unwrap_or_else(|| "default".into());
    ws.max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| participant(rooms, room, socket))
}

fn error(message: &str) -> String {
    ServerMessage::error(message).to_json()
}

/// The error reply to a message that is not a [`ClientMessage`], as the participant's
/// state makes it: a relayed type before joining is unexpected whatever its fields.
fn invalid(e: &InvalidMessage, joined: bool) -> String {
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
    loop {
        tokio::select! {
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
                        let others: Result<Vec<String>, ()> = {
                            let mut all = lock(&rooms.rooms);
                            let participants = all.entry(room.clone()).or_default();
                            if participants.len() >= rooms.max_participants {
                                Err(())
                            } else {
                                let others = participants.keys().cloned().collect();
                                participants.insert(id.clone(), tx.clone());
                                Ok(others)
                            }
                        };
                        let Ok(others) = others else {
                            let _ = socket.send(Message::Text(error("the room is full").into())).await;
                            break;
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
