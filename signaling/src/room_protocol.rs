//! The call-room protocol (`/ws?room=R`) as types: what a participant sends
//! ([`ClientMessage`]) and what the server sends ([`ServerMessage`]), each a JSON text
//! message tagged by `"type"`. The server ([`crate::router`]'s rooms), our call bot and
//! the browser's call page all speak it.
//!
//! Client → server: `{"type":"join"}`; `{"type":"offer"|"answer","to":ID,"sdp":S}`;
//! `{"type":"candidate","to":ID,"candidate":C}`; `{"type":"leave"}`.
//! Server → client: `{"type":"peers","you":ID,"peers":[ID…]}` after a join (the joiner then
//! offers to each); `{"type":"join","from":ID}` to the others; relayed messages with `from`
//! instead of `to`; `{"type":"leave","from":ID}` when someone leaves or disconnects;
//! `{"type":"error","message":M}` for bad JSON, an unknown target or a full room.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a participant sends to the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientMessage {
    /// Enter the room.
    Join,
    /// An offer for participant `to` (SDP with all candidates).
    Offer { to: String, sdp: String },
    /// An answer for participant `to`.
    Answer { to: String, sdp: String },
    /// A trickled candidate for participant `to` (optional; the browser's
    /// `RTCIceCandidateInit` as it is, or `null` for the end of candidates).
    Candidate { to: String, candidate: Value },
    /// Leave the room (closing the socket counts too).
    Leave,
}

/// What the server sends to a participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage {
    /// To the joiner: its id and who is there; the joiner offers to each.
    Peers { you: String, peers: Vec<String> },
    /// To the others: `from` arrived.
    Join { from: String },
    /// `from`'s offer, relayed.
    Offer { from: String, sdp: String },
    /// `from`'s answer, relayed.
    Answer { from: String, sdp: String },
    /// `from`'s candidate, relayed.
    Candidate { from: String, candidate: Value },
    /// `from` left or disconnected.
    Leave { from: String },
    /// A message the server could not take: bad JSON, a missing or unknown `to`, a full
    /// room.
    Error { message: String },
}

/// Why a text message is not a [`ClientMessage`].
#[derive(Debug, thiserror::Error)]
pub enum InvalidMessage {
    #[error("not JSON")]
    NotJson,
    /// No `"type"`, or one that is not a string.
    #[error("a message needs a \"type\"")]
    NoType,
    /// A `"type"` no client message has.
    #[error("unexpected message type {0:?}")]
    UnknownType(String),
    /// A known `"type"` whose fields do not fit it.
    #[error("malformed {kind:?} message: {source}")]
    Malformed {
        kind: String,
        /// Whether it has a string `"to"` (a relayed message without one is refused as such).
        has_to: bool,
        #[source]
        source: serde_json::Error,
    },
}

impl ClientMessage {
    /// The message's `"type"`.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Join => "join",
            ClientMessage::Offer { .. } => "offer",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::Candidate { .. } => "candidate",
            ClientMessage::Leave => "leave",
        }
    }

    /// Parses a text message, saying what is wrong with one that does not parse.
    pub fn parse(text: &str) -> Result<Self, InvalidMessage> {
        let value: Value = serde_json::from_str(text).map_err(|_| InvalidMessage::NotJson)?;
        let Some(kind) = value.get("type").and_then(Value::as_str).map(str::to_owned) else {
            return Err(InvalidMessage::NoType);
        };
        let has_to = value.get("to").is_some_and(Value::is_string);
        ClientMessage::deserialize(value).map_err(|e| {
            if ["join", "offer", "answer", "candidate", "leave"].contains(&kind.as_str()) {
                InvalidMessage::Malformed {
                    kind,
                    has_to,
                    source: e,
                }
            } else {
                InvalidMessage::UnknownType(kind)
            }
        })
    }

    /// A relayed message as its target receives it: the target, and the message with
    /// `from` in place of `to`. `None` for messages that are not relayed.
    pub fn relay(self, from: &str) -> Option<(String, ServerMessage)> {
        let from = from.to_owned();
        match self {
            ClientMessage::Offer { to, sdp } => Some((to, ServerMessage::Offer { from, sdp })),
            ClientMessage::Answer { to, sdp } => Some((to, ServerMessage::Answer { from, sdp })),
            ClientMessage::Candidate { to, candidate } => {
                Some((to, ServerMessage::Candidate { from, candidate }))
            }
            ClientMessage::Join | ClientMessage::Leave => None,
        }
    }
}

impl ClientMessage {
    /// The message as JSON text.
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

impl ServerMessage {
    /// The message as JSON text.
    pub fn to_json(&self) -> String {
        to_json(self)
    }

    /// An error reply.
    pub fn error(message: impl Into<String>) -> Self {
        ServerMessage::Error {
            message: message.into(),
        }
    }
}

fn to_json(message: &impl Serialize) -> String {
    // Strings, lists of strings and JSON values only: serializing cannot fail.
    serde_json::to_string(message).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client_round_trip(text: &str, message: ClientMessage) {
        assert_eq!(ClientMessage::parse(text).unwrap(), message, "{text}");
        assert_eq!(message.to_json(), text);
    }

    fn server_round_trip(text: &str, message: ServerMessage) {
        assert_eq!(
            serde_json::from_str::<ServerMessage>(text).unwrap(),
            message,
            "{text}"
        );
        assert_eq!(message.to_json(), text);
    }

    #[test]
    fn every_client_message_round_trips() {
        client_round_trip(r#"{"type":"join"}"#, ClientMessage::Join);
        client_round_trip(
            r#"{"type":"offer","to":"a1","sdp":"v=0\r\n"}"#,
            ClientMessage::Offer {
                to: "a1".into(),
                sdp: "v=0\r\n".into(),
            },
        );
        client_round_trip(
            r#"{"type":"answer","to":"b2","sdp":"v=0"}"#,
            ClientMessage::Answer {
                to: "b2".into(),
                sdp: "v=0".into(),
            },
        );
        client_round_trip(
            r#"{"type":"candidate","to":"c3","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0"}}"#,
            ClientMessage::Candidate {
                to: "c3".into(),
                candidate: json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}),
            },
        );
        client_round_trip(
            r#"{"type":"candidate","to":"c3","candidate":null}"#,
            ClientMessage::Candidate {
                to: "c3".into(),
                candidate: Value::Null,
            },
        );
        client_round_trip(r#"{"type":"leave"}"#, ClientMessage::Leave);
    }

    #[test]
    fn every_server_message_round_trips() {
        server_round_trip(
            r#"{"type":"peers","you":"x","peers":["a","b"]}"#,
            ServerMessage::Peers {
                you: "x".into(),
                peers: vec!["a".into(), "b".into()],
            },
        );
        server_round_trip(
            r#"{"type":"peers","you":"x","peers":[]}"#,
            ServerMessage::Peers {
                you: "x".into(),
                peers: Vec::new(),
            },
        );
        server_round_trip(
            r#"{"type":"join","from":"a"}"#,
            ServerMessage::Join { from: "a".into() },
        );
        server_round_trip(
            r#"{"type":"offer","from":"a","sdp":"v=0"}"#,
            ServerMessage::Offer {
                from: "a".into(),
                sdp: "v=0".into(),
            },
        );
        server_round_trip(
            r#"{"type":"answer","from":"b","sdp":"v=0"}"#,
            ServerMessage::Answer {
                from: "b".into(),
                sdp: "v=0".into(),
            },
        );
        server_round_trip(
            r#"{"type":"candidate","from":"c","candidate":{"candidate":""}}"#,
            ServerMessage::Candidate {
                from: "c".into(),
                candidate: json!({"candidate": ""}),
            },
        );
        server_round_trip(
            r#"{"type":"leave","from":"a"}"#,
            ServerMessage::Leave { from: "a".into() },
        );
        server_round_trip(
            r#"{"type":"error","message":"the room is full"}"#,
            ServerMessage::error("the room is full"),
        );
    }

    #[test]
    fn relaying_puts_from_in_place_of_to() {
        let offer = ClientMessage::parse(r#"{"type":"offer","to":"b","sdp":"S"}"#).unwrap();
        let (to, relayed) = offer.relay("a").unwrap();
        assert_eq!(to, "b");
        assert_eq!(
            relayed.to_json(),
            r#"{"type":"offer","from":"a","sdp":"S"}"#
        );
        assert_eq!(ClientMessage::Join.relay("a"), None);
        assert_eq!(ClientMessage::Leave.relay("a"), None);
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        let parse = ClientMessage::parse;
        assert!(matches!(parse("{"), Err(InvalidMessage::NotJson)));
        assert!(matches!(parse("{}"), Err(InvalidMessage::NoType)));
        assert!(matches!(
            parse(r#"{"type":5}"#),
            Err(InvalidMessage::NoType)
        ));
        assert!(matches!(parse(r#"["offer"]"#), Err(InvalidMessage::NoType)));
        match parse(r#"{"type":"dance"}"#) {
            Err(e @ InvalidMessage::UnknownType(_)) => {
                assert_eq!(e.to_string(), r#"unexpected message type "dance""#)
            }
            other => panic!("{other:?}"),
        }
        match parse(r#"{"type":"offer","sdp":"S"}"#) {
            Err(InvalidMessage::Malformed { kind, has_to, .. }) => {
                assert_eq!((kind.as_str(), has_to), ("offer", false))
            }
            other => panic!("{other:?}"),
        }
        let e = parse(r#"{"type":"answer","to":"b"}"#).unwrap_err();
        let InvalidMessage::Malformed { kind, has_to, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!((kind.as_str(), *has_to), ("answer", true));
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert!(source.is_some_and(|s| s.contains("sdp")), "{e}");
        // Extra fields are ignored, as the page may add some.
        assert_eq!(
            parse(r#"{"type":"join","name":"kiosk"}"#).unwrap(),
            ClientMessage::Join
        );
    }
}
