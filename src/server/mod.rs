//! The server side of `usermedia serve`: published streams (a track set and one encoder per
//! codec its viewers negotiate), WHIP ingest, the WHEP sessions viewing them and the
//! `/status` report, the permission prompt's requests and the indicator, the camera flip,
//! behind the signaling crate's [`Endpoint`](usermedia_signaling::Endpoint).

mod encoders;
mod flip;
mod ingest;
mod permissions;
mod publisher;
mod replug;
mod status;
mod stream;
mod track_end;
mod trim;

pub use encoders::{encode_track, encode_track_with};
pub use flip::{next_camera, FlipError, StreamCamera};
pub use publisher::{Publisher, CONNECT_TIMEOUT};
pub use status::{
    EncoderStatus, PeerStatus, ReceivedStatus, Role, Status, StreamStatus, TrackStatus,
};
pub use trim::TRIM_AFTER;
