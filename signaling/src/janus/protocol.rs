//! The Janus core protocol as types: the envelope every message has (`"janus"`: create,
//! attach, message, keepalive, detach, destroy out; success, ack, error, event, webrtcup,
//! media, hangup, … in), the JSEP it carries, and [`JanusError`], which names Janus's error
//! code and reason.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A session description as Janus carries it (`"jsep"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Jsep {
    /// `offer` or `answer`.
    #[serde(rename = "type")]
    pub kind: String,
    pub sdp: String,
    /// `false`: the SDP holds every candidate (no trickle follows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trickle: Option<bool>,
}

impl Jsep {
    /// Our offer with every candidate in it.
    pub fn offer(sdp: String) -> Self {
        Jsep {
            kind: "offer".into(),
            sdp,
            trickle: Some(false),
        }
    }

    /// Our answer with every candidate in it.
    pub fn answer(sdp: String) -> Self {
        Jsep {
            kind: "answer".into(),
            sdp,
            trickle: Some(false),
        }
    }
}

/// `{"code", "reason"}` of a Janus error.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ErrorBody {
    pub code: i64,
    #[serde(default)]
    pub reason: String,
}

/// `{"id"}` of a `success` to create or attach.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IdData {
    pub id: u64,
}

/// A plugin's reply or event (`"plugindata"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PluginData {
    #[serde(default)]
    pub plugin: String,
    #[serde(default)]
    pub data: Value,
}

/// A message from Janus (a POST's reply or one of the long poll's events).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "janus", rename_all = "lowercase")]
pub enum Incoming {
    /// A synchronous request's result: a session or handle id, or a plugin's reply.
    Success {
        transaction: Option<String>,
        data: Option<IdData>,
        plugindata: Option<PluginData>,
    },
    /// An asynchronous request was taken; its result comes as an `event`.
    Ack { transaction: Option<String> },
    /// The request failed.
    Error {
        transaction: Option<String>,
        error: ErrorBody,
    },
    /// A plugin event: the result of an asynchronous request (with its `transaction`) or
    /// news (without).
    Event {
        sender: Option<u64>,
        transaction: Option<String>,
        plugindata: Option<PluginData>,
        jsep: Option<Jsep>,
    },
    /// The handle's PeerConnection is up (ICE and DTLS).
    Webrtcup { sender: Option<u64> },
    /// Media started or stopped arriving on the handle.
    Media {
        sender: Option<u64>,
        #[serde(rename = "type", default)]
        kind: String,
        #[serde(default)]
        receiving: bool,
    },
    /// The handle's PeerConnection is gone.
    Hangup {
        sender: Option<u64>,
        #[serde(default)]
        reason: String,
    },
    /// The handle was detached.
    Detached { sender: Option<u64> },
    /// Nothing happened during the long poll (it returns this after ~30 s).
    Keepalive,
    /// The session timed out on the server.
    Timeout,
    /// Anything else (`slowlink`, `trickle`, …): ignored.
    #[serde(other)]
    Other,
}

impl Incoming {
    /// The handle it is about, if any.
    pub fn sender(&self) -> Option<u64> {
        match self {
            Incoming::Event { sender, .. }
            | Incoming::Webrtcup { sender }
            | Incoming::Media { sender, .. }
            | Incoming::Hangup { sender, .. }
            | Incoming::Detached { sender } => *sender,
            _ => None,
        }
    }

    /// Its transaction, if any.
    pub fn transaction(&self) -> Option<&str> {
        match self {
            Incoming::Success { transaction, .. }
            | Incoming::Ack { transaction }
            | Incoming::Error { transaction, .. }
            | Incoming::Event { transaction, .. } => transaction.as_deref(),
            _ => None,
        }
    }
}

/// Why talking to Janus failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JanusError {
    #[error("bad Janus URL {0:?}: {1}")]
    BadUrl(String, String),
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: the reply is over {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url}: not a Janus reply: {message}")]
    Malformed { url: String, message: String },
    /// Janus refused a request (`{"janus":"error"}`).
    #[error("Janus refused {request}: error {code}: {reason}")]
    Janus {
        request: &'static str,
        code: i64,
        reason: String,
    },
    /// The VideoRoom plugin refused a request (`error_code`).
    #[error("the Janus VideoRoom refused {request}: error {code}: {reason}")]
    Room {
        request: &'static str,
        code: i64,
        reason: String,
    },
    #[error("Janus did not answer {request} within {after:?}")]
    Timeout {
        request: &'static str,
        after: Duration,
    },
    #[error("unexpected reply to {request}: {got}")]
    Unexpected { request: &'static str, got: String },
    /// More unread events than the bound (the consumer stopped reading).
    #[error("more than {0} Janus events waiting to be read")]
    TooManyEvents(usize),
    /// The session ended (destroyed, timed out on the server, or its long poll failed).
    #[error("the Janus session ended: {0}")]
    SessionEnded(String),
}

/// Janus's words in an error, at most this many characters (the rest cut).
pub const MAX_REASON_CHARS: usize = 300;

/// `reason` cut to [`MAX_REASON_CHARS`].
pub(crate) fn bounded(reason: String) -> String {
    if reason.chars().count() <= MAX_REASON_CHARS {
        return reason;
    }
    let mut cut: String = reason.chars().take(MAX_REASON_CHARS).collect();
    cut.push('…');
    cut
}

/// The VideoRoom's "No such room".
pub const NO_SUCH_ROOM: i64 = 426;
/// The VideoRoom's "Room already exists".
pub const ROOM_EXISTS: i64 = 427;

impl JanusError {
    /// Whether it is the VideoRoom's "No such room" (426).
    pub fn is_no_such_room(&self) -> bool {
        matches!(
            self,
            JanusError::Room {
                code: NO_SUCH_ROOM,
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_messages_parse_by_their_janus_tag() {
        let m: Incoming = serde_json::from_str(
            r#"{"janus":"event","session_id":1,"sender":7,"transaction":"t1",
                "plugindata":{"plugin":"janus.plugin.videoroom","data":{"videoroom":"joined"}},
                "jsep":{"type":"answer","sdp":"v=0"}}"#,
        )
        .unwrap();
        assert_eq!(m.sender(), Some(7));
        assert_eq!(m.transaction(), Some("t1"));
        let Incoming::Event { jsep: Some(j), .. } = m else {
            panic!("{m:?}")
        };
        assert_eq!((j.kind.as_str(), j.sdp.as_str()), ("answer", "v=0"));
        let e: Incoming = serde_json::from_str(
            r#"{"janus":"error","transaction":"t","error":{"code":458,"reason":"No such session 3"}}"#,
        )
        .unwrap();
        assert!(matches!(
            e,
            Incoming::Error {
                error: ErrorBody { code: 458, .. },
                ..
            }
        ));
        let other: Incoming = serde_json::from_str(r#"{"janus":"slowlink","sender":2}"#).unwrap();
        assert_eq!(other, Incoming::Other);
        assert!(serde_json::from_str::<Incoming>(r#"{"no":"tag"}"#).is_err());
        let s: Incoming =
            serde_json::from_str(r#"{"janus":"success","transaction":"x","data":{"id":42}}"#)
                .unwrap();
        assert!(matches!(
            s,
            Incoming::Success {
                data: Some(IdData { id: 42 }),
                ..
            }
        ));
    }

    #[test]
    fn errors_name_the_code_and_the_reason() {
        let e = JanusError::Room {
            request: "join",
            code: NO_SUCH_ROOM,
            reason: "No such room (99)".into(),
        };
        assert!(e.is_no_such_room());
        // Janus's words are kept short.
        assert_eq!(bounded("short".into()), "short");
        let long = bounded("x".repeat(5000));
        assert_eq!(long.chars().count(), MAX_REASON_CHARS + 1);
        assert_eq!(
            e.to_string(),
            "the Janus VideoRoom refused join: error 426: No such room (99)"
        );
    }
}
