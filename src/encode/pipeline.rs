//! Encode once, send to many: one encoder per (track, codec, bitrate tier) on its own
//! thread, its output fanned out to every sink (peer) over bounded channels.
//!
//! - A new sink gets a keyframe at once (the next frame is forced to an IDR).
//! - Keyframe requests (PLI/FIR) are honoured within one frame, at most one per
//!   [`KEYFRAME_MIN_INTERVAL`]; requests in between are merged, not lost.
//! - A sink that cannot keep up loses units (counted) and then waits for the next keyframe
//!   instead of receiving a broken chain; it never slows the encoder or the other sinks.
//! - With no sinks the encoder idles (frames are consumed, not encoded). The thread ends
//!   when the track ends or the last handle is dropped.
//!
//! A track sent to peers that negotiate different codecs has a [`TrackEncoders`]: one
//! [`EncodedTrack`] per codec, each started the first time a peer needs it and shared by
//! every later peer of that codec.
//!
//! A track that arrives already encoded (a WHIP publisher's) can skip the decode→encode
//! round for peers of its own codec: [`EncodedTrack::passthrough`] fans out the units
//! pushed into it through the same sinks, keyframe requests going to the publisher (a PLI)
//! instead of an encoder. Its bitrate is the publisher's; peers' votes cannot change it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::h264::{H264Config, H264Encoder};
use super::opus::OpusEncoder;
use super::vp8::{Vp8Config, Vp8Encoder};
use super::{EncodeError, EncodedUnit, VideoCodec};
use crate::constraints::MediaKind;
use crate::devices::MediaFrame;
use crate::sync::lock;
use crate::track::MediaStreamTrack;

/// Minimum spacing of keyframes forced by requests (new sinks are not limited).
pub const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(200);

/// Which codec and at what bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecConfig {
    H264 { bitrate: u32 },
    Vp8 { bitrate: u32 },
    Opus { bitrate: u32 },
}

impl CodecConfig {
    /// The kind of track this codec encodes.
    pub fn kind(&self) -> MediaKind {
        match self {
            CodecConfig::H264 { .. } | CodecConfig::Vp8 { .. } => MediaKind::Video,
            CodecConfig::Opus { .. } => MediaKind::Audio,
        }
    }

    /// The video codec, `None` for Opus.
    pub fn video_codec(&self) -> Option<VideoCodec> {
        match self {
            CodecConfig::H264 { .. } => Some(VideoCodec::H264),
            CodecConfig::Vp8 { .. } => Some(VideoCodec::Vp8),
            CodecConfig::Opus { .. } => None,
        }
    }

    /// A video codec at `bitrate`.
    pub fn video(codec: VideoCodec, bitrate: u32) -> Self {
        match codec {
            VideoCodec::H264 => CodecConfig::H264 { bitrate },
            VideoCodec::Vp8 => CodecConfig::Vp8 { bitrate },
        }
    }

    /// The configured bitrate, bits per second.
    pub fn bitrate(&self) -> u32 {
        match self {
            CodecConfig::H264 { bitrate }
            | CodecConfig::Vp8 { bitrate }
            | CodecConfig::Opus { bitrate } => *bitrate,
        }
    }

    /// The codec's lowercase name: `h264`, `vp8`, `opus`.
    pub fn name(&self) -> &'static str {
        match self {
            CodecConfig::H264 { .. } => "h264",
            CodecConfig::Vp8 { .. } => "vp8",
            CodecConfig::Opus { .. } => "opus",
        }
    }
}

/// Counters of one encoder, as `getStats` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EncoderStats {
    /// Raw frames (or audio blocks) received from the track.
    pub frames_in: u64,
    /// Units produced (H.264 access units, VP8 frames, Opus packets).
    pub frames_encoded: u64,
    pub keyframes: u64,
    pub bytes: u64,
    /// Keyframes forced by requests or new sinks.
    pub keyframes_forced: u64,
    /// The target bitrate; for a passthrough, the rate measured from what is forwarded
    /// (the publisher's).
    pub bitrate: u32,
    pub sinks: u64,
    /// Forwards units as they arrived (nothing is encoded here; `framesIn` counts the units
    /// received, `framesEncoded` those sent on).
    pub passthrough: bool,
}

#[derive(Default)]
struct Counters {
    frames_in: AtomicU64,
    frames_encoded: AtomicU64,
    keyframes: AtomicU64,
    bytes: AtomicU64,
    keyframes_forced: AtomicU64,
    bitrate: AtomicU64,
}

/// A sink's sending end: a std channel for threads, a tokio one for async tasks.
enum SinkTx {
    Blocking(SyncSender<EncodedUnit>),
    Async(tokio::sync::mpsc::Sender<EncodedUnit>),
}

enum Sent {
    Ok,
    Full,
    Gone,
}

impl SinkTx {
    fn try_send(&self, unit: EncodedUnit) -> Sent {
        match self {
            SinkTx::Blocking(tx) => match tx.try_send(unit) {
                Ok(()) => Sent::Ok,
                Err(TrySendError::Full(_)) => Sent::Full,
                Err(TrySendError::Disconnected(_)) => Sent::Gone,
            },
            SinkTx::Async(tx) => match tx.try_send(unit) {
                Ok(()) => Sent::Ok,
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => Sent::Full,
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => Sent::Gone,
            },
        }
    }
}

struct Sink {
    tx: SinkTx,
    dropped: Arc<AtomicU64>,
    /// Dead once the receiver is dropped: lets the encoder idle without sending.
    alive: Weak<()>,
    /// Lost a unit (or just joined): skip deltas until a keyframe.
    needs_keyframe: bool,
    /// Has received a unit: deltas skipped from then on count as dropped.
    started: bool,
}

#[derive(Default)]
struct KeyframeState {
    /// A sink joined: force the next frame, unlimited.
    now: bool,
    /// A request (PLI/FIR) waiting for the rate limit.
    requested: bool,
    last_forced: Option<Instant>,
}

/// Asks the origin of a passthrough's units for a keyframe (a PLI to the publisher).
type KeyframeRequest = Box<dyn Fn() + Send + Sync>;

struct Shared {
    kind: MediaKind,
    codec: CodecConfig,
    /// Set for a passthrough: where keyframe requests go instead of the encoder.
    passthrough: Option<KeyframeRequest>,
    sinks: Mutex<Vec<Sink>>,
    keyframe: Mutex<KeyframeState>,
    /// The configured bitrate; the target is the lowest vote below it.
    base_bitrate: AtomicU64,
    /// Bandwidth estimates of the peers this encoder feeds, by voter.
    votes: Mutex<std::collections::HashMap<u64, u32>>,
    target_bitrate: AtomicU64,
    counters: Counters,
}

impl Shared {
    /// A keyframe is needed: `now` for a new sink (not rate-limited), else a request
    /// (PLI/FIR, a sink that lost sync), merged and rate-limited. A passthrough passes
    /// either to its origin, which limits the rate itself.
    fn keyframe_wanted(&self, now: bool) {
        match &self.passthrough {
            Some(request) => {
                if self.kind == MediaKind::Video {
                    request();
                }
            }
            None => {
                let mut k = lock(&self.keyframe);
                if now {
                    k.now = true;
                } else {
                    k.requested = true;
                }
            }
        }
    }
}

/// The receiving end of a sink.
pub struct EncodedReceiver {
    rx: Receiver<EncodedUnit>,
    dropped: Arc<AtomicU64>,
    _alive: Arc<()>,
}

impl EncodedReceiver {
    /// The next unit; `None` once the encoder has stopped (track ended).
    pub fn recv(&self) -> Option<EncodedUnit> {
        self.rx.recv().ok()
    }

    /// The next unit within `timeout`: `Ok(None)` on timeout, `Err(())` once stopped.
    #[allow(clippy::result_unit_err)]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<EncodedUnit>, ()> {
        match self.rx.recv_timeout(timeout) {
            Ok(u) => Ok(Some(u)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(()),
        }
    }

    /// Units this sink lost because it fell behind (including deltas skipped while it
    /// waited for a keyframe to resume on).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The receiving end of an async sink.
pub struct AsyncEncodedReceiver {
    rx: tokio::sync::mpsc::Receiver<EncodedUnit>,
    dropped: Arc<AtomicU64>,
    _alive: Arc<()>,
}

impl AsyncEncodedReceiver {
    /// The next unit; `None` once the encoder has stopped.
    pub async fn recv(&mut self) -> Option<EncodedUnit> {
        self.rx.recv().await
    }

    /// Units this sink lost because it fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A track's encoder and its fan-out. Cloning gives another handle to the same encoder.
#[derive(Clone)]
pub struct EncodedTrack {
    shared: Arc<Shared>,
}

impl EncodedTrack {
    /// Starts encoding `track` with `codec` (video: H.264 or VP8; audio: Opus) at the
    /// track's current settings; a size change on the track restarts the encoder at the new
    /// size.
    pub fn start(track: &MediaStreamTrack, codec: CodecConfig) -> Result<Self, EncodeError> {
        if codec.kind() != track.kind() {
            return Err(EncodeError::Mismatch(format!(
                "{:?} cannot encode a {} track",
                codec,
                track.kind()
            )));
        }
        let settings = track.get_settings();
        let bitrate = codec.bitrate();
        let encoder = match codec.video_codec() {
            Some(video) => Encoder::Video {
                codec: video,
                encoder: None,
                bitrate,
                frame_rate: settings.frame_rate.unwrap_or(30.0),
            },
            None => Encoder::Audio {
                encoder: None,
                bitrate,
            },
        };
        let shared = Arc::new(Shared {
            kind: track.kind(),
            codec,
            passthrough: None,
            sinks: Mutex::new(Vec::new()),
            keyframe: Mutex::new(KeyframeState::default()),
            base_bitrate: AtomicU64::new(bitrate as u64),
            votes: Mutex::new(std::collections::HashMap::new()),
            target_bitrate: AtomicU64::new(bitrate as u64),
            counters: Counters::default(),
        });
        shared
            .counters
            .bitrate
            .store(bitrate as u64, Ordering::Relaxed);
        // Two raw frames of slack: a slow encoder drops input rather than queueing it.
        let input = track.subscribe(2);
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name(format!("{} encoder", codec.name()))
            .spawn(move || run(input, weak, encoder))
            .map_err(|e| EncodeError::Codec(format!("cannot start the encoder thread: {e}")))?;
        Ok(EncodedTrack { shared })
    }

    /// A passthrough of already encoded units of `codec` (`codec.bitrate()` is only the
    /// starting figure of its stats): the units given to the returned feeder are sent to
    /// every sink as they are, with the fan-out's rules (a new sink starts on a keyframe, a
    /// slow one loses units and resumes on a keyframe). Keyframes cannot be forced here, so
    /// whenever one is needed (a new sink, a PLI/FIR from a peer, a sink that lost sync)
    /// `keyframe_request` is called: it should ask the origin (send a PLI to the publisher)
    /// and must not block; it is called often, so it rate-limits itself.
    /// [`set_bitrate`](Self::set_bitrate) and [`vote_bitrate`](Self::vote_bitrate) do
    /// nothing: the publisher decides the rate. Dropping the feeder ends the sinks.
    pub fn passthrough(
        codec: CodecConfig,
        keyframe_request: impl Fn() + Send + Sync + 'static,
    ) -> (Self, PassthroughFeeder) {
        let bitrate = codec.bitrate() as u64;
        let shared = Arc::new(Shared {
            kind: codec.kind(),
            codec,
            passthrough: Some(Box::new(keyframe_request)),
            sinks: Mutex::new(Vec::new()),
            keyframe: Mutex::new(KeyframeState::default()),
            base_bitrate: AtomicU64::new(bitrate),
            votes: Mutex::new(std::collections::HashMap::new()),
            target_bitrate: AtomicU64::new(bitrate),
            counters: Counters::default(),
        });
        shared.counters.bitrate.store(bitrate, Ordering::Relaxed);
        let feeder = PassthroughFeeder {
            shared: Arc::clone(&shared),
            rate: Mutex::new((Instant::now(), 0)),
        };
        (EncodedTrack { shared }, feeder)
    }

    /// Whether this forwards units it was given rather than encoding a track.
    pub fn is_passthrough(&self) -> bool {
        self.shared.passthrough.is_some()
    }

    pub fn kind(&self) -> MediaKind {
        self.shared.kind
    }

    /// The codec it was started with (the bitrate is the configured one).
    pub fn codec(&self) -> CodecConfig {
        self.shared.codec
    }

    /// Adds a sink with room for `capacity` units; its first unit is a keyframe.
    pub fn subscribe(&self, capacity: usize) -> EncodedReceiver {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let (dropped, alive) = self.add_sink(SinkTx::Blocking(tx));
        EncodedReceiver {
            rx,
            dropped,
            _alive: alive,
        }
    }

    /// Like [`subscribe`](Self::subscribe), for async consumers (peer connections).
    pub fn subscribe_async(&self, capacity: usize) -> AsyncEncodedReceiver {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        let (dropped, alive) = self.add_sink(SinkTx::Async(tx));
        AsyncEncodedReceiver {
            rx,
            dropped,
            _alive: alive,
        }
    }

    fn add_sink(&self, tx: SinkTx) -> (Arc<AtomicU64>, Arc<()>) {
        let dropped = Arc::new(AtomicU64::new(0));
        let alive = Arc::new(());
        lock(&self.shared.sinks).push(Sink {
            tx,
            dropped: Arc::clone(&dropped),
            alive: Arc::downgrade(&alive),
            needs_keyframe: true,
            started: false,
        });
        self.shared.keyframe_wanted(true);
        (dropped, alive)
    }

    /// Asks for a keyframe (a receiver's PLI or FIR), rate-limited; a passthrough asks its
    /// origin.
    pub fn request_keyframe(&self) {
        self.shared.keyframe_wanted(false);
    }

    /// Sets the configured bitrate (bits per second), from the next frame on. Peers'
    /// bandwidth votes can only lower the target below it. No effect on a passthrough.
    pub fn set_bitrate(&self, bitrate: u32) {
        if self.is_passthrough() {
            return;
        }
        self.shared
            .base_bitrate
            .store(bitrate as u64, Ordering::Relaxed);
        self.update_target();
    }

    /// A peer's bandwidth estimate (`None` withdraws it). One encoder serves every peer,
    /// so it follows the slowest: the target is the lowest vote, capped by the configured
    /// bitrate. No effect on a passthrough: we cannot change the publisher's rate (and
    /// one slow viewer should not slow the publisher for all).
    pub fn vote_bitrate(&self, voter: u64, estimate: Option<u32>) {
        if self.is_passthrough() {
            return;
        }
        {
            let mut votes = lock(&self.shared.votes);
            match estimate {
                Some(bps) => votes.insert(voter, bps),
                None => votes.remove(&voter),
            };
        }
        self.update_target();
    }

    fn update_target(&self) {
        let base = self.shared.base_bitrate.load(Ordering::Relaxed);
        let lowest = lock(&self.shared.votes).values().min().copied();
        let target = lowest.map_or(base, |v| (v as u64).min(base));
        self.shared.target_bitrate.store(target, Ordering::Relaxed);
    }

    pub fn stats(&self) -> EncoderStats {
        let c = &self.shared.counters;
        let live = lock(&self.shared.sinks)
            .iter()
            .filter(|s| s.alive.strong_count() > 0)
            .count() as u64;
        EncoderStats {
            frames_in: c.frames_in.load(Ordering::Relaxed),
            frames_encoded: c.frames_encoded.load(Ordering::Relaxed),
            keyframes: c.keyframes.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            keyframes_forced: c.keyframes_forced.load(Ordering::Relaxed),
            bitrate: c.bitrate.load(Ordering::Relaxed) as u32,
            sinks: live,
            passthrough: self.is_passthrough(),
        }
    }
}

/// Where a passthrough [`EncodedTrack`]'s units come from: whoever receives them (a remote
/// track's depacketizer) pushes them here. Dropping it ends the passthrough's sinks.
pub struct PassthroughFeeder {
    shared: Arc<Shared>,
    /// Start of the current rate window and the bytes pushed in it.
    rate: Mutex<(Instant, u64)>,
}

/// Window over which a passthrough measures the rate it forwards.
const RATE_WINDOW: Duration = Duration::from_secs(1);

impl PassthroughFeeder {
    /// Forwards `unit` to every sink. Never blocks: a full sink loses it (counted). With
    /// no sinks the unit is only counted.
    pub fn push(&self, unit: EncodedUnit) {
        let shared = &self.shared;
        let c = &shared.counters;
        c.frames_in.fetch_add(1, Ordering::Relaxed);
        {
            let mut rate = lock(&self.rate);
            rate.1 += unit.data.len() as u64;
            let elapsed = rate.0.elapsed();
            if elapsed >= RATE_WINDOW {
                let bps = (rate.1 as f64 * 8.0 / elapsed.as_secs_f64()) as u64;
                c.bitrate.store(bps, Ordering::Relaxed);
                *rate = (Instant::now(), 0);
            }
        }
        let sink_count = {
            let mut sinks = lock(&shared.sinks);
            sinks.retain(|s| s.alive.strong_count() > 0);
            sinks.len()
        };
        if sink_count > 0 {
            fan_out(shared, unit);
        }
    }
}

impl Drop for PassthroughFeeder {
    fn drop(&mut self) {
        // The origin is gone: receivers see the end (`recv` gives `None`).
        lock(&self.shared.sinks).clear();
    }
}

/// Opus bitrate of the encoders a [`TrackEncoders`] starts for audio tracks.
pub const AUDIO_BITRATE: u32 = 64_000;

/// The encoders of one track, one per codec: encode once per (track, codec).
///
/// A peer asks for the codec it negotiated ([`TrackEncoders::encoder`]); the first peer of
/// a codec starts that encoder, every later one shares it. Video may use the allowed codecs
/// (most preferred first); audio is Opus. A set made from one [`EncodedTrack`] (`From`)
/// allows exactly that encoder's codec. Cloning gives another handle to the same set.
#[derive(Clone)]
pub struct TrackEncoders {
    inner: Arc<SetInner>,
}

struct SetInner {
    kind: MediaKind,
    /// The track, where encoders can still be started (`None`: a fixed set).
    track: Option<MediaStreamTrack>,
    video_bitrate: u32,
    /// Video codecs allowed, most preferred first (empty for audio).
    allowed: Vec<VideoCodec>,
    running: Mutex<Vec<EncodedTrack>>,
}

impl TrackEncoders {
    /// The encoders of `track`: for video, the codecs `preference` allows (one, or `None`:
    /// H.264 and VP8, H.264 preferred) at `video_bitrate`; for audio, Opus at
    /// [`AUDIO_BITRATE`]. Nothing starts until a peer asks.
    pub fn new(
        track: &MediaStreamTrack,
        video_bitrate: u32,
        preference: Option<VideoCodec>,
    ) -> Self {
        let kind = track.kind();
        TrackEncoders {
            inner: Arc::new(SetInner {
                kind,
                track: Some(track.clone()),
                video_bitrate,
                allowed: match kind {
                    MediaKind::Video => VideoCodec::allowed(preference),
                    MediaKind::Audio => Vec::new(),
                },
                running: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The encoders of `track` (as [`new`](Self::new)) with `passthrough` in place for its
    /// codec: peers of that codec get the units forwarded as they came, with no decode or
    /// encode here; a peer of another allowed codec still starts an encoder of `track` (a
    /// transcode). For video the passthrough's codec becomes the most preferred (it costs
    /// nothing); it must be one `preference` allows.
    pub fn with_passthrough(
        track: &MediaStreamTrack,
        video_bitrate: u32,
        preference: Option<VideoCodec>,
        passthrough: EncodedTrack,
    ) -> Result<Self, EncodeError> {
        let set = TrackEncoders::new(track, video_bitrate, preference);
        let codec = passthrough.codec();
        if codec.kind() != set.kind() {
            return Err(EncodeError::Mismatch(format!(
                "a {} passthrough for a {} track",
                codec.name(),
                set.kind()
            )));
        }
        let mut allowed = set.inner.allowed.clone();
        if let Some(video) = codec.video_codec() {
            if !allowed.contains(&video) {
                return Err(EncodeError::Mismatch(format!(
                    "{video} is not among the codecs allowed here"
                )));
            }
            allowed.retain(|c| *c != video);
            allowed.insert(0, video);
        }
        Ok(TrackEncoders {
            inner: Arc::new(SetInner {
                kind: set.inner.kind,
                track: set.inner.track.clone(),
                video_bitrate,
                allowed,
                running: Mutex::new(vec![passthrough]),
            }),
        })
    }

    pub fn kind(&self) -> MediaKind {
        self.inner.kind
    }

    /// The video codecs this set may send, most preferred first (empty for audio).
    pub fn video_codecs(&self) -> &[VideoCodec] {
        &self.inner.allowed
    }

    /// The encoder for `codec` (`None` for audio), started now if no peer needed it yet.
    pub fn encoder(&self, codec: Option<VideoCodec>) -> Result<EncodedTrack, EncodeError> {
        let inner = &self.inner;
        let config = match (inner.kind, codec) {
            (MediaKind::Audio, None) => None,
            (MediaKind::Video, Some(c)) if inner.allowed.contains(&c) => Some(c),
            (kind, codec) => {
                return Err(EncodeError::Mismatch(format!(
                    "this {kind} track's encoders cannot encode {}",
                    codec.map_or("audio".to_owned(), |c| c.to_string())
                )))
            }
        };
        let mut running = lock(&inner.running);
        if let Some(e) = running.iter().find(|e| e.codec().video_codec() == config) {
            return Ok(e.clone());
        }
        let Some(track) = &inner.track else {
            return Err(EncodeError::Mismatch(
                "a fixed encoder set cannot start encoders".into(),
            ));
        };
        let codec = match config {
            Some(c) => CodecConfig::video(c, inner.video_bitrate),
            None => CodecConfig::Opus {
                bitrate: AUDIO_BITRATE,
            },
        };
        let encoder = EncodedTrack::start(track, codec)?;
        tracing::info!(
            "started a {} encoder for track {:?} ({} running)",
            codec.name(),
            track.label(),
            running.len() + 1
        );
        running.push(encoder.clone());
        Ok(encoder)
    }

    /// The encoders started so far, in the order they started.
    pub fn running(&self) -> Vec<EncodedTrack> {
        lock(&self.inner.running).clone()
    }
}

impl From<EncodedTrack> for TrackEncoders {
    /// A fixed set: exactly this encoder.
    fn from(encoded: EncodedTrack) -> Self {
        TrackEncoders {
            inner: Arc::new(SetInner {
                kind: encoded.kind(),
                track: None,
                video_bitrate: encoded.codec().bitrate(),
                allowed: encoded.codec().video_codec().into_iter().collect(),
                running: Mutex::new(vec![encoded]),
            }),
        }
    }
}

impl From<&EncodedTrack> for TrackEncoders {
    fn from(encoded: &EncodedTrack) -> Self {
        TrackEncoders::from(encoded.clone())
    }
}

impl From<&TrackEncoders> for TrackEncoders {
    fn from(set: &TrackEncoders) -> Self {
        set.clone()
    }
}

/// A running video encoder of either codec.
enum VideoEncoder {
    // Boxed: both encoders' state (openh264's, libvpx's configuration) is much larger
    // than Opus's handle.
    H264(Box<H264Encoder>),
    Vp8(Box<Vp8Encoder>),
}

impl VideoEncoder {
    fn new(
        codec: VideoCodec,
        f: &crate::frame::VideoFrame,
        rate: f64,
        bitrate: u32,
    ) -> Result<Self, EncodeError> {
        let (w, h) = (f.width(), f.height());
        Ok(match codec {
            VideoCodec::H264 => {
                let config = H264Config::new(w, h, rate, bitrate);
                VideoEncoder::H264(Box::new(H264Encoder::new(config)?))
            }
            VideoCodec::Vp8 => {
                let config = Vp8Config::new(w, h, rate, bitrate);
                VideoEncoder::Vp8(Box::new(Vp8Encoder::new(config)?))
            }
        })
    }

    fn size(&self) -> (u32, u32) {
        match self {
            VideoEncoder::H264(e) => (e.config().width, e.config().height),
            VideoEncoder::Vp8(e) => (e.config().width, e.config().height),
        }
    }

    fn set_bitrate(&mut self, bitrate: u32) -> Result<(), EncodeError> {
        match self {
            VideoEncoder::H264(e) => e.set_bitrate(bitrate),
            VideoEncoder::Vp8(e) => e.set_bitrate(bitrate),
        }
    }

    fn encode(
        &mut self,
        f: &crate::frame::VideoFrame,
        keyframe: bool,
    ) -> Result<Option<EncodedUnit>, EncodeError> {
        match self {
            VideoEncoder::H264(e) => e.encode(f, keyframe),
            VideoEncoder::Vp8(e) => e.encode(f, keyframe),
        }
    }
}

enum Encoder {
    Video {
        codec: VideoCodec,
        encoder: Option<VideoEncoder>,
        bitrate: u32,
        frame_rate: f64,
    },
    Audio {
        encoder: Option<OpusEncoder>,
        bitrate: u32,
    },
}

impl Encoder {
    fn encode(
        &mut self,
        frame: &MediaFrame,
        keyframe: bool,
        bitrate: u32,
    ) -> Result<Vec<EncodedUnit>, EncodeError> {
        match (self, frame) {
            (
                Encoder::Video {
                    codec,
                    encoder,
                    bitrate: current,
                    frame_rate,
                },
                MediaFrame::Video(f),
            ) => {
                let resized = encoder
                    .as_ref()
                    .is_some_and(|e| e.size() != (f.width(), f.height()));
                if encoder.is_none() || resized {
                    *encoder = Some(VideoEncoder::new(*codec, f, *frame_rate, bitrate)?);
                    *current = bitrate;
                }
                let Some(enc) = encoder.as_mut() else {
                    return Ok(Vec::new());
                };
                if bitrate != *current {
                    enc.set_bitrate(bitrate)?;
                    *current = bitrate;
                }
                Ok(enc.encode(f, keyframe)?.into_iter().collect())
            }
            (
                Encoder::Audio {
                    encoder,
                    bitrate: current,
                },
                MediaFrame::Audio(a),
            ) => {
                if encoder.is_none() {
                    *encoder = Some(OpusEncoder::new(a.sample_rate, a.channels, bitrate)?);
                    *current = bitrate;
                }
                let Some(enc) = encoder.as_mut() else {
                    return Ok(Vec::new());
                };
                if bitrate != *current {
                    enc.set_bitrate(bitrate)?;
                    *current = bitrate;
                }
                enc.encode(a)
            }
            _ => Err(EncodeError::Mismatch("frame of the wrong kind".into())),
        }
    }
}

fn run(input: crate::devices::FrameReceiver, shared: Weak<Shared>, mut encoder: Encoder) {
    loop {
        let frame = match input.recv_timeout(Duration::from_millis(250)) {
            Ok(Some(f)) => f,
            Ok(None) => {
                if shared.strong_count() == 0 {
                    break;
                }
                continue;
            }
            Err(_) => break, // the track ended
        };
        let Some(shared) = shared.upgrade() else {
            break;
        };
        let c = &shared.counters;
        c.frames_in.fetch_add(1, Ordering::Relaxed);
        let sink_count = {
            let mut sinks = lock(&shared.sinks);
            sinks.retain(|s| s.alive.strong_count() > 0);
            sinks.len()
        };
        if sink_count == 0 {
            continue;
        }
        let force = {
            let mut k = lock(&shared.keyframe);
            let now = Instant::now();
            let limited = k
                .last_forced
                .is_some_and(|t| now.duration_since(t) < KEYFRAME_MIN_INTERVAL);
            let force = k.now || (k.requested && !limited);
            if force {
                k.now = false;
                k.requested = false;
                k.last_forced = Some(now);
            }
            force
        };
        if force {
            c.keyframes_forced.fetch_add(1, Ordering::Relaxed);
        }
        let bitrate = shared.target_bitrate.load(Ordering::Relaxed) as u32;
        let units = match encoder.encode(&frame, force, bitrate) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("encoder: {e}");
                continue;
            }
        };
        c.bitrate.store(bitrate as u64, Ordering::Relaxed);
        for unit in units {
            fan_out(&shared, unit);
        }
    }
}

/// Sends `unit` to every live sink: a sink waiting for a keyframe skips deltas; a full
/// sink loses the unit (counted) and, for video, waits for the next keyframe, which is
/// then requested.
fn fan_out(shared: &Shared, unit: EncodedUnit) {
    let c = &shared.counters;
    c.frames_encoded.fetch_add(1, Ordering::Relaxed);
    c.bytes.fetch_add(unit.data.len() as u64, Ordering::Relaxed);
    if unit.keyframe && shared.kind == MediaKind::Video {
        c.keyframes.fetch_add(1, Ordering::Relaxed);
    }
    let mut lost_sync = false;
    lock(&shared.sinks).retain_mut(|s| {
        if s.needs_keyframe && !unit.keyframe {
            if s.started {
                s.dropped.fetch_add(1, Ordering::Relaxed);
            }
            return true;
        }
        match s.tx.try_send(unit.clone()) {
            Sent::Ok => {
                s.needs_keyframe = false;
                s.started = true;
                true
            }
            Sent::Full => {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                s.needs_keyframe = shared.kind == MediaKind::Video;
                lost_sync |= s.needs_keyframe;
                true
            }
            Sent::Gone => false,
        }
    });
    if lost_sync {
        shared.keyframe_wanted(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::pattern::read_strip;
    use crate::devices::{MediaDevices, PermissionPolicy};
    use crate::encode::h264::H264Decoder;
    use bytes::Bytes;

    fn camera(devices: &MediaDevices, json: &str) -> MediaStreamTrack {
        devices
            .get_user_media_json(json)
            .unwrap()
            .get_video_tracks()
            .remove(0)
    }

    #[test]
    fn encodes_once_for_many_sinks_each_starting_on_a_keyframe() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let track = camera(&devices, r#"{"video": {"width": 640, "height": 480}}"#);
        let encoded = EncodedTrack::start(&track, CodecConfig::H264 { bitrate: 300_000 }).unwrap();
        let sinks: Vec<_> = (0..5).map(|_| encoded.subscribe(64)).collect();
        let firsts: Vec<EncodedUnit> = sinks
            .iter()
            .map(|sink| sink.recv_timeout(Duration::from_secs(2)).unwrap().unwrap())
            .collect();
        assert!(
            firsts.iter().all(|u| u.keyframe),
            "a sink starts on a keyframe"
        );
        std::thread::sleep(Duration::from_millis(1000));
        let stats = encoded.stats();
        assert!(
            stats.frames_encoded >= 28 && stats.frames_encoded <= 40,
            "encoded once: {stats:?}"
        );
        // Every sink decodes the same frames.
        for (sink, first) in sinks.iter().zip(firsts) {
            let mut dec = H264Decoder::new().unwrap();
            let mut last = None;
            let rest =
                std::iter::from_fn(|| sink.recv_timeout(Duration::from_millis(10)).ok().flatten());
            for unit in std::iter::once(first).chain(rest) {
                if let Some(frame) = dec.decode(&unit.data).unwrap() {
                    let n = read_strip(&frame).unwrap().frame_number;
                    if let Some(prev) = last {
                        assert_eq!(n, prev + 1);
                    }
                    last = Some(n);
                }
            }
            assert!(last.is_some());
        }
        // A late sink gets a keyframe at once, not at the next periodic one.
        let late = encoded.subscribe(64);
        let start = Instant::now();
        let first = late.recv_timeout(Duration::from_secs(1)).unwrap().unwrap();
        assert!(first.keyframe);
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn keyframe_requests_are_prompt_and_rate_limited() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let track = camera(&devices, r#"{"video": {"width": 320, "height": 240}}"#);
        let encoded = EncodedTrack::start(&track, CodecConfig::H264 { bitrate: 300_000 }).unwrap();
        let sink = encoded.subscribe(256);
        assert!(
            sink.recv_timeout(Duration::from_secs(2))
                .unwrap()
                .unwrap()
                .keyframe
        );
        std::thread::sleep(Duration::from_millis(300));
        while let Ok(Some(_)) = sink.recv_timeout(Duration::ZERO) {}
        let asked = Instant::now();
        encoded.request_keyframe();
        let key = loop {
            let u = sink.recv_timeout(Duration::from_secs(1)).unwrap().unwrap();
            if u.keyframe {
                break Instant::now();
            }
        };
        assert!(
            key - asked < Duration::from_millis(100),
            "{:?}",
            key - asked
        );
        // A burst of requests: at most one keyframe per 200 ms.
        let before = encoded.stats().keyframes;
        for _ in 0..30 {
            encoded.request_keyframe();
            std::thread::sleep(Duration::from_millis(20));
        }
        let forced = encoded.stats().keyframes - before;
        assert!(
            (2..=4).contains(&forced),
            "{forced} keyframes in 600 ms of requests"
        );
    }

    #[test]
    fn a_slow_sink_loses_units_then_resumes_on_a_keyframe() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let track = camera(&devices, r#"{"video": {"width": 320, "height": 240}}"#);
        let encoded = EncodedTrack::start(&track, CodecConfig::H264 { bitrate: 300_000 }).unwrap();
        let slow = encoded.subscribe(2);
        let fast = encoded.subscribe(256);
        std::thread::sleep(Duration::from_millis(700));
        assert!(slow.dropped() > 5);
        let fast_count =
            std::iter::from_fn(|| fast.recv_timeout(Duration::ZERO).ok().flatten()).count();
        assert!(
            fast_count >= 18,
            "the fast sink was not slowed: {fast_count}"
        );
        // Drain the stale pair; the next unit the slow sink gets is a keyframe.
        let _ = slow.recv();
        let _ = slow.recv();
        let next = slow.recv_timeout(Duration::from_secs(1)).unwrap().unwrap();
        assert!(
            next.keyframe,
            "after losing units a sink resumes on a keyframe"
        );
    }

    #[test]
    fn encoder_sets_start_one_encoder_per_codec_on_demand() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let stream = devices
            .get_user_media_json(r#"{"video": {"width": 320, "height": 240}, "audio": true}"#)
            .unwrap();
        let (video, audio) = (&stream.get_video_tracks()[0], &stream.get_audio_tracks()[0]);
        let set = TrackEncoders::new(video, 300_000, None);
        assert_eq!(set.video_codecs(), [VideoCodec::H264, VideoCodec::Vp8]);
        assert!(
            set.running().is_empty(),
            "nothing starts before a peer asks"
        );
        let vp8 = set.encoder(Some(VideoCodec::Vp8)).unwrap();
        let again = set.clone().encoder(Some(VideoCodec::Vp8)).unwrap();
        assert_eq!(set.running().len(), 1, "shared, not started twice");
        // Both handles feed from the one VP8 encoder.
        let (a, b) = (vp8.subscribe(64), again.subscribe(64));
        let unit = a.recv_timeout(Duration::from_secs(2)).unwrap().unwrap();
        assert!(unit.keyframe && crate::encode::vp8::is_keyframe(&unit.data));
        assert!(b.recv_timeout(Duration::from_secs(2)).unwrap().is_some());
        assert_eq!(vp8.stats().sinks, 2);
        set.encoder(Some(VideoCodec::H264)).unwrap();
        let codecs: Vec<_> = set.running().iter().map(|e| e.codec().name()).collect();
        assert_eq!(codecs, ["vp8", "h264"]);
        assert!(
            set.encoder(None).is_err(),
            "a video set has no audio encoder"
        );

        let only = TrackEncoders::new(video, 300_000, Some(VideoCodec::H264));
        assert_eq!(only.video_codecs(), [VideoCodec::H264]);
        assert!(only.encoder(Some(VideoCodec::Vp8)).is_err());

        let opus = TrackEncoders::new(audio, 300_000, None);
        assert!(opus.video_codecs().is_empty());
        assert_eq!(opus.encoder(None).unwrap().codec().bitrate(), AUDIO_BITRATE);
        assert!(opus.encoder(Some(VideoCodec::Vp8)).is_err());

        // One encoder on its own is a fixed set of exactly its codec.
        let fixed = TrackEncoders::from(
            EncodedTrack::start(video, CodecConfig::Vp8 { bitrate: 1 }).unwrap(),
        );
        assert_eq!(fixed.video_codecs(), [VideoCodec::Vp8]);
        assert!(fixed.encoder(Some(VideoCodec::Vp8)).is_ok());
        assert!(fixed.encoder(Some(VideoCodec::H264)).is_err());
        assert_eq!(fixed.running().len(), 1);
    }

    #[test]
    fn a_passthrough_forwards_units_and_asks_its_origin_for_keyframes() {
        let asked = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&asked);
        let (track, feeder) =
            EncodedTrack::passthrough(CodecConfig::Vp8 { bitrate: 1 }, move || {
                counter.fetch_add(1, Ordering::Relaxed);
            });
        let unit = |n: u8, keyframe: bool| EncodedUnit {
            data: Bytes::from(vec![u8::from(!keyframe), n]),
            keyframe,
            timestamp: Duration::from_millis(33 * u64::from(n)),
            duration: Duration::from_millis(33),
            capture_time_ms: 0,
        };
        feeder.push(unit(0, true)); // no sink yet: counted, not sent
        let sink = track.subscribe(2);
        assert_eq!(
            asked.load(Ordering::Relaxed),
            1,
            "a new sink asks for a keyframe"
        );
        feeder.push(unit(1, false)); // skipped: the sink starts on a keyframe
        feeder.push(unit(2, true));
        feeder.push(unit(3, false));
        let got: Vec<u8> = std::iter::from_fn(|| sink.recv_timeout(Duration::ZERO).ok().flatten())
            .map(|u| u.data[1])
            .collect();
        assert_eq!(got, [2, 3]);
        // Full: the sink loses units, asks for a keyframe and resumes on one.
        for n in 4..8 {
            feeder.push(unit(n, false));
        }
        assert!(sink.dropped() >= 2 && asked.load(Ordering::Relaxed) >= 2);
        while let Ok(Some(_)) = sink.recv_timeout(Duration::ZERO) {}
        feeder.push(unit(8, false));
        feeder.push(unit(9, true));
        let next = sink.recv_timeout(Duration::ZERO).unwrap().unwrap();
        assert_eq!(next.data[1], 9);
        track.request_keyframe();
        assert!(
            asked.load(Ordering::Relaxed) >= 3,
            "a PLI goes to the origin"
        );
        track.set_bitrate(5);
        track.vote_bitrate(1, Some(5));
        let stats = track.stats();
        assert!(stats.passthrough && stats.frames_in == 10 && stats.keyframes_forced == 0);
        assert_ne!(stats.bitrate, 5, "the publisher's rate, not ours to set");
        drop(feeder);
        assert_eq!(
            sink.recv_timeout(Duration::from_secs(1)),
            Err(()),
            "ended with its origin"
        );
    }

    #[test]
    fn encoder_sets_hold_a_passthrough_beside_encoders() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let video = camera(&devices, r#"{"video": {"width": 320, "height": 240}}"#);
        let (pass, _feeder) = EncodedTrack::passthrough(CodecConfig::Vp8 { bitrate: 1 }, || {});
        let set = TrackEncoders::with_passthrough(&video, 300_000, None, pass).unwrap();
        assert_eq!(set.video_codecs(), [VideoCodec::Vp8, VideoCodec::H264]);
        assert!(set.encoder(Some(VideoCodec::Vp8)).unwrap().is_passthrough());
        assert!(!set
            .encoder(Some(VideoCodec::H264))
            .unwrap()
            .is_passthrough());
        assert_eq!(set.running().len(), 2);
        let (pass, _feeder) = EncodedTrack::passthrough(CodecConfig::Vp8 { bitrate: 1 }, || {});
        assert!(
            TrackEncoders::with_passthrough(&video, 1, Some(VideoCodec::H264), pass).is_err(),
            "a codec the set may not send"
        );
    }

    #[test]
    fn no_sinks_no_encoding_and_audio_works() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let stream = devices
            .get_user_media_json(r#"{"video": true, "audio": true}"#)
            .unwrap();
        let video = EncodedTrack::start(
            &stream.get_video_tracks()[0],
            CodecConfig::H264 { bitrate: 300_000 },
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let s = video.stats();
        assert!(s.frames_in > 3 && s.frames_encoded == 0, "{s:?}");
        let audio = EncodedTrack::start(
            &stream.get_audio_tracks()[0],
            CodecConfig::Opus { bitrate: 32_000 },
        )
        .unwrap();
        let sink = audio.subscribe(64);
        let units: Vec<_> = (0..10)
            .map(|_| sink.recv_timeout(Duration::from_secs(1)).unwrap().unwrap())
            .collect();
        assert!(units
            .iter()
            .all(|u| u.duration == Duration::from_millis(20)));
        assert!(EncodedTrack::start(
            &stream.get_audio_tracks()[0],
            CodecConfig::H264 { bitrate: 1 }
        )
        .is_err());
    }
}
