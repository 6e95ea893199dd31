//! A remote track: RTP from the peer, depacketized (H.264 access units and VP8 frames via
//! the sample builder, Opus packets as they come), decoded on its own thread into the same
//! frames local tracks deliver. Its settings are measured from what arrives and, as in
//! browsers, never include `facingMode`: it is not carried over RTP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media::io::sample_builder::SampleBuilder;
use rtc::media::Sample;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
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
use crate::encode::{EncodeError, VideoCodec};
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
    frames_decoded: AtomicU64,
    keyframes_decoded: AtomicU64,
    decode_errors: AtomicU64,
    plis_sent: AtomicU64,
    dropped: AtomicU64,
}

struct Inner {
    kind: MediaKind,
    /// The negotiated codec's MIME type, as the sender's description has it.
    mime_type: String,
    /// Measured settings, shared with the track (`getSettings`).
    settings: Arc<Mutex<MediaTrackSettings>>,
    pli: Arc<Notify>,
    counters: Counters,
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
    pub frames_decoded: u64,
    pub key_frames_decoded: u64,
    pub decode_errors: u64,
    pub plis_sent: u64,
    /// Units dropped before decoding because the decoder was behind.
    pub units_dropped: u64,
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
                    None => decode_audio(units_rx, &decoder_inner, &frames_tx, channels),
                })
                .map_err(|e| PeerError::Track(format!("cannot start the decoder thread: {e}")))?;
            (Some(units_tx), None)
        } else {
            (None, Some(frames_tx))
        };

        // PLIs go out from their own task, at most one per PLI_INTERVAL; it ends with the
        // connection (write fails) or when the track is gone.
        let pli_track = Arc::clone(&track);
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
                let request = PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc: ssrc,
                };
                if pli_track.write_rtcp(vec![Box::new(request)]).await.is_err() {
                    break;
                }
                if let Some(inner) = alive.upgrade() {
                    inner.counters.plis_sent.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(PLI_INTERVAL).await;
            }
        });

        let reader_inner = Arc::clone(&inner);
        tokio::spawn(async move {
            let mut builder = video_codec.map(Builder::new);
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        reader_inner
                            .counters
                            .packets
                            .fetch_add(1, Ordering::Relaxed);
                        let Some(units_tx) = &units_tx else { continue };
                        if let Some(builder) = &mut builder {
                            builder.push(packet);
                            while let Some(sample) = builder.pop() {
                                // Packets lost for good (not padding) break the reference
                                // chain, and VP8's decoder would decode on from the wrong
                                // reference without an error: ask for a keyframe.
                                if sample.prev_dropped_packets > sample.prev_padding_packets {
                                    reader_inner.pli.notify_one();
                                }
                                reader_inner.queue(units_tx, sample.data, sample.packet_timestamp);
                            }
                        } else {
                            let ts = packet.header.timestamp;
                            reader_inner.queue(units_tx, packet.payload, ts);
                        }
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
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

    pub fn stats(&self) -> RemoteTrackStats {
        let c = &self.inner.counters;
        RemoteTrackStats {
            packets_received: c.packets.load(Ordering::Relaxed),
            frames_decoded: c.frames_decoded.load(Ordering::Relaxed),
            key_frames_decoded: c.keyframes_decoded.load(Ordering::Relaxed),
            decode_errors: c.decode_errors.load(Ordering::Relaxed),
            plis_sent: c.plis_sent.load(Ordering::Relaxed),
            units_dropped: c.dropped.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
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

fn decode_audio(
    units: Receiver<(Bytes, u32)>,
    inner: &Inner,
    frames: &std::sync::mpsc::SyncSender<MediaFrame>,
    channels: u16,
) {
    let mut decoder = match OpusDecoder::new(48_000, channels) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("remote audio: no decoder: {e}");
            return;
        }
    };
    let start = Instant::now();
    while let Ok((data, _ts)) = units.recv() {
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
