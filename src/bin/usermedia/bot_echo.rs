//! `bot --echo` in our `/ws` rooms: each remote participant's media sent back to the room
//! by a second room connection of the bot's (its "echo", one per participant), whose
//! tracks forward the received units as they came (no decode, no re-encode). The echoes
//! are invisible to the bot itself: what they send is neither reported nor echoed again.

use std::time::{Duration, Instant};

use serde_json::json;
use usermedia::client::{echo_encoders_of, join_room_with, CallBot};
use usermedia::peer::{PeerFactory, RemoteTrack};
use usermedia_signaling::HttpClient;

use crate::print_json;

/// How long a participant's first track waits for its others before its echo joins.
const GATHER: Duration = Duration::from_millis(800);
/// How long an echo's join may take to learn its id.
const ECHO_ID_WAIT: Duration = Duration::from_secs(5);

/// A participant whose tracks are being gathered.
struct Pending {
    from: String,
    since: Instant,
    tracks: Vec<RemoteTrack>,
}

/// The echoes of the room's participants.
pub struct Echoes {
    room: String,
    http: HttpClient,
    factory: PeerFactory,
    pending: Vec<Pending>,
    /// (participant, the echo's id, the echo).
    active: Vec<(String, String, CallBot)>,
}

impl Echoes {
    pub fn new(room: &str, http: HttpClient, factory: PeerFactory) -> Self {
        Echoes {
            room: room.to_owned(),
            http,
            factory,
            pending: Vec::new(),
            active: Vec::new(),
        }
    }

    /// Whether `id` is one of our echoes (whose tracks the bot ignores).
    pub fn is_echo(&self, id: &str) -> bool {
        self.active.iter().any(|(_, e, _)| e == id)
    }

    /// `track` of participant `from` is to be echoed.
    pub fn track(&mut self, from: &str, track: &RemoteTrack) {
        match self.pending.iter_mut().find(|p| p.from == from) {
            Some(p) => p.tracks.push(track.clone()),
            None => self.pending.push(Pending {
                from: from.to_owned(),
                since: Instant::now(),
                tracks: vec![track.clone()],
            }),
        }
    }

    /// Starts the echo of every participant whose tracks are all there (two) or waited
    /// long enough.
    pub async fn start_ready(&mut self) {
        let ready: Vec<Pending> = {
            let (ready, waiting) = std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|p| p.tracks.len() >= 2 || p.since.elapsed() >= GATHER);
            self.pending = waiting;
            ready
        };
        for p in ready {
            let encoders = echo_encoders_of(&p.tracks, &p.from);
            if encoders.is_empty() {
                continue;
            }
            let joined =
                join_room_with(&self.http, &self.room, self.factory.clone(), encoders).await;
            let echo = match joined {
                Ok(echo) => echo,
                Err(e) => {
                    tracing::warn!("cannot join the echo of {}: {e}", p.from);
                    continue;
                }
            };
            let Some(id) = echo.id(ECHO_ID_WAIT).await else {
                tracing::warn!("the echo of {} got no id from the room", p.from);
                continue;
            };
            print_json(&json!({"event": "echo", "participant": p.from, "id": id}));
            self.active.push((p.from, id, echo));
        }
    }

    /// Participant `from` left: its echo leaves too.
    pub fn left(&mut self, from: &str) {
        self.pending.retain(|p| p.from != from);
        self.active
            .retain(|(participant, _, _)| participant != from);
    }
}
