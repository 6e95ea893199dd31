//! WebSocket call rooms at `/ws?room=R`: a relay of JSON messages for full-mesh calls.
//!
//! Client → server: `{"type":"join"}`; `{"type":"offer"|"answer","to":ID,"sdp":S}`;
//! `{"type":"candidate","to":ID,"candidate":C}`; `{"type":"leave"}`.
//! Server → client: `{"type":"peers","you":ID,"peers":[ID…]}` after a join (the joiner then
//! offers to each); `{"type":"join","from":ID}` to the others; relayed messages with `from`
//! instead of `to`; `{"type":"leave","from":ID}` when someone leaves or disconnects;
//! `{"type":"error","message":M}` for bad JSON, an unknown target or a full room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::mpsc;

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

    fn send(&self, room: &str, to: &str, message: &Value) -> bool {
        let target = lock(&self.rooms).get(room).and_then(|p| p.get(to)).cloned();
        match target {
            Some(tx) => tx.try_send(message.to_string()).is_ok(),
            None => false,
        }
    }

    fn broadcast(&self, room: &str, except: &str, message: &Value) {
        let targets: Vec<mpsc::Sender<String>> = lock(&self.rooms)
            .get(room)
            .map(|p| {
                p.iter()
                    .filter(|(id, _)| *id != except)
                    .map(|(_, tx)| tx.clone())
                    .collect()
            })
            .unwrap_or_default();
        for tx in targets {
            let _ = tx.try_send(message.to_string());
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
    json!({ "type": "error", "message": message }).to_string()
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
                let Ok(msg) = serde_json::from_str::<Value>(&text) else {
                    let _ = socket.send(Message::Text(error("not JSON").into())).await;
                    continue;
                };
                match msg["type"].as_str() {
                    Some("join") if !joined => {
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
                        let _ = tx.try_send(json!({ "type": "peers", "you": id, "peers": others }).to_string());
                        rooms.broadcast(&room, &id, &json!({ "type": "join", "from": id }));
                    }
                    Some("offer" | "answer" | "candidate") if joined => {
                        let Some(to) = msg["to"].as_str().map(str::to_owned) else {
                            let _ = tx.try_send(error("a relayed message needs \"to\""));
                            continue;
                        };
                        let mut relayed = msg.clone();
                        if let Some(obj) = relayed.as_object_mut() {
                            obj.remove("to");
                            obj.insert("from".into(), Value::String(id.clone()));
                        }
                        if !rooms.send(&room, &to, &relayed) {
                            let _ = tx.try_send(error(&format!("no participant {to:?} in this room")));
                        }
                    }
                    Some("leave") => break,
                    Some(t) => {
                        let _ = tx.try_send(error(&format!("unexpected message type {t:?}")));
                    }
                    None => {
                        let _ = tx.try_send(error("a message needs a \"type\""));
                    }
                }
            }
        }
    }
    if joined {
        rooms.leave(&room, &id);
        rooms.broadcast(&room, &id, &json!({ "type": "leave", "from": id }));
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
