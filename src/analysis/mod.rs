//! What a receiver really got, per track: frames, rate and size, skipped/repeated/reordered
//! frames, freezes and latency from the pattern's strip (or freezes from arrival times
//! without it), audio length and level, and the A/V offset from the tone's and the
//! pattern's markers. Pure analyzers ([`video`], [`audio`], [`arrival`], [`av_offset`]) fed by
//! [`ReceiveAnalysis`], which reads received tracks on threads of its own. Used by
//! `usermedia view`; any receiver (a bot, the library's remote tracks) can use it.

mod arrival;
mod audio;
mod av_offset;
mod video;
mod watch;

pub use arrival::ArrivalAnalyzer;
pub use audio::{AudioAnalysis, AudioReport};
pub use av_offset::AvOffset;
pub use video::{CountSource, VideoAnalysis, VideoReport};
pub use watch::{MediaReport, ReceiveAnalysis, TrackReport};
