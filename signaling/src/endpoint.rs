//! The boundary between signaling and media: what an HTTP endpoint asks of the media side.

use crate::sdp::SessionDescription;

/// Which way media flows for a session, from the server's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// WHEP: the client views a stream we send.
    View,
    /// WHIP: the client publishes a stream to us.
    Ingest,
}

/// A new session's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Unique id; the session's resource is `/{whep|whip}/{stream}/{id}`.
    pub session: String,
    pub sdp: String,
}

/// Why the media side refused or failed a request; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EndpointError {
    /// 404: no such stream.
    #[error("unknown stream {0:?}")]
    UnknownStream(String),
    /// 404: no such session (or already ended).
    #[error("unknown session {0:?}")]
    UnknownSession(String),
    /// 400: the offer cannot be answered; the message says why.
    #[error("{0}")]
    BadOffer(String),
    /// 409: the stream already has a publisher.
    #[error("stream {0:?} already has a publisher")]
    Conflict(String),
    /// 503 with Retry-After: at capacity.
    #[error("too many sessions")]
    TooManySessions { retry_after_secs: u32 },
    /// 501: a feature the media side does not offer (e.g. an ICE restart).
    #[error("{0}")]
    NotImplemented(String),
    /// 500.
    #[error("{0}")]
    Internal(String),
}

/// The media side of signaling.
#[async_trait::async_trait]
pub trait Endpoint: Send + Sync + 'static {
    /// Answers `offer` for `stream`; the answer carries every candidate (no trickle needed).
    async fn offer(
        &self,
        direction: Direction,
        stream: &str,
        offer: SessionDescription,
    ) -> Result<Answer, EndpointError>;

    /// Adds the client's trickled candidates (`a=candidate:` lines of an SDP fragment).
    async fn trickle(&self, session: &str, fragment: &str) -> Result<(), EndpointError>;

    /// Ends a session.
    async fn end(&self, session: &str) -> Result<(), EndpointError>;

    /// The JSON of `GET /status`: streams, peers, devices in use.
    async fn status(&self) -> serde_json::Value;
}
