//! usermedia-signaling: exchanges SDP with browsers and servers — WHEP (view) and WHIP
//! (ingest) over HTTP, server and client. It knows SDP text and HTTP, nothing of capture or codecs: the main
//! package plugs in through [`Endpoint`] (offer in, answer out).

mod client;
mod endpoint;
mod http;
mod rooms;
mod sdp;

pub use client::{post_offer, ClientError, HttpSession};
pub use endpoint::{Answer, Direction, Endpoint, EndpointError};
pub use http::{router, ServerConfig};
pub use sdp::{SdpError, SessionDescription};
