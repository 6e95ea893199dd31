//! Encode once, send to many: one encoder per (track, codec, bitrate tier) on its own
//! thread, its output fanned out to every sink (peer) over bounded channels.
//!
//! - A new sink gets a keyframe at once (the next frame is forced to an IDR); with more
//!   than [`SMALL_AUDIENCE`] sinks, when one was forced within [`JOIN_KEYFRAME_MIN_INTERVAL`], with the
//!   next one after it: a join storm is not a keyframe storm.
//! - Keyframe requests (PLI/FIR) are honoured within one frame, at most one per
//!   [`KEYFRAME_MIN_INTERVAL`]; requests in between are merged, not lost.
//! - A sink that cannot keep up loses units (counted) and then waits for the next keyframe
//!   instead of receiving a broken chain; it never slows the encoder or the other sinks.
//! - With no sinks the encoder idles (frames are consumed, not encoded). The thread ends
//!   when the track ends or the last handle is dropped.
//!
//! A track sent to peers that negotiate different codecs has a [`TrackEncoders`]: one
//! [`EncodedTrack`] per codec (and bitrate tier), each started the first time a peer needs
//! it and shared by every later peer of that codec.
//!
//! A track that arrives already encoded (a WHIP publisher's) can skip the decode→encode
//! round for peers of its own codec: [`EncodedTrack::passthrough`] fans out the units
//! pushed into it through the same sinks, keyframe requests going to the publisher (a PLI)
//! instead of an encoder. Its bitrate is the publisher's; peers' votes cannot change it.
//!
//! A set's track can be replaced while viewers watch ([`TrackEncoders::replace_track`]:
//! the other camera): its encoders move to the new track at their next frame, restart
//! their codec on a keyframe at the new size, and continue the timestamps.
//!
//! The files, one job each: `encoded` (the handle and the state an encoder shares),
//! `fanout` (sinks and receivers), `input` (the replaceable track and its timeline), `keyframe` (the keyframe gate), `bitrate` (votes to a
//! target), `encoder_thread` (the encoding loop and codec dispatch), `passthrough`,
//! `ladder` (rungs and tier policy), `set` (the encoders of one track), `splice` (a
//! viewer's move between tiers, sans I/O) and `tiered` (its async driver).

mod bitrate;
mod encoded;
mod encoder_thread;
mod fanout;
mod input;
mod keyframe;
mod ladder;
mod passthrough;
mod set;
mod splice;
mod tiered;

#[cfg(test)]
mod testing;

pub use encoded::{CodecConfig, EncodedTrack, EncoderStats};
pub use fanout::{AsyncEncodedReceiver, EncodedReceiver};
pub use keyframe::{
    KeyframeBudget, JOIN_KEYFRAME_MIN_INTERVAL, KEYFRAME_MIN_INTERVAL, REQUESTER_KEYFRAME_INTERVAL,
    SMALL_AUDIENCE,
};
pub use ladder::{BitrateLadder, TierPolicy, TierState, MIN_RUNG};
pub use passthrough::PassthroughFeeder;
pub use set::{TrackEncoders, AUDIO_BITRATE, IDLE_GRACE};
pub use tiered::TieredReceiver;
