//! The boundary between signaling and media: what an HTTP endpoint asks of the media side.

use crate::permissions::{PermissionDecision, PermissionRequest, UnknownRequest};
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

/// What the HTTP layer needs to know of an existing session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The stream it views or publishes (its resource is under that stream's path).
    pub stream: String,
    pub direction: Direction,
    /// Its entity tag, without quotes: the session id at first, a new value after each
    /// ICE restart (a trickle `PATCH` naming an older one gets `412`).
    pub etag: String,
}

/// A completed ICE restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceRestart {
    /// Our side's new ICE credentials and candidates, an `application/trickle-ice-sdpfrag`
    /// body: `a=ice-ufrag`, `a=ice-pwd`, then the first m-line with `a=mid` and
    /// `a=candidate` lines, `a=end-of-candidates`.
    pub fragment: String,
    /// The session's new entity tag, without quotes.
    pub etag: String,
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
    /// 501: a feature the media side does not offer.
    #[error("{0}")]
    NotImplemented(String),
    /// 422: a PATCH this session cannot carry out (RFC 9725: an ICE restart where only
    /// trickle is supported, or the reverse); the session goes on unchanged.
    #[error("{0}")]
    Unprocessable(String),
    /// 428: the request needs a precondition it lacks (candidates of a new ICE generation
    /// sent as trickle, without `If-Match: *`).
    #[error("{0}")]
    PreconditionRequired(String),
    /// 500.
    #[error("{0}")]
    Internal(String),
}

/// The media side of signaling.
#[async_trait::async_trait]
pub trait Endpoint: Send + Sync + 'static {
    /// What `GET /status` serves, as JSON: the media side's own report (streams, peers,
    /// devices in use); signaling only serializes it.
    type Status: serde::Serialize + Send;

    /// Answers `offer` for `stream`; the answer carries every candidate (no trickle needed).
    async fn offer(
        &self,
        direction: Direction,
        stream: &str,
        offer: SessionDescription,
    ) -> Result<Answer, EndpointError>;

    /// Adds the client's trickled candidates (`a=candidate:` lines of an SDP fragment).
    async fn trickle(&self, session: &str, fragment: &str) -> Result<(), EndpointError>;

    /// The session's stream, direction and entity tag; `None` if there is no such session.
    async fn session(&self, session: &str) -> Option<SessionInfo>;

    /// Whether the session has connected (its media flows). Until then it counts against
    /// its client address's pending sessions ([`crate::ServerConfig::max_pending_per_address`]).
    /// The default: never (each counts until the pending deadline).
    async fn connected(&self, session: &str) -> bool {
        let _ = session;
        false
    }

    /// Restarts ICE with the client's new credentials (`a=ice-ufrag`, `a=ice-pwd` and
    /// candidates in `fragment`) and returns ours. On failure the session must go on with
    /// its current ICE session (RFC 9725 section 4.3.3). The default: not supported (422).
    async fn restart_ice(
        &self,
        session: &str,
        fragment: &str,
    ) -> Result<IceRestart, EndpointError> {
        let _ = fragment;
        Err(EndpointError::Unprocessable(format!(
            "session {session:?} does not support ICE restarts; start a new session"
        )))
    }

    /// Ends a session.
    async fn end(&self, session: &str) -> Result<(), EndpointError>;

    /// `POST /streams/{stream}/flip`: switches `stream` to its camera facing the other way
    /// (the front/back camera switch of a phone), its viewers going on without
    /// renegotiation. The answer is the media side's report of the camera now in use,
    /// served as JSON (signaling only serializes it). A stream that cannot flip (one
    /// camera, an ingested stream) is `Unprocessable` (422) saying why. The default: this
    /// endpoint flips nothing (422).
    async fn flip(&self, stream: &str) -> Result<serde_json::Value, EndpointError> {
        Err(EndpointError::Unprocessable(format!(
            "stream {stream:?} cannot flip: this server does not switch cameras"
        )))
    }

    /// The report `GET /status` serves as JSON: streams, peers, devices in use.
    async fn status(&self) -> Self::Status;

    /// The permission requests waiting for the operator (`GET /permissions`), oldest
    /// first. The default: none (nothing here prompts).
    async fn permission_requests(&self) -> Vec<PermissionRequest> {
        Vec::new()
    }

    /// The operator's answer to request `id` (`POST /permissions/{id}`). The default: no
    /// such request.
    async fn answer_permission(
        &self,
        id: &str,
        decision: PermissionDecision,
    ) -> Result<(), UnknownRequest> {
        let _ = decision;
        Err(UnknownRequest(id.to_owned()))
    }

    /// What `GET /indicator` serves, public: which kinds of device are in use, muted or
    /// live, since when — nothing naming a session, stream or device. The default: none
    /// (`404`).
    async fn indicator(&self) -> Option<serde_json::Value> {
        None
    }
}
