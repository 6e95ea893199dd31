//! `PeerError`: why a peer-connection operation failed, with the cause from webrtc-rs, the
//! track machinery or the OS kept as its typed source.

use std::time::Duration;

use super::PeerState;

/// Why a peer-connection operation failed.
///
/// Where webrtc-rs (or the track machinery, or the OS) gave a cause it is the error's
/// [`source`](std::error::Error::source), typed; the message repeats it, so that a log
/// line or an HTTP problem built from the message alone still says what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// webrtc-rs could not build the connection, or make or apply our own description
    /// (`context` says which step).
    #[error("peer connection setup: {context}: {source}")]
    Setup {
        context: String,
        #[source]
        source: webrtc::error::Error,
    },
    /// ICE gathering completed without a local description.
    #[error("peer connection setup: no local description")]
    NoLocalDescription,
    /// A remote description, candidate or ICE fragment we can read but not use (no codec
    /// we send, no ICE credentials, nothing negotiated to restart).
    #[error("session description: {0}")]
    Sdp(String),
    /// webrtc-rs rejected a remote description, candidate or ICE fragment: malformed or
    /// unacceptable (`context` says which).
    #[error("session description: {context}: {source}")]
    SdpRejected {
        context: String,
        #[source]
        source: webrtc::error::Error,
    },
    /// The shared UDP port cannot be bound (in use, no permission, no such address).
    #[error("cannot bind the UDP port {addr}: {source}")]
    UdpPort {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The loopback socket of a bridge to a TURN server over TCP or TLS cannot be bound.
    #[error("cannot bind a loopback UDP socket for TURN over TCP or TLS: {source}")]
    TurnBridge {
        #[source]
        source: std::io::Error,
    },
    /// An ICE server setting that cannot work (a bad URL, TURN without credentials).
    #[error("ICE configuration: {0}")]
    IceConfig(String),
    /// Relay-only, and gathering gave no relay candidate: every TURN server refused the
    /// allocation (a wrong username or credential) or could not be reached.
    #[error("relay-only ICE: no relay candidate from {servers} (wrong username or credential, or the server unreachable)")]
    NoRelayCandidate { servers: String },
    #[error("ICE gathering did not complete in {0:?}")]
    GatheringTimeout(Duration),
    #[error("not connected after {0:?} (state {1:?})")]
    ConnectTimeout(Duration, PeerState),
    #[error("too many peer connections (limit {0})")]
    TooManyPeers(usize),
    /// A track that cannot be sent or received as it is (no codec to send, no SSRC, a
    /// codec we cannot decode).
    #[error("{0}")]
    Track(String),
    /// webrtc-rs could not add a track or transceiver (`context` says which).
    #[error("{context}: {source}")]
    Transceiver {
        context: String,
        #[source]
        source: webrtc::error::Error,
    },
    /// A received track could not start as a [`MediaStreamTrack`](crate::track::MediaStreamTrack).
    #[error("{0}")]
    RemoteTrack(#[source] crate::error::MediaError),
    /// The thread decoding a received track could not start.
    #[error("cannot start the decoder thread: {0}")]
    DecoderThread(#[source] std::io::Error),
    /// RTCP feedback (PLI, FIR, NACK) could not be written.
    #[error("cannot send RTCP feedback: {0}")]
    Feedback(#[source] webrtc::error::Error),
    #[error("the peer connection is closed")]
    Closed,
}

impl PeerError {
    /// A [`PeerError::Setup`] of `context`, for `map_err`.
    pub(crate) fn setup(
        context: impl Into<String>,
    ) -> impl FnOnce(webrtc::error::Error) -> PeerError {
        let context = context.into();
        move |source| PeerError::Setup { context, source }
    }

    /// A [`PeerError::SdpRejected`] of `context`, for `map_err`.
    pub(crate) fn sdp(
        context: impl Into<String>,
    ) -> impl FnOnce(webrtc::error::Error) -> PeerError {
        let context = context.into();
        move |source| PeerError::SdpRejected { context, source }
    }

    /// A [`PeerError::Transceiver`] of `context`, for `map_err`.
    pub(crate) fn transceiver(
        context: impl Into<String>,
    ) -> impl FnOnce(webrtc::error::Error) -> PeerError {
        let context = context.into();
        move |source| PeerError::Transceiver { context, source }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn causes_are_typed_sources_and_stay_in_the_message() {
        let cause = || webrtc::error::Error::ErrSessionDescriptionNoFingerprint;
        let e = PeerError::sdp("cannot apply the offer")(cause());
        assert_eq!(
            e.to_string(),
            "session description: cannot apply the offer: \
             set_remote_description called with no fingerprint"
        );
        let source = e
            .source()
            .and_then(|s| s.downcast_ref::<webrtc::error::Error>());
        assert_eq!(source, Some(&cause()));

        let e = PeerError::Feedback(webrtc::error::Error::ErrConnectionClosed);
        assert_eq!(
            e.to_string(),
            "cannot send RTCP feedback: connection closed"
        );
        assert!(e.source().is_some());
        let e = PeerError::DecoderThread(std::io::Error::other("no threads left"));
        assert_eq!(
            e.to_string(),
            "cannot start the decoder thread: no threads left"
        );
        assert!(e.source().is_some_and(|s| s.is::<std::io::Error>()));
        // Without a cause, no source.
        assert!(PeerError::Sdp("no codec".into()).source().is_none());
        assert!(PeerError::TooManyPeers(2).source().is_none());
    }
}
