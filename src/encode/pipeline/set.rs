//! The encoders of one track ([`TrackEncoders`]): one per (codec, bitrate tier) that has
//! viewers, started by the first viewer and stopped by a reaper thread once idle.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::encoded::{CodecConfig, EncodedTrack};
use super::fanout::AsyncEncodedReceiver;
use super::input::{check_replacement, Input};
use super::ladder::{BitrateLadder, TierPolicy};
use super::splice::SpliceConfig;
use super::tiered::TieredReceiver;
use crate::constraints::MediaKind;
use crate::encode::{EncodeError, VideoCodec};
use crate::sync::lock;
use crate::track::MediaStreamTrack;

/// Opus bitrate of the encoders a [`TrackEncoders`] starts for audio tracks.
pub const AUDIO_BITRATE: u32 = 64_000;

/// An idle tier encoder (no viewer) is stopped after this long; a viewer that returns in
/// between (a peer flapping across a tier boundary) finds it still warm.
pub const IDLE_GRACE: Duration = Duration::from_secs(5);

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
    /// The track encoders are started on, replaceable (`None`: a fixed set).
    input: Option<Arc<Input>>,
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
            input: Some(Input::new(track)),
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
            input: set.inner.input.clone(),
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
        let single = self.inner.input.is_none()
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
        TieredReceiver::start(
            self.clone(),
            codec,
            capacity,
            self.rungs(codec),
            estimate,
            SpliceConfig::default(),
        )
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
        let Some(input) = &inner.input else {
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
        let encoder = EncodedTrack::start_tier(input, codec, tier, floor)?;
        let track = input.track();
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

    /// `replaceTrack` for every viewer of the set: from the next frame on, every encoder
    /// of the set (and every one started later) encodes `track` instead — for instance
    /// the other camera, after a second getUserMedia with the other `facingMode`. No
    /// viewer renegotiates or sees its track end: each keeps its codec, tier, SSRC and
    /// sequence numbers; the next unit is a keyframe at the new track's size, and the
    /// timestamps continue by the real time in between. The ladder stays the one the set
    /// was made with.
    ///
    /// `track` must be a live track of the set's kind. Replace first, then stop the old
    /// track (an encoder whose track ends unreplaced ends, and its viewers with it). A
    /// set forwarding an ingested stream (a passthrough) cannot be replaced.
    pub fn replace_track(&self, track: &MediaStreamTrack) -> Result<(), EncodeError> {
        check_replacement(self.inner.kind, track)?;
        let running = lock(&self.inner.running);
        if running.iter().any(|r| r.encoder.is_passthrough()) {
            return Err(EncodeError::Mismatch(
                "this track forwards an ingested stream as its publisher sends it: it cannot \
                 be replaced"
                    .into(),
            ));
        }
        // The set's input, and those of encoders given to it (a fixed set's).
        let mut inputs: Vec<Arc<Input>> = self.inner.input.iter().cloned().collect();
        for r in running.iter() {
            if let Some(input) = &r.encoder.shared.input {
                if !inputs.iter().any(|i| Arc::ptr_eq(i, input)) {
                    inputs.push(Arc::clone(input));
                }
            }
        }
        for input in &inputs {
            input.replace(track)?;
        }
        tracing::info!(
            "replaced the {} track of {} encoder input(s) with {:?}",
            self.inner.kind,
            inputs.len(),
            track.label()
        );
        Ok(())
    }

    /// The track the set encodes now (`None` for a fixed set with no encoder of a track).
    pub fn track(&self) -> Option<MediaStreamTrack> {
        match &self.inner.input {
            Some(input) => Some(input.track()),
            None => lock(&self.inner.running)
                .iter()
                .find_map(|r| r.encoder.track()),
        }
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
        self.reap_idle_at(Instant::now());
    }

    /// [`reap_idle`](Self::reap_idle) as if it were `now`.
    pub(crate) fn reap_idle_at(&self, now: Instant) {
        self.inner.reap(now);
    }

    /// A set of `encoders` already running (one per tier, no track to start more from)
    /// spread over `rungs`: tiers fed by hand, for tests.
    #[cfg(test)]
    pub(super) fn fixed_tiers(
        encoders: &[EncodedTrack],
        rungs: Vec<u32>,
        policy: TierPolicy,
    ) -> Self {
        let first = &encoders[0];
        TrackEncoders {
            inner: Arc::new(SetInner {
                kind: first.kind(),
                input: None,
                rungs,
                policy,
                allowed: first.codec().video_codec().into_iter().collect(),
                running: Mutex::new(
                    encoders
                        .iter()
                        .map(|e| Running {
                            encoder: e.clone(),
                            reapable: true,
                            idle_since: None,
                        })
                        .collect(),
                ),
            }),
        }
    }
}

impl From<EncodedTrack> for TrackEncoders {
    /// A fixed set: exactly this encoder.
    fn from(encoded: EncodedTrack) -> Self {
        TrackEncoders {
            inner: Arc::new(SetInner {
                kind: encoded.kind(),
                input: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{MediaDevices, PermissionPolicy};
    use crate::encode::pipeline::testing::{camera, three_tier_camera};

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
        set.reap_idle_at(Instant::now() + IDLE_GRACE + Duration::from_secs(1));
        let running = set.running();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].tier(), 0);
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
}
