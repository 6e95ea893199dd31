//! Measuring usermedia on this machine (`usermedia bench`, the bench binaries): one
//! capture and encode fanned out to peers in a separate receiving process ([`fanout`]),
//! the time to the first decoded frame ([`first_frame`]), capture-to-decode latency from
//! the pattern's strip ([`latency`]), and the capture → convert → encode pipeline
//! ([`pipeline`]); with what they share: a process's CPU and memory ([`process`]),
//! percentiles ([`percentile`]), a detailed clip ([`clip`]) and the receiving process's
//! side ([`receivers`]). Peers use loopback only (127.0.0.1, no STUN).

pub mod clip;
pub mod fanout;
pub mod first_frame;
pub mod latency;
pub mod percentile;
pub mod pipeline;
pub mod process;
pub mod receivers;

use std::net::{IpAddr, Ipv4Addr};

use crate::encode::EncodeError;
use crate::error::MediaError;
use crate::peer::{BitrateBounds, PeerConfig, PeerError, PeerFactory};

/// Why a measurement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// getUserMedia refused the constraints (the caller prints it as the spec's error).
    #[error("getUserMedia: {0}")]
    Media(#[source] MediaError),
    #[error("the encoder: {0}")]
    Encode(#[source] EncodeError),
    #[error("a frame: {0}")]
    Frame(#[source] crate::frame::FrameError),
    #[error("a peer connection: {0}")]
    Peer(#[source] PeerError),
    /// Reading /proc, writing the clip, talking to the receiving process.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The receiving process said something we cannot read, or failed.
    #[error("the receiving process: {0}")]
    Receivers(String),
    /// Media did not arrive in time.
    #[error("{0}")]
    Timeout(String),
}

impl BenchError {
    /// An I/O failure while doing `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }
}

impl From<PeerError> for BenchError {
    fn from(e: PeerError) -> Self {
        BenchError::Peer(e)
    }
}

impl From<EncodeError> for BenchError {
    fn from(e: EncodeError) -> Self {
        BenchError::Encode(e)
    }
}

impl From<MediaError> for BenchError {
    fn from(e: MediaError) -> Self {
        BenchError::Media(e)
    }
}

/// A peer factory on 127.0.0.1 only (no STUN, no TURN) for up to `max_peers` peers,
/// decoding what it receives or not, its video congestion control held at `bitrate`.
pub fn loopback_factory(decode: bool, max_peers: usize, bitrate: u32) -> PeerFactory {
    PeerFactory::new(PeerConfig {
        ice_addrs: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        decode_remote: decode,
        max_peers,
        video_bitrate: BitrateBounds {
            min: bitrate,
            start: bitrate,
            max: bitrate,
        },
        ..PeerConfig::default()
    })
}

/// The video of a benchmark: size, rate, codec and bitrate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoSpec {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub codec: crate::encode::VideoCodec,
    /// Bits per second.
    pub bitrate: u32,
}

impl VideoSpec {
    /// getUserMedia constraints asking for exactly this size and rate.
    pub fn constraints(&self) -> String {
        serde_json::json!({"video": {
            "width": {"exact": self.width},
            "height": {"exact": self.height},
            "frameRate": {"exact": self.fps},
        }})
        .to_string()
    }
}
