//! `MediaStreamTrack` and `MediaStream`: settings, capabilities, constraints,
//! applyConstraints, enabled and readyState.
//!
//! A track handle is cheap to clone (`Clone` gives another handle to the *same* track);
//! the spec's `clone()` — a new track on the same source — is [`MediaStreamTrack::clone_track`].

use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use crate::constraints::{
    select_settings, ConstraintsError, DeviceModel, MediaKind, MediaTrackCapabilities,
    MediaTrackConstraints, MediaTrackSettings,
};
use crate::error::MediaError;

/// `readyState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackState {
    Live,
    Ended,
}

#[derive(Debug)]
struct TrackInner {
    id: String,
    kind: MediaKind,
    label: String,
    /// The device as selection sees it: applyConstraints selects again over it alone.
    device: Arc<DeviceModel>,
    state: Mutex<Mutable>,
}

#[derive(Debug, Clone)]
struct Mutable {
    ready_state: TrackState,
    enabled: bool,
    settings: MediaTrackSettings,
    constraints: MediaTrackConstraints,
}

/// A track of one kind from one device.
#[derive(Debug, Clone)]
pub struct MediaStreamTrack {
    inner: Arc<TrackInner>,
}

impl MediaStreamTrack {
    pub(crate) fn new_local(
        kind: MediaKind,
        label: String,
        device: Arc<DeviceModel>,
        settings: MediaTrackSettings,
        constraints: MediaTrackConstraints,
    ) -> Self {
        MediaStreamTrack {
            inner: Arc::new(TrackInner {
                id: uuid::Uuid::new_v4().to_string(),
                kind,
                label,
                device,
                state: Mutex::new(Mutable {
                    ready_state: TrackState::Live,
                    enabled: true,
                    settings,
                    constraints,
                }),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, Mutable> {
        // A panic while holding the lock cannot leave `Mutable` half-written (every
        // update assigns whole fields), so a poisoned lock is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A unique id (a UUID).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// `"audio"` or `"video"`.
    pub fn kind(&self) -> MediaKind {
        self.inner.kind
    }

    /// The device's label.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    pub fn ready_state(&self) -> TrackState {
        self.state().ready_state
    }

    pub fn enabled(&self) -> bool {
        self.state().enabled
    }

    /// A disabled track keeps running but delivers black frames or silence.
    pub fn set_enabled(&self, enabled: bool) {
        self.state().enabled = enabled;
    }

    /// `muted`: whether the source is currently unable to provide media. Our sources
    /// never mute themselves.
    pub fn muted(&self) -> bool {
        false
    }

    /// `getSettings()`: what the track is running at now.
    pub fn get_settings(&self) -> MediaTrackSettings {
        self.state().settings.clone()
    }

    /// `getCapabilities()`: the ranges and values the track's device can produce.
    pub fn get_capabilities(&self) -> MediaTrackCapabilities {
        MediaTrackCapabilities::of_device(&self.inner.device)
    }

    /// `getConstraints()`: the constraints most recently applied successfully.
    pub fn get_constraints(&self) -> MediaTrackConstraints {
        self.state().constraints.clone()
    }

    /// `applyConstraints()`: all or nothing. Selection runs again over this track's device
    /// only, so a different deviceId or groupId cannot be met; on failure the old
    /// constraints and settings stay and the error is `OverconstrainedError`. On an
    /// ended track it does nothing and succeeds.
    pub fn apply_constraints(&self, constraints: MediaTrackConstraints) -> Result<(), MediaError> {
        let mut state = self.state();
        if state.ready_state == TrackState::Ended {
            return Ok(());
        }
        let selection = select_settings(self.inner.kind, &constraints, &[&self.inner.device])?;
        state.settings = selection.settings;
        state.constraints = constraints;
        Ok(())
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

    /// `stop()`: ends the track for good.
    pub fn stop(&self) {
        self.state().ready_state = TrackState::Ended;
    }

    /// The spec's `clone()`: a new track (new id) on the same device, with the same
    /// settings, constraints, enabled and readyState, that lives and ends on its own.
    pub fn clone_track(&self) -> MediaStreamTrack {
        let state = self.state().clone();
        MediaStreamTrack {
            inner: Arc::new(TrackInner {
                id: uuid::Uuid::new_v4().to_string(),
                kind: self.inner.kind,
                label: self.inner.label.clone(),
                device: Arc::clone(&self.inner.device),
                state: Mutex::new(state),
            }),
        }
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
