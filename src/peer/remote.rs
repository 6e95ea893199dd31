//! A remote track: RTP from the peer, depacketized (H.264 access units and VP8 frames via
//! the sample builder, Opus packets as they come), decoded on its own thread into the same
//! frames local tracks deliver. Its settings are measured from what arrives and, as in
//! browsers, never include `facingMode`: it is not carried over RTP.
//!
//! The depacketized units themselves (H.264 access units in Annex B, VP8 frames, Opus
//! packets) can also be taken as they are ([`RemoteTrack::forward_encoded`],
//! [`RemoteTrack::subscribe_encoded`]): a relay forwards them to viewers of the same codec
//! instead of decoding and encoding again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media::io::sample_builder::SampleBuilder;
use rtc::media::Sample;
use rtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    nack_pairs_from_sequence_numbers, TransportLayerNack,
};
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::codec::vp8::Vp8Packet;
use tokio::sync::Notify;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::PeerError;
use crate::constraints::{
    MediaKind, MediaTrackCapabilities, MediaTrackConstraints, MediaTrackSettings,
};
use crate::devices::source::{Source, SourceError};
use crate::devices::worker::FrameReceiver;
use crate::devices::MediaFrame;
use crate::encode::h264::H264Decoder;
use crate::encode::opus::OpusDecoder;
use crate::encode::vp8::Vp8Decoder;
use crate::encode::{EncodeError, EncodedUnit, VideoCodec};
use crate::error::MediaError;
use crate::sync::lock;
use crate::track::MediaStreamTrack;

/// Units waiting for the decoder; beyond this they are dropped (and a keyframe asked for).
const DECODE_QUEUE: usize = 64;
/// Least time between two PLIs we send.
const PLI_INTERVAL: Duration = Duration::from_millis(300);

#[derive(Default)]
struct Counters {
    packets: AtomicU64,
    bytes: AtomicU64,
    frames_decoded: AtomicU64,
    keyframes_decoded: AtomicU64,
    decode_errors: AtomicU64,
    plis_sent: AtomicU64,
    dropped: AtomicU64,
    units_forwarded: AtomicU64,
    forward_dropped: AtomicU64,
}

/// A consumer of the encoded units, called on the RTP reader task (so it must not block);
/// `false` removes it.
type Forward = Box<dyn FnMut(&EncodedUnit) -> bool + Send>;

struct Inner {
    kind: MediaKind,
    /// The negotiated codec's MIME type, as the sender's description has it.
    mime_type: String,
    /// Measured settings, shared with the track (`getSettings`).
    settings: Arc<Mutex<MediaTrackSettings>>,
    pli: Arc<Notify>,
    counters: Counters,
    /// Consumers of the encoded units; cleared when the track ends.
    forwards: Mutex<Vec<Forward>>,
    /// Whether any consumer was ever added: until then a track that does not decode
    /// skips depacketizing.
    forwarding: AtomicBool,
    /// The webrtc-rs track and its SSRC, for the feedback we send about it.
    rtcp: Arc<dyn TrackRemote>,
    ssrc: u32,
    /// FIR sequence number (RFC 5104 §4.3.1.1: one more per new request).
    fir_sequence: std::sync::atomic::AtomicU8,
}

/// RTCP feedback a receiver sends about a track: what browsers send on loss or when they
/// need a picture. Scripted peers and interop tests send it on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// Picture Loss Indication (RFC 4585).
    Pli,
    /// Full Intra Request (RFC 5104).
    Fir,
    /// Generic NACK (RFC 4585) for these RTP sequence numbers.
    Nack(Vec<u16>),
}

/// A track received from a peer: the [`MediaStreamTrack`] (kind remote) that delivers its
/// decoded frames, plus what only a receiver can do — ask for a keyframe, count packets.
#[derive(Clone)]
pub struct RemoteTrack {
    track: MediaStreamTrack,
    inner: Arc<Inner>,
}

/// Decoded frames of a remote track, as the track's source. Ends when the decoder does.
struct RemoteSource {
    frames: Receiver<MediaFrame>,
}

impl Source for RemoteSource {
    fn next_frame(&mut self) -> Result<MediaFrame, SourceError> {
        self.frames
            .recv()
            .map_err(|_| SourceError::Ended("the remote track ended".into()))
    }

    fn reconfigure(&mut self, _: &MediaTrackSettings) -> Result<(), SourceError> {
        Err(SourceError::Unsupported(
            "a remote track cannot be reconfigured".into(),
        ))
    }
}

/// Counters of a remote track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteTrackStats {
    pub packets_received: u64,
    /// RTP payload bytes received.
    pub bytes_received: u64,
    pub frames_decoded: u64,
    pub key_frames_decoded: u64,
    pub decode_errors: u64,
    pub plis_sent: u64,
    /// Units dropped before decoding because the decoder was behind.
    pub units_dropped: u64,
    /// Encoded units handed to consumers ([`RemoteTrack::forward_encoded`]).
    pub units_forwarded: u64,
    /// Encoded units an [`RemoteTrack::subscribe_encoded`] channel had no room for.
    pub units_forward_dropped: u64,
}

impl RemoteTrack {
    pub(super) async fn start(
        track: Arc<dyn TrackRemote>,
        decode: bool,
    ) -> Result<Self, PeerError> {
        let ssrc = *track
            .ssrcs()
            .await
            .first()
            .ok_or_else(|| PeerError::Track("remote track without SSRC".into()))?;
        let codec = track
            .codec(ssrc)
            .await
            .ok_or_else(|| PeerError::Track("remote track without codec".into()))?;
        let mime = codec.mime_type.to_ascii_lowercase();
        let kind = if mime.starts_with("video/") {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        // The negotiated codec decides the depacketizer and the decoder.
        let video_codec = VideoCodec::from_mime_type(&mime);
        if video_codec.is_none() && mime != "audio/opus" {
            return Err(PeerError::Track(format!("cannot decode {mime}")));
        }
        let id = track.track_id().await.to_string();
        let channels = codec.channels.clamp(1, 2);
        let mut settings = MediaTrackSettings {
            device_id: Some(id.clone()),
            ..Default::default()
        };
        if kind == MediaKind::Audio {
            settings.sample_rate = Some(48_000);
            settings.channel_count = Some(channels as u32);
            settings.sample_size = Some(16);
        }
        let settings = Arc::new(Mutex::new(settings));
        let inner = Arc::new(Inner {
            kind,
            mime_type: codec.mime_type.clone(),
            settings: Arc::clone(&settings),
            pli: Arc::new(Notify::new()),
            counters: Counters::default(),
            forwards: Mutex::new(Vec::new()),
            forwarding: AtomicBool::new(false),
            rtcp: Arc::clone(&track),
            ssrc,
            fir_sequence: std::sync::atomic::AtomicU8::new(0),
        });
        // Decoded frames reach the track's worker through a short queue.
        let (frames_tx, frames_rx) = sync_channel::<MediaFrame>(8);
        let media_track = MediaStreamTrack::start_remote(
            kind,
            &id,
            settings,
            Box::new(RemoteSource { frames: frames_rx }),
        )
        .map_err(|e| PeerError::Track(e.to_string()))?;
        // Without decoding, packets are only counted: no decoder thread, no queue; the
        // frame sender then lives (idle) as long as the reader.
        let (units_tx, idle_frames_tx) = if decode {
            let (units_tx, units_rx) = sync_channel::<(Bytes, u32)>(DECODE_QUEUE);
            let decoder_inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name(format!("{kind} decoder"))
                .spawn(move || match video_codec {
                    Some(codec) => decode_video(units_rx, &decoder_inner, &frames_tx, codec),
                    None => decode_audio(units_rx, &decoder_inner, &frames_tx),
                })
                .map_err(|e| PeerError::Track(format!("cannot start the decoder thread: {e}")))?;
            (Some(units_tx), None)
        } else {
            (None, Some(frames_tx))
        };

        // PLIs go out from their own task, at most one per PLI_INTERVAL; it ends with the
        // connection (write fails) or when the track is gone.
        let pli = Arc::clone(&inner.pli);
        let alive = Arc::downgrade(&inner);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = pli.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {
                        if alive.strong_count() == 0 {
                            break;
                        }
                        continue;
                    }
                }
                let Some(inner) = alive.upgrade() else { break };
                if inner.send_feedback(Feedback::Pli).await.is_err() {
                    break;
                }
                inner.counters.plis_sent.fetch_add(1, Ordering::Relaxed);
                drop(inner);
                tokio::time::sleep(PLI_INTERVAL).await;
            }
        });

        let reader_inner = Arc::clone(&inner);
        tokio::spawn(async move {
            let mut builder = video_codec.map(Builder::new);
            let mut units = UnitMaker::new(video_codec);
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        let counters = &reader_inner.counters;
                        counters.packets.fetch_add(1, Ordering::Relaxed);
                        counters
                            .bytes
                            .fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
                        if units_tx.is_none() && !reader_inner.forwarding.load(Ordering::Relaxed) {
                            continue;
                        }
                        if let Some(builder) = &mut builder {
                            builder.push(packet);
                            while let Some(sample) = builder.pop() {
                                // Packets lost for good (not padding) break the reference
                                // chain, and VP8's decoder would decode on from the wrong
                                // reference without an error: ask for a keyframe.
                                if sample.prev_dropped_packets > sample.prev_padding_packets {
                                    reader_inner.pli.notify_one();
                                }
                                let ts = sample.packet_timestamp;
                                reader_inner.forward(|| {
                                    units.video(sample.data.clone(), ts, sample.duration)
                                });
                                if let Some(units_tx) = &units_tx {
                                    reader_inner.queue(units_tx, sample.data, ts);
                                }
                            }
                        } else {
                            let ts = packet.header.timestamp;
                            reader_inner.forward(|| units.audio(packet.payload.clone(), ts));
                            if let Some(units_tx) = &units_tx {
                                reader_inner.queue(units_tx, packet.payload, ts);
                            }
                        }
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
            // Dropping the consumers ends what they feed (a passthrough's viewers).
            lock(&reader_inner.forwards).clear();
            // Dropping the senders ends the decoder thread, which ends the track.
            drop(idle_frames_tx);
        });
        Ok(RemoteTrack {
            track: media_track,
            inner,
        })
    }

    /// The track: subscribe to it, read its settings, apply constraints, as any track.
    pub fn track(&self) -> &MediaStreamTrack {
        &self.track
    }

    /// The remote track's id (from the sender's SDP).
    pub fn id(&self) -> &str {
        self.track.id()
    }

    pub fn kind(&self) -> MediaKind {
        self.inner.kind
    }

    /// The negotiated codec's MIME type (`video/H264`, `video/VP8`, `audio/opus`).
    pub fn mime_type(&self) -> &str {
        &self.inner.mime_type
    }

    /// The negotiated video codec; `None` for audio.
    pub fn video_codec(&self) -> Option<VideoCodec> {
        VideoCodec::from_mime_type(&self.inner.mime_type)
    }

    /// Receive decoded frames, as from a local track.
    pub fn subscribe(&self, capacity: usize) -> FrameReceiver {
        self.track.subscribe(capacity)
    }

    /// Whether the remote side has stopped sending (or the connection closed).
    pub fn ended(&self) -> bool {
        self.track.ready_state() == crate::track::TrackState::Ended
    }

    /// `getSettings()`: measured size and frame rate (or audio format) and the deviceId;
    /// never `facingMode`.
    pub fn get_settings(&self) -> MediaTrackSettings {
        self.track.get_settings()
    }

    /// `getCapabilities()`: what is arriving; no `facingMode`.
    pub fn get_capabilities(&self) -> MediaTrackCapabilities {
        self.track.get_capabilities()
    }

    /// `applyConstraints()`: checked against what arrives; one requiring `facingMode`
    /// can never be met.
    pub fn apply_constraints(&self, constraints: MediaTrackConstraints) -> Result<(), MediaError> {
        self.track.apply_constraints(constraints)
    }

    /// Sends a PLI (rate-limited): the sender answers with a keyframe.
    pub fn request_keyframe(&self) {
        self.inner.pli.notify_one();
    }

    /// [`request_keyframe`](Self::request_keyframe) as a function that does not keep the
    /// track alive (so a consumer of the track's units may hold it without a cycle).
    pub fn keyframe_requester(&self) -> impl Fn() + Send + Sync + 'static {
        let pli = Arc::clone(&self.inner.pli);
        move || pli.notify_one()
    }

    /// Calls `forward` with every encoded unit as it is assembled, before decoding: an
    /// H.264 access unit in Annex B (SPS/PPS put before an IDR that came without them, as
    /// our H.264 sender expects), a VP8 frame, an Opus packet; with its keyframe flag (an
    /// IDR NAL; VP8's P bit clear; every Opus packet), its duration and its timestamp on
    /// the track's timeline (from the RTP timestamps). It runs on the task reading RTP, so
    /// it must not block: hand over with `try_send` or a non-blocking fan-out. Forwarding
    /// ends when the track does (the function is then dropped).
    pub fn forward_encoded(&self, forward: impl Fn(EncodedUnit) + Send + Sync + 'static) {
        self.add_forward(Box::new(move |unit: &EncodedUnit| {
            forward(unit.clone());
            true
        }));
    }

    /// The encoded units (as [`forward_encoded`](Self::forward_encoded)) through a channel
    /// of `capacity`: when it is full a unit is dropped (counted in
    /// `units_forward_dropped`), never waited for. Ends when the track does.
    pub fn subscribe_encoded(&self, capacity: usize) -> Receiver<EncodedUnit> {
        let (tx, rx) = sync_channel(capacity.max(1));
        let inner = Arc::downgrade(&self.inner);
        self.add_forward(Box::new(move |unit: &EncodedUnit| {
            match tx.try_send(unit.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    if let Some(inner) = inner.upgrade() {
                        let c = &inner.counters;
                        c.forward_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        }));
        rx
    }

    fn add_forward(&self, forward: Forward) {
        lock(&self.inner.forwards).push(forward);
        self.inner.forwarding.store(true, Ordering::Relaxed);
    }

    /// Sends `feedback` about this track to the peer now (no rate limit, unlike
    /// [`RemoteTrack::request_keyframe`]).
    pub async fn send_feedback(&self, feedback: Feedback) -> Result<(), PeerError> {
        self.inner.send_feedback(feedback).await
    }

    pub fn stats(&self) -> RemoteTrackStats {
        let c = &self.inner.counters;
        RemoteTrackStats {
            packets_received: c.packets.load(Ordering::Relaxed),
            bytes_received: c.bytes.load(Ordering::Relaxed),
            frames_decoded: c.frames_decoded.load(Ordering::Relaxed),
            key_frames_decoded: c.keyframes_decoded.load(Ordering::Relaxed),
            decode_errors: c.decode_errors.load(Ordering::Relaxed),
            plis_sent: c.plis_sent.load(Ordering::Relaxed),
            units_dropped: c.dropped.load(Ordering::Relaxed),
            units_forwarded: c.units_forwarded.load(Ordering::Relaxed),
            units_forward_dropped: c.forward_dropped.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    /// Writes `feedback` about this track to the peer.
    async fn send_feedback(&self, feedback: Feedback) -> Result<(), PeerError> {
        let media_ssrc = self.ssrc;
        let packet: Box<dyn rtc::rtcp::Packet> = match feedback {
            Feedback::Pli => Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            }),
            Feedback::Fir => Box::new(FullIntraRequest {
                sender_ssrc: 0,
                media_ssrc,
                fir: vec![FirEntry {
                    ssrc: media_ssrc,
                    sequence_number: self.fir_sequence.fetch_add(1, Ordering::Relaxed),
                }],
            }),
            Feedback::Nack(sequence_numbers) => Box::new(TransportLayerNack {
                sender_ssrc: 0,
                media_ssrc,
                nacks: nack_pairs_from_sequence_numbers(&sequence_numbers),
            }),
        };
        self.rtcp
            .write_rtcp(vec![packet])
            .await
            .map_err(|e| PeerError::Track(format!("cannot send RTCP feedback: {e}")))
    }

    /// Hands the unit `make` builds to every consumer; builds nothing without one.
    fn forward(&self, make: impl FnOnce() -> Option<EncodedUnit>) {
        if !self.forwarding.load(Ordering::Relaxed) {
            return;
        }
        let mut forwards = lock(&self.forwards);
        if forwards.is_empty() {
            return;
        }
        let Some(unit) = make() else { return };
        forwards.retain_mut(|f| f(&unit));
        self.counters
            .units_forwarded
            .fetch_add(1, Ordering::Relaxed);
    }

    fn queue(
        &self,
        tx: &std::sync::mpsc::SyncSender<(Bytes, u32)>,
        data: Bytes,
        rtp_timestamp: u32,
    ) {
        match tx.try_send((data, rtp_timestamp)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                if self.kind == MediaKind::Video {
                    self.pli.notify_one();
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Turns depacketized payloads into [`EncodedUnit`]s: timestamps on the track's timeline,
/// keyframe flags, and (H.264) the last SPS/PPS seen put before an IDR that lacks them,
/// so a forwarded IDR always decodes on its own (a viewer joining mid-stream starts there).
struct UnitMaker {
    codec: Option<VideoCodec>,
    /// The first RTP timestamp and the ticks since it (unwrapped).
    origin: Option<(u32, i64)>,
    /// The last SPS and PPS NAL units, with their start codes.
    parameter_sets: Option<(Bytes, Bytes)>,
}

/// RTP clock rate of video.
const VIDEO_CLOCK: f64 = 90_000.0;
/// RTP clock rate of Opus (always 48 kHz in WebRTC).
const OPUS_CLOCK: f64 = 48_000.0;

impl UnitMaker {
    fn new(codec: Option<VideoCodec>) -> Self {
        UnitMaker {
            codec,
            origin: None,
            parameter_sets: None,
        }
    }

    /// Position of RTP timestamp `ts` after the first one (small reorderings go back).
    fn position(&mut self, ts: u32, clock: f64) -> Duration {
        let (last, ticks) = self.origin.get_or_insert((ts, 0));
        *ticks += i64::from(ts.wrapping_sub(*last) as i32);
        *last = ts;
        Duration::from_secs_f64((*ticks).max(0) as f64 / clock)
    }

    fn video(&mut self, data: Bytes, ts: u32, duration: Duration) -> Option<EncodedUnit> {
        if data.is_empty() {
            return None;
        }
        let timestamp = self.position(ts, VIDEO_CLOCK);
        let (data, keyframe) = match self.codec? {
            VideoCodec::H264 => self.h264(data),
            VideoCodec::Vp8 => {
                let key = crate::encode::vp8::is_keyframe(&data);
                (data, key)
            }
        };
        Some(EncodedUnit {
            data,
            keyframe,
            timestamp,
            duration,
            capture_time_ms: crate::devices::source::wall_clock_ms(),
        })
    }

    /// The access unit, with the parameter sets added to an IDR without them.
    fn h264(&mut self, data: Bytes) -> (Bytes, bool) {
        let (mut sps, mut pps, mut idr) = (None, None, false);
        for nal in openh264::nal_units(&data) {
            // The slice runs from a start code to the next one's first byte: the unit is
            // what follows the 0x01, less the zero bytes that belong to the next start code
            // (a parameter set ends in its stop bit, never in a zero byte).
            let Some(body) = nal
                .iter()
                .position(|&b| b == 1)
                .and_then(|i| nal.get(i + 1..))
            else {
                continue;
            };
            let parameter_set = || {
                let end = body.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                Bytes::from([&[0, 0, 0, 1], &body[..end]].concat())
            };
            match body.first().map(|h| h & 0x1f) {
                Some(7) => sps = Some(parameter_set()),
                Some(8) => pps = Some(parameter_set()),
                Some(5) => idr = true,
                _ => {}
            }
        }
        match (sps, pps) {
            (Some(sps), Some(pps)) => {
                self.parameter_sets = Some((sps, pps));
                (data, idr)
            }
            _ if idr => match &self.parameter_sets {
                Some((sps, pps)) => {
                    let mut with = Vec::with_capacity(sps.len() + pps.len() + data.len());
                    with.extend_from_slice(sps);
                    with.extend_from_slice(pps);
                    with.extend_from_slice(&data);
                    (Bytes::from(with), true)
                }
                None => (data, true),
            },
            _ => (data, idr),
        }
    }

    fn audio(&mut self, data: Bytes, ts: u32) -> Option<EncodedUnit> {
        if data.is_empty() {
            return None;
        }
        let timestamp = self.position(ts, OPUS_CLOCK);
        let duration = opus_duration(&data).unwrap_or(Duration::from_millis(20));
        Some(EncodedUnit {
            data,
            keyframe: true,
            timestamp,
            duration,
            capture_time_ms: crate::devices::source::wall_clock_ms(),
        })
    }
}

/// How long an Opus packet plays, from its TOC byte (RFC 6716 §3.1): the configuration
/// gives the frame size, the code the number of frames.
fn opus_duration(packet: &[u8]) -> Option<Duration> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame_us: u64 = match config {
        0..=11 => [10_000, 20_000, 40_000, 60_000][usize::from(config % 4)],
        12..=15 => [10_000, 20_000][usize::from(config % 2)],
        _ => [2_500, 5_000, 10_000, 20_000][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u64::from(*packet.get(1)? & 0x3f),
    };
    Some(Duration::from_micros(frame_us * frames))
}

/// Reassembles frames from RTP packets with the negotiated codec's depacketizer.
enum Builder {
    H264(SampleBuilder<H264Packet>),
    Vp8(SampleBuilder<Vp8Packet>),
}

impl Builder {
    fn new(codec: VideoCodec) -> Self {
        let delay = Duration::from_millis(500);
        match codec {
            VideoCodec::H264 => Builder::H264(
                SampleBuilder::new(256, H264Packet::default(), 90_000).with_max_time_delay(delay),
            ),
            VideoCodec::Vp8 => Builder::Vp8(
                SampleBuilder::new(256, Vp8Packet::default(), 90_000).with_max_time_delay(delay),
            ),
        }
    }

    fn push(&mut self, packet: rtc::rtp::Packet) {
        match self {
            Builder::H264(b) => b.push(Instant::now(), packet),
            Builder::Vp8(b) => b.push(Instant::now(), packet),
        }
    }

    fn pop(&mut self) -> Option<Sample> {
        match self {
            Builder::H264(b) => b.pop(Instant::now()),
            Builder::Vp8(b) => b.pop(Instant::now()),
        }
    }
}

/// A video decoder of the negotiated codec.
enum VideoDecoder {
    H264(H264Decoder),
    Vp8(Vp8Decoder),
}

impl VideoDecoder {
    fn new(codec: VideoCodec) -> Result<Self, EncodeError> {
        Ok(match codec {
            VideoCodec::H264 => VideoDecoder::H264(H264Decoder::new()?),
            VideoCodec::Vp8 => VideoDecoder::Vp8(Vp8Decoder::new()?),
        })
    }

    fn decode(&mut self, data: &[u8]) -> Result<Option<crate::frame::VideoFrame>, EncodeError> {
        match self {
            VideoDecoder::H264(d) => d.decode(data),
            VideoDecoder::Vp8(d) => d.decode(data),
        }
    }

    fn is_keyframe(&self, data: &[u8]) -> bool {
        match self {
            VideoDecoder::H264(_) => crate::encode::h264::nal_types(data).contains(&5),
            VideoDecoder::Vp8(_) => crate::encode::vp8::is_keyframe(data),
        }
    }
}

/// Hands a decoded frame to the track; a full queue drops it (counted).
fn hand_over(
    frames: &std::sync::mpsc::SyncSender<MediaFrame>,
    inner: &Inner,
    frame: MediaFrame,
) -> bool {
    match frames.try_send(frame) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(TrySendError::Disconnected(_)) => false,
    }
}

fn decode_video(
    units: Receiver<(Bytes, u32)>,
    inner: &Inner,
    frames: &std::sync::mpsc::SyncSender<MediaFrame>,
    codec: VideoCodec,
) {
    let mut decoder = match VideoDecoder::new(codec) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("remote video: no decoder: {e}");
            return;
        }
    };
    let start = Instant::now();
    let mut last_ts: Option<u32> = None;
    // Exponential average of the frame interval in 90 kHz ticks.
    let mut interval: Option<f64> = None;
    while let Ok((data, ts)) = units.recv() {
        match decoder.decode(&data) {
            Ok(Some(frame)) => {
                let c = &inner.counters;
                c.frames_decoded.fetch_add(1, Ordering::Relaxed);
                if decoder.is_keyframe(&data) {
                    c.keyframes_decoded.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(prev) = last_ts {
                    let delta = ts.wrapping_sub(prev) as f64;
                    if delta > 0.0 && delta < 90_000.0 {
                        interval = Some(interval.map_or(delta, |i| i * 0.9 + delta * 0.1));
                    }
                }
                last_ts = Some(ts);
                {
                    let mut s = lock(&inner.settings);
                    s.width = Some(frame.width());
                    s.height = Some(frame.height());
                    s.aspect_ratio = Some(frame.width() as f64 / frame.height() as f64);
                    s.frame_rate = interval.map(|i| ((90_000.0 / i) * 100.0).round() / 100.0);
                }
                let frame =
                    frame.with_times(start.elapsed(), crate::devices::source::wall_clock_ms());
                if !hand_over(frames, inner, MediaFrame::Video(Arc::new(frame))) {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                inner.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("remote video: {e}; asking for a keyframe");
                inner.pli.notify_one();
            }
        }
    }
}

/// The channel count an Opus packet was encoded with: its TOC byte's stereo flag
/// (RFC 6716 §3.1). The SDP says `opus/48000/2` whatever is sent, so this is how a
/// receiver learns that a sender is mono.
fn opus_channels(packet: &[u8]) -> Option<u16> {
    packet
        .first()
        .map(|toc| if toc & 0x04 != 0 { 2 } else { 1 })
}

fn decode_audio(
    units: Receiver<(Bytes, u32)>,
    inner: &Inner,
    frames: &std::sync::mpsc::SyncSender<MediaFrame>,
) {
    // The decoder outputs the sender's channel count, learnt from the first packet (an
    // Opus decoder decodes either kind of packet to its own count).
    let mut decoder: Option<OpusDecoder> = None;
    let start = Instant::now();
    while let Ok((data, _ts)) = units.recv() {
        let decoder = match &mut decoder {
            Some(d) => d,
            None => {
                let Some(channels) = opus_channels(&data) else {
                    continue;
                };
                match OpusDecoder::new(48_000, channels) {
                    Ok(d) => {
                        lock(&inner.settings).channel_count = Some(u32::from(channels));
                        decoder.insert(d)
                    }
                    Err(e) => {
                        tracing::warn!("remote audio: no decoder: {e}");
                        return;
                    }
                }
            }
        };
        match decoder.decode(&data, start.elapsed()) {
            Ok(mut frame) => {
                inner
                    .counters
                    .frames_decoded
                    .fetch_add(1, Ordering::Relaxed);
                frame.capture_time_ms = crate::devices::source::wall_clock_ms();
                if !hand_over(frames, inner, MediaFrame::Audio(Arc::new(frame))) {
                    return;
                }
            }
            Err(e) => {
                inner.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("remote audio: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_channels_follow_the_toc() {
        assert_eq!(opus_channels(&[0xfc]), Some(2)); // CELT 20 ms, stereo
        assert_eq!(opus_channels(&[0xf8]), Some(1)); // CELT 20 ms, mono
        assert_eq!(opus_channels(&[]), None);
    }

    #[test]
    fn opus_durations_follow_the_toc() {
        assert_eq!(opus_duration(&[0xf8, 0]), Some(Duration::from_millis(20))); // CELT 20 ms
        assert_eq!(opus_duration(&[0x08]), Some(Duration::from_millis(20))); // SILK 20 ms
        assert_eq!(opus_duration(&[0xf9]), Some(Duration::from_millis(40))); // two frames
        assert_eq!(opus_duration(&[0xfb, 3]), Some(Duration::from_millis(60))); // code 3
        assert_eq!(opus_duration(&[0xfb]), None);
        assert_eq!(opus_duration(&[]), None);
    }

    #[test]
    fn h264_idrs_carry_the_last_parameter_sets() {
        let sps = [0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f];
        let pps = [0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80];
        let idr = [0, 0, 0, 1, 0x65, 0x88, 0x84];
        let delta = [0, 0, 0, 1, 0x41, 0x9a];
        let ms = Duration::from_millis(33);
        let mut maker = UnitMaker::new(Some(VideoCodec::H264));
        let first = [&sps[..], &pps, &idr].concat();
        let u = maker.video(Bytes::from(first.clone()), 1000, ms).unwrap();
        assert!(u.keyframe && u.data == first && u.timestamp == Duration::ZERO);
        let u = maker
            .video(Bytes::copy_from_slice(&delta), 1000 + 3000, ms)
            .unwrap();
        assert!(!u.keyframe && u.timestamp == Duration::from_secs_f64(3000.0 / 90_000.0));
        // An IDR alone gets the SPS/PPS seen before.
        let u = maker
            .video(Bytes::copy_from_slice(&idr), 1000 + 6000, ms)
            .unwrap();
        assert!(u.keyframe);
        assert_eq!(u.data, first);
        assert_eq!(crate::encode::h264::nal_types(&u.data), [7, 8, 5]);
        // Timestamps wrap.
        let mut maker = UnitMaker::new(Some(VideoCodec::Vp8));
        maker.video(Bytes::from_static(&[0x10]), u32::MAX - 1499, ms);
        let u = maker.video(Bytes::from_static(&[0x11]), 1500, ms).unwrap();
        assert_eq!(u.timestamp, Duration::from_secs_f64(3000.0 / 90_000.0));
        assert!(!u.keyframe, "VP8's P bit set: a delta");
    }
}
