//! Peer connections: local tracks sent through webrtc-rs (encode once per track, many
//! peers), remote tracks received and decoded, connection lifecycle and stats.
//!
//! Async (tokio), as webrtc-rs is; encoding and decoding stay on their own threads.

mod local;
mod remote;
mod restart;
mod sdp;
mod setup;
mod stats;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceConnectionState, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription,
};

pub use remote::{Feedback, RemoteTrack, RemoteTrackStats};
pub use restart::{fragment_of, ice_credentials};
pub use sdp::video_codecs;
pub use setup::{
    h264_codec, opus_codec, vp8_codec, H264_PAYLOAD_TYPE, OPUS_PAYLOAD_TYPE, VP8_PAYLOAD_TYPE,
};
pub use stats::{InboundStats, OutboundStats, PeerStats};

use crate::encode::pipeline::TrackEncoders;
use crate::encode::VideoCodec;
use crate::sync::lock;

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
    /// Connectivity-check interval (webrtc-rs defaults to 200 ms; lower connects faster).
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
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            ice_addrs: Vec::new(),
            ice_check_interval: Duration::from_millis(50),
            ice_disconnected_timeout: Duration::from_secs(5),
            ice_failed_timeout: Duration::from_secs(25),
            video_bitrate: BitrateBounds {
                min: 150_000,
                start: 1_000_000,
                max: 2_500_000,
            },
            max_peers: 200,
            decode_remote: true,
        }
    }
}

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

/// What one sender (one track to this peer) did, counted by us (webrtc-rs 0.21 leaves
/// the matching outbound stats at 0).
#[derive(Debug, Default)]
pub(crate) struct SendCounters {
    pub(crate) frames_sent: std::sync::atomic::AtomicU64,
    pub(crate) keyframes_sent: std::sync::atomic::AtomicU64,
    /// The bitrate tier being sent (0 = the top one) and the moves between tiers so far.
    pub(crate) tier: std::sync::atomic::AtomicU64,
    pub(crate) tier_switches: std::sync::atomic::AtomicU64,
    /// Moves given up because the new tier sent no usable keyframe in time.
    pub(crate) tier_moves_abandoned: std::sync::atomic::AtomicU64,
    pub(crate) keyframe_requests: std::sync::atomic::AtomicU64,
}

/// Makes peer connections with one configuration, at most `max_peers` alive at once.
#[derive(Clone)]
pub struct PeerFactory {
    config: Arc<PeerConfig>,
    live: Arc<AtomicUsize>,
}

impl PeerFactory {
    pub fn new(config: PeerConfig) -> Self {
        PeerFactory {
            config: Arc::new(config),
            live: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    /// Peer connections open now (created, not yet closed, failed or dropped).
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// A new peer connection, or `TooManyPeers` past the limit.
    pub async fn create(&self) -> Result<Peer, PeerError> {
        let max = self.config.max_peers;
        let taken = self
            .live
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            });
        if taken.is_err() {
            return Err(PeerError::TooManyPeers(max));
        }
        let slot = Slot(Arc::clone(&self.live));
        Peer::build(&self.config, slot).await
    }
}

/// A track sent to this peer and what its sender counted; the counters outlive the
/// sender (a closed peer's stats stay readable), the sender itself is not kept.
struct SentStream {
    ssrc: u32,
    sender: std::sync::Weak<local::LocalSender>,
    counters: Arc<SendCounters>,
}

/// Gives back a factory slot when the peer goes.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the event handler shares with the `Peer`.
struct Events {
    state: watch::Sender<PeerState>,
    ice: watch::Sender<IceState>,
    gathered: Notify,
    gathering_complete: Mutex<bool>,
    remote: mpsc::Sender<RemoteTrack>,
}

struct Handler {
    events: Arc<Events>,
    decode: bool,
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
        match RemoteTrack::start(track, self.decode).await {
            Ok(remote) => {
                let _ = self.events.remote.try_send(remote);
            }
            Err(e) => tracing::warn!("remote track: {e}"),
        }
    }
}

/// One peer connection.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    events: Arc<Events>,
    state: watch::Receiver<PeerState>,
    remote: tokio::sync::Mutex<mpsc::Receiver<RemoteTrack>>,
    senders: Mutex<Vec<Arc<local::LocalSender>>>,
    /// Every sender's counters, kept after the senders stop (stats stay readable).
    sent: Mutex<Vec<SentStream>>,
    bandwidth: setup::BandwidthTarget,
    feedback: setup::FeedbackLog,
    /// Measures each sent stream's bitrate between `stats()` calls.
    bitrates: Mutex<stats::BitrateMeter>,
    /// Held while the connection is open; given back on close or failure.
    slot: Arc<Mutex<Option<Slot>>>,
}

impl Peer {
    async fn build(config: &PeerConfig, slot: Slot) -> Result<Peer, PeerError> {
        let (state_tx, state_rx) = watch::channel(PeerState::New);
        let (ice_tx, _) = watch::channel(IceState::New);
        let (remote_tx, remote_rx) = mpsc::channel(16);
        let events = Arc::new(Events {
            state: state_tx,
            ice: ice_tx,
            gathered: Notify::new(),
            gathering_complete: Mutex::new(false),
            remote: remote_tx,
        });
        let handler = Arc::new(Handler {
            events: Arc::clone(&events),
            decode: config.decode_remote,
        });
        let setup::Built {
            pc,
            bandwidth,
            feedback,
        } = setup::build(config, handler).await?;
        let slot = Arc::new(Mutex::new(Some(slot)));
        // A peer that fails (ICE timed out: the other side vanished) is closed at once and
        // gives back its slot; its owner sees `Failed` and drops it.
        let mut watch_state = state_rx.clone();
        let watch_pc = Arc::downgrade(&pc);
        let watch_slot = Arc::clone(&slot);
        tokio::spawn(async move {
            while watch_state.changed().await.is_ok() {
                let state = *watch_state.borrow();
                if matches!(state, PeerState::Failed | PeerState::Closed) {
                    if let Ok(mut s) = watch_slot.lock() {
                        s.take();
                    }
                    if state == PeerState::Failed {
                        tracing::info!("peer connection failed; closing it");
                        if let Some(pc) = watch_pc.upgrade() {
                            let _ = pc.close().await;
                        }
                    }
                    break;
                }
            }
        });
        Ok(Peer {
            pc,
            events,
            state: state_rx,
            remote: tokio::sync::Mutex::new(remote_rx),
            senders: Mutex::new(Vec::new()),
            sent: Mutex::new(Vec::new()),
            bandwidth,
            feedback,
            bitrates: Mutex::default(),
            slot,
        })
    }

    /// The connection state now.
    pub fn state(&self) -> PeerState {
        *self.state.borrow()
    }

    /// The ICE connection state now.
    pub fn ice_state(&self) -> IceState {
        *self.events.ice.borrow()
    }

    /// The DTLS transport's state now (`new` until a transceiver has a transport).
    pub async fn dtls_state(&self) -> DtlsState {
        for transceiver in self.pc.get_transceivers().await {
            let transport = match transceiver.sender().await {
                Ok(Some(sender)) => sender.transport().await,
                _ => match transceiver.receiver().await {
                    Ok(Some(receiver)) => receiver.transport().await,
                    _ => continue,
                },
            };
            if let Ok(Some(transport)) = transport {
                if let Ok(state) = transport.state().await {
                    return state.into();
                }
            }
        }
        DtlsState::New
    }

    /// A receiver of state changes.
    pub fn watch_state(&self) -> watch::Receiver<PeerState> {
        self.state.clone()
    }

    /// Sends a track to this peer (call before creating the offer or answer): an
    /// `&EncodedTrack` (exactly its codec) or a `&TrackEncoders` (any codec it allows; the
    /// negotiation picks one and the set's encoder for it feeds this peer). Samples flow
    /// once the connection is up; keyframe requests from the peer reach the encoder, and
    /// the peer's bandwidth estimate votes on the encoder's bitrate.
    pub async fn add_track(&self, track: impl Into<TrackEncoders>) -> Result<(), PeerError> {
        let counters = Arc::new(SendCounters::default());
        let sender = local::LocalSender::start(
            &self.pc,
            track.into(),
            self.state.clone(),
            self.bandwidth.clone(),
            Arc::clone(&counters),
        )
        .await?;
        let sender = Arc::new(sender);
        self.feedback.register(sender.ssrc());
        lock(&self.sent).push(SentStream {
            ssrc: sender.ssrc(),
            sender: Arc::downgrade(&sender),
            counters,
        });
        lock(&self.senders).push(sender);
        Ok(())
    }

    fn senders(&self) -> Vec<Arc<local::LocalSender>> {
        lock(&self.senders).clone()
    }

    /// Asks to receive a kind of media without sending it (a viewer's offer).
    pub async fn add_receiver(&self, kind: crate::MediaKind) -> Result<(), PeerError> {
        use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
        use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
        let kind = match kind {
            crate::MediaKind::Video => RtpCodecKind::Video,
            crate::MediaKind::Audio => RtpCodecKind::Audio,
        };
        self.pc
            .add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await
            .map(|_| ())
            .map_err(PeerError::transceiver("cannot add a receiver"))
    }

    /// Asks to receive video in `codecs` only, most preferred first (a viewer's offer that
    /// names its codecs, as a browser without H.264 does).
    pub async fn add_video_receiver(&self, codecs: &[VideoCodec]) -> Result<(), PeerError> {
        use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
        use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
        let transceiver = self
            .pc
            .add_transceiver_from_kind(
                RtpCodecKind::Video,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await
            .map_err(PeerError::transceiver("cannot add a video receiver"))?;
        let preferences = codecs
            .iter()
            .map(|&c| setup::video_codec_parameters(c))
            .collect();
        transceiver
            .set_codec_preferences(preferences)
            .await
            .map_err(PeerError::transceiver("codec preferences"))
    }

    async fn gathered_description(&self, timeout: Duration) -> Result<String, PeerError> {
        let wait = async {
            loop {
                let notified = self.events.gathered.notified();
                if self
                    .events
                    .gathering_complete
                    .lock()
                    .map(|d| *d)
                    .unwrap_or(false)
                {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| PeerError::GatheringTimeout(timeout))?;
        self.pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or(PeerError::NoLocalDescription)
    }

    /// Creates an offer and returns it with every candidate in it (no trickle needed).
    pub async fn create_offer(&self) -> Result<String, PeerError> {
        for sender in self.senders() {
            sender.prepare_offer(&self.pc).await?;
        }
        let offer = self
            .pc
            .create_offer(None)
            .await
            .map_err(PeerError::setup("cannot create the offer"))?;
        self.pc
            .set_local_description(offer)
            .await
            .map_err(PeerError::setup("cannot apply our offer"))?;
        self.gathered_description(Duration::from_secs(5)).await
    }

    /// Applies the remote answer to our offer; each track sends the first codec the answer
    /// lists for it.
    pub async fn accept_answer(&self, sdp: &str) -> Result<(), PeerError> {
        for sender in self.senders() {
            sender
                .negotiate(&self.pc, sdp, local::Remote::Answer)
                .await?;
        }
        let answer = RTCSessionDescription::answer(sdp.to_owned())
            .map_err(PeerError::sdp("cannot read the answer"))?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(PeerError::sdp("cannot apply the answer"))
    }

    /// Answers a remote offer; returns the answer with every candidate in it.
    pub async fn answer(&self, offer_sdp: &str) -> Result<String, PeerError> {
        self.answer_with(offer_sdp, std::iter::empty::<TrackEncoders>())
            .await
    }

    /// Answers a remote offer, sending `tracks` on it (a viewer's recvonly offer): the
    /// tracks (`&EncodedTrack`s or `&TrackEncoders`) are added after the offer is applied,
    /// so they take its m-lines. Each video track sends the first codec of its m-line, in
    /// the offer's order, that it may send, and the answer lists that codec first; an
    /// m-line offering none of them is a [`PeerError::Sdp`].
    pub async fn answer_with(
        &self,
        offer_sdp: &str,
        tracks: impl IntoIterator<Item = impl Into<TrackEncoders>>,
    ) -> Result<String, PeerError> {
        let offer = RTCSessionDescription::offer(offer_sdp.to_owned())
            .map_err(PeerError::sdp("cannot read the offer"))?;
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(PeerError::sdp("cannot apply the offer"))?;
        for track in tracks {
            self.add_track(track).await?;
        }
        for sender in self.senders() {
            sender
                .negotiate(&self.pc, offer_sdp, local::Remote::Offer)
                .await?;
        }
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(PeerError::sdp("cannot answer the offer"))?;
        self.pc
            .set_local_description(answer)
            .await
            .map_err(PeerError::setup("cannot apply our answer"))?;
        self.gathered_description(Duration::from_secs(5)).await
    }

    /// Adds trickled remote candidates from an SDP fragment
    /// (`application/trickle-ice-sdpfrag`: `a=ice-ufrag`, `a=mid`, `a=candidate` lines).
    pub async fn add_candidates(&self, fragment: &str) -> Result<usize, PeerError> {
        use webrtc::peer_connection::RTCIceCandidateInit;
        let (mut mid, mut ufrag, mut added) = (None, None, 0);
        for line in fragment.lines().map(|l| l.trim_end_matches('\r')) {
            if let Some(v) = line.strip_prefix("a=mid:") {
                mid = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
                ufrag = Some(v.to_owned());
            } else if let Some(c) = line.strip_prefix("a=") {
                if c.starts_with("candidate:") {
                    let init = RTCIceCandidateInit {
                        candidate: c.to_owned(),
                        sdp_mid: mid.clone(),
                        sdp_mline_index: if mid.is_none() { Some(0) } else { None },
                        username_fragment: ufrag.clone(),
                        ..Default::default()
                    };
                    self.pc.add_ice_candidate(init).await.map_err(|source| {
                        PeerError::SdpRejected {
                            context: format!("candidate {c:?}"),
                            source,
                        }
                    })?;
                    added += 1;
                }
            }
        }
        Ok(added)
    }

    /// Waits until connected; fails on `failed`/`closed` or after `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), PeerError> {
        let mut state = self.state.clone();
        let wait = async {
            loop {
                let s = *state.borrow_and_update();
                match s {
                    PeerState::Connected => return Ok(()),
                    PeerState::Failed | PeerState::Closed => return Err(s),
                    _ => {}
                }
                if state.changed().await.is_err() {
                    return Err(PeerState::Closed);
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(s)) => Err(PeerError::ConnectTimeout(timeout, s)),
            Err(_) => Err(PeerError::ConnectTimeout(timeout, self.state())),
        }
    }

    /// The next remote track the peer sends (they appear with their first packet).
    pub async fn next_remote_track(&self, timeout: Duration) -> Option<RemoteTrack> {
        let mut rx = self.remote.lock().await;
        tokio::time::timeout(timeout, rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The congestion controller's bandwidth estimate toward this peer, bits per second.
    pub fn bandwidth_estimate(&self) -> f64 {
        self.bandwidth.bits_per_second()
    }

    /// `getStats()`: per stream bytes, packets, NACK/PLI/FIR, bitrate, RTT.
    pub async fn stats(&self) -> PeerStats {
        let report = self
            .pc
            .get_stats(
                std::time::Instant::now(),
                webrtc::peer_connection::StatsSelector::None,
            )
            .await;
        let mut stats = stats::from_report(self.state(), &report);
        stats.ice_state = self.ice_state();
        stats.dtls_state = self.dtls_state().await;
        stats.bandwidth_estimate = self.bandwidth_estimate();
        let now = std::time::Instant::now();
        let sent = lock(&self.sent);
        let mut bitrates = lock(&self.bitrates);
        for out in &mut stats.outbound {
            let feedback = self.feedback.counts(out.ssrc);
            out.nack_count = out.nack_count.max(feedback.nacks);
            out.pli_count = out.pli_count.max(feedback.plis);
            out.fir_count = out.fir_count.max(feedback.firs);
            if out.kind == "video" {
                out.target_bitrate = stats.bandwidth_estimate;
            }
            if let Some(stream) = sent.iter().find(|s| s.ssrc == out.ssrc) {
                let c = &stream.counters;
                if let Some(sender) = stream.sender.upgrade() {
                    out.mime_type = sender.mime_type();
                }
                out.frames_sent = c.frames_sent.load(Ordering::Relaxed);
                out.key_frames_sent = c.keyframes_sent.load(Ordering::Relaxed);
                if out.kind == "video" {
                    out.tier = Some(c.tier.load(Ordering::Relaxed) as usize);
                    out.tier_switches = c.tier_switches.load(Ordering::Relaxed);
                    out.tier_moves_abandoned = c.tier_moves_abandoned.load(Ordering::Relaxed);
                }
            }
            out.bitrate = bitrates.measure(out.ssrc, out.bytes_sent, now);
        }
        for stream in sent.iter() {
            let c = &stream.counters;
            stats.frames_sent += c.frames_sent.load(Ordering::Relaxed);
            stats.keyframes_sent += c.keyframes_sent.load(Ordering::Relaxed);
            stats.keyframe_requests_received += c.keyframe_requests.load(Ordering::Relaxed);
        }
        stats
    }

    /// Closes the connection and stops its senders; idempotent.
    pub async fn close(&self) {
        if let Ok(mut senders) = self.senders.lock() {
            for s in senders.drain(..) {
                s.stop();
            }
        }
        if let Err(e) = self.pc.close().await {
            tracing::debug!("close: {e}");
        }
        if let Ok(mut s) = self.slot.lock() {
            s.take();
        }
        if self.state() != PeerState::Failed {
            self.events.state.send_replace(PeerState::Closed);
        }
    }
}

impl Drop for Peer {
    /// Dropping a peer closes it (webrtc-rs keeps an unclosed connection's driver alive).
    fn drop(&mut self) {
        if let Ok(mut senders) = self.senders.lock() {
            senders.clear();
        }
        let pc = Arc::clone(&self.pc);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}
