//! How peer connections are made: ICE addresses, servers, policy and timeouts, bitrate
//! bounds, the peer limit, whether remote tracks are decoded and up to which picture size,
//! and the impairment of each peer's path.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::impair::ImpairSchedule;
use super::IceServer;
use crate::encode::PictureLimit;

/// How long a candidate pair is checked without an answer before it is given up.
pub(crate) const ICE_CHECK_WINDOW: Duration = Duration::from_millis(500);

/// Connectivity checks sent on a pair before it is given up, at one per `interval`: enough
/// to cover [`ICE_CHECK_WINDOW`] (a slow path's answer still counts however short the
/// interval), and at least webrtc-rs's default of 7.
pub(crate) fn binding_requests(interval: Duration) -> u16 {
    let interval = interval.as_micros().max(1);
    let n = ICE_CHECK_WINDOW.as_micros().div_ceil(interval);
    n.clamp(7, u128::from(u16::MAX)) as u16
}

/// Video bitrate bounds for congestion control, bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BitrateBounds {
    pub min: u32,
    pub start: u32,
    pub max: u32,
}

/// How peer connections are made.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerConfig {
    /// Local addresses ICE gathers on; empty = every interface that is up (loopback too).
    pub ice_addrs: Vec<IpAddr>,
    /// STUN and TURN servers (none by default: host candidates only). TURN over UDP, TCP
    /// (`?transport=tcp`) and TLS (`turns:`); the last two through a local bridge, as
    /// webrtc-rs 0.21 speaks to TURN servers over UDP only.
    pub ice_servers: Vec<IceServer>,
    /// PEM files whose certificates are trusted for `turns:` servers, besides the
    /// operating system's roots (a private CA, or a self-signed server's certificate).
    pub ice_ca_certs: Vec<PathBuf>,
    /// Relay candidates only (the browser's `iceTransportPolicy: "relay"`): media goes
    /// through a TURN server. Without one, negotiation fails naming the TURN servers.
    pub ice_relay_only: bool,
    /// One UDP port for every peer (ICE-UDP muxed by ufrag): a firewall or a container
    /// needs only it open. `None`: each peer binds its own ephemeral ports. The port is
    /// bound on the ICE address when there is exactly one, else on every IPv4 interface.
    pub udp_port: Option<u16>,
    /// Public addresses our host candidates are also reached at (1:1 NAT, Docker): each
    /// UDP host candidate is repeated with each address of its family, same port.
    pub public_ips: Vec<IpAddr>,
    /// Connectivity-check interval (webrtc-rs defaults to 200 ms; lower connects faster:
    /// the controlling side nominates a pair that answered only at its next check, and
    /// the other side's DTLS hello waits for that, so connecting takes about one interval
    /// more than the round trips). A pair is given up after 500 ms of
    /// unanswered checks whatever the interval.
    pub ice_check_interval: Duration,
    /// No traffic for this long: ICE `disconnected`.
    pub ice_disconnected_timeout: Duration,
    /// Disconnected for this long: `failed`, and the peer is dropped.
    pub ice_failed_timeout: Duration,
    pub video_bitrate: BitrateBounds,
    /// Most peer connections alive at once (per [`PeerFactory`]).
    pub max_peers: usize,
    /// Decode remote tracks. Off, remote tracks only count what arrives (load generators,
    /// SFU-like relays that forward without looking).
    pub decode_remote: bool,
    /// The largest picture decoded from a remote video track (default 4096×2304): a
    /// stream declaring a larger one (in a VP8 keyframe's header or an H.264 SPS) is
    /// refused with a log line and its units dropped, never handed to the decoder.
    pub max_decode_size: PictureLimit,
    /// Impair each peer's UDP path, in process and below SRTP (both directions; see
    /// `Peer::impairment`): the `n`-th peer made draws from seeds derived from the
    /// schedule's seed and `n`. `None`: the path is the network's own.
    pub impair: Option<ImpairSchedule>,
    /// A test hook: decoded remote audio is held this long before it plays (is handed to
    /// the track and analyzed), as if only the audio were that much later; video is not
    /// held. Zero (the default): none. It lets a test check the A/V offset it measures.
    pub audio_delay: Duration,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            ice_addrs: Vec::new(),
            ice_servers: Vec::new(),
            ice_ca_certs: Vec::new(),
            ice_relay_only: false,
            public_ips: Vec::new(),
            udp_port: None,
            ice_check_interval: Duration::from_millis(10),
            ice_disconnected_timeout: Duration::from_secs(5),
            ice_failed_timeout: Duration::from_secs(25),
            video_bitrate: BitrateBounds {
                min: 150_000,
                start: 1_000_000,
                max: 2_500_000,
            },
            max_peers: 200,
            decode_remote: true,
            max_decode_size: PictureLimit::default(),
            impair: None,
            audio_delay: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_check_interval_still_checks_a_pair_for_the_whole_window() {
        assert_eq!(binding_requests(Duration::from_millis(10)), 50);
        assert_eq!(binding_requests(Duration::from_millis(3)), 167);
        // Long intervals keep webrtc-rs's default count.
        assert_eq!(binding_requests(Duration::from_millis(200)), 7);
        assert_eq!(binding_requests(Duration::ZERO), u16::MAX);
        let d = PeerConfig::default().ice_check_interval;
        assert!(
            d * u32::from(binding_requests(d)) >= ICE_CHECK_WINDOW,
            "the default gives up no sooner than the window"
        );
    }
}
