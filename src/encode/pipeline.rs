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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// Its bitrate tier: 0 is the highest rung of the track's ladder (a passthrough or a
    /// single encoder is tier 0).
    pub tier: u32,
    /// The range `bitrate` follows its viewers' estimates in: from just under the tier's
    /// rung (slower viewers move down a tier) to the next higher rung (faster ones move
    /// up); the top tier's ceiling is the top rung.
    pub min_bitrate: u32,
    pub max_bitrate: u32,
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
    /// The source is gone (the track ended, a passthrough's feeder was dropped): `sinks`
    /// was cleared and new sinks are not kept, so every receiver sees the end (`None`)
    /// instead of waiting forever on a sender that handles still hold. Set under the
    /// `sinks` lock.
    ended: AtomicBool,
    keyframe: Mutex<KeyframeState>,
    /// The configured bitrate: the tier's ceiling, which is the next higher rung (the top
    /// rung for the top tier), since its viewers' estimates reach up to there before they
    /// move up; the target is the lowest vote below it.
    base_bitrate: AtomicU64,
    /// Votes cannot take the target below this (just under the tier's rung: a viewer
    /// slower than that belongs on a lower tier's encoder, not here).
    floor_bitrate: AtomicU64,
    /// Index of the tier in its set's ladder (0 = highest).
    tier: usize,
    /// Bandwidth estimates of the peers this encoder feeds, by voter.
    votes: Mutex<std::collections::HashMap<u64, u32>>,
    target_bitrate: AtomicU64,
    counters: Counters,
}

impl Shared {
    /// The source is gone: drops every sink's sender (receivers get `None`) and refuses
    /// new ones. The senders would otherwise live as long as any handle (a set's
    /// `Running`, a viewer's tap) and receivers would wait forever.
    fn end(&self) {
        let mut sinks = lock(&self.sinks);
        self.ended.store(true, Ordering::Relaxed);
        sinks.clear();
    }

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
        Self::start_tier(track, codec, 0, 0)
    }

    /// [`start`](Self::start) as tier `tier` of a ladder: `codec.bitrate()` is the tier's
    /// ceiling (the next higher rung; the top rung for tier 0), `floor` the lowest target
    /// votes may set (0.9 × the tier's own rung; 0 for the lowest tier).
    fn start_tier(
        track: &MediaStreamTrack,
        codec: CodecConfig,
        tier: usize,
        floor: u32,
    ) -> Result<Self, EncodeError> {
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
            ended: AtomicBool::new(false),
            keyframe: Mutex::new(KeyframeState::default()),
            base_bitrate: AtomicU64::new(bitrate as u64),
            floor_bitrate: AtomicU64::new(u64::from(floor.min(bitrate))),
            tier,
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
            ended: AtomicBool::new(false),
            keyframe: Mutex::new(KeyframeState::default()),
            base_bitrate: AtomicU64::new(bitrate),
            floor_bitrate: AtomicU64::new(0),
            tier: 0,
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
        let mut sinks = lock(&self.shared.sinks);
        if self.shared.ended.load(Ordering::Relaxed) {
            // Nothing will come: dropping `tx` here ends the receiver at once.
            return (dropped, alive);
        }
        sinks.push(Sink {
            tx,
            dropped: Arc::clone(&dropped),
            alive: Arc::downgrade(&alive),
            needs_keyframe: true,
            started: false,
        });
        drop(sinks);
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

    /// A peer's bandwidth estimate (`None` withdraws it). One encoder serves every peer
    /// of its tier, so it follows the slowest of them: the target is the lowest vote,
    /// capped by the configured bitrate (the next higher rung) and held at or above the
    /// tier's floor (a slower peer moves to a lower tier instead of pulling this one down).
    /// No effect on a passthrough: we cannot change the publisher's rate (and one slow
    /// viewer should not slow the publisher for all).
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
        let floor = self.shared.floor_bitrate.load(Ordering::Relaxed).min(base);
        let lowest = lock(&self.shared.votes).values().min().copied();
        let target = lowest.map_or(base, |v| (v as u64).clamp(floor, base));
        self.shared.target_bitrate.store(target, Ordering::Relaxed);
    }

    /// Its tier in the set's ladder (0 = the highest).
    pub fn tier(&self) -> usize {
        self.shared.tier
    }

    /// Live sinks (viewers) now.
    fn live_sinks(&self) -> usize {
        lock(&self.shared.sinks)
            .iter()
            .filter(|s| s.alive.strong_count() > 0)
            .count()
    }

    /// Whether two handles are the same encoder.
    pub fn same(&self, other: &EncodedTrack) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
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
            tier: self.shared.tier as u32,
            min_bitrate: self.shared.floor_bitrate.load(Ordering::Relaxed) as u32,
            max_bitrate: self.shared.base_bitrate.load(Ordering::Relaxed) as u32,
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
        self.shared.end();
    }
}

/// Opus bitrate of the encoders a [`TrackEncoders`] starts for audio tracks.
pub const AUDIO_BITRATE: u32 = 64_000;

/// A derived ladder keeps no rung below this: lower, a video encoder spends its bits on
/// keyframes and the picture is mush; such viewers share the lowest rung (and pull it down
/// within its range).
pub const MIN_RUNG: u32 = 150_000;

/// An idle tier encoder (no viewer) is stopped after this long; a viewer that returns in
/// between (a peer flapping across a tier boundary) finds it still warm.
pub const IDLE_GRACE: Duration = Duration::from_secs(5);

/// The video bitrates a track is encoded at: one encoder per rung (and codec) that has
/// viewers, each viewer on the highest rung its bandwidth estimate allows. So one viewer
/// on a bad link gets its own, lower-rate encoder instead of pulling every viewer down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitrateLadder {
    /// Rungs derived from the highest: `max`, `max`/2.5, `max`/6 (2.5 M / 1 M / 416 k for a
    /// 2.5 Mbit/s track), rungs below [`MIN_RUNG`] left out, and fewer for small pictures
    /// (three from 1280×720, two from 640×360, else one): small video is cheap to send
    /// whole.
    Derived { max: u32 },
    /// These rungs exactly (any order; duplicates and zeros are dropped).
    Explicit(Vec<u32>),
}

impl From<u32> for BitrateLadder {
    fn from(max: u32) -> Self {
        BitrateLadder::Derived { max }
    }
}

impl From<Vec<u32>> for BitrateLadder {
    fn from(rungs: Vec<u32>) -> Self {
        BitrateLadder::Explicit(rungs)
    }
}

impl BitrateLadder {
    /// The rungs, highest first, for a picture of `size` (unknown: the full ladder). Never
    /// empty (a zero `max` gives one rung of 0, which the encoders clamp).
    pub fn rungs(&self, size: Option<(u32, u32)>) -> Vec<u32> {
        let mut rungs = match self {
            BitrateLadder::Derived { max } => {
                let tiers = match size {
                    Some((w, h)) if w * h >= 1280 * 720 => 3,
                    Some((w, h)) if w * h >= 640 * 360 => 2,
                    Some(_) => 1,
                    None => 3,
                };
                let all = [*max, (*max as f64 / 2.5) as u32, *max / 6];
                let mut rungs: Vec<u32> = all
                    .into_iter()
                    .take(tiers)
                    .enumerate()
                    .filter(|&(i, r)| i == 0 || r >= MIN_RUNG)
                    .map(|(_, r)| r)
                    .collect();
                rungs.dedup();
                rungs
            }
            BitrateLadder::Explicit(list) => list.iter().copied().filter(|&r| r > 0).collect(),
        };
        rungs.sort_unstable_by(|a, b| b.cmp(a));
        rungs.dedup();
        if rungs.is_empty() {
            rungs.push(0);
        }
        rungs
    }

    /// The highest rung.
    pub fn max(&self) -> u32 {
        self.rungs(None)[0]
    }
}

/// When a viewer changes tier. Down is prompt (the link cannot carry the rung: frames
/// would queue and be lost); up waits until the estimate has stayed clearly above the
/// higher rung for a while, so a viewer does not bounce between tiers (each move costs a
/// keyframe).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierPolicy {
    /// Move up to a rung once the estimate is at least this multiple of it (capped at the
    /// top rung: congestion control never estimates above its configured maximum)...
    pub up_margin: f64,
    /// ...for this long without a break.
    pub up_after: Duration,
    /// Move down at once when the estimate falls below this multiple of the current rung.
    pub down_margin: f64,
}

impl Default for TierPolicy {
    fn default() -> Self {
        TierPolicy {
            up_margin: 1.2,
            up_after: Duration::from_secs(4),
            down_margin: 0.9,
        }
    }
}

/// One viewer's tier and its progress towards a higher one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierState {
    tier: usize,
    /// The higher tier the estimate qualifies for, and since when.
    above: Option<(usize, Instant)>,
}

impl TierState {
    /// A viewer's first tier: the highest rung at or below `estimate` (no estimate: the
    /// top; below every rung: the lowest).
    pub fn initial(rungs: &[u32], estimate: f64) -> Self {
        TierState {
            tier: fitting(rungs, estimate),
            above: None,
        }
    }

    pub fn tier(&self) -> usize {
        self.tier
    }

    /// Takes a new `estimate` (bits per second) at `now`; returns the tier to be on.
    pub fn update(
        &mut self,
        rungs: &[u32],
        policy: &TierPolicy,
        estimate: f64,
        now: Instant,
    ) -> usize {
        let last = rungs.len().saturating_sub(1);
        self.tier = self.tier.min(last);
        if estimate <= 0.0 || rungs.len() < 2 {
            return self.tier;
        }
        let current = rungs[self.tier] as f64;
        if self.tier < last && estimate < current * policy.down_margin {
            self.tier = fitting(rungs, estimate).max(self.tier + 1);
            self.above = None;
            return self.tier;
        }
        let top = rungs[0] as f64;
        let qualifies =
            (0..self.tier).find(|&t| estimate >= (rungs[t] as f64 * policy.up_margin).min(top));
        match (qualifies, self.above) {
            (None, _) => self.above = None,
            (Some(t), Some((_, since))) => {
                if now.duration_since(since) >= policy.up_after {
                    self.tier = t;
                    self.above = None;
                } else {
                    self.above = Some((t, since));
                }
            }
            (Some(t), None) => self.above = Some((t, now)),
        }
        self.tier
    }
}

/// The highest rung at or below `estimate`; the top without an estimate.
fn fitting(rungs: &[u32], estimate: f64) -> usize {
    if estimate <= 0.0 {
        return 0;
    }
    rungs
        .iter()
        .position(|&r| r as f64 <= estimate)
        .unwrap_or(rungs.len().saturating_sub(1))
}

/// The encoders of one track: one per (codec, bitrate tier) that has viewers.
///
/// A peer asks for the codec it negotiated; the first peer of a (codec, tier) starts that
/// encoder, every later one shares it, and an encoder whose last viewer left is stopped
/// after [`IDLE_GRACE`]. Video may use the allowed codecs (most preferred first) at every
/// rung of its [`BitrateLadder`]; audio is Opus, one tier. A passthrough is one tier (the
/// publisher's rate). A set made from one [`EncodedTrack`] (`From`) allows exactly that
/// encoder. Cloning gives another handle to the same set.
#[derive(Clone)]
pub struct TrackEncoders {
    inner: Arc<SetInner>,
}

struct Running {
    encoder: EncodedTrack,
    /// Started here for a viewer (not given): stopped when idle.
    reapable: bool,
    /// Since when it has had no viewer, as last checked.
    idle_since: Option<Instant>,
}

struct SetInner {
    kind: MediaKind,
    /// The track, where encoders can still be started (`None`: a fixed set).
    track: Option<MediaStreamTrack>,
    /// Video rungs, highest first (one for audio and fixed sets).
    rungs: Vec<u32>,
    policy: TierPolicy,
    /// Video codecs allowed, most preferred first (empty for audio).
    allowed: Vec<VideoCodec>,
    running: Mutex<Vec<Running>>,
}

impl SetInner {
    /// Stops (forgets) encoders idle for longer than [`IDLE_GRACE`].
    fn reap(&self, now: Instant) {
        lock(&self.running).retain_mut(|r| {
            if !r.reapable || r.encoder.live_sinks() > 0 {
                r.idle_since = None;
                return true;
            }
            let since = *r.idle_since.get_or_insert(now);
            let keep = now.duration_since(since) < IDLE_GRACE;
            if !keep {
                let tier = r.encoder.tier();
                tracing::info!(
                    "stopped the idle {} encoder of tier {tier} (rung {} bit/s, ran at up to {} bit/s)",
                    r.encoder.codec().name(),
                    self.rungs.get(tier).copied().unwrap_or_default(),
                    r.encoder.codec().bitrate()
                );
            }
            keep
        });
    }
}

/// Checks a set's encoders for idleness every second while the set exists.
fn spawn_reaper(inner: &Arc<SetInner>) {
    let weak = Arc::downgrade(inner);
    let spawned = std::thread::Builder::new()
        .name("encoder reaper".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let Some(inner) = weak.upgrade() else { break };
            inner.reap(Instant::now());
        });
    if let Err(e) = spawned {
        tracing::warn!("no idle-encoder reaper ({e}): idle tier encoders keep running");
    }
}

impl TrackEncoders {
    /// The encoders of `track`: for video, the codecs `preference` allows (one, or `None`:
    /// H.264 and VP8, H.264 preferred) at the rungs of `ladder` (a bitrate: the ladder
    /// derived from it); for audio, Opus at [`AUDIO_BITRATE`]. Nothing starts until a peer
    /// asks.
    pub fn new(
        track: &MediaStreamTrack,
        ladder: impl Into<BitrateLadder>,
        preference: Option<VideoCodec>,
    ) -> Self {
        Self::with_policy(track, ladder, preference, TierPolicy::default())
    }

    /// [`new`](Self::new) with its own rules for moving viewers between tiers.
    pub fn with_policy(
        track: &MediaStreamTrack,
        ladder: impl Into<BitrateLadder>,
        preference: Option<VideoCodec>,
        policy: TierPolicy,
    ) -> Self {
        let kind = track.kind();
        let settings = track.get_settings();
        let size = settings.width.zip(settings.height);
        let rungs = match kind {
            MediaKind::Video => ladder.into().rungs(size),
            MediaKind::Audio => vec![AUDIO_BITRATE],
        };
        let inner = Arc::new(SetInner {
            kind,
            track: Some(track.clone()),
            rungs,
            policy,
            allowed: match kind {
                MediaKind::Video => VideoCodec::allowed(preference),
                MediaKind::Audio => Vec::new(),
            },
            running: Mutex::new(Vec::new()),
        });
        spawn_reaper(&inner);
        TrackEncoders { inner }
    }

    /// The encoders of `track` (as [`new`](Self::new)) with `passthrough` in place for its
    /// codec: peers of that codec get the units forwarded as they came, with no decode or
    /// encode here (one tier: the publisher's rate); a peer of another allowed codec still
    /// starts an encoder of `track` (a transcode, with tiers). For video the passthrough's
    /// codec becomes the most preferred (it costs nothing); it must be one `preference`
    /// allows.
    pub fn with_passthrough(
        track: &MediaStreamTrack,
        ladder: impl Into<BitrateLadder>,
        preference: Option<VideoCodec>,
        passthrough: EncodedTrack,
    ) -> Result<Self, EncodeError> {
        let set = TrackEncoders::new(track, ladder, preference);
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
        let inner = Arc::new(SetInner {
            kind: set.inner.kind,
            track: set.inner.track.clone(),
            rungs: set.inner.rungs.clone(),
            policy: set.inner.policy,
            allowed,
            running: Mutex::new(vec![Running {
                encoder: passthrough,
                reapable: false,
                idle_since: None,
            }]),
        });
        spawn_reaper(&inner);
        Ok(TrackEncoders { inner })
    }

    pub fn kind(&self) -> MediaKind {
        self.inner.kind
    }

    /// The video codecs this set may send, most preferred first (empty for audio).
    pub fn video_codecs(&self) -> &[VideoCodec] {
        &self.inner.allowed
    }

    /// The bitrate rungs viewers of `codec` are spread over, highest first: the ladder,
    /// or one rung for audio, a passthrough's codec and a fixed set.
    pub fn rungs(&self, codec: Option<VideoCodec>) -> Vec<u32> {
        let single = self.inner.track.is_none()
            || codec.is_none()
            || lock(&self.inner.running)
                .iter()
                .any(|r| r.encoder.is_passthrough() && r.encoder.codec().video_codec() == codec);
        if single {
            vec![self.inner.rungs[0]]
        } else {
            self.inner.rungs.clone()
        }
    }

    /// The rules viewers move between tiers by.
    pub fn policy(&self) -> TierPolicy {
        self.inner.policy
    }

    /// The encoder for `codec` (`None` for audio) at the top tier, started now if no peer
    /// needed it yet.
    pub fn encoder(&self, codec: Option<VideoCodec>) -> Result<EncodedTrack, EncodeError> {
        self.tier_encoder(codec, 0)
    }

    /// The encoder for `codec` at `tier` (an index into [`rungs`](Self::rungs), clamped),
    /// started now if no peer needed it yet.
    pub fn tier_encoder(
        &self,
        codec: Option<VideoCodec>,
        tier: usize,
    ) -> Result<EncodedTrack, EncodeError> {
        let mut running = lock(&self.inner.running);
        self.find_or_start(&mut running, codec, tier)
    }

    /// A new viewer of `codec` on `tier`: the encoder and a sink of `capacity` on it,
    /// added together so the idle reaper cannot stop the encoder in between.
    pub fn subscribe_tier(
        &self,
        codec: Option<VideoCodec>,
        tier: usize,
        capacity: usize,
    ) -> Result<(EncodedTrack, AsyncEncodedReceiver), EncodeError> {
        let mut running = lock(&self.inner.running);
        let encoder = self.find_or_start(&mut running, codec, tier)?;
        let rx = encoder.subscribe_async(capacity);
        Ok((encoder, rx))
    }

    /// A viewer of `codec` that moves between tiers as its bandwidth `estimate` (bits per
    /// second; 0 = unknown) changes: it starts on the highest rung at or below it.
    pub fn viewer(
        &self,
        codec: Option<VideoCodec>,
        capacity: usize,
        estimate: f64,
    ) -> Result<TieredReceiver, EncodeError> {
        let rungs = self.rungs(codec);
        let state = TierState::initial(&rungs, estimate);
        let (encoder, rx) = self.subscribe_tier(codec, state.tier(), capacity)?;
        let voter = rand::random();
        if estimate > 0.0 {
            encoder.vote_bitrate(voter, Some(estimate.min(u32::MAX as f64) as u32));
        }
        Ok(TieredReceiver {
            set: self.clone(),
            codec,
            capacity,
            voter,
            rungs,
            state,
            current: Tap {
                tier: state.tier(),
                encoder,
                rx,
            },
            pending: None,
            pending_since: tokio::time::Instant::now(),
            pending_passed: None,
            held: None,
            waiting: None,
            last_timestamp: None,
            switches: 0,
            abandoned: 0,
            hold: SWITCH_HOLD,
            give_up: SWITCH_GIVE_UP,
        })
    }

    fn find_or_start(
        &self,
        running: &mut Vec<Running>,
        codec: Option<VideoCodec>,
        tier: usize,
    ) -> Result<EncodedTrack, EncodeError> {
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
        let of_codec = |r: &&mut Running| r.encoder.codec().video_codec() == config;
        // A passthrough (or a fixed set's encoder) is the only tier of its codec.
        if let Some(r) = running.iter_mut().filter(of_codec).find(|r| !r.reapable) {
            return Ok(r.encoder.clone());
        }
        let tier = match config {
            Some(_) => tier.min(inner.rungs.len() - 1),
            None => 0,
        };
        if let Some(r) = running
            .iter_mut()
            .filter(of_codec)
            .find(|r| r.encoder.tier() == tier)
        {
            r.idle_since = None;
            return Ok(r.encoder.clone());
        }
        let Some(track) = &inner.track else {
            return Err(EncodeError::Mismatch(
                "a fixed encoder set cannot start encoders".into(),
            ));
        };
        // A tier's viewers have estimates from (about) its rung up to the next higher rung:
        // the encoder follows their lowest in that range.
        let (codec, floor) = match config {
            Some(c) => (
                CodecConfig::video(c, inner.rungs[tier.saturating_sub(1)]),
                if tier + 1 < inner.rungs.len() {
                    (inner.rungs[tier] as f64 * inner.policy.down_margin) as u32
                } else {
                    0
                },
            ),
            None => (
                CodecConfig::Opus {
                    bitrate: AUDIO_BITRATE,
                },
                0,
            ),
        };
        let encoder = EncodedTrack::start_tier(track, codec, tier, floor)?;
        tracing::info!(
            "started a {} encoder for track {:?} at tier {tier} (rung {} bit/s; target {}..={} \
             bit/s by its viewers' estimates; {} running)",
            codec.name(),
            track.label(),
            inner.rungs.get(tier).copied().unwrap_or(codec.bitrate()),
            floor,
            codec.bitrate(),
            running.len() + 1
        );
        running.push(Running {
            encoder: encoder.clone(),
            reapable: true,
            idle_since: None,
        });
        Ok(encoder)
    }

    /// The encoders running, in the order they started.
    pub fn running(&self) -> Vec<EncodedTrack> {
        lock(&self.inner.running)
            .iter()
            .map(|r| r.encoder.clone())
            .collect()
    }

    /// Stops encoders idle for longer than [`IDLE_GRACE`] now (a background thread does
    /// this every second anyway).
    pub fn reap_idle(&self) {
        self.inner.reap(Instant::now());
    }
}

impl From<EncodedTrack> for TrackEncoders {
    /// A fixed set: exactly this encoder.
    fn from(encoded: EncodedTrack) -> Self {
        TrackEncoders {
            inner: Arc::new(SetInner {
                kind: encoded.kind(),
                track: None,
                rungs: vec![encoded.codec().bitrate()],
                policy: TierPolicy::default(),
                allowed: encoded.codec().video_codec().into_iter().collect(),
                running: Mutex::new(vec![Running {
                    encoder: encoded,
                    reapable: false,
                    idle_since: None,
                }]),
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

/// A sink on one tier's encoder.
struct Tap {
    tier: usize,
    encoder: EncodedTrack,
    rx: AsyncEncodedReceiver,
}

/// How long a switch waits for the old tier to catch up with the new tier's keyframe
/// before it gives up on the frames in between.
const SWITCH_CATCH_UP: Duration = Duration::from_millis(250);

/// While a move is pending, how long an old-tier unit may wait for the new tier's keyframe
/// of the same frame (a few milliseconds behind it, normally). Only during a move, and only
/// until the new tier shows it encoded that frame as a delta (then no keyframe of it comes).
const SWITCH_HOLD: Duration = Duration::from_millis(60);

/// A move whose new tier gives no usable keyframe within this long is abandoned: until it
/// lands, old-tier units may be held up to [`SWITCH_HOLD`] each, which would throttle the
/// viewer for as long as the new encoder fails (a rejected keyframe is retried at once,
/// and forced keyframes come at most every [`KEYFRAME_MIN_INTERVAL`], so 2 s is several
/// chances).
const SWITCH_GIVE_UP: Duration = Duration::from_secs(2);

/// One viewer's units from a [`TrackEncoders`], moving between tier encoders as its
/// bandwidth estimate changes ([`update`](Self::update)). A move subscribes to the new
/// tier (whose first unit is a keyframe, forced at once), keeps taking the old tier's
/// units up to the frame before that keyframe, then continues on the new tier: the
/// receiver sees one unbroken stream, no frame twice and none missing. Dropping it
/// withdraws its votes and leaves both encoders.
pub struct TieredReceiver {
    set: TrackEncoders,
    codec: Option<VideoCodec>,
    capacity: usize,
    voter: u64,
    rungs: Vec<u32>,
    state: TierState,
    current: Tap,
    /// The tier being moved to, until its keyframe takes over.
    pending: Option<Tap>,
    /// When the pending move started (it is abandoned after `give_up`).
    pending_since: tokio::time::Instant,
    /// The latest timestamp the pending tier gave as a delta (or a rejected keyframe): an
    /// old-tier unit of that frame or an earlier one gets no keyframe of its own there.
    pending_passed: Option<Duration>,
    /// The new tier's keyframe, waiting for the old tier to deliver the frames before it.
    held: Option<(EncodedUnit, tokio::time::Instant)>,
    /// An old-tier unit held back for at most [`SWITCH_HOLD`] while a move is pending.
    waiting: Option<(EncodedUnit, tokio::time::Instant)>,
    /// Timestamp of the last unit handed out.
    last_timestamp: Option<Duration>,
    switches: u64,
    /// Moves given up for want of a usable keyframe.
    abandoned: u64,
    /// [`SWITCH_HOLD`] and [`SWITCH_GIVE_UP`]; fields so tests can stretch them.
    hold: Duration,
    give_up: Duration,
}

impl TieredReceiver {
    /// The tier whose units it is handing out now.
    pub fn tier(&self) -> usize {
        self.current.tier
    }

    /// The encoder it is receiving from (where keyframe requests go).
    pub fn encoder(&self) -> &EncodedTrack {
        &self.current.encoder
    }

    /// Completed moves between tiers.
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// Moves abandoned because the new tier gave no usable keyframe in time.
    pub fn abandoned_moves(&self) -> u64 {
        self.abandoned
    }

    /// Units lost on the current tier because this viewer fell behind.
    pub fn dropped(&self) -> u64 {
        self.current.rx.dropped()
    }

    /// Takes the viewer's bandwidth estimate (bits per second; once a second or so): votes
    /// it to its tier's encoder and, when the [`TierPolicy`] says so, starts the move to
    /// another tier.
    pub fn update(&mut self, estimate: f64, now: Instant) {
        let policy = self.set.policy();
        let wanted = self.state.update(&self.rungs, &policy, estimate, now);
        let heading = self.pending.as_ref().map_or(self.current.tier, |p| p.tier);
        if wanted != heading {
            if wanted == self.current.tier {
                // Back where it is: abandon the move.
                if let Some(p) = self.pending.take() {
                    p.encoder.vote_bitrate(self.voter, None);
                }
                self.held = None;
            } else {
                match self.set.subscribe_tier(self.codec, wanted, self.capacity) {
                    Ok((encoder, rx)) => {
                        tracing::debug!(
                            "viewer moving from tier {} to {wanted} (estimate {estimate:.0} bit/s)",
                            self.current.tier
                        );
                        if let Some(p) = self.pending.take() {
                            p.encoder.vote_bitrate(self.voter, None);
                        }
                        self.held = None;
                        self.pending_since = tokio::time::Instant::now();
                        self.pending_passed = None;
                        self.pending = Some(Tap {
                            tier: wanted,
                            encoder,
                            rx,
                        });
                    }
                    Err(e) => tracing::warn!("cannot move to tier {wanted}: {e}"),
                }
            }
        }
        if estimate > 0.0 {
            let tap = self.pending.as_ref().unwrap_or(&self.current);
            tap.encoder
                .vote_bitrate(self.voter, Some(estimate.min(u32::MAX as f64) as u32));
        }
    }

    /// Gives up the pending move (its tier gave no usable keyframe in time) and stays on
    /// the current tier. The tier state restarts there: a move down is tried again at the
    /// next estimate if still needed, a move up only after a new steady surplus.
    fn abandon_move(&mut self) {
        if let Some(p) = self.pending.take() {
            p.encoder.vote_bitrate(self.voter, None);
            self.abandoned += 1;
            self.state = TierState {
                tier: self.current.tier,
                above: None,
            };
            tracing::info!(
                "viewer abandoned its move from tier {} to {}: no usable keyframe within {:?} \
                 ({} abandoned so far)",
                self.current.tier,
                p.tier,
                self.give_up,
                self.abandoned
            );
        }
    }

    fn finish_switch(&mut self) {
        if let Some(new) = self.pending.take() {
            let old = std::mem::replace(&mut self.current, new);
            old.encoder.vote_bitrate(self.voter, None);
            self.switches += 1;
        }
    }

    fn handed_out(&mut self, unit: EncodedUnit) -> Option<EncodedUnit> {
        self.last_timestamp = Some(unit.timestamp);
        Some(unit)
    }

    /// The next unit; `None` once the track has ended.
    ///
    /// Cancel-safe (usable in `select!` beside a timer): it only awaits channel receives
    /// and timers, and a unit taken from a channel is stored in `self` (`waiting`, `held`)
    /// before the next await, so a cancelled call loses nothing; the next call hands out
    /// what is stored first, even if the move it was held for has been abandoned since.
    pub async fn recv(&mut self) -> Option<EncodedUnit> {
        loop {
            if let Some((key, deadline)) = &self.held {
                let (key_ts, deadline) = (key.timestamp, *deadline);
                // The old tier's frames before the new keyframe, then the keyframe.
                match tokio::time::timeout_at(deadline, self.current.rx.recv()).await {
                    Ok(Some(u)) if u.timestamp < key_ts => return self.handed_out(u),
                    Ok(Some(_)) | Ok(None) | Err(_) => {
                        let Some((key, _)) = self.held.take() else {
                            continue;
                        };
                        self.finish_switch();
                        return self.handed_out(key);
                    }
                }
            }
            let give_up = self.pending_since + self.give_up;
            if self.pending.is_some() && tokio::time::Instant::now() >= give_up {
                self.abandon_move();
            }
            let Some(pending) = &mut self.pending else {
                // A unit held for a move that was abandoned meanwhile (the estimate went
                // back while a cancelled call held it): it is next, not lost.
                if let Some((old, _)) = self.waiting.take() {
                    return self.handed_out(old);
                }
                let unit = self.current.rx.recv().await?;
                return self.handed_out(unit);
            };
            if let Some((old, deadline)) = &self.waiting {
                // An old-tier unit, held back briefly: the new tier's keyframe of the same
                // frame is usually just behind it (a keyframe takes longer to encode), and
                // sending the old one first would make that keyframe a repeat. Not once the
                // new tier has passed that frame as a delta: that keyframe is not coming.
                let (old_ts, deadline) = (old.timestamp, (*deadline).min(give_up));
                let passed = self.pending_passed.is_some_and(|t| t >= old_ts);
                let next = if passed {
                    Err(())
                } else {
                    tokio::time::timeout_at(deadline, pending.rx.recv())
                        .await
                        .map_err(|_| ())
                };
                match next {
                    Ok(Some(u))
                        if u.keyframe && self.last_timestamp.is_none_or(|t| u.timestamp > t) =>
                    {
                        if u.timestamp <= old_ts {
                            // The keyframe replaces the held unit's frame.
                            self.waiting = None;
                            self.finish_switch();
                            return self.handed_out(u);
                        }
                        self.held = Some((u, tokio::time::Instant::now() + SWITCH_CATCH_UP));
                    }
                    Ok(Some(u)) => {
                        self.pending_passed = self.pending_passed.max(Some(u.timestamp));
                        if u.keyframe {
                            // Of a frame already sent: ask for the next one.
                            pending.encoder.request_keyframe();
                        }
                        if u.timestamp < old_ts {
                            continue;
                        }
                    }
                    Ok(None) => self.pending = None,
                    Err(()) => {}
                }
                let Some((old, _)) = self.waiting.take() else {
                    continue;
                };
                return self.handed_out(old);
            }
            tokio::select! {
                unit = self.current.rx.recv() => match unit {
                    Some(u) => {
                        self.waiting = Some((u, tokio::time::Instant::now() + self.hold));
                    }
                    // The old tier ended (its track did): nothing to wait for.
                    None => self.finish_switch(),
                },
                unit = pending.rx.recv() => match unit {
                    Some(u) if u.keyframe && self.last_timestamp.is_none_or(|t| u.timestamp > t) => {
                        self.held = Some((u, tokio::time::Instant::now() + SWITCH_CATCH_UP));
                    }
                    // A keyframe of a frame already sent from the old tier: starting there
                    // would repeat frames. Ask for the next one.
                    Some(u) => {
                        self.pending_passed = self.pending_passed.max(Some(u.timestamp));
                        if u.keyframe {
                            pending.encoder.request_keyframe();
                        }
                    }
                    None => {
                        self.pending = None;
                    }
                },
                // Wakes the loop to abandon a move that is taking too long.
                () = tokio::time::sleep_until(give_up) => {}
            }
        }
    }
}

impl Drop for TieredReceiver {
    fn drop(&mut self) {
        self.current.encoder.vote_bitrate(self.voter, None);
        if let Some(p) = &self.pending {
            p.encoder.vote_bitrate(self.voter, None);
        }
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
                match encoder {
                    None => {
                        *encoder = Some(OpusEncoder::new(a.sample_rate, a.channels, bitrate)?);
                        *current = bitrate;
                    }
                    // The track was reconfigured (applyConstraints on its channel count or
                    // rate): a new encoder for the new format, as video restarts on a
                    // resize, with the packet timeline carried on.
                    Some(enc) if enc.input_format() != (a.sample_rate, a.channels) => {
                        let (rate, channels) = enc.input_format();
                        enc.reconfigure(a.sample_rate, a.channels)?;
                        tracing::info!(
                            "Opus encoder restarted: the track went from {rate} Hz × {channels} \
                             to {} Hz × {}",
                            a.sample_rate,
                            a.channels
                        );
                    }
                    Some(_) => {}
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

/// The encoder thread: encodes `input` until the track ends or the last handle is dropped,
/// then ends every sink (see [`Shared::end`]).
fn run(input: crate::devices::FrameReceiver, shared: Weak<Shared>, encoder: Encoder) {
    encode_loop(input, &shared, encoder);
    if let Some(shared) = shared.upgrade() {
        shared.end();
    }
}

fn encode_loop(input: crate::devices::FrameReceiver, shared: &Weak<Shared>, mut encoder: Encoder) {
    // Failures already logged.
    let mut logged: Vec<String> = Vec::new();
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
                // Once per distinct failure: a track the encoder cannot take fails on
                // every block (100 a second for audio).
                let message = e.to_string();
                if !logged.contains(&message) {
                    tracing::warn!("{} encoder: {message} (not repeated)", shared.codec.name());
                    if logged.len() < 8 {
                        logged.push(message);
                    }
                }
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
    fn ladders_are_derived_by_size_or_given() {
        let derived = BitrateLadder::from(2_500_000);
        assert_eq!(
            derived.rungs(Some((1280, 720))),
            [2_500_000, 1_000_000, 416_666]
        );
        assert_eq!(derived.rungs(Some((640, 480))), [2_500_000, 1_000_000]);
        assert_eq!(derived.rungs(Some((320, 240))), [2_500_000]);
        // Rungs under MIN_RUNG are left out.
        assert_eq!(
            BitrateLadder::from(500_000).rungs(Some((1920, 1080))),
            [500_000, 200_000]
        );
        assert_eq!(
            BitrateLadder::from(vec![300_000, 0, 2_000_000, 300_000]).rungs(None),
            [2_000_000, 300_000]
        );
        assert_eq!(BitrateLadder::Explicit(vec![]).rungs(None), [0]);
    }

    #[test]
    fn tiers_go_down_at_once_and_up_only_after_a_steady_surplus() {
        let rungs = [2_500_000, 1_000_000, 300_000];
        let policy = TierPolicy::default();
        assert_eq!(
            TierState::initial(&rungs, 0.0).tier(),
            0,
            "unknown: the top"
        );
        assert_eq!(TierState::initial(&rungs, 2_600_000.0).tier(), 0);
        assert_eq!(TierState::initial(&rungs, 1_500_000.0).tier(), 1);
        assert_eq!(TierState::initial(&rungs, 100_000.0).tier(), 2);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_millis(s);
        let mut state = TierState::initial(&rungs, 2_500_000.0);
        // Slightly under the rung: stays (a margin against the estimate's jitter).
        assert_eq!(state.update(&rungs, &policy, 2_300_000.0, at(0)), 0);
        // Clearly under: down at once, past any rung it cannot carry either.
        assert_eq!(state.update(&rungs, &policy, 400_000.0, at(1000)), 2);
        // Up only after 4 s above 1.2 × the next rung.
        assert_eq!(state.update(&rungs, &policy, 1_300_000.0, at(2000)), 2);
        assert_eq!(state.update(&rungs, &policy, 1_300_000.0, at(5000)), 2);
        // A dip restarts the wait.
        assert_eq!(state.update(&rungs, &policy, 1_100_000.0, at(5500)), 2);
        assert_eq!(state.update(&rungs, &policy, 1_300_000.0, at(6000)), 2);
        assert_eq!(state.update(&rungs, &policy, 1_300_000.0, at(9000)), 2);
        assert_eq!(state.update(&rungs, &policy, 1_300_000.0, at(10_000)), 1);
        // The top rung needs the estimate at the rung (congestion control's ceiling).
        assert_eq!(state.update(&rungs, &policy, 2_500_000.0, at(11_000)), 1);
        assert_eq!(state.update(&rungs, &policy, 2_500_000.0, at(15_000)), 0);
        // No estimate: no move.
        assert_eq!(state.update(&rungs, &policy, 0.0, at(16_000)), 0);
    }

    fn fast_policy() -> TierPolicy {
        TierPolicy {
            up_after: Duration::from_millis(300),
            ..TierPolicy::default()
        }
    }

    /// A 640×480 pattern camera with a three-rung ladder (1.5M, 700k, 350k) that moves
    /// viewers up quickly.
    fn three_tier_camera(devices: &MediaDevices) -> (MediaStreamTrack, TrackEncoders) {
        let track = camera(devices, r#"{"video": {"width": 640, "height": 480}}"#);
        let set = TrackEncoders::with_policy(
            &track,
            vec![1_500_000, 700_000, 350_000],
            None,
            fast_policy(),
        );
        (track, set)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_viewer_gets_its_own_tier_and_the_fast_keep_the_high_rate() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let (_track, set) = three_tier_camera(&devices);
        let codec = Some(VideoCodec::H264);
        let mut fast: Vec<_> = (0..4)
            .map(|_| set.viewer(codec, 64, 2_000_000.0).unwrap())
            .collect();
        assert_eq!(set.running().len(), 1, "equal viewers share one encoder");
        let mut slow = set.viewer(codec, 64, 300_000.0).unwrap();
        assert_eq!(slow.tier(), 2);
        let now = Instant::now();
        for v in fast.iter_mut() {
            v.update(2_000_000.0, now);
        }
        slow.update(300_000.0, now);
        for _ in 0..20 {
            for v in fast.iter_mut().chain(std::iter::once(&mut slow)) {
                let u = tokio::time::timeout(Duration::from_secs(2), v.recv()).await;
                assert!(u.unwrap().is_some());
            }
        }
        let running = set.running();
        assert_eq!(running.len(), 2, "one encoder per tier in use");
        let top = running.iter().find(|e| e.tier() == 0).unwrap().stats();
        let low = running.iter().find(|e| e.tier() == 2).unwrap().stats();
        assert_eq!((top.sinks, low.sinks), (4, 1));
        assert_eq!(top.bitrate, 1_500_000, "the fast keep their rate: {top:?}");
        assert_eq!((top.min_bitrate, top.max_bitrate), (1_350_000, 1_500_000));
        assert_eq!(low.bitrate, 300_000, "{low:?}");
        assert_eq!((low.min_bitrate, low.max_bitrate), (0, 700_000));
        // Within its range a tier follows its slowest viewer.
        slow.update(500_000.0, Instant::now());
        let low_encoder = running.iter().find(|e| e.tier() == 2).unwrap();
        for _ in 0..3 {
            let u = tokio::time::timeout(Duration::from_secs(2), slow.recv()).await;
            assert!(u.unwrap().is_some());
        }
        assert_eq!(low_encoder.stats().bitrate, 500_000);
        // Encoded once per tier: about one unit per frame, not one per viewer.
        assert!(top.frames_encoded <= top.frames_in + 2, "{top:?}");
        // The slow viewer leaves: its tier's encoder stops after the grace period.
        drop(slow);
        set.reap_idle();
        assert_eq!(set.running().len(), 2, "kept through the grace period");
        set.inner
            .reap(Instant::now() + IDLE_GRACE + Duration::from_secs(1));
        let running = set.running();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].tier(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_viewer_moving_between_tiers_decodes_every_frame() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let (_track, set) = three_tier_camera(&devices);
        let mut viewer = set.viewer(Some(VideoCodec::H264), 64, 2_000_000.0).unwrap();
        // Another viewer keeps the top tier busy, as in a real fan-out.
        let _other = set.viewer(Some(VideoCodec::H264), 64, 2_000_000.0).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let mut numbers = Vec::new();
        let mut tiers = Vec::new();
        let start = Instant::now();
        let mut step = 0;
        while start.elapsed() < Duration::from_millis(3500) {
            let t = start.elapsed();
            // Down at 0.5 s, then a steady surplus from 1.5 s: up after 0.3 s.
            let estimate = if t < Duration::from_millis(500) {
                2_000_000.0
            } else if t < Duration::from_millis(1500) {
                300_000.0
            } else {
                2_000_000.0
            };
            if t.as_millis() / 100 != step {
                step = t.as_millis() / 100;
                viewer.update(estimate, Instant::now());
            }
            let unit = tokio::time::timeout(Duration::from_secs(2), viewer.recv())
                .await
                .expect("a unit in time")
                .expect("the track runs");
            let frame = dec
                .decode(&unit.data)
                .expect("no decode error across moves");
            if let Some(frame) = frame {
                numbers.push(read_strip(&frame).unwrap().frame_number);
                tiers.push(viewer.tier());
            }
        }
        assert_eq!(viewer.switches(), 2, "down and back up: {tiers:?}");
        assert!(tiers.contains(&2) && tiers.first() == Some(&0) && tiers.last() == Some(&0));
        for pair in numbers.windows(2) {
            assert_eq!(
                pair[1],
                pair[0] + 1,
                "consecutive across moves: {numbers:?}"
            );
        }
        assert!(numbers.len() >= 60, "{}", numbers.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn receivers_see_the_end_when_the_track_ends() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let track = camera(&devices, r#"{"video": {"width": 320, "height": 240}}"#);
        let set = TrackEncoders::new(&track, 300_000, None);
        let codec = Some(VideoCodec::H264);
        let mut viewer = set.viewer(codec, 64, 0.0).unwrap();
        let sink = set.encoder(codec).unwrap().subscribe(64);
        let first = tokio::time::timeout(Duration::from_secs(2), viewer.recv()).await;
        assert!(first.unwrap().is_some());
        track.stop();
        // The set (its Running), the viewer's tap and this test all hold the encoder: the
        // receivers must still see the end, not wait on senders those handles keep.
        let ended = tokio::time::timeout(Duration::from_secs(3), async {
            while viewer.recv().await.is_some() {}
        })
        .await;
        assert!(ended.is_ok(), "the viewer's recv() gave None");
        let end = Instant::now();
        loop {
            match sink.recv_timeout(Duration::from_millis(100)) {
                Err(()) => break,
                Ok(_) => assert!(end.elapsed() < Duration::from_secs(3), "no end"),
            }
        }
        // A sink added afterwards ends at once.
        let late = set.encoder(codec).unwrap().subscribe(4);
        assert_eq!(late.recv_timeout(Duration::from_secs(1)), Err(()));
    }

    /// A set of two H.264 tiers (1 Mbit/s and 400 kbit/s) fed by hand, and a viewer on
    /// the top one with the given switch hold and give-up time: moves between tiers with
    /// no encoder timing in the way.
    fn fed_tiers(
        hold: Duration,
        give_up: Duration,
    ) -> (
        TieredReceiver,
        PassthroughFeeder,
        PassthroughFeeder,
        EncodedTrack,
    ) {
        let tier = |tier: usize| {
            let shared = Arc::new(Shared {
                kind: MediaKind::Video,
                codec: CodecConfig::H264 { bitrate: 1 },
                passthrough: Some(Box::new(|| {})),
                sinks: Mutex::new(Vec::new()),
                ended: AtomicBool::new(false),
                keyframe: Mutex::new(KeyframeState::default()),
                base_bitrate: AtomicU64::new(1),
                floor_bitrate: AtomicU64::new(0),
                tier,
                votes: Mutex::new(std::collections::HashMap::new()),
                target_bitrate: AtomicU64::new(1),
                counters: Counters::default(),
            });
            let feeder = PassthroughFeeder {
                shared: Arc::clone(&shared),
                rate: Mutex::new((Instant::now(), 0)),
            };
            (EncodedTrack { shared }, feeder)
        };
        let ((top, top_feeder), (low, low_feeder)) = (tier(0), tier(1));
        let running = |encoder: &EncodedTrack| Running {
            encoder: encoder.clone(),
            reapable: true,
            idle_since: None,
        };
        let set = TrackEncoders {
            inner: Arc::new(SetInner {
                kind: MediaKind::Video,
                track: None,
                rungs: vec![1_000_000, 400_000],
                policy: TierPolicy {
                    up_after: Duration::ZERO,
                    ..TierPolicy::default()
                },
                allowed: vec![VideoCodec::H264],
                running: Mutex::new(vec![running(&top), running(&low)]),
            }),
        };
        let mut viewer = set.viewer(Some(VideoCodec::H264), 32, 1_000_000.0).unwrap();
        viewer.rungs = vec![1_000_000, 400_000];
        viewer.hold = hold;
        viewer.give_up = give_up;
        assert_eq!(viewer.tier(), 0);
        (viewer, top_feeder, low_feeder, low)
    }

    /// Unit `n` of tier `tier`: its data says which, 33 ms a frame.
    fn tier_unit(tier: u8, n: u8, keyframe: bool) -> EncodedUnit {
        EncodedUnit {
            data: Bytes::from(vec![tier, n]),
            keyframe,
            timestamp: Duration::from_millis(33 * u64::from(n)),
            duration: Duration::from_millis(33),
            capture_time_ms: 0,
        }
    }

    async fn next(viewer: &mut TieredReceiver, within: Duration) -> (u8, u8, bool) {
        let unit = tokio::time::timeout(within, viewer.recv())
            .await
            .expect("a unit in time")
            .expect("not ended");
        (unit.data[0], unit.data[1], unit.keyframe)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_recv_cancelled_mid_hold_loses_nothing_when_the_move_is_abandoned() {
        let (mut viewer, top, _low, _) =
            fed_tiers(Duration::from_secs(30), Duration::from_secs(60));
        top.push(tier_unit(0, 0, true));
        assert_eq!(
            next(&mut viewer, Duration::from_secs(5)).await,
            (0, 0, true)
        );
        // Down a tier: the move is pending, the next old-tier unit is held for it.
        viewer.update(300_000.0, Instant::now());
        top.push(tier_unit(0, 1, false));
        // The estimate tick cancels recv() during the hold (as send_loop's select! does).
        let cancelled = tokio::time::timeout(Duration::from_millis(200), viewer.recv()).await;
        assert!(cancelled.is_err(), "held, not handed out");
        // The estimate went back: the move is abandoned.
        viewer.update(1_000_000.0, Instant::now());
        viewer.update(1_000_000.0, Instant::now());
        assert!(viewer.pending.is_none(), "the move was abandoned");
        top.push(tier_unit(0, 2, false));
        let within = Duration::from_secs(5);
        assert_eq!(
            next(&mut viewer, within).await,
            (0, 1, false),
            "the held delta"
        );
        assert_eq!(next(&mut viewer, within).await, (0, 2, false));
        assert_eq!((viewer.tier(), viewer.switches()), (0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pending_delta_ends_the_hold_and_the_next_keyframe_completes_the_move() {
        // A hold far longer than the test may take: any unit that waits it out fails.
        let (mut viewer, top, low, _) = fed_tiers(Duration::from_secs(30), Duration::from_secs(60));
        top.push(tier_unit(0, 0, true));
        assert_eq!(
            next(&mut viewer, Duration::from_secs(5)).await,
            (0, 0, true)
        );
        viewer.update(300_000.0, Instant::now());
        // The new tier's first keyframe is of a frame already sent (rejected); its next
        // frames are deltas, so no keyframe of them is coming: the old tier's go at once.
        low.push(tier_unit(1, 0, true));
        for n in 1..=5 {
            low.push(tier_unit(1, n, false));
            top.push(tier_unit(0, n, false));
        }
        let start = Instant::now();
        for n in 1..=5 {
            assert_eq!(
                next(&mut viewer, Duration::from_secs(10)).await,
                (0, n, false)
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        // A usable keyframe: the move completes there.
        top.push(tier_unit(0, 6, false));
        low.push(tier_unit(1, 6, true));
        assert_eq!(
            next(&mut viewer, Duration::from_secs(5)).await,
            (1, 6, true)
        );
        assert_eq!((viewer.tier(), viewer.switches()), (1, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_move_without_a_usable_keyframe_is_abandoned() {
        let give_up = Duration::from_millis(300);
        let (mut viewer, top, _low, low_encoder) = fed_tiers(Duration::from_secs(30), give_up);
        top.push(tier_unit(0, 0, true));
        assert_eq!(
            next(&mut viewer, Duration::from_secs(5)).await,
            (0, 0, true)
        );
        viewer.update(300_000.0, Instant::now());
        assert_eq!(low_encoder.stats().sinks, 1, "the move is under way");
        // The new tier never delivers: the viewer is held up at most until the give-up.
        let start = Instant::now();
        for n in 1..=10 {
            top.push(tier_unit(0, n, false));
            assert_eq!(
                next(&mut viewer, Duration::from_secs(10)).await,
                (0, n, false)
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(viewer.abandoned_moves(), 1);
        assert_eq!((viewer.tier(), viewer.switches()), (0, 0));
        assert!(viewer.pending.is_none());
        assert_eq!(low_encoder.stats().sinks, 0, "left the abandoned tier");
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
    fn a_44100_hz_microphone_is_sent_as_opus_at_its_pitch() {
        let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
        std::fs::write(
            file.path(),
            r#"{"devices": [{"kind": "audioinput", "deviceId": "mic", "label": "44.1 kHz",
                "source": "tone", "modes": [{"sampleRate": 44100, "channelCount": 1,
                "sampleSize": 16, "latency": 0.01}]}]}"#,
        )
        .unwrap();
        let devices =
            MediaDevices::from_devices_file(file.path(), PermissionPolicy::granted()).unwrap();
        let stream = devices.get_user_media_json(r#"{"audio": true}"#).unwrap();
        let mic = &stream.get_audio_tracks()[0];
        assert_eq!(mic.get_settings().sample_rate, Some(44_100));
        let set = TrackEncoders::new(mic, 0, None);
        let opus = set.encoder(None).unwrap();
        let sink = opus.subscribe(256);
        let mut dec = crate::encode::opus::OpusDecoder::new(48_000, 1).unwrap();
        let mut samples = Vec::new();
        for _ in 0..75 {
            let unit = sink
                .recv_timeout(Duration::from_secs(2))
                .unwrap()
                .expect("Opus packets from a 44.1 kHz track");
            samples.extend(dec.decode(&unit.data, unit.timestamp).unwrap().to_i16());
        }
        let hz = crate::devices::tone::frequency(&samples[9600..], 48_000);
        assert!((436.0..=444.0).contains(&hz), "{hz} Hz");
    }

    #[test]
    fn audio_keeps_flowing_when_the_track_changes_its_channel_count() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let stream = devices
            .get_user_media_json(r#"{"audio": {"channelCount": 1}}"#)
            .unwrap();
        let tone = &stream.get_audio_tracks()[0];
        assert_eq!(tone.get_settings().channel_count, Some(1));
        let opus = TrackEncoders::new(tone, 0, None).encoder(None).unwrap();
        let sink = opus.subscribe(256);
        let mut timestamps = Vec::new();
        let mut next = || {
            let unit = sink
                .recv_timeout(Duration::from_secs(2))
                .unwrap()
                .expect("Opus packets keep coming");
            timestamps.push(unit.timestamp);
            unit
        };
        for _ in 0..10 {
            next();
        }
        tone.apply_constraints_json(r#"{"channelCount": 2}"#)
            .unwrap();
        assert_eq!(tone.get_settings().channel_count, Some(2));
        let mut dec = crate::encode::opus::OpusDecoder::new(48_000, 2).unwrap();
        let mut left: Vec<i16> = Vec::new();
        let mut stereo_packets = 0;
        for _ in 0..100 {
            let unit = next();
            // The TOC byte's stereo flag: packets of the new encoder.
            if unit.data[0] & 0x04 != 0 {
                stereo_packets += 1;
                let pcm = dec.decode(&unit.data, unit.timestamp).unwrap().to_i16();
                left.extend(pcm.iter().step_by(2).copied());
            }
        }
        assert!(stereo_packets >= 80, "{stereo_packets} stereo packets");
        let hz = crate::devices::tone::frequency(&left[9600..], 48_000);
        assert!((436.0..=444.0).contains(&hz), "{hz} Hz");
        // One timeline across the change: no packet overlaps the one before, none is far
        // behind it.
        for pair in timestamps.windows(2) {
            let step = pair[1].checked_sub(pair[0]).expect("no step back");
            assert!(
                (Duration::from_millis(20)..=Duration::from_millis(40)).contains(&step),
                "{step:?} between packets: {timestamps:?}"
            );
        }
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
