//! Sending one track to one peer: the codec chosen at negotiation, the samples of that
//! codec's shared encoder packetized with the negotiated payload type, keyframe requests
//! passed back to the encoder, and the peer's bandwidth estimate voted into its bitrate.
//!
//! The codec is known only once both descriptions are in, but webrtc-rs takes a track's
//! codec when the track is added (its sample track even fixes the payloader then, and a
//! codec the remote offer lacks fails the add). So a video track is added as a plain RTP
//! track with no codec; [`LocalSender::prepare_offer`] lists the codecs it may send on its
//! m-line, and [`LocalSender::negotiate`] reads the remote description before it is
//! applied, picks the codec, and gives the sender the track's description with it (same
//! ids and SSRC) so webrtc-rs binds its interceptors (NACK, TWCC) to that codec when sending
//! starts. We packetize ourselves, with the chosen codec's payloader, once connected.
//!
//! `replaceTrack` ([`LocalSender::replace`]) swaps the encoders feeding this peer without
//! renegotiation: the send loop takes a viewer of the new encoders and keeps sending the
//! old ones' units until the new ones' first (a keyframe), then continues on the new ones
//! with the same SSRC, the same packetizer (sequence numbers run on) and an RTP clock
//! rebased so that timestamps run on by the real time in between.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::media_stream::MediaStreamTrack as RtcTrack;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::{RtpSender, RtpTransceiver};

use super::capture_time::{self, ABS_CAPTURE_TIME_URI};
use super::payloads::{Payloads, CUTS};
use super::setup::{opus_codec, video_codec_parameters, BandwidthTarget};
use super::{PeerError, PeerState, SendCounters};
use crate::constraints::MediaKind;
use crate::encode::pipeline::{
    EncodedTrack, KeyframeBudget, TieredReceiver, TrackEncoders, REQUESTER_KEYFRAME_INTERVAL,
};
use crate::encode::{EncodedUnit, VideoCodec};
use crate::sync::lock;

/// RTP packets at most this long (webrtc-rs's sample track uses the same).
pub(super) const MTU: usize = 1200;

/// Which remote description [`LocalSender::negotiate`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Remote {
    /// The remote offer we are about to answer.
    Offer,
    /// The remote answer to our offer.
    Answer,
}

/// What the sender's tasks share with it.
struct Shared {
    /// The negotiated video codec (`None` for audio or before negotiation).
    codec: Mutex<Option<VideoCodec>>,
    /// The encoder feeding this peer, once connected (its current tier's): keyframe
    /// requests go to it.
    encoder: Mutex<Option<EncodedTrack>>,
}

/// The tasks that feed one track to one peer; stopped on close or drop.
pub(super) struct LocalSender {
    tasks: Vec<JoinHandle<()>>,
    /// The encoders feeding this peer; replaced by `replaceTrack` (the send loop watches).
    encoders: watch::Sender<TrackEncoders>,
    sender: Arc<dyn RtpSender>,
    /// The track as described to webrtc-rs (ids, SSRC, codec).
    description: Mutex<RtcTrack>,
    shared: Arc<Shared>,
    /// The SSRC this track is sent with: the key of its outbound stats.
    ssrc: u32,
}

/// The webrtc-rs description of a track of `kind` with one encoding: `ssrc`, `codec`.
fn describe(id: &str, kind: RtpCodecKind, ssrc: u32, codec: RTCRtpCodec) -> RtcTrack {
    RtcTrack::new(
        "usermedia".to_owned(),
        id.to_owned(),
        id.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )
}

pub(super) fn rtp_codec(codec: Option<VideoCodec>) -> RTCRtpCodec {
    match codec {
        Some(c) => video_codec_parameters(c).rtp_codec,
        None => opus_codec(),
    }
}

impl LocalSender {
    pub(super) async fn start(
        pc: &Arc<dyn PeerConnection>,
        encoders: TrackEncoders,
        state: watch::Receiver<PeerState>,
        bandwidth: BandwidthTarget,
        counters: Arc<SendCounters>,
    ) -> Result<Self, PeerError> {
        let (kind, first) = match encoders.kind() {
            MediaKind::Video => {
                let Some(&first) = encoders.video_codecs().first() else {
                    return Err(PeerError::Track("no video codec to send".into()));
                };
                (RtpCodecKind::Video, Some(first))
            }
            MediaKind::Audio => (RtpCodecKind::Audio, None),
        };
        let ssrc: u32 = rand::random();
        let id = uuid::Uuid::new_v4().to_string();
        // Video: no codec until negotiation picks one (see the module's comment).
        let codec = match first {
            Some(_) => RTCRtpCodec {
                clock_rate: 90_000,
                ..Default::default()
            },
            None => opus_codec(),
        };
        let description = describe(&id, kind, ssrc, codec);
        let track = Arc::new(TrackLocalStaticRTP::new(description.clone()));
        let sender = pc
            .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await
            .map_err(PeerError::transceiver("cannot add the track"))?;
        let shared = Arc::new(Shared {
            codec: Mutex::new(None),
            encoder: Mutex::new(None),
        });

        let rtcp_track = Arc::clone(&track);
        let rtcp_shared = Arc::clone(&shared);
        let rtcp_counters = Arc::clone(&counters);
        let rtcp = tokio::spawn(async move {
            // This viewer's keyframe budget: its PLI/FIR storm cannot force more than one
            // keyframe per second on an encoder it shares with others (a held request is
            // passed on when the second has run, not lost).
            let mut budget = KeyframeBudget::default();
            let request = |shared: &Shared| {
                // Before the encoder is attached the sink's first unit is a keyframe
                // anyway.
                let encoder = lock(&shared.encoder).clone();
                if let Some(encoder) = encoder {
                    encoder.request_keyframe();
                }
            };
            loop {
                let held = budget.due();
                let event = tokio::select! {
                    e = rtcp_track.poll() => e,
                    _ = async {
                        match held {
                            Some(due) => tokio::time::sleep_until(due.into()).await,
                            None => std::future::pending().await,
                        }
                    } => {
                        if budget.poll(Instant::now()) {
                            request(&rtcp_shared);
                        }
                        continue;
                    }
                };
                let Some(event) = event else { break };
                if let TrackLocalEvent::OnRtcpPacket(packets) = event {
                    let wants_keyframe = packets.iter().any(|p| {
                        let any = p.as_any();
                        any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                    });
                    if wants_keyframe {
                        rtcp_counters
                            .keyframe_requests
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let shared = lock(&rtcp_shared.encoder)
                            .as_ref()
                            .is_some_and(|e| e.sink_count() > 1);
                        if budget.request(Instant::now(), shared) {
                            request(&rtcp_shared);
                        } else {
                            let before = rtcp_counters
                                .keyframe_requests_throttled
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if before.is_multiple_of(50) {
                                tracing::info!(
                                    "a viewer asks for keyframes too often: held to one per {:?} \
                                     ({} held so far)",
                                    REQUESTER_KEYFRAME_INTERVAL,
                                    before + 1
                                );
                            }
                        }
                    }
                }
            }
        });
        let (encoders, replacements) = watch::channel(encoders);
        let send = tokio::spawn(send_loop(SendContext {
            track,
            sender: Arc::clone(&sender),
            bandwidth,
            counters,
            encoders: replacements,
            shared: Arc::clone(&shared),
            first,
            ssrc,
            state,
        }));
        Ok(LocalSender {
            tasks: vec![rtcp, send],
            encoders,
            sender,
            description: Mutex::new(description),
            shared,
            ssrc,
        })
    }

    /// The SSRC this track is sent with.
    pub(super) fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The encoders feeding this peer now.
    pub(super) fn encoders(&self) -> TrackEncoders {
        self.encoders.borrow().clone()
    }

    /// The kind of track sent.
    pub(super) fn kind(&self) -> MediaKind {
        self.encoders.borrow().kind()
    }

    /// `replaceTrack`: `encoders` (a new track's) feed this peer from their first keyframe
    /// on, without renegotiation. They must be of the same kind and, once a codec is
    /// negotiated, able to send it.
    pub(super) fn replace(&self, encoders: TrackEncoders) -> Result<(), PeerError> {
        let kind = self.kind();
        if encoders.kind() != kind {
            return Err(PeerError::Track(format!(
                "a {} track cannot replace the {kind} track this sender sends",
                encoders.kind()
            )));
        }
        if kind == MediaKind::Video {
            let negotiated = *lock(&self.shared.codec);
            let codecs = encoders.video_codecs();
            let sendable = match negotiated {
                Some(codec) => codecs.contains(&codec),
                None => !codecs.is_empty(),
            };
            if !sendable {
                let names: Vec<&str> = codecs.iter().map(|c| c.as_str()).collect();
                return Err(PeerError::Track(format!(
                    "the replacement cannot send {} (it sends [{}]), which this peer negotiated",
                    negotiated.map_or("video", |c| c.as_str()),
                    names.join(", ")
                )));
            }
        }
        self.encoders.send_replace(encoders);
        Ok(())
    }

    /// The codec sent: the negotiated video codec, or Opus for audio.
    pub(super) fn mime_type(&self) -> String {
        let encoders = self.encoders();
        match encoders.kind() {
            MediaKind::Video => lock(&self.shared.codec)
                .or_else(|| encoders.video_codecs().first().copied())
                .map(|c| rtp_codec(Some(c)).mime_type)
                .unwrap_or_default(),
            MediaKind::Audio => opus_codec().mime_type,
        }
    }

    /// This sender's transceiver.
    async fn transceiver(
        &self,
        pc: &Arc<dyn PeerConnection>,
    ) -> Result<Arc<dyn RtpTransceiver>, PeerError> {
        for t in pc.get_transceivers().await {
            if let Ok(Some(s)) = t.sender().await {
                if s.id() == self.sender.id() {
                    return Ok(t);
                }
            }
        }
        Err(PeerError::Track("the sender has no transceiver".into()))
    }

    /// Before our offer: this track's m-line lists exactly the codecs it may send, most
    /// preferred first.
    pub(super) async fn prepare_offer(
        &self,
        pc: &Arc<dyn PeerConnection>,
    ) -> Result<(), PeerError> {
        let encoders = self.encoders();
        let codecs = encoders.video_codecs();
        if codecs.is_empty() {
            return Ok(());
        }
        let preferences = codecs.iter().map(|&c| video_codec_parameters(c)).collect();
        self.transceiver(pc)
            .await?
            .set_codec_preferences(preferences)
            .await
            .map_err(PeerError::setup("codec preferences"))
    }

    /// Picks the codec from the remote description `sdp` (before it or our answer is
    /// applied): the first video codec of this track's m-line that the track may send.
    /// When answering, our answer then lists the chosen codec first and only codecs we may
    /// send. An m-line that lists none of them is an error naming both.
    pub(super) async fn negotiate(
        &self,
        pc: &Arc<dyn PeerConnection>,
        sdp: &str,
        remote: Remote,
    ) -> Result<(), PeerError> {
        let encoders = self.encoders();
        let allowed = encoders.video_codecs();
        if allowed.is_empty() {
            return Ok(()); // audio: Opus is the only codec
        }
        let transceiver = self.transceiver(pc).await?;
        let Ok(Some(mid)) = transceiver.mid().await else {
            return Ok(()); // not in this description: nothing is sent
        };
        let Some(listed) = super::sdp::video_codecs_of_mid(sdp, &mid) else {
            return Ok(());
        };
        let Some(&chosen) = listed.iter().find(|c| allowed.contains(c)) else {
            let names = |list: &[VideoCodec]| {
                list.iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(PeerError::Sdp(format!(
                "the remote {} lists no video codec we send (it lists [{}], we send [{}])",
                if remote == Remote::Offer {
                    "offer"
                } else {
                    "answer"
                },
                names(&listed),
                names(allowed)
            )));
        };
        *lock(&self.shared.codec) = Some(chosen);
        let replacement = {
            let mut description = lock(&self.description);
            let current = description
                .codings()
                .first()
                .map(|c| c.codec.mime_type.clone())
                .unwrap_or_default();
            if current.eq_ignore_ascii_case(chosen.mime_type()) {
                None
            } else {
                let ssrc = description.ssrcs().next().unwrap_or_default();
                let id = description.track_id().to_string();
                *description = describe(
                    &id,
                    RtpCodecKind::Video,
                    ssrc,
                    video_codec_parameters(chosen).rtp_codec,
                );
                Some(description.clone())
            }
        };
        if let Some(description) = replacement {
            // webrtc-rs keeps the track it bound at add_track (we write through it); this
            // only changes the sender's description, which decides how the interceptors
            // bind when sending starts.
            self.sender
                .replace_track(Arc::new(TrackLocalStaticRTP::new(description)))
                .await
                .map_err(PeerError::setup(format!("switching to {chosen}")))?;
        }
        if remote == Remote::Offer {
            // Answer with the chosen codec first and nothing we would not send; the offer's
            // payload types stay (read from the sender, which took them from the offer).
            if let Ok(params) = self.sender.get_parameters().await {
                let codecs = params.rtp_parameters.codecs;
                let of = |c: VideoCodec| {
                    codecs
                        .iter()
                        .find(|p| p.rtp_codec.mime_type.eq_ignore_ascii_case(c.mime_type()))
                        .cloned()
                };
                let ordered: Vec<RTCRtpCodecParameters> = std::iter::once(chosen)
                    .chain(
                        listed
                            .iter()
                            .copied()
                            .filter(|c| *c != chosen && allowed.contains(c)),
                    )
                    .filter_map(of)
                    .collect();
                if !ordered.is_empty() {
                    if let Err(e) = transceiver.set_codec_preferences(ordered).await {
                        tracing::debug!("answer codec preferences: {e}");
                    }
                }
            }
        }
        tracing::debug!("sending {chosen} (the remote {remote:?} lists {listed:?})");
        Ok(())
    }

    pub(super) fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for LocalSender {
    fn drop(&mut self) {
        self.stop();
    }
}

/// RTP timestamps from the units' capture timestamps: the first unit's timestamp maps to
/// a random base, every later one to the base plus its capture-time distance in clock
/// ticks. Nominal frame durations would compress the timeline whenever a frame is skipped
/// (the encoder's rate control, a unit dropped for a slow peer, a lower frame rate);
/// capture times keep receivers' playout and jitter figures true. Tier moves keep the
/// timeline too: every tier encodes the same captured frames.
///
/// A replaced track's units are on another timeline: [`rebase`](Self::rebase) continues
/// the RTP timeline from the last timestamp given out by the real time in between.
#[derive(Debug, Clone)]
pub(crate) struct RtpClock {
    clock_rate: u32,
    base: u32,
    first: Option<Duration>,
    /// The last RTP timestamp given out.
    last: Option<u32>,
}

impl RtpClock {
    pub(crate) fn new(clock_rate: u32, base: u32) -> Self {
        RtpClock {
            clock_rate,
            base,
            first: None,
            last: None,
        }
    }

    /// The next unit, captured at `timestamp` on a new timeline (a replaced track's), is
    /// `gap` after the last one: it gets the last RTP timestamp plus `gap` in ticks (at
    /// least one), and later units follow it by their capture times.
    pub(crate) fn rebase(&mut self, timestamp: Duration, gap: Duration) {
        let Some(last) = self.last else {
            return; // nothing sent yet: the first unit starts the timeline anyway
        };
        let ticks = (gap.as_nanos() * u128::from(self.clock_rate) + 500_000_000) / 1_000_000_000;
        self.base = last.wrapping_add((ticks as u32).max(1));
        self.first = Some(timestamp);
    }

    /// The RTP timestamp of a unit captured at `timestamp` (on the track's timeline).
    pub(crate) fn timestamp(&mut self, timestamp: Duration) -> u32 {
        let first = *self.first.get_or_insert(timestamp);
        let offset = timestamp.as_nanos() as i128 - first.as_nanos() as i128;
        // Rounded to the nearest tick, not truncated: 33,333,333 ns at 90 kHz is 3000 ticks
        // (2999.99997), and truncation would make every 30 fps frame one tick short.
        let scaled = offset * i128::from(self.clock_rate);
        let half = 500_000_000 * scaled.signum();
        let ticks = (scaled + half) / 1_000_000_000;
        // Modulo 2^32, as RTP timestamps wrap.
        let rtp = self.base.wrapping_add(ticks as i64 as u32);
        self.last = Some(rtp);
        rtp
    }
}

/// The most packets handed to webrtc-rs's driver in one event. Batching wakes the driver
/// once per batch instead of once per packet (publisher CPU at 64 viewers −7%, release);
/// capped because a keyframe's ~100 packets in one event made every connection's buffers
/// grow to hold a whole keyframe at once (+0.12 MiB per viewer, measured), and 8 covers a
/// delta frame at the usual bitrates.
const BATCH: usize = 8;

/// Everything one send loop works with.
struct SendContext {
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    bandwidth: BandwidthTarget,
    counters: Arc<SendCounters>,
    /// The encoders to send, replaced by `replaceTrack`.
    encoders: watch::Receiver<TrackEncoders>,
    shared: Arc<Shared>,
    /// The codec sent if negotiation never chose one (the track's first).
    first: Option<VideoCodec>,
    ssrc: u32,
    state: watch::Receiver<PeerState>,
}

/// Turns units into RTP packets on the track: one SSRC, one run of sequence numbers and
/// one RTP clock for the sender's life, whichever encoders the units come from. The
/// payloads are cut once per unit for every viewer ([`Payloads`]); a packet of this
/// viewer's is its header in front of a shared payload.
struct Writer {
    track: Arc<TrackLocalStaticRTP>,
    payloads: Payloads,
    payload_type: u8,
    ssrc: u32,
    /// The next packet's sequence number.
    sequence: u16,
    clock: RtpClock,
    counters: Arc<SendCounters>,
    video: bool,
    /// When the last unit was written, and how long it plays.
    last_sent: Option<(Instant, Duration)>,
    /// The negotiated id of abs-capture-time, written on each unit's first packet.
    capture_ext: Option<u8>,
}

impl Writer {
    /// Writes `unit` from `units`; `false` once the track cannot be written to.
    async fn write(&mut self, unit: EncodedUnit, units: &TieredReceiver) -> bool {
        let keyframe = self.video && unit.keyframe;
        let rtp_timestamp = self.clock.timestamp(unit.timestamp);
        let payloads = match self.payloads.cut(&unit.data) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("packetize: {e}");
                return true;
            }
        };
        let last = payloads.len().saturating_sub(1);
        let mut packets: Vec<Packet> = payloads
            .iter()
            .enumerate()
            .map(|(i, payload)| {
                let sequence_number = self.sequence;
                self.sequence = self.sequence.wrapping_add(1);
                Packet {
                    header: Header {
                        version: 2,
                        marker: i == last,
                        payload_type: self.payload_type,
                        sequence_number,
                        timestamp: rtp_timestamp,
                        ssrc: self.ssrc,
                        ..Default::default()
                    },
                    payload: payload.clone(),
                }
            })
            .collect();
        if let (Some(id), Some(first)) = (self.capture_ext, packets.first_mut()) {
            // A unit without a capture time (0) goes without: receivers extrapolate.
            if unit.capture_time_ms > 0 {
                let value = capture_time::encode(unit.capture_time_ms);
                if let Err(e) = first.header.set_extension(id, value) {
                    tracing::debug!("abs-capture-time: {e}");
                }
            }
        }
        // The unit's packets in events of at most BATCH (vendor/webrtc's patch): the
        // connection's driver wakes once per batch, not once per packet.
        let mut packets = packets.into_iter().peekable();
        while packets.peek().is_some() {
            let batch: Vec<Packet> = packets.by_ref().take(BATCH).collect();
            if let Err(e) = self.track.write_rtp_batch(batch).await {
                tracing::debug!("write RTP: {e}");
                return false;
            }
        }
        self.last_sent = Some((Instant::now(), unit.duration));
        let c = &self.counters;
        c.frames_sent.fetch_add(1, Ordering::Relaxed);
        c.tier.store(units.tier() as u64, Ordering::Relaxed);
        c.tier_switches.store(units.switches(), Ordering::Relaxed);
        c.tier_moves_abandoned
            .store(units.abandoned_moves(), Ordering::Relaxed);
        if keyframe {
            c.keyframes_sent.fetch_add(1, Ordering::Relaxed);
        }
        true
    }
}

/// The next unit of a replacement's viewer, if there is one (never ready without).
async fn next_of(pending: &mut Option<TieredReceiver>) -> Option<EncodedUnit> {
    match pending {
        Some(p) => p.recv().await,
        None => std::future::pending().await,
    }
}

async fn send_loop(ctx: SendContext) {
    let SendContext {
        track,
        sender,
        bandwidth,
        counters,
        encoders: mut replacements,
        shared,
        first,
        ssrc,
        mut state,
    } = ctx;
    // Samples written before the connection is up would be lost.
    loop {
        match *state.borrow_and_update() {
            PeerState::Connected => break,
            PeerState::Failed | PeerState::Closed => return,
            _ => {}
        }
        if state.changed().await.is_err() {
            return;
        }
    }
    let encoders = replacements.borrow_and_update().clone();
    let video = encoders.kind() == MediaKind::Video;
    let codec = if video {
        lock(&shared.codec).or(first)
    } else {
        None
    };
    let rtp = rtp_codec(codec);
    let (payload_type, capture_ext) = match sender.get_parameters().await {
        Ok(params) => {
            let p = &params.rtp_parameters;
            let payload_type = p
                .codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(&rtp.mime_type))
                .map(|c| c.payload_type);
            // abs-capture-time, when the description negotiated it (the remote's id).
            let capture_ext = p
                .header_extensions
                .iter()
                .find(|e| e.uri == ABS_CAPTURE_TIME_URI)
                .and_then(|e| u8::try_from(e.id).ok());
            (payload_type, capture_ext)
        }
        Err(e) => {
            tracing::warn!("sender parameters: {e}");
            (None, None)
        }
    };
    let Some(payload_type) = payload_type else {
        tracing::warn!("{} was not negotiated; not sending it", rtp.mime_type);
        return;
    };
    let payloader = match rtp.payloader() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("no payloader for {}: {e}", rtp.mime_type);
            return;
        }
    };
    // The RTP header is 12 bytes (no CSRCs; an extension on a unit's first packet
    // is within what webrtc-rs's own packetizer leaves, the same budget).
    let h264 = codec == Some(VideoCodec::H264);
    let payloads = Payloads::new(&CUTS, payloader, h264, MTU - 12);
    // One viewer of the track's encoders: on the tier its estimate allows, moving as that
    // changes (video; audio is one tier).
    let estimate_now = || {
        if video {
            bandwidth.bits_per_second()
        } else {
            0.0
        }
    };
    let capacity = if video { 30 } else { 50 };
    let mut units = match encoders.viewer(codec, capacity, estimate_now()) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("cannot encode {}: {e}", rtp.mime_type);
            return;
        }
    };
    *lock(&shared.encoder) = Some(units.encoder().clone());
    let mut writer = Writer {
        track,
        payloads,
        payload_type,
        ssrc,
        sequence: rand::random(),
        clock: RtpClock::new(rtp.clock_rate, rand::random()),
        counters,
        video,
        last_sent: None,
        capture_ext,
    };
    // A replacement's viewer, until its first unit (a keyframe) takes over.
    let mut pending: Option<TieredReceiver> = None;
    // The current encoders ended while a replacement was pending.
    let mut current_ended = false;
    let mut replaceable = true;
    let mut estimate = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            unit = units.recv(), if !current_ended => {
                let Some(unit) = unit else {
                    if pending.is_some() {
                        current_ended = true;
                        continue;
                    }
                    break;
                };
                if video && unit.keyframe {
                    // A tier move lands on a keyframe: from now on requests go to the new
                    // tier's encoder.
                    let mut current = lock(&shared.encoder);
                    if !current.as_ref().is_some_and(|e| e.same(units.encoder())) {
                        *current = Some(units.encoder().clone());
                    }
                }
                if !writer.write(unit, &units).await {
                    break;
                }
            }
            unit = next_of(&mut pending), if pending.is_some() => {
                let (Some(unit), Some(next)) = (unit, pending.take()) else {
                    // The replacement ended before sending anything: keep the current.
                    if current_ended {
                        break;
                    }
                    continue;
                };
                units = next;
                current_ended = false;
                *lock(&shared.encoder) = Some(units.encoder().clone());
                // The real gap, but never less than the last unit plays (an Opus packet
                // sent 5 ms ago still plays for 15 ms): no overlap on the RTP timeline.
                let gap = writer
                    .last_sent
                    .map(|(at, plays)| at.elapsed().max(plays))
                    .unwrap_or_default();
                writer.clock.rebase(unit.timestamp, gap);
                tracing::debug!("sending the replacement track (gap {gap:?})");
                if !writer.write(unit, &units).await {
                    break;
                }
            }
            changed = replacements.changed(), if replaceable => {
                if changed.is_err() {
                    replaceable = false;
                    continue;
                }
                let next = replacements.borrow_and_update().clone();
                match next.viewer(codec, capacity, estimate_now()) {
                    Ok(v) => pending = Some(v),
                    Err(e) => tracing::warn!("cannot send the replacement track: {e}"),
                }
            }
            _ = estimate.tick(), if video => {
                units.update(bandwidth.bits_per_second(), Instant::now());
            }
            changed = state.changed() => {
                if changed.is_err() || matches!(*state.borrow(), PeerState::Failed | PeerState::Closed) {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_ticks_are_rounded_not_truncated() {
        let mut clock = RtpClock::new(90_000, 1000);
        assert_eq!(clock.timestamp(Duration::from_secs(5)), 1000);
        // A 30 fps frame time in whole nanoseconds is just under 1/30 s.
        let frame = Duration::from_nanos(33_333_333);
        assert_eq!(clock.timestamp(Duration::from_secs(5) + frame), 4000);
        assert_eq!(clock.timestamp(Duration::from_secs(5) + frame * 30), 91_000);
        // Before the first unit (a reordered one): rounded the same way, wrapping.
        assert_eq!(
            clock.timestamp(Duration::from_secs(5) - frame),
            1000_u32.wrapping_sub(3000)
        );
        let mut audio = RtpClock::new(48_000, u32::MAX);
        audio.timestamp(Duration::ZERO);
        assert_eq!(
            audio.timestamp(Duration::from_nanos(20_833)),
            0,
            "1 tick wraps"
        );
    }

    #[test]
    fn a_replaced_track_continues_the_rtp_timeline_by_the_real_gap() {
        let mut clock = RtpClock::new(90_000, u32::MAX - 1000);
        let frame = Duration::from_nanos(33_333_333);
        let t = Duration::from_secs(60);
        assert_eq!(clock.timestamp(t), u32::MAX - 1000);
        let last = clock.timestamp(t + frame);
        assert_eq!(last, (u32::MAX - 1000).wrapping_add(3000));
        // The new track's timeline starts near zero; its first unit 40 ms after the last.
        clock.rebase(Duration::from_millis(5), Duration::from_millis(40));
        let first_new = clock.timestamp(Duration::from_millis(5));
        assert_eq!(first_new, last.wrapping_add(3600));
        assert_eq!(
            clock.timestamp(Duration::from_millis(5) + frame),
            first_new.wrapping_add(3000)
        );
        // No time between (or a clock that stood still): still one tick later.
        clock.rebase(Duration::from_secs(7), Duration::ZERO);
        assert_eq!(
            clock.timestamp(Duration::from_secs(7)),
            first_new.wrapping_add(3001)
        );
        // Before anything was sent there is nothing to continue.
        let mut fresh = RtpClock::new(48_000, 10);
        fresh.rebase(Duration::from_secs(3), Duration::from_millis(20));
        assert_eq!(fresh.timestamp(Duration::from_secs(3)), 10);
    }
}
