//! One encoder (or passthrough) as its users see it: the handle [`EncodedTrack`], the codec
//! it runs ([`CodecConfig`]), its counters ([`EncoderStats`]), and the state its thread or
//! feeder shares with its sinks ([`Shared`], built by one constructor).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::bitrate::BitrateVotes;
use super::fanout::{AsyncEncodedReceiver, EncodedReceiver, Fanout};
use super::input::Input;
use super::keyframe::KeyframeGate;
use crate::constraints::MediaKind;
use crate::encode::{EncodeError, EncodedUnit, VideoCodec};
use crate::sync::lock;
use crate::track::MediaStreamTrack;

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
pub(super) struct Counters {
    pub(super) frames_in: AtomicU64,
    pub(super) frames_encoded: AtomicU64,
    pub(super) keyframes: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) keyframes_forced: AtomicU64,
    /// The bitrate last encoded at (a passthrough: measured).
    pub(super) bitrate: AtomicU64,
}

/// Asks the origin of a passthrough's units for a keyframe (a PLI to the publisher).
pub(super) type KeyframeRequest = Box<dyn Fn() + Send + Sync>;

/// Where an encoder's units come from.
pub(super) enum Source {
    /// Encoded here from a track.
    Track(Arc<Input>),
    /// Pushed in already encoded; keyframe requests go to the origin.
    Passthrough(KeyframeRequest),
}

/// What an encoder's thread (or a passthrough's feeder), its handles and its sinks share.
pub(super) struct Shared {
    pub(super) kind: MediaKind,
    pub(super) codec: CodecConfig,
    /// Set for a passthrough: where keyframe requests go instead of the encoder.
    passthrough: Option<KeyframeRequest>,
    /// The track an encoder encodes (replaceable); `None` for a passthrough.
    pub(super) input: Option<Arc<Input>>,
    pub(super) fanout: Fanout,
    keyframe: Mutex<KeyframeGate>,
    /// The configured bitrate is the votes' ceiling: the tier's ceiling, which is the next
    /// higher rung (the top rung for the top tier), since its viewers' estimates reach up to
    /// there before they move up; the floor is just under the tier's rung.
    bitrate: Mutex<BitrateVotes>,
    /// Index of the tier in its set's ladder (0 = highest).
    tier: usize,
    pub(super) counters: Counters,
}

impl Shared {
    /// The one constructor: an encoder of `input` (or, with `passthrough`, a passthrough)
    /// of `codec` for a `kind` track at `tier`, its target between `floor` and
    /// `codec.bitrate()`.
    pub(super) fn new(
        kind: MediaKind,
        codec: CodecConfig,
        source: Source,
        tier: usize,
        floor: u32,
    ) -> Arc<Self> {
        let bitrate = codec.bitrate();
        let (input, passthrough) = match source {
            Source::Track(input) => (Some(input), None),
            Source::Passthrough(request) => (None, Some(request)),
        };
        let shared = Shared {
            kind,
            codec,
            passthrough,
            input,
            fanout: Fanout::default(),
            keyframe: Mutex::new(KeyframeGate::default()),
            bitrate: Mutex::new(BitrateVotes::new(bitrate, floor)),
            tier,
            counters: Counters::default(),
        };
        shared
            .counters
            .bitrate
            .store(u64::from(bitrate), Ordering::Relaxed);
        Arc::new(shared)
    }

    /// The source is gone: every receiver sees the end (see [`Fanout::end`]).
    pub(super) fn end(&self) {
        self.fanout.end();
    }

    /// A keyframe is needed: `at_once` for a new sink, else a request
    /// (PLI/FIR, a sink that lost sync), merged and rate-limited. A passthrough passes
    /// either to its origin, which limits the rate itself.
    pub(super) fn keyframe_wanted(&self, at_once: bool) {
        match &self.passthrough {
            Some(request) => {
                if self.kind == MediaKind::Video {
                    request();
                }
            }
            None if at_once => {
                let sinks = self.fanout.live();
                lock(&self.keyframe).want_join(sinks);
            }
            None => lock(&self.keyframe).request(),
        }
    }

    /// Whether the frame encoded at `now` is forced to a keyframe.
    pub(super) fn keyframe_due(&self, now: Instant) -> bool {
        lock(&self.keyframe).take(now)
    }

    /// The bitrate to encode at now.
    pub(super) fn target_bitrate(&self) -> u32 {
        lock(&self.bitrate).target()
    }

    /// Counts `unit` and sends it to every sink; a sink that lost sync asks for a keyframe.
    pub(super) fn fan_out(&self, unit: EncodedUnit) {
        let c = &self.counters;
        c.frames_encoded.fetch_add(1, Ordering::Relaxed);
        c.bytes.fetch_add(unit.data.len() as u64, Ordering::Relaxed);
        let video = self.kind == MediaKind::Video;
        if unit.keyframe && video {
            c.keyframes.fetch_add(1, Ordering::Relaxed);
        }
        if self.fanout.send(&unit, video) {
            self.keyframe_wanted(false);
        }
    }
}

/// A track's encoder and its fan-out. Cloning gives another handle to the same encoder.
#[derive(Clone)]
pub struct EncodedTrack {
    pub(super) shared: Arc<Shared>,
}

impl EncodedTrack {
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
        let (rx, added) = self.shared.fanout.subscribe(capacity);
        if added {
            self.shared.keyframe_wanted(true);
        }
        rx
    }

    /// Like [`subscribe`](Self::subscribe), for async consumers (peer connections).
    pub fn subscribe_async(&self, capacity: usize) -> AsyncEncodedReceiver {
        let (rx, added) = self.shared.fanout.subscribe_async(capacity);
        if added {
            self.shared.keyframe_wanted(true);
        }
        rx
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
        lock(&self.shared.bitrate).set_ceiling(bitrate);
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
        lock(&self.shared.bitrate).vote(voter, estimate);
    }

    /// `replaceTrack` for this encoder alone: from its next frame on it encodes `track`
    /// (a live track of the same kind) instead, without its sinks noticing more than a
    /// keyframe: the codec restarts at the new track's size, and the new track's
    /// timestamps continue the old ones. Replace before stopping the old track (an
    /// encoder whose track ends unreplaced ends). A passthrough cannot be replaced.
    ///
    /// An encoder of a [`TrackEncoders`](super::TrackEncoders) shares its input with the
    /// set's other encoders: replace through the set
    /// ([`TrackEncoders::replace_track`](super::TrackEncoders::replace_track)) so they all
    /// follow.
    pub fn replace_track(&self, track: &MediaStreamTrack) -> Result<(), EncodeError> {
        match &self.shared.input {
            Some(input) => input.replace(track),
            None => Err(EncodeError::Mismatch(
                "a passthrough forwards what its publisher sends: its track cannot be replaced"
                    .into(),
            )),
        }
    }

    /// The track it encodes now (`None` for a passthrough).
    pub fn track(&self) -> Option<MediaStreamTrack> {
        self.shared.input.as_ref().map(|i| i.track())
    }

    /// Its tier in the set's ladder (0 = the highest).
    pub fn tier(&self) -> usize {
        self.shared.tier
    }

    /// Live sinks (viewers) now.
    pub(super) fn live_sinks(&self) -> usize {
        self.shared.fanout.live()
    }

    /// Whether two handles are the same encoder.
    pub fn same(&self, other: &EncodedTrack) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Live sinks (viewers) now: more than one, and a keyframe one of them asks for is
    /// paid by the others too.
    pub fn sink_count(&self) -> usize {
        self.live_sinks()
    }

    pub fn stats(&self) -> EncoderStats {
        let c = &self.shared.counters;
        let (floor, ceiling) = {
            let votes = lock(&self.shared.bitrate);
            (votes.floor(), votes.ceiling())
        };
        EncoderStats {
            frames_in: c.frames_in.load(Ordering::Relaxed),
            frames_encoded: c.frames_encoded.load(Ordering::Relaxed),
            keyframes: c.keyframes.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            keyframes_forced: c.keyframes_forced.load(Ordering::Relaxed),
            bitrate: c.bitrate.load(Ordering::Relaxed) as u32,
            sinks: self.live_sinks() as u64,
            passthrough: self.is_passthrough(),
            tier: self.shared.tier as u32,
            min_bitrate: floor,
            max_bitrate: ceiling,
        }
    }
}
