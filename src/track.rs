//! `MediaStreamTrack` and `MediaStream`: live tracks with settings, capabilities,
//! constraints, applyConstraints, enabled, muted, readyState, its events (mute, unmute,
//! ended), and a subscription API that hands frames to consumers (encoders, recorders)
//! over bounded channels.
//!
//! A track handle is cheap to clone (`Clone` gives another handle to the *same* track);
//! the spec's `clone()` — a new track on the same source — is [`MediaStreamTrack::clone_track`].
//! A track stays live while any handle or subscription to it exists; when the last track
//! on a source is stopped or dropped, the source closes and the device is released.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::constraints::{
    select_settings, AudioMode, ConstraintsError, DeviceModel, DeviceModes, Flag, MediaKind,
    MediaTrackCapabilities, MediaTrackConstraints, MediaTrackSettings, VideoMode,
};
use crate::error::MediaError;
use crate::media::{
    frame_interval, not_readable, open_readable, FrameReceiver, Source, SourceError, SourceOpener,
    TrackEnded, TrackEventReceiver, TrackOutput, UsageRegistry, Worker, DEVICE_CLOSE_LIMIT,
};
use crate::sync::lock;

/// `readyState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackState {
    Live,
    Ended,
}

struct TrackInner {
    id: String,
    kind: MediaKind,
    origin: Origin,
    registry: Arc<UsageRegistry>,
    output: Arc<TrackOutput>,
    worker: Mutex<Arc<Worker>>,
    state: Mutex<Mutable>,
}

/// Where a track's media comes from.
#[derive(Clone)]
enum Origin {
    /// A local device, opened (and reopened when its settings change) through the opener
    /// the device layer handed over.
    Device(Arc<dyn SourceOpener>),
    /// Media received from a peer: nothing to reopen or reconfigure, and no facingMode
    /// (RTP does not carry it).
    Remote {
        /// The sender's track id.
        id: String,
        label: String,
        /// Settings measured from what arrives (the decoder updates them).
        live: Arc<Mutex<MediaTrackSettings>>,
    },
}

impl Origin {
    /// The device's id, or the sender's track id.
    fn device_id(&self) -> &str {
        match self {
            Origin::Device(opener) => &opener.model().device_id,
            Origin::Remote { id, .. } => id,
        }
    }
}

#[derive(Debug, Clone)]
struct Mutable {
    settings: MediaTrackSettings,
    constraints: MediaTrackConstraints,
}

/// A track of one kind from one device.
#[derive(Clone)]
pub struct MediaStreamTrack {
    inner: Arc<TrackInner>,
}

impl std::fmt::Debug for MediaStreamTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaStreamTrack")
            .field("id", &self.inner.id)
            .field("kind", &self.inner.kind)
            .field("device", &self.inner.origin.device_id())
            .field("ready_state", &self.ready_state())
            .finish()
    }
}

impl MediaStreamTrack {
    /// Starts a live track on `source`, opened by `opener` at `settings`; the track
    /// reopens its device through `opener` when new settings need another source.
    pub(crate) fn start(
        opener: Arc<dyn SourceOpener>,
        settings: MediaTrackSettings,
        constraints: MediaTrackConstraints,
        source: Box<dyn Source>,
        registry: Arc<UsageRegistry>,
    ) -> Result<Self, MediaError> {
        let model = opener.model();
        let kind = model.kind();
        let output = TrackOutput::new(true);
        let lease = registry.lease(&model.device_id);
        let worker =
            Worker::spawn(source, kind, &model.device_id, lease, &output).map_err(|e| {
                MediaError::AbortError {
                    message: e.to_string(),
                }
            })?;
        Ok(MediaStreamTrack {
            inner: Arc::new(TrackInner {
                id: uuid::Uuid::new_v4().to_string(),
                kind,
                origin: Origin::Device(opener),
                registry,
                output,
                worker: Mutex::new(worker),
                state: Mutex::new(Mutable {
                    settings,
                    constraints,
                }),
            }),
        })
    }

    /// A remote track (received from a peer) on `source`, whose settings are the shared,
    /// measured `live` ones: it has no device to reopen, and no facing mode.
    pub(crate) fn start_remote(
        kind: MediaKind,
        id: &str,
        live: Arc<Mutex<MediaTrackSettings>>,
        source: Box<dyn Source>,
    ) -> Result<Self, MediaError> {
        let registry: Arc<UsageRegistry> = Arc::default();
        let output = TrackOutput::new(true);
        let lease = registry.lease(id);
        let worker = Worker::spawn(source, kind, id, lease, &output).map_err(|e| {
            MediaError::AbortError {
                message: e.to_string(),
            }
        })?;
        Ok(MediaStreamTrack {
            inner: Arc::new(TrackInner {
                id: id.to_owned(),
                kind,
                origin: Origin::Remote {
                    id: id.to_owned(),
                    label: format!("remote {kind}"),
                    live,
                },
                registry,
                output,
                worker: Mutex::new(worker),
                state: Mutex::new(Mutable {
                    settings: MediaTrackSettings::default(),
                    constraints: MediaTrackConstraints::default(),
                }),
            }),
        })
    }

    /// Whether the track was received from a peer.
    pub fn is_remote(&self) -> bool {
        matches!(self.inner.origin, Origin::Remote { .. })
    }

    /// A unique id (a UUID; for a remote track, the sender's track id).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// `"audio"` or `"video"`.
    pub fn kind(&self) -> MediaKind {
        self.inner.kind
    }

    /// The device's label (`"remote audio"` / `"remote video"` for a remote track).
    pub fn label(&self) -> &str {
        match &self.inner.origin {
            Origin::Device(opener) => opener.label(),
            Origin::Remote { label, .. } => label,
        }
    }

    /// `readyState`: `Ended` after `stop()` or when the source is gone (device unplugged).
    pub fn ready_state(&self) -> TrackState {
        if self.inner.output.is_ended() {
            TrackState::Ended
        } else {
            TrackState::Live
        }
    }

    /// Blocks until the track ends, or `timeout` passes (`None`). For code that holds a
    /// track without subscribing to it (a status page, a supervisor): the `ended` event.
    /// The reason is `"stopped"` after [`stop`](Self::stop), or why the source went away
    /// (`"source ended: ..."`: device unplugged, file gone, no data from the device).
    pub fn wait_ended(&self, timeout: Duration) -> Option<TrackEnded> {
        self.inner.output.wait_ended(timeout)
    }

    /// Resolves when the track ends, with the reason (see [`wait_ended`](Self::wait_ended));
    /// at once if it already has. The async form of the `ended` event.
    pub async fn ended(&self) -> TrackEnded {
        let mut watch = self.inner.output.ended_watch();
        let ended = watch.wait_for(|e| e.is_some()).await;
        match ended {
            Ok(e) => e.clone().unwrap_or_else(|| TrackEnded {
                reason: "ended".into(),
            }),
            // The output (held by this track) owns the sender: it cannot close first.
            Err(_) => TrackEnded {
                reason: "ended".into(),
            },
        }
    }

    pub fn enabled(&self) -> bool {
        self.inner.output.enabled()
    }

    /// A disabled track keeps delivering at the same pace, but black frames or silence.
    pub fn set_enabled(&self, enabled: bool) {
        self.inner.output.set_enabled(enabled);
    }

    /// `muted`: whether the source is currently unable to provide media (a devices-file
    /// `mute` event; real devices and remote tracks never mute). A muted track keeps
    /// delivering at the same pace, black frames or silence, as a disabled one does.
    pub fn muted(&self) -> bool {
        self.inner.output.muted()
    }

    /// The track's events — [`Mute`](crate::media::TrackEvent::Mute),
    /// [`Unmute`](crate::media::TrackEvent::Unmute) and, last,
    /// [`Ended`](crate::media::TrackEvent::Ended) with the reason — from now on, in order, over a bounded
    /// channel (on an ended track: its `Ended` at once). The `onmute`, `onunmute` and
    /// `onended` of a page.
    pub fn events(&self) -> TrackEventReceiver {
        self.inner.output.listen()
    }

    /// Receive this track's frames over a bounded channel of `capacity` frames. A consumer
    /// that falls behind loses frames (see [`FrameReceiver::dropped`]); it never slows the
    /// source or other consumers. The channel closes when the track ends.
    pub fn subscribe(&self, capacity: usize) -> FrameReceiver {
        self.inner.output.subscribe(capacity)
    }

    /// Frames delivered to this track's subscribers so far.
    pub fn frames_delivered(&self) -> u64 {
        self.inner.output.delivered()
    }

    /// `getSettings()`: what the track is running at now. A remote track reports what
    /// arrives (size, measured frame rate, or the audio format) and its deviceId — never
    /// `facingMode`, which RTP does not carry.
    pub fn get_settings(&self) -> MediaTrackSettings {
        match &self.inner.origin {
            Origin::Remote { live, .. } => lock(live).clone(),
            Origin::Device(_) => lock(&self.inner.state).settings.clone(),
        }
    }

    /// `getCapabilities()`: the ranges and values the track's device can produce (for a
    /// remote track: what arrives, without `facingMode`).
    pub fn get_capabilities(&self) -> MediaTrackCapabilities {
        match &self.inner.origin {
            Origin::Remote { live, .. } => {
                let model = remote_model(self.inner.kind, &self.inner.id, &lock(live));
                let mut caps = MediaTrackCapabilities::of_device(&model);
                caps.facing_mode = None;
                caps.group_id = None;
                caps
            }
            Origin::Device(opener) => MediaTrackCapabilities::of_device(opener.model()),
        }
    }

    /// `getConstraints()`: the constraints most recently applied successfully.
    pub fn get_constraints(&self) -> MediaTrackConstraints {
        lock(&self.inner.state).constraints.clone()
    }

    /// `applyConstraints()`: all or nothing. Selection runs again over this track's device
    /// only, so a different deviceId or groupId cannot be met (`OverconstrainedError`);
    /// a source that cannot switch gives `NotReadableError`. On failure the old
    /// constraints and settings stay. The switch happens between two frames and
    /// subscriptions carry on. On an ended track it does nothing and succeeds.
    pub fn apply_constraints(&self, constraints: MediaTrackConstraints) -> Result<(), MediaError> {
        let inner = &self.inner;
        let mut state = lock(&inner.state);
        if inner.output.is_ended() {
            return Ok(());
        }
        let opener = match &inner.origin {
            Origin::Remote { live, .. } => {
                // A remote track cannot change what the peer sends: the constraints are
                // checked against what arrives (one requiring facingMode can never be
                // met), and kept.
                let model = remote_model(inner.kind, &inner.id, &lock(live));
                select_settings(inner.kind, &constraints, &[&model])?;
                state.constraints = constraints;
                return Ok(());
            }
            Origin::Device(opener) => opener.as_ref(),
        };
        let model = opener.model();
        let selection = select_settings(inner.kind, &constraints, &[model])?;
        let settings = selection.settings;
        let mut worker = lock(&inner.worker);
        // The switch happens between two frames of the current mode, and the reply comes
        // before a frame of the new one: the slower of the two rates bounds the wait (a
        // 0.5 fps mode is between frames for up to 2 s).
        let slower_rate = [settings.frame_rate, state.settings.frame_rate]
            .into_iter()
            .flatten()
            .reduce(f64::min)
            .unwrap_or(100.0);
        let timeout = frame_interval(slower_rate) * 2 + Duration::from_secs(1);
        let reconfigured = if worker.attached() <= 1 {
            match worker.reconfigure(&settings, timeout) {
                Ok(()) => true,
                Err(SourceError::Unsupported(reason)) => {
                    tracing::debug!("reopening the source: {reason}");
                    false
                }
                Err(e) => return Err(not_readable(model, &e)),
            }
        } else {
            // Shared with clones: this track moves to a source of its own.
            false
        };
        if !reconfigured {
            let exclusive = worker.attached() <= 1;
            if exclusive {
                // A real device must be closed before it can be opened in another mode:
                // the worker finishes its current frame, then its source closes the device
                // (hardware sources wait for that, up to DEVICE_CLOSE_LIMIT).
                worker.detach(&inner.output);
                if !worker.wait_finished(timeout + DEVICE_CLOSE_LIMIT) {
                    tracing::warn!(
                        "{} {:?}: the old source has not closed yet; reopening anyway",
                        inner.kind.device_kind(),
                        model.device_id
                    );
                }
            }
            match open_readable(opener, &settings) {
                Ok(source) => {
                    let lease = inner.registry.lease(&model.device_id);
                    let new =
                        Worker::spawn(source, inner.kind, &model.device_id, lease, &inner.output)
                            .map_err(|e| not_readable(model, &e))?;
                    worker.detach(&inner.output);
                    *worker = new;
                }
                Err(e) => {
                    if exclusive {
                        // Put the old mode back so the track keeps running as it was.
                        self.restore(opener, &mut worker, &state.settings);
                    }
                    return Err(e);
                }
            }
        }
        state.settings = settings;
        state.constraints = constraints;
        Ok(())
    }

    fn restore(
        &self,
        opener: &dyn SourceOpener,
        worker: &mut Arc<Worker>,
        settings: &MediaTrackSettings,
    ) {
        let inner = &self.inner;
        let device_id = &opener.model().device_id;
        let restarted = opener.open(settings).ok().and_then(|source| {
            let lease = inner.registry.lease(device_id);
            Worker::spawn(source, inner.kind, device_id, lease, &inner.output).ok()
        });
        match restarted {
            Some(w) => *worker = w,
            None => inner.output.end("the device could not be reopened"),
        }
    }

    /// `applyConstraints()` from the JSON of a `MediaTrackConstraints` object.
    pub fn apply_constraints_json(&self, json: &str) -> Result<(), MediaError> {
        let (constraints, warnings) = MediaTrackConstraints::from_json_str(json, self.kind())
            .map_err(|e| match e {
                ConstraintsError::Type(t) => t,
                other => MediaError::type_error(other.to_string()),
            })?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        self.apply_constraints(constraints)
    }

    /// `stop()`: ends the track for good; the source closes when no track uses it.
    pub fn stop(&self) {
        self.inner.output.end("stopped");
    }

    /// The spec's `clone()`: a new track (new id) on the same source, with the same
    /// settings, constraints and enabled state, that lives and ends on its own.
    pub fn clone_track(&self) -> MediaStreamTrack {
        let inner = &self.inner;
        let state = lock(&inner.state).clone();
        let output = TrackOutput::new(inner.output.enabled());
        let worker = Arc::clone(&lock(&inner.worker));
        if inner.output.is_ended() {
            output.end("cloned from an ended track");
        } else {
            worker.attach(&output);
        }
        MediaStreamTrack {
            inner: Arc::new(TrackInner {
                id: uuid::Uuid::new_v4().to_string(),
                kind: inner.kind,
                origin: inner.origin.clone(),
                registry: Arc::clone(&inner.registry),
                output,
                worker: Mutex::new(worker),
                state: Mutex::new(state),
            }),
        }
    }
}

/// The device model of a remote track: what arrives now, no facing mode, no group.
fn remote_model(kind: MediaKind, id: &str, s: &MediaTrackSettings) -> DeviceModel {
    let modes = match kind {
        MediaKind::Video => DeviceModes::Video(vec![VideoMode {
            width: s.width.unwrap_or(0),
            height: s.height.unwrap_or(0),
            frame_rate: s.frame_rate.unwrap_or(0.0),
        }]),
        MediaKind::Audio => DeviceModes::Audio {
            modes: vec![AudioMode {
                sample_rate: s.sample_rate.unwrap_or(48_000),
                channel_count: s.channel_count.unwrap_or(1),
                sample_size: s.sample_size.unwrap_or(16),
                latency: 0.0,
            }],
            echo_cancellation: vec![Flag::Off],
            auto_gain_control: vec![false],
            noise_suppression: vec![false],
        },
    };
    DeviceModel {
        device_id: id.to_owned(),
        group_id: String::new(),
        facing_mode: None,
        modes,
    }
}

/// A `MediaStream`: an id and an ordered set of tracks.
#[derive(Debug, Clone)]
pub struct MediaStream {
    id: String,
    tracks: Vec<MediaStreamTrack>,
}

impl MediaStream {
    pub(crate) fn new(tracks: Vec<MediaStreamTrack>) -> Self {
        MediaStream {
            id: uuid::Uuid::new_v4().to_string(),
            tracks,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `getTracks()`.
    pub fn get_tracks(&self) -> &[MediaStreamTrack] {
        &self.tracks
    }

    /// `getAudioTracks()`.
    pub fn get_audio_tracks(&self) -> Vec<MediaStreamTrack> {
        self.of_kind(MediaKind::Audio)
    }

    /// `getVideoTracks()`.
    pub fn get_video_tracks(&self) -> Vec<MediaStreamTrack> {
        self.of_kind(MediaKind::Video)
    }

    /// `getTrackById()`.
    pub fn get_track_by_id(&self, id: &str) -> Option<&MediaStreamTrack> {
        self.tracks.iter().find(|t| t.id() == id)
    }

    fn of_kind(&self, kind: MediaKind) -> Vec<MediaStreamTrack> {
        self.tracks
            .iter()
            .filter(|t| t.kind() == kind)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    //! The track against a fake opener and a fake remote source: no device layer involved.

    use super::*;
    use crate::frame::VideoFrame;
    use crate::media::MediaFrame;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Black frames at the settings it was opened with; it cannot switch in place.
    struct Black(u32, u32, Duration);

    impl Source for Black {
        fn next_frame(&mut self) -> Result<MediaFrame, SourceError> {
            std::thread::sleep(Duration::from_millis(5));
            self.2 += Duration::from_millis(5);
            let frame = VideoFrame::black(self.0, self.1).with_times(self.2, 0);
            Ok(MediaFrame::Video(Arc::new(frame)))
        }

        fn reconfigure(&mut self, _: &MediaTrackSettings) -> Result<(), SourceError> {
            Err(SourceError::Unsupported("fixed".into()))
        }
    }

    #[derive(Debug)]
    struct FakeOpener {
        model: DeviceModel,
        opens: AtomicUsize,
    }

    impl SourceOpener for FakeOpener {
        fn model(&self) -> &DeviceModel {
            &self.model
        }

        fn label(&self) -> &str {
            "fake camera"
        }

        fn open(&self, s: &MediaTrackSettings) -> Result<Box<dyn Source>, SourceError> {
            self.opens.fetch_add(1, Ordering::SeqCst);
            let (w, h) = (s.width.unwrap_or(0), s.height.unwrap_or(0));
            Ok(Box::new(Black(w, h, Duration::ZERO)))
        }
    }

    fn video_constraints(json: &str) -> MediaTrackConstraints {
        MediaTrackConstraints::from_json_str(json, MediaKind::Video)
            .unwrap()
            .0
    }

    fn next_size(rx: &FrameReceiver) -> (u32, u32) {
        loop {
            if let MediaFrame::Video(f) = rx.recv().unwrap() {
                return (f.width(), f.height());
            }
        }
    }

    #[test]
    fn a_device_track_reopens_through_its_opener() {
        let opener = Arc::new(FakeOpener {
            model: DeviceModel {
                device_id: "fake".into(),
                group_id: "g".into(),
                facing_mode: None,
                modes: DeviceModes::Video(vec![VideoMode {
                    width: 640,
                    height: 480,
                    frame_rate: 30.0,
                }]),
            },
            opens: AtomicUsize::new(0),
        });
        let constraints = video_constraints(r#"{"width": 640}"#);
        let settings = select_settings(MediaKind::Video, &constraints, &[&opener.model])
            .unwrap()
            .settings;
        let source = opener.open(&settings).unwrap();
        let registry: Arc<UsageRegistry> = Arc::default();
        let track = MediaStreamTrack::start(
            Arc::clone(&opener) as Arc<dyn SourceOpener>,
            settings,
            constraints,
            source,
            Arc::clone(&registry),
        )
        .unwrap();
        assert_eq!(track.label(), "fake camera");
        assert!(!track.is_remote());
        assert_eq!(registry.snapshot().get("fake"), Some(&1));
        let rx = track.subscribe(4);
        assert_eq!(next_size(&rx), (640, 480));
        // The source cannot switch in place: the track reopens its device at 320x240.
        track
            .apply_constraints(video_constraints(
                r#"{"width": {"exact": 320}, "height": {"exact": 240}}"#,
            ))
            .unwrap();
        assert_eq!(opener.opens.load(Ordering::SeqCst), 2);
        // Frames queued before the switch drain first.
        let mut size = (0, 0);
        for _ in 0..10 {
            size = next_size(&rx);
        }
        assert_eq!(size, (320, 240));
        track.stop();
    }

    #[test]
    fn a_remote_track_measures_what_arrives_and_has_no_device() {
        let live = Arc::new(Mutex::new(MediaTrackSettings {
            width: Some(320),
            height: Some(240),
            frame_rate: Some(30.0),
            ..Default::default()
        }));
        let source = Box::new(Black(320, 240, Duration::ZERO));
        let track =
            MediaStreamTrack::start_remote(MediaKind::Video, "peer-track", live, source).unwrap();
        assert!(track.is_remote());
        assert_eq!(track.id(), "peer-track");
        assert_eq!(track.label(), "remote video");
        let caps = track.get_capabilities();
        assert_eq!(caps.facing_mode, None);
        assert_eq!(track.get_settings().width, Some(320));
        // What arrives can be checked against, never changed; facingMode is never met.
        assert!(track
            .apply_constraints(video_constraints(r#"{"width": {"max": 640}}"#))
            .is_ok());
        let err = track
            .apply_constraints(video_constraints(r#"{"facingMode": {"exact": "user"}}"#))
            .unwrap_err();
        assert_eq!(err.name(), "OverconstrainedError");
        track.stop();
    }
}
