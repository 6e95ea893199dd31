//! Peer connections: local tracks sent through webrtc-rs (encode once per track, many
//! peers), remote tracks received and decoded, connection lifecycle and stats.
//!
//! Async (tokio), as webrtc-rs is; encoding and decoding stay on their own threads.

mod capture_time;
mod config;
mod data_channel;
mod error;
mod estimate;
mod events;
mod ice;
pub mod impair;
mod impair_link;
mod local;
mod mux;
mod mux_routes;
mod negotiate;
mod payloads;
mod remote;
mod restart;
mod sdp;
mod setup;
mod shape;
mod state;
mod stats;
mod turn_bridge;
mod turn_frame;
mod turn_tls;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use webrtc::peer_connection::PeerConnection;

pub use capture_time::ABS_CAPTURE_TIME_URI;
pub use config::{BitrateBounds, PeerConfig};
pub use data_channel::{DataChannel, DataEvent};
pub use error::PeerError;
pub use ice::{IceScheme, IceServer, IceUrl};
pub use impair_link::{DirectionReport as ImpairDirectionReport, ImpairLink, ImpairReport};
pub use remote::{Feedback, RemoteTrack, RemoteTrackStats};
pub use restart::{fragment_of, ice_credentials};
pub use sdp::video_codecs;
pub use setup::{
    h264_codec, opus_codec, vp8_codec, H264_PAYLOAD_TYPE, OPUS_PAYLOAD_TYPE, VP8_PAYLOAD_TYPE,
};
pub use shape::{
    check_answer_role, check_sections, restrict_directions, AnswerRole, MAX_REMOTE_CANDIDATES,
    MAX_SECTIONS_PER_KIND,
};
// For the fuzz targets' wrappers (the top-level `fuzzing` module) only.
pub(crate) use negotiate::fragment_candidates;
pub(crate) use remote::replay;
pub(crate) use restart::with_credentials;
pub(crate) use sdp::video_codecs_of_mid;
pub(crate) use setup::video_codec_parameters;
pub(crate) use shape::{cap_candidates, inactive_mids, role_direction};
pub use state::{DtlsState, IceState, PeerState};
pub use stats::{CandidatePairStats, CandidateStats, InboundStats, OutboundStats, PeerStats};
pub use turn_tls::check_ice_ca_certs;

use crate::encode::pipeline::TrackEncoders;
use crate::encode::VideoCodec;
use crate::sync::lock;
use events::{Events, Handler};

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
    /// Keyframe requests held by the viewer's budget (merged into a later one).
    pub(crate) keyframe_requests_throttled: std::sync::atomic::AtomicU64,
}

/// Makes peer connections with one configuration, at most `max_peers` alive at once.
#[derive(Clone)]
pub struct PeerFactory {
    config: Arc<PeerConfig>,
    live: Arc<AtomicUsize>,
    /// The shared UDP port ([`PeerConfig::udp_port`]), bound on first use.
    mux: Arc<tokio::sync::OnceCell<Arc<mux::UdpMux>>>,
    /// TLS for `turns:` servers ([`PeerConfig::ice_ca_certs`]), made on first use.
    turn_tls: Arc<tokio::sync::OnceCell<Arc<rustls::ClientConfig>>>,
    /// Impaired peers made so far ([`PeerConfig::impair`]): the next one's index.
    impaired: Arc<std::sync::atomic::AtomicU64>,
}

impl PeerFactory {
    pub fn new(config: PeerConfig) -> Self {
        PeerFactory {
            config: Arc::new(config),
            live: Arc::new(AtomicUsize::new(0)),
            mux: Arc::default(),
            turn_tls: Arc::default(),
            impaired: Arc::default(),
        }
    }

    /// A factory like this one (the same peer limit, shared port and TURN trust, and the
    /// same count of impaired peers) whose peers are impaired by `schedule` (`None`: not
    /// impaired) — e.g. a server's viewers, but not its publishers.
    pub fn with_impairment(&self, schedule: Option<impair::ImpairSchedule>) -> PeerFactory {
        let mut config = (*self.config).clone();
        config.impair = schedule;
        PeerFactory {
            config: Arc::new(config),
            ..self.clone()
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
        let servers = &self.config.ice_servers;
        let bridges = turn_bridge::TurnBridges::start(servers, || async {
            self.turn_tls
                .get_or_try_init(|| async { turn_tls::client_config(&self.config.ice_ca_certs) })
                .await
                .cloned()
        })
        .await?;
        let port = match self.udp_mux().await? {
            Some(m) => Some(m.port(ice::turn_addrs(servers, &bridges).await)),
            None => None,
        };
        let impair = self.config.impair.clone().map(|schedule| {
            let index = self.impaired.fetch_add(1, Ordering::SeqCst);
            ImpairLink::new(schedule, index)
        });
        Peer::build(&self.config, slot, port, bridges, impair).await
    }

    /// The shared UDP port's address ([`PeerConfig::udp_port`]), bound now if it was not
    /// yet (call at start-up to report a port in use at once); `None` without one. Must
    /// run inside a tokio runtime.
    pub async fn udp_port_addr(&self) -> Result<Option<std::net::SocketAddr>, PeerError> {
        Ok(self.udp_mux().await?.map(|m| m.local_addr()))
    }

    async fn udp_mux(&self) -> Result<Option<&Arc<mux::UdpMux>>, PeerError> {
        let Some(port) = self.config.udp_port else {
            return Ok(None);
        };
        let addr = setup::udp_port_bind_addr(&self.config, port);
        self.mux
            .get_or_try_init(|| async { mux::UdpMux::bind(addr) })
            .await
            .map(Some)
            .map_err(|source| PeerError::UdpPort { addr, source })
    }

    /// [`create`](Self::create) with `extra` ICE servers besides the configured ones (the
    /// ones a WHIP/WHEP server advertised).
    pub async fn create_with_ice_servers(&self, extra: Vec<IceServer>) -> Result<Peer, PeerError> {
        if extra.is_empty() {
            return self.create().await;
        }
        let mut config = (*self.config).clone();
        config.ice_servers.extend(extra);
        PeerFactory {
            config: Arc::new(config),
            ..self.clone()
        }
        .create()
        .await
    }
}

/// A track sent to this peer and what its sender counted; the counters outlive the
/// sender (a closed peer's stats stay readable), the sender itself is not kept.
struct SentStream {
    ssrc: u32,
    sender: std::sync::Weak<local::LocalSender>,
    counters: Arc<SendCounters>,
}

/// A track this peer sends (the spec's `RTCRtpSender`), as [`Peer::get_senders`] lists
/// them: its kind, the track it sends, and `replaceTrack`.
#[derive(Clone)]
pub struct TrackSender {
    sender: Arc<local::LocalSender>,
}

impl TrackSender {
    /// The kind of track it sends.
    pub fn kind(&self) -> crate::constraints::MediaKind {
        self.sender.kind()
    }

    /// The track it sends now (`None` when it sends a passthrough).
    pub fn track(&self) -> Option<crate::track::MediaStreamTrack> {
        self.sender.encoders().track()
    }

    /// `replaceTrack`: sends `track`'s encoders instead (an `&EncodedTrack` or a
    /// `&TrackEncoders` of the new track, as [`Peer::add_track`] takes) — for instance
    /// the other camera after a second getUserMedia with the other `facingMode`. No
    /// renegotiation: the receiver's track goes on (same SSRC, sequence numbers running on,
    /// timestamps by the real time in between) and shows the new track from its first
    /// keyframe, at the new size; until then the old track's units keep coming. Only this
    /// peer changes; to move every peer of a published track at once, replace the track of
    /// its [`TrackEncoders`] ([`TrackEncoders::replace_track`]) instead.
    ///
    /// The replacement must be of the same kind and, once a codec is negotiated, able to
    /// send it (`PeerError::Track` otherwise, and nothing changes). Stop the old track
    /// only after replacing it.
    pub fn replace_track(&self, track: impl Into<TrackEncoders>) -> Result<(), PeerError> {
        self.sender.replace(track.into())
    }
}

/// Gives back a factory slot when the peer goes.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One peer connection.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    events: Arc<Events>,
    state: watch::Receiver<PeerState>,
    remote: tokio::sync::Mutex<mpsc::Receiver<RemoteTrack>>,
    /// The data channels the other side opens.
    data_channels: tokio::sync::Mutex<mpsc::Receiver<Arc<dyn webrtc::data_channel::DataChannel>>>,
    senders: Mutex<Vec<Arc<local::LocalSender>>>,
    /// Every sender's counters, kept after the senders stop (stats stay readable).
    sent: Mutex<Vec<SentStream>>,
    bandwidth: setup::BandwidthTarget,
    feedback: setup::FeedbackLog,
    /// Measures each sent stream's bitrate between `stats()` calls.
    bitrates: Mutex<stats::BitrateMeter>,
    /// Held while the connection is open; given back on close or failure.
    slot: Arc<Mutex<Option<Slot>>>,
    /// What our gathered descriptions get before they leave (public addresses, the
    /// relay-only check).
    finish: ice::Finish,
    /// Remote candidates taken so far (at most [`MAX_REMOTE_CANDIDATES`]).
    remote_candidates: std::sync::atomic::AtomicUsize,
    /// The local bridges to TURN servers over TCP or TLS; released on close (their
    /// connections closed, which ends the allocations) or with the peer.
    turn_bridges: Mutex<turn_bridge::TurnBridges>,
    /// The impaired path ([`PeerConfig::impair`]); stopped on close.
    impair: Option<ImpairLink>,
}

impl Peer {
    async fn build(
        config: &PeerConfig,
        slot: Slot,
        port: Option<Arc<mux::PeerPort>>,
        bridges: turn_bridge::TurnBridges,
        impair: Option<ImpairLink>,
    ) -> Result<Peer, PeerError> {
        let (state_tx, state_rx) = watch::channel(PeerState::New);
        let (ice_tx, _) = watch::channel(IceState::New);
        let (remote_tx, remote_rx) = mpsc::channel(16);
        let (data_tx, data_rx) = mpsc::channel(8);
        let events = Arc::new(Events {
            state: state_tx,
            ice: ice_tx,
            gathered: Notify::new(),
            gathering_complete: Mutex::new(false),
            remote: remote_tx,
            data_channels: data_tx,
            capture_ext: Arc::default(),
        });
        let handler = Arc::new(Handler {
            events: Arc::clone(&events),
            decode: config.decode_remote,
            max_picture: config.max_decode_size,
            audio_delay: config.audio_delay,
            analyses: crate::analysis::ReceiverAnalyses::new(),
        });
        let finish = ice::Finish::new(config, port.clone(), &bridges)?;
        let setup::Built {
            pc,
            bandwidth,
            feedback,
        } = setup::build(config, handler, port, &bridges, impair.as_ref()).await?;
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
            data_channels: tokio::sync::Mutex::new(data_rx),
            senders: Mutex::new(Vec::new()),
            sent: Mutex::new(Vec::new()),
            bandwidth,
            feedback,
            bitrates: Mutex::default(),
            slot,
            finish,
            remote_candidates: std::sync::atomic::AtomicUsize::new(0),
            turn_bridges: Mutex::new(bridges),
            impair,
        })
    }

    /// What the impairment of this peer's path did so far ([`PeerConfig::impair`]):
    /// packets dropped (by loss, by the rate's queue), delayed, reordered and delivered,
    /// each direction; `None` when the path is not impaired. Readable after close.
    pub fn impairment(&self) -> Option<ImpairReport> {
        self.impair.as_ref().map(ImpairLink::report)
    }

    /// A handle on this peer's impaired path, whose report outlives the peer.
    pub fn impair_link(&self) -> Option<ImpairLink> {
        self.impair.clone()
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

    /// `getSenders()`: the tracks this peer sends, in the order they were added (none once
    /// closed).
    pub fn get_senders(&self) -> Vec<TrackSender> {
        self.senders()
            .into_iter()
            .map(|sender| TrackSender { sender })
            .collect()
    }

    /// Asks to receive a kind of media without sending it (a viewer's offer).
    pub async fn add_receiver(&self, kind: crate::constraints::MediaKind) -> Result<(), PeerError> {
        use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
        use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
        let kind = match kind {
            crate::constraints::MediaKind::Video => RtpCodecKind::Video,
            crate::constraints::MediaKind::Audio => RtpCodecKind::Audio,
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
        stats.selected_candidate_pair = stats::selected_pair(self.pc.as_ref()).await;
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
            stats.keyframe_requests_throttled +=
                c.keyframe_requests_throttled.load(Ordering::Relaxed);
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
        if let Some(link) = &self.impair {
            link.stop();
        }
        // After the close (whose Refresh with lifetime 0 went through them).
        *lock(&self.turn_bridges) = turn_bridge::TurnBridges::default();
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
        if let Some(link) = &self.impair {
            link.stop();
        }
        let pc = Arc::clone(&self.pc);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}
