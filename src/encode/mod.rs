//! Encoders and decoders (H.264 through openh264, Opus through libopus) and the
//! encode-once pipeline that feeds many peers from one encoder per track.

pub mod h264;
pub mod opus;
pub mod pipeline;

use std::time::Duration;

use bytes::Bytes;

/// Why encoding or decoding failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    #[error("{0}")]
    Codec(String),
    /// The input does not fit the encoder (size, rate, channels).
    #[error("{0}")]
    Mismatch(String),
}

/// One encoded unit: an H.264 access unit (Annex B) or an Opus packet. Cheap to clone
/// (the payload is shared), so one encoding reaches many peers.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedUnit {
    pub data: Bytes,
    /// An IDR with SPS/PPS (H.264); every Opus packet stands alone.
    pub keyframe: bool,
    /// Position on the track's timeline.
    pub timestamp: Duration,
    /// How long it plays (the RTP timestamp advance).
    pub duration: Duration,
    /// Wall-clock capture time of the source frame, ms since the UNIX epoch.
    pub capture_time_ms: u64,
}
