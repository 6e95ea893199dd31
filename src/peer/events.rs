//! The connection's event handler: state changes, the end of ICE gathering and new remote
//! tracks, handed to the [`Peer`](super::Peer) through [`Events`].

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch, Notify};
use webrtc::peer_connection::{
    PeerConnectionEventHandler, RTCIceConnectionState, RTCIceGatheringState, RTCPeerConnectionState,
};

use super::{IceState, PeerState, RemoteTrack};

/// What the event handler shares with the `Peer`.
pub(super) struct Events {
    pub(super) state: watch::Sender<PeerState>,
    pub(super) ice: watch::Sender<IceState>,
    pub(super) gathered: Notify,
    pub(super) gathering_complete: Mutex<bool>,
    pub(super) remote: mpsc::Sender<RemoteTrack>,
    /// The id abs-capture-time was negotiated with (0: none), set as each remote
    /// description is applied; remote tracks read it from their packets.
    pub(super) capture_ext: Arc<std::sync::atomic::AtomicU8>,
}

/// The handler webrtc-rs calls on the connection's driver.
pub(super) struct Handler {
    pub(super) events: Arc<Events>,
    /// Decode remote tracks ([`PeerConfig::decode_remote`](super::PeerConfig::decode_remote)).
    pub(super) decode: bool,
    /// The largest picture decoded ([`PeerConfig::max_decode_size`](super::PeerConfig::max_decode_size)).
    pub(super) max_picture: crate::encode::PictureLimit,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            if let Ok(mut done) = self.events.gathering_complete.lock() {
                *done = true;
            }
            self.events.gathered.notify_waiters();
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        let state = IceState::from(state);
        tracing::debug!("ICE state: {state:?}");
        self.events.ice.send_replace(state);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let state = PeerState::from(state);
        tracing::debug!("peer connection state: {state:?}");
        self.events.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn webrtc::media_stream::track_remote::TrackRemote>) {
        // Runs on the connection's driver: start the reader and return.
        let capture_ext = Arc::clone(&self.events.capture_ext);
        match RemoteTrack::start(track, self.decode, self.max_picture, capture_ext).await {
            Ok(remote) => {
                let _ = self.events.remote.try_send(remote);
            }
            Err(e) => tracing::warn!("remote track: {e}"),
        }
    }
}
