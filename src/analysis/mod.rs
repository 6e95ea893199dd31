//! What a receiver really got, per track: frames, rate and size, skipped/repeated/reordered
//! frames, freezes and latency from the pattern's strip (or freezes from arrival times
//! without it), audio length and level, and the A/V offset from the tone's and the
//! pattern's markers. Pure analyzers ([`video`], [`audio`], [`arrival`], [`av_offset`]) fed by
//! [`ReceiveAnalysis`], which reads received tracks on threads of its own. Every remote track
//! of a peer connection is analyzed as it is decoded ([`TrackAnalysis`], read with
//! `RemoteTrack::quality`); `usermedia view` and `bot` use [`ReceiveAnalysis`].

mod arrival;
mod audio;
mod av_offset;
mod shared;
mod video;
mod watch;

pub use arrival::ArrivalAnalyzer;
pub use audio::{AudioAnalysis, AudioReport};
pub use av_offset::AvOffset;
pub use shared::{MediaReport, ReceiverAnalyses, TrackAnalysis, TrackReport};
pub use video::{CountSource, VideoAnalysis, VideoReport};
pub use watch::ReceiveAnalysis;
