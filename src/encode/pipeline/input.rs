//! The input of encoders: the track they encode, which can be replaced while they run
//! (`replaceTrack`: the other camera after a second getUserMedia) — [`Input`], shared by
//! every encoder of a set, and [`InputFeed`], one encoder thread's end of it — and where a
//! replacement's timestamps land ([`InputTimeline`], pure).
//!
//! A replacement keeps the encoders' output one stream: every encoder moves to the new
//! track at its next frame, restarts its codec (the first unit of the new track is a
//! keyframe, at the new track's size), and shifts the new track's timestamps so that they
//! continue the old ones by the real time in between. The shift is one per replacement,
//! shared by the set's encoders, so tiers keep encoding the same timeline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::constraints::MediaKind;
use crate::encode::EncodeError;
use crate::media::{FrameReceiver, MediaFrame};
use crate::sync::lock;
use crate::track::{MediaStreamTrack, TrackState};

/// Offsets of this many recent replacements are kept (an encoder a frame or two behind
/// the others still finds its track's).
const KEPT_OFFSETS: usize = 4;

/// Where each input's timestamps land on the encoders' timeline. Pure: the caller passes
/// the time.
///
/// Generation 0 (the first track) is the timeline itself. A replacement starts a new
/// generation whose offset is fixed by its first frame: that frame lands at the last
/// timestamp encoded plus the real time since it was encoded (at least 1 µs later), so
/// the timeline keeps increasing and its gap is the real gap. Every later frame of the
/// generation keeps that offset.
#[derive(Debug, Clone, Default)]
pub(super) struct InputTimeline {
    generation: u64,
    /// Offsets (nanoseconds) of recent generations, oldest first.
    offsets: Vec<(u64, i128)>,
    /// The latest timestamp placed, when, and where its unit ends (timestamp + duration).
    last: Option<(Duration, Instant, Duration)>,
}

impl InputTimeline {
    pub(super) fn new() -> Self {
        InputTimeline {
            generation: 0,
            offsets: vec![(0, 0)],
            last: None,
        }
    }

    /// The current generation (the track in use).
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// A new track replaces the current one: its generation.
    pub(super) fn replace(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// The offset of `generation`, whose frame with timestamp `first` is being encoded at
    /// `now`; fixed by the first frame of the current generation asked about. `None` for
    /// a generation replaced before any of its frames was seen, or long gone.
    pub(super) fn offset(
        &mut self,
        generation: u64,
        first: Duration,
        now: Instant,
    ) -> Option<i128> {
        if let Some(&(_, o)) = self.offsets.iter().find(|(g, _)| *g == generation) {
            return Some(o);
        }
        if generation != self.generation {
            return None;
        }
        // Never before the end of the last unit: an Opus packet encoded 5 ms ago still
        // plays for 15 ms, and the new track's first packet must not overlap it.
        let target = match self.last {
            Some((last, at, end)) => (last + now.saturating_duration_since(at))
                .max(end)
                .max(last + Duration::from_micros(1)),
            None => first,
        };
        let offset = target.as_nanos() as i128 - first.as_nanos() as i128;
        self.offsets.push((generation, offset));
        if self.offsets.len() > KEPT_OFFSETS {
            self.offsets.remove(0);
        }
        Some(offset)
    }

    /// A unit placed on the timeline at `timestamp`, playing for `duration`, encoded at
    /// `now`.
    pub(super) fn placed(&mut self, timestamp: Duration, duration: Duration, now: Instant) {
        if self.last.is_none_or(|(last, _, _)| timestamp > last) {
            self.last = Some((timestamp, now, timestamp + duration));
        }
    }
}

/// `timestamp` moved by `offset` nanoseconds (never before zero).
pub(super) fn shift(timestamp: Duration, offset: i128) -> Duration {
    let nanos = (timestamp.as_nanos() as i128 + offset).max(0);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

struct InputState {
    track: MediaStreamTrack,
    timeline: InputTimeline,
}

/// The track a set of encoders encodes, replaceable while they run.
pub(super) struct Input {
    kind: MediaKind,
    state: Mutex<InputState>,
    /// The timeline's generation, readable without the lock (checked every frame).
    generation: AtomicU64,
}

impl Input {
    pub(super) fn new(track: &MediaStreamTrack) -> Arc<Self> {
        Arc::new(Input {
            kind: track.kind(),
            state: Mutex::new(InputState {
                track: track.clone(),
                timeline: InputTimeline::new(),
            }),
            generation: AtomicU64::new(0),
        })
    }

    /// The track encoded now.
    pub(super) fn track(&self) -> MediaStreamTrack {
        lock(&self.state).track.clone()
    }

    /// Encodes `track` instead from the next frame on. It must be a live track of the same
    /// kind. Replace before stopping the old track: an encoder whose track ends with no
    /// replacement ends too.
    pub(super) fn replace(&self, track: &MediaStreamTrack) -> Result<(), EncodeError> {
        check_replacement(self.kind, track)?;
        let mut state = lock(&self.state);
        state.track = track.clone();
        let generation = state.timeline.replace();
        self.generation.store(generation, Ordering::SeqCst);
        Ok(())
    }

    /// A subscription to the current track, with its generation.
    pub(super) fn subscribe(&self, capacity: usize) -> (u64, FrameReceiver, MediaStreamTrack) {
        let state = lock(&self.state);
        let generation = state.timeline.generation();
        (
            generation,
            state.track.subscribe(capacity),
            state.track.clone(),
        )
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn offset(&self, generation: u64, first: Duration, now: Instant) -> Option<i128> {
        lock(&self.state).timeline.offset(generation, first, now)
    }

    fn placed(&self, timestamp: Duration, duration: Duration, now: Instant) {
        lock(&self.state).timeline.placed(timestamp, duration, now);
    }
}

/// Whether `track` may replace the input of `kind`'s encoders.
pub(super) fn check_replacement(
    kind: MediaKind,
    track: &MediaStreamTrack,
) -> Result<(), EncodeError> {
    if track.kind() != kind {
        return Err(EncodeError::Mismatch(format!(
            "a {} track cannot replace a {kind} track",
            track.kind()
        )));
    }
    if track.ready_state() == TrackState::Ended {
        return Err(EncodeError::Mismatch(format!(
            "the replacement track {:?} has ended",
            track.label()
        )));
    }
    Ok(())
}

/// What an encoder thread gets from its feed.
pub(super) enum Fed {
    /// A frame of the track in use; `switched`: the first since a replacement (the codec
    /// restarts on it), with the new track's frame rate.
    Frame {
        frame: MediaFrame,
        switched: Option<f64>,
    },
    /// Nothing within the timeout.
    Idle,
    /// The track ended and nothing replaced it.
    Ended,
}

/// One encoder thread's end of an [`Input`]: the current track's frames, following
/// replacements.
pub(super) struct InputFeed {
    input: Arc<Input>,
    generation: u64,
    rx: FrameReceiver,
    /// The frame rate of a new track not yet seen a frame of.
    switched: Option<f64>,
    /// The current generation's offset, once known.
    offset: Option<i128>,
}

/// Raw frames an encoder may hold queued: a slow encoder drops input rather than queueing.
const INPUT_CAPACITY: usize = 2;

impl InputFeed {
    pub(super) fn new(input: Arc<Input>) -> Self {
        let (generation, rx, _) = input.subscribe(INPUT_CAPACITY);
        InputFeed {
            input,
            generation,
            rx,
            switched: None,
            offset: None,
        }
    }

    /// Moves to the input's current track if it was replaced.
    fn follow(&mut self) -> bool {
        if self.input.generation() == self.generation {
            return false;
        }
        let (generation, rx, track) = self.input.subscribe(INPUT_CAPACITY);
        self.generation = generation;
        self.rx = rx;
        self.offset = None;
        self.switched = Some(track.get_settings().frame_rate.unwrap_or(30.0));
        true
    }

    /// The next frame within `timeout`.
    pub(super) fn recv_timeout(&mut self, timeout: Duration) -> Fed {
        loop {
            self.follow();
            match self.rx.recv_timeout(timeout) {
                Ok(Some(frame)) => {
                    return Fed::Frame {
                        frame,
                        switched: self.switched.take(),
                    }
                }
                Ok(None) => return Fed::Idle,
                // The old track stopped just after its replacement: go on with the new one.
                Err(_) if self.follow() => continue,
                Err(_) => return Fed::Ended,
            }
        }
    }

    /// The offset of the current track's timestamps, fixed at its first frame
    /// (`frame_timestamp`, seen at `now`); every frame counts, encoded or not (no viewer),
    /// so every encoder of the input agrees. `None`: skip the frame (its track was
    /// replaced before any of its frames counted).
    pub(super) fn offset(&mut self, frame_timestamp: Duration, now: Instant) -> Option<i128> {
        if self.offset.is_none() {
            self.offset = self.input.offset(self.generation, frame_timestamp, now);
        }
        self.offset
    }

    /// A unit was placed at `timestamp` (already shifted), playing for `duration`, at
    /// `now`: the next replacement continues from it.
    pub(super) fn placed(&self, timestamp: Duration, duration: Duration, now: Instant) {
        self.input.placed(timestamp, duration, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_track_is_the_timeline() {
        let mut t = InputTimeline::new();
        let now = Instant::now();
        assert_eq!(t.offset(0, ms(5000), now), Some(0));
        t.placed(ms(5000), Duration::ZERO, now);
        assert_eq!(t.offset(0, ms(9000), now + ms(4000)), Some(0));
    }

    #[test]
    fn a_replacement_continues_the_timeline_by_the_real_gap() {
        let mut t = InputTimeline::new();
        let t0 = Instant::now();
        t.placed(ms(60_000), ms(33), t0);
        let g = t.replace();
        assert_eq!(g, 1);
        // The new camera's first frame (its own time zero plus 10 ms), 40 ms after the
        // old one's last unit: it lands 40 ms after that unit.
        let o = t.offset(1, ms(10), t0 + ms(40)).unwrap();
        assert_eq!(shift(ms(10), o), ms(60_040));
        // Its later frames keep the offset, whoever asks and when.
        assert_eq!(t.offset(1, ms(43), t0 + ms(500)), Some(o));
        assert_eq!(shift(ms(43), o), ms(60_073));
        // The old track's offset is still known (an encoder a frame behind).
        assert_eq!(t.offset(0, ms(60_033), t0 + ms(41)), Some(0));
    }

    #[test]
    fn a_replacement_never_overlaps_the_last_unit() {
        // An Opus packet of 20 ms placed at 280 ms; the new microphone's first packet comes
        // 0.5 ms later in real time: it lands where the old packet ends, not inside it.
        let mut t = InputTimeline::new();
        let t0 = Instant::now();
        t.placed(ms(280), ms(20), t0);
        t.replace();
        let o = t.offset(1, ms(0), t0 + Duration::from_micros(500)).unwrap();
        assert_eq!(shift(ms(0), o), ms(300));
    }

    #[test]
    fn a_replacement_never_steps_back_and_stale_generations_are_dropped() {
        let mut t = InputTimeline::new();
        let t0 = Instant::now();
        t.placed(ms(1000), Duration::ZERO, t0);
        t.replace();
        // No time passed (or the clock stood still): still later than the last unit.
        let o = t.offset(1, ms(5000), t0).unwrap();
        assert!(shift(ms(5000), o) > ms(1000));
        assert_eq!(shift(ms(5000), o), ms(1000) + Duration::from_micros(1));
        // Replaced twice before generation 2 showed a frame: its frames are dropped, the
        // newest generation continues from generation 1's last unit.
        t.placed(shift(ms(5033), o), Duration::ZERO, t0 + ms(33));
        t.replace();
        t.replace();
        assert_eq!(t.offset(2, ms(0), t0 + ms(40)), None);
        let o3 = t.offset(3, ms(200), t0 + ms(66)).unwrap();
        assert_eq!(shift(ms(200), o3), shift(ms(5033), o) + ms(33));
    }

    #[test]
    fn offsets_can_move_back_a_track_that_started_earlier() {
        let mut t = InputTimeline::new();
        let t0 = Instant::now();
        t.placed(ms(100), Duration::ZERO, t0);
        t.replace();
        // The new track has run for a minute already: its timestamps move back.
        let o = t.offset(1, ms(60_000), t0 + ms(30)).unwrap();
        assert!(o < 0);
        assert_eq!(shift(ms(60_000), o), ms(130));
        assert_eq!(shift(ms(1), o), Duration::ZERO, "never before zero");
    }

    #[test]
    fn a_feed_follows_a_replacement_even_after_the_old_track_stopped() {
        use crate::devices::{MediaDevices, PermissionPolicy};
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let open = |json: &str| {
            devices
                .get_user_media_json(json)
                .unwrap()
                .get_video_tracks()
                .remove(0)
        };
        let first = open(r#"{"video": {"width": 320, "height": 240}}"#);
        let input = Input::new(&first);
        let mut feed = InputFeed::new(Arc::clone(&input));
        let frame = |feed: &mut InputFeed| loop {
            match feed.recv_timeout(Duration::from_secs(2)) {
                Fed::Frame { frame, switched } => break (frame, switched),
                Fed::Idle => continue,
                Fed::Ended => panic!("the feed ended"),
            }
        };
        let (f, switched) = frame(&mut feed);
        assert!(switched.is_none());
        let MediaFrame::Video(v) = f else {
            panic!("video")
        };
        assert_eq!(v.width(), 320);
        let audio = devices
            .get_user_media_json(r#"{"audio": true}"#)
            .unwrap()
            .get_audio_tracks()
            .remove(0);
        assert!(input.replace(&audio).is_err(), "another kind");
        let second = open(r#"{"video": {"width": 640, "height": 480}}"#);
        input.replace(&second).unwrap();
        first.stop();
        let (f, switched) = frame(&mut feed);
        assert_eq!(switched, Some(30.0));
        let MediaFrame::Video(v) = f else {
            panic!("video")
        };
        assert_eq!(v.width(), 640, "the new track's frames");
        second.stop();
        assert!(matches!(
            feed.recv_timeout(Duration::from_secs(2)),
            Fed::Ended
        ));
        assert!(input.replace(&second).is_err(), "an ended track");
    }

    /// Units of `sink` for `window`, with their decoded size.
    fn decode_for(
        sink: &crate::encode::pipeline::EncodedReceiver,
        codec: crate::encode::VideoCodec,
        window: Duration,
    ) -> Vec<(crate::encode::EncodedUnit, Option<(u32, u32)>)> {
        use crate::encode::h264::H264Decoder;
        use crate::encode::vp8::Vp8Decoder;
        use crate::encode::VideoCodec;
        let mut h264 = H264Decoder::new().unwrap();
        let mut vp8 = Vp8Decoder::new().unwrap();
        let end = Instant::now() + window;
        let mut out = Vec::new();
        while Instant::now() < end {
            let Ok(Some(unit)) = sink.recv_timeout(Duration::from_millis(50)) else {
                continue;
            };
            let frame = match codec {
                VideoCodec::H264 => h264.decode(&unit.data).unwrap(),
                VideoCodec::Vp8 => vp8.decode(&unit.data).unwrap(),
            };
            out.push((unit, frame.map(|f| (f.width(), f.height()))));
        }
        out
    }

    #[test]
    fn a_set_moves_every_encoder_to_the_new_track_on_a_keyframe_at_its_size() {
        use crate::devices::{MediaDevices, PermissionPolicy};
        use crate::encode::pipeline::TrackEncoders;
        use crate::encode::VideoCodec;
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let open = |json: &str| {
            devices
                .get_user_media_json(json)
                .unwrap()
                .get_video_tracks()
                .remove(0)
        };
        let small = open(r#"{"video": {"width": 320, "height": 240}}"#);
        let set = TrackEncoders::new(&small, vec![600_000, 300_000], None);
        let h264 = set.encoder(Some(VideoCodec::H264)).unwrap().subscribe(64);
        let vp8 = set.encoder(Some(VideoCodec::Vp8)).unwrap().subscribe(64);
        std::thread::sleep(Duration::from_millis(300));
        let large = open(r#"{"video": {"width": 640, "height": 480}}"#);
        set.replace_track(&large).unwrap();
        small.stop();
        assert_eq!(set.track().unwrap().id(), large.id());
        for (sink, codec) in [(&h264, VideoCodec::H264), (&vp8, VideoCodec::Vp8)] {
            let units = decode_for(
                sink,
                codec,
                Duration::from_millis(if codec == VideoCodec::H264 { 900 } else { 300 }),
            );
            let sizes: Vec<_> = units.iter().filter_map(|(_, s)| *s).collect();
            assert_eq!(sizes.first(), Some(&(320, 240)), "{codec}: {sizes:?}");
            assert_eq!(sizes.last(), Some(&(640, 480)), "{codec}: {sizes:?}");
            let first_new = units
                .iter()
                .position(|(_, s)| *s == Some((640, 480)))
                .unwrap();
            assert!(
                units[first_new].0.keyframe,
                "{codec}: the new track starts on a keyframe"
            );
            assert!(
                sizes.windows(2).all(|w| w[0] == w[1] || w[1] == (640, 480)),
                "{codec}: one switch: {sizes:?}"
            );
            // One timeline: increasing, no step over 100 ms (the real gap), none backwards.
            for pair in units.windows(2) {
                let step = pair[1].0.timestamp.checked_sub(pair[0].0.timestamp);
                assert!(
                    step.is_some_and(|s| s > Duration::ZERO && s < Duration::from_millis(100)),
                    "{codec}: {:?} then {:?}",
                    pair[0].0.timestamp,
                    pair[1].0.timestamp
                );
            }
        }
        // An encoder started after the replacement encodes the new track.
        let late = set
            .tier_encoder(Some(VideoCodec::H264), 1)
            .unwrap()
            .subscribe(8);
        let units = decode_for(&late, VideoCodec::H264, Duration::from_millis(300));
        assert!(units.iter().all(|(_, s)| s.is_none_or(|s| s == (640, 480))));
        assert!(units.iter().any(|(_, s)| s.is_some()));
    }

    #[test]
    fn audio_follows_a_replaced_microphone_on_one_timeline() {
        use crate::devices::{MediaDevices, PermissionPolicy};
        use crate::encode::pipeline::TrackEncoders;
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let mic = |json: &str| {
            devices
                .get_user_media_json(json)
                .unwrap()
                .get_audio_tracks()
                .remove(0)
        };
        let mono = mic(r#"{"audio": {"channelCount": 1}}"#);
        let set = TrackEncoders::new(&mono, 0, None);
        let sink = set.encoder(None).unwrap().subscribe(256);
        let next = || {
            sink.recv_timeout(Duration::from_secs(2))
                .unwrap()
                .expect("Opus packets keep coming")
        };
        let mut units: Vec<_> = (0..15).map(|_| next()).collect();
        let stereo = mic(r#"{"audio": {"channelCount": 2}}"#);
        set.replace_track(&stereo).unwrap();
        mono.stop();
        units.extend((0..40).map(|_| next()));
        // The TOC byte's stereo flag: the new microphone's packets, and only after the old.
        let stereo_at = units.iter().position(|u| u.data[0] & 0x04 != 0).unwrap();
        assert!(stereo_at >= 15 && units[stereo_at..].iter().all(|u| u.data[0] & 0x04 != 0));
        for pair in units.windows(2) {
            let step = pair[1].timestamp.checked_sub(pair[0].timestamp);
            assert!(
                step.is_some_and(
                    |s| s >= Duration::from_millis(1) && s <= Duration::from_millis(80)
                ),
                "{:?} then {:?}",
                pair[0].timestamp,
                pair[1].timestamp
            );
        }
    }
}
