//! The states a peer connection reports (connection, ICE, DTLS), as the browser API names
//! them, from webrtc-rs's.

use webrtc::peer_connection::{RTCIceConnectionState, RTCPeerConnectionState};

/// The connection state, as `RTCPeerConnection.connectionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    New,
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

impl From<RTCPeerConnectionState> for PeerState {
    fn from(s: RTCPeerConnectionState) -> Self {
        match s {
            RTCPeerConnectionState::Connecting => PeerState::Connecting,
            RTCPeerConnectionState::Connected => PeerState::Connected,
            RTCPeerConnectionState::Disconnected => PeerState::Disconnected,
            RTCPeerConnectionState::Failed => PeerState::Failed,
            RTCPeerConnectionState::Closed => PeerState::Closed,
            _ => PeerState::New,
        }
    }
}

/// The ICE connection state, as `RTCPeerConnection.iceConnectionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IceState {
    New,
    Checking,
    Connected,
    Completed,
    Disconnected,
    Failed,
    Closed,
}

impl From<RTCIceConnectionState> for IceState {
    fn from(s: RTCIceConnectionState) -> Self {
        match s {
            RTCIceConnectionState::Checking => IceState::Checking,
            RTCIceConnectionState::Connected => IceState::Connected,
            RTCIceConnectionState::Completed => IceState::Completed,
            RTCIceConnectionState::Disconnected => IceState::Disconnected,
            RTCIceConnectionState::Failed => IceState::Failed,
            RTCIceConnectionState::Closed => IceState::Closed,
            _ => IceState::New,
        }
    }
}

/// The DTLS transport's state, as `RTCDtlsTransport.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DtlsState {
    New,
    Connecting,
    Connected,
    Closed,
    Failed,
}

impl From<rtc::peer_connection::transport::RTCDtlsTransportState> for DtlsState {
    fn from(s: rtc::peer_connection::transport::RTCDtlsTransportState) -> Self {
        use rtc::peer_connection::transport::RTCDtlsTransportState as S;
        match s {
            S::Connecting => DtlsState::Connecting,
            S::Connected => DtlsState::Connected,
            S::Closed => DtlsState::Closed,
            S::Failed => DtlsState::Failed,
            _ => DtlsState::New,
        }
    }
}
