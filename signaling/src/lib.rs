//! usermedia-signaling: exchanges SDP with browsers and servers — WHEP (view) and WHIP
//! (ingest) over HTTP and HTTPS, server and client, and the WebSocket call rooms with their
//! protocol ([`ClientMessage`], [`ServerMessage`]), and a Janus VideoRoom client ([`janus`]). It knows SDP text and HTTP, nothing of
//! capture or codecs: the main package plugs in through [`Endpoint`] (offer in, answer out).

mod auth;
mod client;
mod endpoint;
#[doc(hidden)]
pub mod fuzzing;
mod http;
pub mod janus;
mod limits;
mod link;
mod listen;
mod permissions;
mod room_protocol;
mod rooms;
mod sdp;
mod tls;

pub use auth::{check_stream_name, StreamToken, TokenFile, TokenFileError, STREAM_NAME_RULE};
pub use client::{post_offer, ClientError, HttpClient, HttpSession, REQUEST_TIMEOUT};
pub use endpoint::{Answer, Direction, Endpoint, EndpointError, IceRestart, SessionInfo};
pub use http::{router, ServerConfig};
pub use limits::{PendingPerAddress, RateLimit, TooManyPending};
pub use link::LinkIceServer;
pub use listen::{serve, HttpLimits};
pub use permissions::{PermissionDecision, PermissionRequest, UnknownRequest};
pub use room_protocol::{ClientMessage, InvalidMessage, ServerMessage};
pub use rooms::RoomLimits;
pub use sdp::{SdpError, SessionDescription};
pub use tls::{server_config, TlsError, TlsListener};

/// Locks `m`, whatever a panicking holder left (the data are plain bookkeeping).
pub(crate) fn sync_lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
