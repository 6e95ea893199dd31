//! A remote track: RTP from the peer, depacketized (H.264 access units via the
//! sample builder, Opus packets as they come), decoded on its own thread into the same
//! frames local tracks deliver. Its settings are measured from what arrives and, as in
//! browsers, never include `facingMode`: it is not carried over RTP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media::io::sample_builder::SampleBuilder;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::h264::H264Packet;
use tokio::sync::Notify;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::PeerError;
use crate::constraints::{
    select_settings, AudioMode, DeviceModel, DeviceModes, Flag, MediaKind, MediaTrackCapabilities,
    MediaTrackConstraints, MediaTrackSettings, VideoMode,
};
use crate::devices::worker::{FrameReceiver, TrackOutput};
use crate::devices::MediaFrame;
use crate::encode::h264::H264Decoder;
use crate::encode::opus::OpusDecoder;
use crate::error::MediaError;

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
    id: String,
    kind: MediaKind,
    output: Arc<TrackOutput>,
    settings: Mutex<MediaTrackSettings>,
    constraints: Mutex<MediaTrackConstraints>,
    pli: Arc<Notify>,
    counters: Counters,
}

/// A track received from a peer.
#[derive(Clone)]
pub struct RemoteTrack {
    inner: Arc<Inner>,
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
        if mime != "video/h264" && mime != "audio/opus" {
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
        let inner = Arc::new(Inner {
            id,
            kind,
            output: TrackOutput::new(true),
            settings: Mutex::new(settings),
            constraints: Mutex::new(MediaTrackConstraints::default()),
            pli: Arc::new(Notify::new()),
            counters: Counters::default(),
        });
        // Without decoding, packets are only counted: no decoder thread, no queue.
        let units_tx = if decode {
            let (units_tx, units_rx) = sync_channel::<(Bytes, u32)>(DECODE_QUEUE);
            let decoder_inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name(format!("{kind} decoder"))
                .spawn(move || match kind {
                    MediaKind::Video => decode_video(units_rx, &decoder_inner),
                    MediaKind::Audio => decode_audio(units_rx, &decoder_inner, channels),
                })
                .map_err(|e| PeerError::Track(format!("cannot start the decoder thread: {e}")))?;
            Some(units_tx)
        } else {
            None
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
            let video = kind == MediaKind::Video;
            let mut builder = SampleBuilder::new(256, H264Packet::default(), 90_000)
                .with_max_time_delay(Duration::from_millis(500));
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        reader_inner
                            .counters
                            .packets
                            .fetch_add(1, Ordering::Relaxed);
                        let Some(units_tx) = &units_tx else { continue };
                        if video {
                            builder.push(Instant::now(), packet);
                            while let Some(sample) = builder.pop(Instant::now()) {
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
            // Dropping the sender ends the decoder thread, which ends the track.
        });
        Ok(RemoteTrack { inner })
    }

    /// The remote track's id (from the sender's SDP).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    pub fn kind(&self) -> MediaKind {
        self.inner.kind
    }

    /// Receive decoded frames, as from a local track.
    pub fn subscribe(&self, capacity: usize) -> FrameReceiver {
        self.inner.output.subscribe(capacity)
    }

    /// Whether the remote side has stopped sending (or the connection closed).
    pub fn ended(&self) -> bool {
        self.inner.output.is_ended()
    }

    /// `getSettings()`: measured size and frame rate (or audio format) and the deviceId;
    /// never `facingMode`.
    pub fn get_settings(&self) -> MediaTrackSettings {
        lock(&self.inner.settings).clone()
    }

    /// The device model selection sees for this track: what is arriving now, no facing.
    fn model(&self) -> DeviceModel {
        let s = self.get_settings();
        let modes = match self.inner.kind {
            MediaKind::Video => DeviceModes::Video(vec![VideoMode {
                width: s.width.unwrap_or(0),
                height: s.height.unwrap_or(0),
                frame_rate: s.frame_rate.unwrap_or(0.0),
            }]),
            MediaKind::Audio => DeviceModes::Audio {
                modes: vec![AudioMode {
                    sample_rate: s.sample_rate.unwrap_or(48_000),
                    channel_count: s.channel_count.unwrap_or(1),
                    sample_size: 16,
                    latency: 0.0,
                }],
                echo_cancellation: vec![Flag::Off],
                auto_gain_control: vec![false],
                noise_suppression: vec![false],
            },
        };
        DeviceModel {
            device_id: self.inner.id.clone(),
            group_id: String::new(),
            facing_mode: None,
            modes,
        }
    }

    /// `getCapabilities()`: what is arriving; no `facingMode`.
    pub fn get_capabilities(&self) -> MediaTrackCapabilities {
        let mut caps = MediaTrackCapabilities::of_device(&self.model());
        caps.facing_mode = None;
        caps.group_id = None;
        caps
    }

    /// `applyConstraints()`: a remote track cannot change what the peer sends, so the
    /// constraints are checked against what arrives; one requiring `facingMode` can never
    /// be met.
    pub fn apply_constraints(&self, constraints: MediaTrackConstraints) -> Result<(), MediaError> {
        select_settings(self.inner.kind, &constraints, &[&self.model()])?;
        *lock(&self.inner.constraints) = constraints;
        Ok(())
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

fn decode_video(units: Receiver<(Bytes, u32)>, inner: &Inner) {
    let mut decoder = match H264Decoder::new() {
        Ok(d) => d,
        Err(e) => {
            inner.output.end(&format!("no decoder: {e}"));
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
                if crate::encode::h264::nal_types(&data).contains(&5) {
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
                inner.output.deliver(&MediaFrame::Video(Arc::new(frame)));
            }
            Ok(None) => {}
            Err(e) => {
                inner.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("remote video: {e}; asking for a keyframe");
                inner.pli.notify_one();
            }
        }
    }
    inner.output.end("the remote track ended");
}

fn decode_audio(units: Receiver<(Bytes, u32)>, inner: &Inner, channels: u16) {
    let mut decoder = match OpusDecoder::new(48_000, channels) {
        Ok(d) => d,
        Err(e) => {
            inner.output.end(&format!("no decoder: {e}"));
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
                inner.output.deliver(&MediaFrame::Audio(Arc::new(frame)));
            }
            Err(e) => {
                inner.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("remote audio: {e}");
            }
        }
    }
    inner.output.end("the remote track ended");
}
