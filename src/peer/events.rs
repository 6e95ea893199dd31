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
    /// The data channels the other side opens (at most a few queued; more are dropped).
    pub(super) data_channels: mpsc::Sender<Arc<dyn webrtc::data_channel::DataChannel>>,
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
    /// Audio decoded is held this long before it plays
    /// ([`PeerConfig::audio_delay`](super::PeerConfig::audio_delay)).
    pub(super) audio_delay: std::time::Duration,
    /// The analyses of this connection's remote tracks (their A/V offset pairs across them).
    pub(super) analyses: crate::analysis::ReceiverAnalyses,
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

    async fn on_data_channel(&self, channel: Arc<dyn webrtc::data_channel::DataChannel>) {
        if self.events.data_channels.try_send(channel).is_err() {
            tracing::warn!("a data channel the other side opened was dropped (too many)");
        }
    }

    async fn on_track(&self, track: Arc<dyn webrtc::media_stream::track_remote::TrackRemote>) {
        // Runs on the connection's driver: start the reader and return.
        let capture_ext = Arc::clone(&self.events.capture_ext);
        let options = super::remote::StartOptions {
            decode: self.decode,
            max_picture: self.max_picture,
            audio_delay: self.audio_delay,
            capture_ext,
            analyses: self.analyses.clone(),
        };
        match RemoteTrack::start(track, options).await {
            Ok(remote) => {
                let _ = self.events.remote.try_send(remote);
            }
            Err(e) => tracing::warn!("remote track: {e}"),
        }
    }
}
