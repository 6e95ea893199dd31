//! Flipping a published stream's camera (`POST /streams/{name}/flip`, [`Publisher::flip`]):
//! which camera is next (pure, [`next_camera`]), and the switch — the other camera opened,
//! the stream's encoders moved to it so every viewer follows without renegotiation, the
//! old camera released.
//!
//! The rule: a flip goes to the first camera after the current one in device order
//! (wrapping) that faces the opposite way (`user` ↔ `environment`, `left` ↔ `right`);
//! failing that, to the first that faces any other way. Cameras without a `facingMode`
//! are never flipped to, so a machine with one camera, or cameras that do not say where
//! they face, cannot flip. With two front and two back cameras, a flip from the first
//! front one goes to the first back one after it, and back to the first front one after
//! that.

use std::sync::Arc;

use serde::Serialize;

use super::publisher::Publisher;
use super::stream::Published;
use super::track_end::watch_track;
use crate::constraints::{
    Constraint, ConstraintSet, FacingMode, MediaKind, MediaStreamConstraints,
    MediaTrackConstraints, Property, StringConstraint,
};
use crate::devices::MediaDevices;
use crate::encode::EncodeError;
use crate::error::MediaError;
use crate::sync::lock;
use crate::track::MediaStreamTrack;

/// The camera a stream sends, as `/status` (`device`) and a flip's answer show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamCamera {
    pub device_id: String,
    pub label: String,
    /// Where it faces, if it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facing_mode: Option<FacingMode>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl StreamCamera {
    /// The camera of a local video track (`None` for a remote one: an ingested stream's).
    pub(super) fn of(track: &MediaStreamTrack) -> Option<Self> {
        if track.is_remote() || track.kind() != MediaKind::Video {
            return None;
        }
        let settings = track.get_settings();
        Some(StreamCamera {
            device_id: settings.device_id.unwrap_or_default(),
            label: track.label().to_owned(),
            facing_mode: settings.facing_mode,
            width: settings.width,
            height: settings.height,
        })
    }
}

/// Why a stream did not flip.
#[derive(Debug, thiserror::Error)]
pub enum FlipError {
    #[error("unknown stream {0:?}")]
    UnknownStream(String),
    /// The stream has no camera to flip to (one camera, none facing another way, an
    /// ingested stream, no video); the message says why.
    #[error("stream {stream:?} cannot flip: {reason}")]
    CannotFlip { stream: String, reason: String },
    /// The other camera would not open.
    #[error("stream {stream:?}: cannot open camera {device:?}: {source}")]
    Open {
        stream: String,
        device: String,
        #[source]
        source: MediaError,
    },
    /// The encoders would not take the new camera.
    #[error("stream {stream:?}: cannot switch the encoders: {source}")]
    Encode {
        stream: String,
        #[source]
        source: Box<EncodeError>,
    },
}

/// The facing mode opposite `facing`.
fn opposite(facing: FacingMode) -> FacingMode {
    match facing {
        FacingMode::User => FacingMode::Environment,
        FacingMode::Environment => FacingMode::User,
        FacingMode::Left => FacingMode::Right,
        FacingMode::Right => FacingMode::Left,
    }
}

/// The index of the camera to flip to from `current` among `cameras` (id, facing mode;
/// in device order), by the module's rule; `None` when none faces another way, or when
/// `current` is not among them (a camera the server was not given cannot be flipped from).
pub fn next_camera(cameras: &[(&str, Option<FacingMode>)], current: &str) -> Option<usize> {
    let n = cameras.len();
    let here = cameras.iter().position(|(id, _)| *id == current)?;
    let facing = cameras[here].1;
    let after = (1..n).map(|k| (here + k) % n);
    let candidates: Vec<usize> = after
        .filter(|&i| cameras[i].1.is_some_and(|f| Some(f) != facing))
        .collect();
    let wanted = facing.map(opposite);
    candidates
        .iter()
        .copied()
        .find(|&i| wanted.is_some() && cameras[i].1 == wanted)
        .or_else(|| candidates.first().copied())
}

/// The cameras of `devices` (id, facing mode), in device order.
fn cameras(devices: &MediaDevices) -> Vec<(&str, Option<FacingMode>)> {
    devices
        .devices()
        .iter()
        .filter(|d| d.kind() == MediaKind::Video)
        .map(|d| (d.device_id(), d.model.facing_mode))
        .collect()
}

/// The camera `track` would flip to among `devices`, if any.
fn target(track: &MediaStreamTrack, devices: &MediaDevices) -> Option<String> {
    let current = track.get_settings().device_id?;
    let cameras = cameras(devices);
    next_camera(&cameras, &current).map(|i| cameras[i].0.to_owned())
}

/// Whether `published` can flip with `devices`.
pub(super) fn can_flip(published: &Published, devices: Option<&MediaDevices>) -> bool {
    let Some(devices) = devices else {
        return false;
    };
    published.ingest.is_none()
        && published
            .tracks()
            .iter()
            .find(|t| t.kind() == MediaKind::Video && !t.is_remote())
            .is_some_and(|t| target(t, devices).is_some())
}

/// `set` without the constraints that pick a device (deviceId, groupId, facingMode).
fn without_device(set: &ConstraintSet) -> ConstraintSet {
    let mut kept = ConstraintSet::new();
    for (property, constraint) in set.iter() {
        if !matches!(
            property,
            Property::DeviceId | Property::GroupId | Property::FacingMode
        ) {
            kept.insert(property, constraint.clone());
        }
    }
    kept
}

/// The constraints that open camera `device`: `old`'s other constraints with
/// `carry_over`, and the deviceId required.
fn constraints_for(
    old: &MediaTrackConstraints,
    device: &str,
    carry_over: bool,
) -> MediaStreamConstraints {
    let mut video = if carry_over {
        MediaTrackConstraints {
            basic: without_device(&old.basic),
            advanced: old
                .advanced
                .iter()
                .map(without_device)
                .filter(|s| !s.is_empty())
                .collect(),
        }
    } else {
        MediaTrackConstraints::unconstrained()
    };
    video.basic.insert(
        Property::DeviceId,
        Constraint::String(StringConstraint {
            exact: Some(vec![device.to_owned()]),
            ideal: None,
        }),
    );
    MediaStreamConstraints {
        audio: None,
        video: Some(video),
    }
}

/// Opens camera `device` for a stream whose camera was opened with `old`: with the same
/// constraints (bar the device's) if it can meet them, else at its defaults.
fn open(
    devices: &MediaDevices,
    old: &MediaTrackConstraints,
    device: &str,
) -> Result<MediaStreamTrack, MediaError> {
    let stream = match devices.get_user_media(&constraints_for(old, device, true)) {
        Err(MediaError::OverconstrainedError { constraint, .. }) => {
            tracing::info!(
                "camera {device:?} cannot meet the stream's {constraint} constraint; \
                 opening it at its defaults"
            );
            devices.get_user_media(&constraints_for(old, device, false))?
        }
        other => other?,
    };
    stream
        .get_video_tracks()
        .into_iter()
        .next()
        .ok_or_else(|| MediaError::AbortError {
            message: format!("camera {device:?} gave no video track"),
        })
}

impl Publisher {
    /// Switches stream `name` to its camera facing the other way (the module's rule):
    /// opens it with the stream's constraints (bar the device's; at its defaults if it
    /// cannot meet them), moves the stream's encoders to it — every viewer follows at its
    /// next keyframe, at the new size, without renegotiation — and stops the old camera.
    /// The new camera keeps the old one's `enabled`. Returns the camera now in use.
    ///
    /// Needs the devices the stream was captured from ([`Publisher::with_devices`]).
    pub fn flip(&self, name: &str) -> Result<StreamCamera, FlipError> {
        let (published, devices) = self.flip_parts(name)?;
        let (camera, new) = flip_stream(name, &published, devices.as_deref())?;
        watch_track(&self.streams, &self.sessions, name, &new);
        Ok(camera)
    }

    /// [`flip`](Self::flip) off the async runtime's threads (opening a real camera can
    /// take a while): what the HTTP endpoint calls.
    pub(super) async fn flip_blocking(&self, name: &str) -> Result<StreamCamera, FlipError> {
        let (published, devices) = self.flip_parts(name)?;
        let owned = name.to_owned();
        let (camera, new) = tokio::task::spawn_blocking(move || {
            flip_stream(&owned, &published, devices.as_deref())
        })
        .await
        .map_err(|e| FlipError::CannotFlip {
            stream: name.to_owned(),
            reason: format!("the flip did not finish: {e}"),
        })??;
        watch_track(&self.streams, &self.sessions, name, &new);
        Ok(camera)
    }

    /// The stream `name` and the devices to flip among.
    fn flip_parts(
        &self,
        name: &str,
    ) -> Result<(Arc<Published>, Option<Arc<MediaDevices>>), FlipError> {
        let published = lock(&self.streams)
            .get(name)
            .cloned()
            .ok_or_else(|| FlipError::UnknownStream(name.to_owned()))?;
        Ok((published, self.devices.clone()))
    }
}

/// The flip of stream `name` (see [`Publisher::flip`]): the camera now in use and its
/// track.
fn flip_stream(
    name: &str,
    published: &Published,
    devices: Option<&MediaDevices>,
) -> Result<(StreamCamera, MediaStreamTrack), FlipError> {
    let cannot = |reason: String| FlipError::CannotFlip {
        stream: name.to_owned(),
        reason,
    };
    if published.ingest.is_some() {
        return Err(cannot(
            "it is published through WHIP: its camera is the publisher's to switch".into(),
        ));
    }
    let Some(devices) = devices else {
        return Err(cannot("the server was not given its devices".into()));
    };
    // One flip at a time per stream.
    let _flipping = lock(&published.flipping);
    let (index, old, encoders) = lock(&published.tracks)
        .iter()
        .enumerate()
        .find(|(_, (t, _))| t.kind() == MediaKind::Video)
        .map(|(i, (t, e))| (i, t.clone(), e.clone()))
        .ok_or_else(|| cannot("it has no video track".into()))?;
    let Some(device) = target(&old, devices) else {
        let facing = old
            .get_settings()
            .facing_mode
            .map_or("no facingMode".to_owned(), |f| {
                format!("facingMode {}", f.as_str())
            });
        return Err(cannot(format!(
            "no other camera faces another way than its camera {:?} ({})",
            old.label(),
            facing
        )));
    };
    let new = open(devices, &old.get_constraints(), &device).map_err(|source| FlipError::Open {
        stream: name.to_owned(),
        device: device.clone(),
        source,
    })?;
    new.set_enabled(old.enabled());
    if let Err(source) = encoders.replace_track(&new) {
        new.stop();
        return Err(FlipError::Encode {
            stream: name.to_owned(),
            source: Box::new(source),
        });
    }
    if let Some(entry) = lock(&published.tracks).get_mut(index) {
        entry.0 = new.clone();
    }
    old.stop();
    let camera = StreamCamera::of(&new).ok_or_else(|| cannot("no camera".into()))?;
    tracing::info!(
        "stream {name:?} flipped from {:?} to {:?} ({}×{})",
        old.label(),
        camera.label,
        camera.width.unwrap_or_default(),
        camera.height.unwrap_or_default()
    );
    Ok((camera, new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use FacingMode::{Environment, Left, Right, User};

    #[test]
    fn a_flip_goes_to_the_next_camera_facing_the_opposite_way() {
        let phone = [("back", Some(Environment)), ("front", Some(User))];
        assert_eq!(next_camera(&phone, "back"), Some(1));
        assert_eq!(next_camera(&phone, "front"), Some(0));
        // Two of each: the next opposite one after the current, wrapping.
        let four = [
            ("front1", Some(User)),
            ("back1", Some(Environment)),
            ("front2", Some(User)),
            ("back2", Some(Environment)),
        ];
        assert_eq!(next_camera(&four, "front1"), Some(1));
        assert_eq!(next_camera(&four, "back1"), Some(2));
        assert_eq!(next_camera(&four, "front2"), Some(3));
        assert_eq!(next_camera(&four, "back2"), Some(0));
        // The opposite way first, then any other way.
        let sides = [("l", Some(Left)), ("u", Some(User)), ("r", Some(Right))];
        assert_eq!(next_camera(&sides, "l"), Some(2));
        assert_eq!(
            next_camera(&sides, "u"),
            Some(2),
            "no environment: the next other way"
        );
    }

    #[test]
    fn cameras_that_do_not_say_where_they_face_do_not_flip() {
        assert_eq!(
            next_camera(&[("virtual-pattern", None)], "virtual-pattern"),
            None
        );
        assert_eq!(
            next_camera(&[("a", Some(User)), ("b", Some(User))], "a"),
            None
        );
        assert_eq!(next_camera(&[("a", Some(User)), ("b", None)], "a"), None);
        // From a camera that does not say, any camera that does is another way.
        assert_eq!(next_camera(&[("a", None), ("b", Some(User))], "a"), Some(1));
        // A camera not among them (captured from other devices) does not flip.
        assert_eq!(next_camera(&[("a", None), ("b", Some(User))], "gone"), None);
    }

    #[test]
    fn the_new_camera_keeps_the_stream_constraints_bar_the_device() {
        let (old, _) = MediaTrackConstraints::from_json_str(
            r#"{"facingMode": {"exact": "environment"}, "deviceId": "back",
                "width": {"exact": 640}, "advanced": [{"facingMode": "user"}, {"height": 480}]}"#,
            MediaKind::Video,
        )
        .unwrap();
        let c = constraints_for(&old, "front", true);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json["video"],
            serde_json::json!({"width": {"exact": 640}, "deviceId": {"exact": "front"},
                "advanced": [{"height": {"exact": 480}}]}),
            "{json}"
        );
        let bare = serde_json::to_value(constraints_for(&old, "front", false)).unwrap();
        assert_eq!(
            bare["video"],
            serde_json::json!({"deviceId": {"exact": "front"}})
        );
        assert_eq!(bare["audio"], false);
    }
}
