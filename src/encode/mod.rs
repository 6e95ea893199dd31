//! Encoders and decoders (H.264 through openh264, VP8 through libvpx, Opus through
//! libopus) and the encode-once pipeline that feeds many peers from one encoder per track
//! and codec.

pub mod annex_b;
pub mod h264;
pub mod opus;
pub mod picture_limit;
pub mod pipeline;
pub mod vp8;

use std::time::Duration;

use bytes::Bytes;

pub use picture_limit::PictureLimit;

/// Why encoding or decoding failed. Each message names the step that failed and says
/// why; a library's own error is kept as the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// An openh264 call failed; `what` names it (`encoder`, `encode`, `decoder`, `decode`).
    #[error("openh264 {what}: {source}")]
    OpenH264 {
        what: &'static str,
        #[source]
        source: openh264::Error,
    },
    /// openh264 refused a bitrate option with this status.
    #[error("openh264: set bitrate {bitrate} (option {option}, layer {layer}): error {status}")]
    OpenH264Option {
        bitrate: u32,
        option: i32,
        layer: i32,
        status: i32,
    },
    /// A libvpx call failed; `what` names it.
    #[error("libvpx {what}: {source}")]
    Libvpx {
        what: String,
        #[source]
        source: vp8::LibvpxError,
    },
    /// A libopus call failed; `what` names it (`encoder`, `bitrate`, `encode`, ...).
    #[error("opus {what}: {source}")]
    Opus {
        what: &'static str,
        #[source]
        source: ::opus::Error,
    },
    /// A decoded picture does not make a frame.
    #[error("decoded picture: {0}")]
    Frame(#[from] crate::frame::FrameError),
    /// The encoder thread could not be started.
    #[error("cannot start the encoder thread: {0}")]
    Thread(#[source] std::io::Error),
    /// A codec gave or took something unusable, with no library error behind it (an empty
    /// frame, a malformed picture).
    #[error("{0}")]
    Codec(String),
    /// The input does not fit the encoder (size, rate, channels).
    #[error("{0}")]
    Mismatch(String),
}

/// A video codec we encode and decode. Browsers differ in what they have (Debian's Firefox
/// has no H.264), so a sender offers or accepts either and the negotiation decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// H.264 constrained baseline (openh264).
    H264,
    /// VP8 (libvpx).
    Vp8,
}

impl VideoCodec {
    /// Every video codec, in our default preference order (H.264 first: hardware decoders
    /// for it are everywhere).
    pub const ALL: [VideoCodec; 2] = [VideoCodec::H264, VideoCodec::Vp8];

    /// The RTP MIME type (`video/H264`, `video/VP8`).
    pub fn mime_type(self) -> &'static str {
        match self {
            VideoCodec::H264 => "video/H264",
            VideoCodec::Vp8 => "video/VP8",
        }
    }

    /// The codec of an RTP MIME type (case-insensitive), if it is one of ours.
    pub fn from_mime_type(mime: &str) -> Option<VideoCodec> {
        VideoCodec::ALL
            .into_iter()
            .find(|c| c.mime_type().eq_ignore_ascii_case(mime))
    }

    /// The codecs a preference allows, most preferred first: one codec, or (`None`) all of
    /// them in the default order.
    pub fn allowed(preference: Option<VideoCodec>) -> Vec<VideoCodec> {
        match preference {
            Some(c) => vec![c],
            None => VideoCodec::ALL.to_vec(),
        }
    }

    /// Its lowercase name, as on the command line and in `/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Vp8 => "vp8",
        }
    }
}

impl std::fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One encoded unit: an H.264 access unit (Annex B), a VP8 frame or an Opus packet. Cheap to clone
/// (the payload is shared), so one encoding reaches many peers.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedUnit {
    pub data: Bytes,
    /// An IDR with SPS/PPS (H.264), a key frame (VP8); every Opus packet stands alone.
    pub keyframe: bool,
    /// Position on the track's timeline.
    pub timestamp: Duration,
    /// How long it plays (the RTP timestamp advance).
    pub duration: Duration,
    /// Wall-clock capture time of the source frame, ms since the UNIX epoch.
    pub capture_time_ms: u64,
}

/// Input the codecs' tests share.
#[cfg(test)]
mod test_frames {
    use crate::devices::pattern::render;
    use crate::frame::VideoFrame;

    /// Frame `n` of the 640×480 pattern with ±8 of noise (the same for the same `n`):
    /// detail that fills any budget, so the bitrate decides the encoded size.
    pub(super) fn noisy_pattern(n: u32) -> VideoFrame {
        let mut f = render(640, 480, n, 0);
        let mut state = 0x9e37_79b9u32.wrapping_mul(n + 1);
        for px in f.planes_mut().0.iter_mut() {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *px = px.saturating_add((state >> 28) as u8).saturating_sub(8);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn codec_errors_name_the_step_and_keep_the_librarys_error_as_their_source() {
        let mut vp8 = vp8::Vp8Decoder::new().unwrap();
        let err = vp8
            .decode(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0xff, 0xff])
            .unwrap_err();
        assert!(matches!(err, EncodeError::Libvpx { .. }), "{err:?}");
        assert!(err.to_string().starts_with("libvpx decode: "), "{err}");
        let source = err.source().expect("libvpx's status").to_string();
        assert!(err.to_string().ends_with(&source), "{err} / {source}");

        let frame = crate::frame::VideoFrame::from_i420(2, 2, vec![0; 1]).unwrap_err();
        let err = EncodeError::from(frame);
        assert!(err.source().is_some() && err.to_string().starts_with("decoded picture: "));
    }
}
