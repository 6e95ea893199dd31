//! A remote track: the [`RemoteTrack`] API over what arrives from the peer. RTP is read
//! on its own task ([`reader`]), depacketized by pure code ([`depacketize`]: H.264 access
//! units and VP8 frames via the [`assemble`]r, Opus packets as they come), decoded on its
//! own thread ([`decode`]) into the same frames local tracks deliver; keyframe requests
//! and other RTCP feedback go out through [`feedback`]. Its settings are measured from
//! what arrives and, as in browsers, never include `facingMode`: it is not carried over RTP.
//!
//! The depacketized units themselves (H.264 access units in Annex B, VP8 frames, Opus
//! packets) can also be taken as they are ([`RemoteTrack::forward_encoded`],
//! [`RemoteTrack::subscribe_encoded`]): a relay forwards them to viewers of the same codec
//! instead of decoding and encoding again.

mod assemble;
mod catch_up;
mod decode;
mod depacketize;
mod feedback;
#[cfg(test)]
mod fixtures;
mod reader;
pub(crate) mod replay;
mod sequence;
mod size_gate;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use webrtc::media_stream::track_remote::TrackRemote;

pub use feedback::Feedback;

use super::PeerError;
use crate::analysis::{ReceiverAnalyses, TrackAnalysis, TrackReport};
use crate::constraints::{
    MediaKind, MediaTrackCapabilities, MediaTrackConstraints, MediaTrackSettings,
};
use crate::encode::{EncodedUnit, PictureLimit, VideoCodec};
use crate::error::MediaError;
use crate::media::FrameReceiver;
use crate::media::MediaFrame;
use crate::sync::lock;
use crate::track::MediaStreamTrack;

/// What a remote track counted ([`RemoteTrackStats`]).
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
    refused: AtomicU64,
    /// The newest abs-capture-time read (ms since the UNIX epoch, 0: none yet) and the
    /// wall clock when its packet came.
    capture_ms: AtomicU64,
    capture_received_ms: AtomicU64,
}

/// A consumer of the encoded units, called on the RTP reader task (so it must not block);
/// `false` removes it.
type Forward = Box<dyn FnMut(&EncodedUnit) -> bool + Send>;

/// What the track's handle, its reader task, its decoder thread and its PLI task share.
struct Inner {
    kind: MediaKind,
    /// The negotiated codec's MIME type, as the sender's description has it.
    mime_type: String,
    /// Measured settings, shared with the track (`getSettings`).
    settings: Arc<Mutex<MediaTrackSettings>>,
    /// Wants a keyframe: the PLI task sends one PLI (rate-limited) per notification.
    pli: Arc<Notify>,
    counters: Counters,
    /// Consumers of the encoded units (cleared when the track ends), and a video track's
    /// units since its last keyframe, which a consumer added later starts with.
    forwards: Mutex<(Vec<Forward>, catch_up::CatchUp)>,
    /// Whether any consumer was ever added: until then a track that does not decode
    /// skips depacketizing.
    forwarding: AtomicBool,
    /// Writes the feedback we send about the track.
    feedback: feedback::FeedbackWriter,
    /// What the decoded frames carried (fed by the decoder thread).
    analysis: TrackAnalysis,
    /// Decoded audio is held this long before it plays (a test hook; zero: none).
    audio_delay: std::time::Duration,
}

/// How a remote track starts: what its peer's configuration and its connection give it.
pub(super) struct StartOptions {
    pub(super) decode: bool,
    pub(super) max_picture: PictureLimit,
    pub(super) audio_delay: std::time::Duration,
    /// The id abs-capture-time was negotiated with (0: none).
    pub(super) capture_ext: Arc<std::sync::atomic::AtomicU8>,
    /// The connection's analyses: the track's joins them.
    pub(super) analyses: ReceiverAnalyses,
}

/// A track received from a peer: the [`MediaStreamTrack`] (kind remote) that delivers its
/// decoded frames, plus what only a receiver can do — ask for a keyframe, count packets.
#[derive(Clone)]
pub struct RemoteTrack {
    track: MediaStreamTrack,
    inner: Arc<Inner>,
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
    /// Units not decoded because their stream's picture is over the decode size limit.
    pub units_refused: u64,
    /// The sender's capture time of the newest packet carrying abs-capture-time, ms since
    /// the UNIX epoch (`None`: the sender sends none).
    pub abs_capture_time_ms: Option<u64>,
    /// That packet's arrival minus its capture time, ms: the delay from capture to
    /// receive (meaningful when both ends share a clock, e.g. one machine).
    pub capture_delay_ms: Option<i64>,
}

impl RemoteTrack {
    pub(super) async fn start(
        track: Arc<dyn TrackRemote>,
        options: StartOptions,
    ) -> Result<Self, PeerError> {
        let StartOptions {
            decode,
            max_picture,
            audio_delay,
            capture_ext,
            analyses,
        } = options;
        let ssrc = *track
            .ssrcs()
            .await
            .first()
            .ok_or_else(|| PeerError::Track("remote track without SSRC".into()))?;
        let codec = track
            .codec(ssrc)
            .await
            .ok_or_else(|| PeerError::Track("remote track without codec".into()))?;
        // The negotiated codec decides the depacketizer and the decoder.
        let (kind, video_codec) = depacketize::media_of(&codec.mime_type).ok_or_else(|| {
            PeerError::Track(format!(
                "cannot decode {}",
                codec.mime_type.to_ascii_lowercase()
            ))
        })?;
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
            forwards: Mutex::new((Vec::new(), catch_up::CatchUp::default())),
            forwarding: AtomicBool::new(false),
            feedback: feedback::FeedbackWriter::new(Arc::clone(&track), ssrc),
            analysis: analyses.track(kind, &id),
            audio_delay,
        });
        // Decoded frames reach the track's worker through a short queue.
        let (frames_tx, frames_rx) = sync_channel::<MediaFrame>(8);
        let media_track = MediaStreamTrack::start_remote(
            kind,
            &id,
            settings,
            Box::new(decode::RemoteSource { frames: frames_rx }),
        )
        .map_err(PeerError::RemoteTrack)?;
        // Without decoding, packets are only counted: no decoder thread, no queue; the
        // frame sender then lives (idle) as long as the reader.
        let (units_tx, idle_frames_tx) = if decode {
            let units_tx = decode::spawn(&inner, video_codec, frames_tx, max_picture)
                .map_err(PeerError::DecoderThread)?;
            (Some(units_tx), None)
        } else {
            (None, Some(frames_tx))
        };
        feedback::spawn_pli_task(&inner);
        reader::spawn(
            track,
            Arc::clone(&inner),
            video_codec,
            units_tx,
            idle_frames_tx,
            capture_ext,
        );
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

    /// Adds a consumer; a video one is first handed the units since the last keyframe
    /// (or, when there were too many to hold, a keyframe is asked for).
    fn add_forward(&self, mut forward: Forward) {
        let mut forwards = lock(&self.inner.forwards);
        let (list, catch_up) = &mut *forwards;
        if catch_up.overflowed() {
            self.inner.pli.notify_one();
        }
        if catch_up.units().iter().all(&mut forward) {
            list.push(forward);
        }
        self.inner.forwarding.store(true, Ordering::Relaxed);
    }

    /// Sends `feedback` about this track to the peer now (no rate limit, unlike
    /// [`RemoteTrack::request_keyframe`]).
    pub async fn send_feedback(&self, feedback: Feedback) -> Result<(), PeerError> {
        self.inner.feedback.send(feedback).await
    }

    /// What the decoded frames really carried, now (the analysis `usermedia view`
    /// reports): frames, rate, size and — from the pattern's strip — skipped, repeated and
    /// reordered frames, freezes and latency (or freezes from arrival times without it);
    /// audio's length, level and A/V offset against this connection's video. Every
    /// decoded frame is analyzed as it is decoded; without decoding
    /// ([`PeerConfig::decode_remote`](super::PeerConfig::decode_remote) off) it stays empty.
    pub fn quality(&self) -> TrackReport {
        self.inner.analysis.report()
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
            units_refused: c.refused.load(Ordering::Relaxed),
            abs_capture_time_ms: Some(c.capture_ms.load(Ordering::Relaxed)).filter(|&t| t > 0),
            capture_delay_ms: match c.capture_ms.load(Ordering::Relaxed) {
                0 => None,
                t => Some(c.capture_received_ms.load(Ordering::Relaxed) as i64 - t as i64),
            },
        }
    }
}
