//! The VideoRoom plugin (`janus.plugin.videoroom`) as types: its requests (exists, create,
//! join as publisher or subscriber, publish, start, unpublish, leave, listparticipants),
//! its events as [`RoomEvent`], and [`VideoRoomHandle`], a handle that sends them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::protocol::{bounded, JanusError, Jsep, ROOM_EXISTS};
use super::session::{JanusSession, PluginReply};

/// The plugin's name.
pub const PLUGIN: &str = "janus.plugin.videoroom";
/// Publishers one event may list, at most (the rest are ignored).
pub const MAX_PUBLISHERS: usize = 64;

/// A room created with `--janus-create`: what Janus needs for our offers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoomSettings {
    pub description: String,
    /// Publishers at once, at most.
    pub publishers: u32,
    /// Each publisher's video bitrate cap (REMB), bits per second.
    pub bitrate: u32,
    /// `"h264,vp8"`: a VP8-only room (Janus's default) answers an H.264 offer with its
    /// video inactive.
    pub videocodec: String,
    pub audiocodec: String,
    /// Seconds between keyframe requests Janus sends to publishers (0: none).
    pub fir_freq: u32,
}

impl Default for RoomSettings {
    fn default() -> Self {
        RoomSettings {
            description: "usermedia".into(),
            publishers: 16,
            bitrate: 1_500_000,
            videocodec: "h264,vp8".into(),
            audiocodec: "opus".into(),
            fir_freq: 10,
        }
    }
}

/// A publisher in the room, as events list them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Publisher {
    pub id: u64,
    #[serde(default)]
    pub display: Option<String>,
}

/// A participant, as `listparticipants` lists them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Participant {
    pub id: u64,
    #[serde(default)]
    pub display: Option<String>,
    #[serde(default)]
    pub publisher: bool,
}

/// A feed id, or `"ok"` when the event is about us.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum FeedRef {
    Id(u64),
    Own(String),
}

#[derive(Debug, Default, Deserialize)]
struct RawData {
    #[serde(default)]
    videoroom: String,
    id: Option<u64>,
    private_id: Option<u64>,
    publishers: Option<Vec<Publisher>>,
    unpublished: Option<FeedRef>,
    leaving: Option<FeedRef>,
    configured: Option<String>,
    started: Option<String>,
    exists: Option<bool>,
    participants: Option<Vec<Participant>>,
    error_code: Option<i64>,
    error: Option<String>,
}

/// What the VideoRoom says on a handle.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomEvent {
    /// We joined as a publisher: our feed id, private id, and who publishes already.
    Joined {
        id: u64,
        private_id: Option<u64>,
        publishers: Vec<Publisher>,
    },
    /// Publishers appeared (or changed their streams).
    Publishers(Vec<Publisher>),
    /// Feed `.0` stopped publishing (`None`: we did).
    Unpublished(Option<u64>),
    /// Participant `.0` left (`None`: we did).
    Leaving(Option<u64>),
    /// Our publish/configure took effect.
    Configured,
    /// A subscription was set up (Janus's offer comes with it).
    Attached,
    /// A subscription changed (a new offer comes with it).
    Updated,
    /// Our answer was taken.
    Started,
    /// `exists`'s answer.
    Exists(bool),
    /// `create`'s answer.
    Created,
    /// `listparticipants`'s answer.
    Participants(Vec<Participant>),
    /// The plugin refused a request.
    Error { code: i64, reason: String },
    /// Anything else (talking, slow_link, …).
    Other(String),
}

impl RoomEvent {
    /// Reads a VideoRoom `plugindata.data` object.
    pub fn parse(data: &Value) -> RoomEvent {
        let Ok(raw) = RawData::deserialize(data) else {
            return RoomEvent::Other("malformed".into());
        };
        let feed = |f: FeedRef| match f {
            FeedRef::Id(id) => Some(id),
            FeedRef::Own(_) => None,
        };
        let mut publishers = raw.publishers.unwrap_or_default();
        publishers.truncate(MAX_PUBLISHERS);
        if let Some(code) = raw.error_code {
            return RoomEvent::Error {
                code,
                reason: bounded(raw.error.unwrap_or_default()),
            };
        }
        match raw.videoroom.as_str() {
            "joined" => RoomEvent::Joined {
                id: raw.id.unwrap_or(0),
                private_id: raw.private_id,
                publishers,
            },
            "attached" => RoomEvent::Attached,
            "updated" => RoomEvent::Updated,
            "created" => RoomEvent::Created,
            "participants" => {
                let mut p = raw.participants.unwrap_or_default();
                p.truncate(MAX_PUBLISHERS * 4);
                RoomEvent::Participants(p)
            }
            "success" if raw.exists.is_some() => RoomEvent::Exists(raw.exists.unwrap_or(false)),
            "event" => {
                if let Some(f) = raw.unpublished {
                    RoomEvent::Unpublished(feed(f))
                } else if let Some(f) = raw.leaving {
                    RoomEvent::Leaving(feed(f))
                } else if raw.configured.is_some() {
                    RoomEvent::Configured
                } else if raw.started.is_some() {
                    RoomEvent::Started
                } else if !publishers.is_empty() {
                    RoomEvent::Publishers(publishers)
                } else {
                    RoomEvent::Other("event".into())
                }
            }
            other => RoomEvent::Other(other.to_owned()),
        }
    }
}

/// A VideoRoom handle on a session.
#[derive(Clone)]
pub struct VideoRoomHandle {
    session: Arc<JanusSession>,
    id: u64,
}

impl VideoRoomHandle {
    /// Attaches a new VideoRoom handle to `session`.
    pub async fn attach(session: &Arc<JanusSession>) -> Result<Self, JanusError> {
        let id = session.attach(PLUGIN).await?;
        Ok(VideoRoomHandle {
            session: Arc::clone(session),
            id,
        })
    }

    /// The handle's id (events name it as their `sender`).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Sends `body` (+ `jsep`); the reply's event, or the plugin's refusal as an error.
    async fn send(
        &self,
        body: Value,
        jsep: Option<Jsep>,
        request: &'static str,
    ) -> Result<(RoomEvent, Option<Jsep>), JanusError> {
        let PluginReply { data, jsep } = self.session.message(self.id, body, jsep, request).await?;
        match RoomEvent::parse(&data) {
            RoomEvent::Error { code, reason } => Err(JanusError::Room {
                request,
                code,
                reason,
            }),
            event => Ok((event, jsep)),
        }
    }

    /// Whether room `room` exists.
    pub async fn exists(&self, room: u64) -> Result<bool, JanusError> {
        match self
            .send(json!({"request": "exists", "room": room}), None, "exists")
            .await?
        {
            (RoomEvent::Exists(e), _) => Ok(e),
            (other, _) => Err(unexpected("exists", other)),
        }
    }

    /// Creates room `room` with `settings` (not kept in Janus's config file); one that
    /// exists already (created meanwhile) is fine.
    pub async fn create(&self, room: u64, settings: &RoomSettings) -> Result<(), JanusError> {
        let mut body = serde_json::to_value(settings).unwrap_or_else(|_| json!({}));
        body["request"] = json!("create");
        body["room"] = json!(room);
        body["permanent"] = json!(false);
        match self.send(body, None, "create").await {
            Ok(_) => Ok(()),
            Err(JanusError::Room {
                code: ROOM_EXISTS, ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Joins `room` as a publisher named `display`.
    pub async fn join_publisher(
        &self,
        room: u64,
        display: Option<&str>,
    ) -> Result<RoomEvent, JanusError> {
        let mut body = json!({"request": "join", "ptype": "publisher", "room": room});
        if let Some(d) = display {
            body["display"] = json!(d);
        }
        match self.send(body, None, "join").await? {
            (joined @ RoomEvent::Joined { .. }, _) => Ok(joined),
            (other, _) => Err(unexpected("join", other)),
        }
    }

    /// Publishes our `offer` (every candidate in it); returns Janus's answer.
    pub async fn publish(&self, offer: String) -> Result<String, JanusError> {
        self.publish_with_data(offer, false).await
    }

    /// [`publish`](Self::publish), saying whether the offer carries a data channel
    /// (`"data": true`: Janus relays its messages to our subscribers).
    pub async fn publish_with_data(&self, offer: String, data: bool) -> Result<String, JanusError> {
        let body = json!({"request": "publish", "audio": true, "video": true, "data": data});
        match self.send(body, Some(Jsep::offer(offer)), "publish").await? {
            (_, Some(jsep)) if jsep.kind == "answer" => Ok(jsep.sdp),
            (other, _) => Err(unexpected("publish", other)),
        }
    }

    /// Subscribes to `feed` in `room` (with our publisher's `private_id`, if any); returns
    /// Janus's offer.
    pub async fn join_subscriber(
        &self,
        room: u64,
        feed: u64,
        private_id: Option<u64>,
    ) -> Result<String, JanusError> {
        let mut body = json!({"request": "join", "ptype": "subscriber", "room": room,
                              "streams": [{"feed": feed}]});
        if let Some(p) = private_id {
            body["private_id"] = json!(p);
        }
        match self.send(body, None, "join as subscriber").await? {
            (_, Some(jsep)) if jsep.kind == "offer" => Ok(jsep.sdp),
            (other, _) => Err(unexpected("join as subscriber", other)),
        }
    }

    /// Answers Janus's offer on a subscription.
    pub async fn start(&self, answer: String) -> Result<(), JanusError> {
        self.send(
            json!({"request": "start"}),
            Some(Jsep::answer(answer)),
            "start",
        )
        .await
        .map(|_| ())
    }

    /// Stops publishing.
    pub async fn unpublish(&self) -> Result<(), JanusError> {
        self.send(json!({"request": "unpublish"}), None, "unpublish")
            .await
            .map(|_| ())
    }

    /// Leaves the room.
    pub async fn leave(&self) -> Result<(), JanusError> {
        self.send(json!({"request": "leave"}), None, "leave")
            .await
            .map(|_| ())
    }

    /// Who is in `room`.
    pub async fn list_participants(&self, room: u64) -> Result<Vec<Participant>, JanusError> {
        let body = json!({"request": "listparticipants", "room": room});
        match self.send(body, None, "listparticipants").await? {
            (RoomEvent::Participants(p), _) => Ok(p),
            (other, _) => Err(unexpected("listparticipants", other)),
        }
    }

    /// Detaches the handle.
    pub async fn detach(&self) -> Result<(), JanusError> {
        self.session.detach(self.id).await
    }
}

fn unexpected(request: &'static str, got: RoomEvent) -> JanusError {
    JanusError::Unexpected {
        request,
        got: format!("{got:?}").chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> RoomEvent {
        RoomEvent::parse(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn videoroom_events_become_typed() {
        assert_eq!(
            parse(
                r#"{"videoroom":"joined","room":1234,"id":11,"private_id":5,
                    "publishers":[{"id":22,"display":"cam","streams":[]}]}"#
            ),
            RoomEvent::Joined {
                id: 11,
                private_id: Some(5),
                publishers: vec![Publisher {
                    id: 22,
                    display: Some("cam".into())
                }]
            }
        );
        assert_eq!(
            parse(r#"{"videoroom":"event","room":1,"publishers":[{"id":3}]}"#),
            RoomEvent::Publishers(vec![Publisher {
                id: 3,
                display: None
            }])
        );
        assert_eq!(
            parse(r#"{"videoroom":"event","room":1,"unpublished":3}"#),
            RoomEvent::Unpublished(Some(3))
        );
        assert_eq!(
            parse(r#"{"videoroom":"event","room":1,"unpublished":"ok"}"#),
            RoomEvent::Unpublished(None)
        );
        assert_eq!(
            parse(r#"{"videoroom":"event","room":1,"leaving":3,"reason":"kicked"}"#),
            RoomEvent::Leaving(Some(3))
        );
        assert_eq!(
            parse(r#"{"videoroom":"event","error_code":426,"error":"No such room (9)"}"#),
            RoomEvent::Error {
                code: 426,
                reason: "No such room (9)".into()
            }
        );
        assert_eq!(
            parse(r#"{"videoroom":"success","room":9,"exists":false}"#),
            RoomEvent::Exists(false)
        );
        assert_eq!(
            parse(
                r#"{"videoroom":"participants","room":9,"participants":[{"id":1,"publisher":true}]}"#
            ),
            RoomEvent::Participants(vec![Participant {
                id: 1,
                display: None,
                publisher: true
            }])
        );
        assert_eq!(
            parse(r#"{"videoroom":"event","configured":"ok"}"#),
            RoomEvent::Configured
        );
        assert_eq!(parse(r#"[1,2]"#), RoomEvent::Other("malformed".into()));
    }

    #[test]
    fn a_created_room_offers_h264_and_vp8() {
        let s = serde_json::to_value(RoomSettings::default()).unwrap();
        assert_eq!(s["videocodec"], "h264,vp8");
        assert_eq!(s["audiocodec"], "opus");
        assert_eq!(s["bitrate"], 1_500_000);
    }
}
