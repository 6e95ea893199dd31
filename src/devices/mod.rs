//! `MediaDevices`: the device catalogue, enumerateDevices, getSupportedConstraints and
//! getUserMedia, with the permission policy in front of every device.
//!
//! Devices come from a virtual devices file, or from the machine (cameras through nokhwa,
//! microphones through cpal); a machine with no real device at all gets the built-in
//! virtual set instead.

mod descriptor;
pub mod file;
pub mod media_file;
pub mod pattern;
mod permission;
pub mod source;
pub mod tone;
pub mod virtual_devices;
pub(crate) mod worker;

#[cfg(feature = "hardware")]
mod camera;
#[cfg(feature = "hardware")]
mod microphone;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use descriptor::{DeviceDescriptor, MediaDeviceInfo, MediaDeviceKind, SourceSpec};
pub use file::DevicesFileError;
pub use permission::{Permission, PermissionPolicy};
pub use source::{MediaFrame, Source, SourceError};
pub use worker::{FrameReceiver, TrackEnded};

use crate::constraints::MediaTrackSettings;
use crate::constraints::{
    explain_selection, select_settings, CandidateReport, DeviceModel, MediaKind,
    MediaStreamConstraints, MediaTrackConstraints, Selection, SupportedConstraints,
};
use crate::error::MediaError;
use crate::track::{MediaStream, MediaStreamTrack};
use worker::UsageRegistry;

/// The result of selection for one kind, before anything is opened.
#[derive(Debug, Clone)]
pub struct TrackSelection {
    pub kind: MediaKind,
    pub device: Arc<DeviceDescriptor>,
    pub selection: Selection,
    pub constraints: MediaTrackConstraints,
}

/// Every candidate considered for one kind, for `--explain`.
#[derive(Debug, Clone)]
pub struct KindExplanation {
    pub kind: MediaKind,
    pub candidates: Vec<CandidateReport>,
}

/// A catalogue of capture devices behind a permission policy: the `navigator.mediaDevices`
/// of one caller.
#[derive(Debug)]
pub struct MediaDevices {
    devices: Vec<Arc<DeviceDescriptor>>,
    policy: PermissionPolicy,
    /// Kinds whose labels the caller may see because a getUserMedia of that kind succeeded.
    exposed: Mutex<HashSet<MediaKind>>,
    /// Open sources per device.
    usage: Arc<UsageRegistry>,
}

/// A device with open sources, as the "devices in use" report shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInUse {
    pub device_id: String,
    pub kind: MediaDeviceKind,
    pub label: String,
    /// Sources of this device open now (a track and its clones share one).
    pub open_sources: usize,
}

impl MediaDevices {
    /// A catalogue of the given devices, in order. Fails if two share a deviceId.
    pub fn new(
        devices: Vec<DeviceDescriptor>,
        policy: PermissionPolicy,
    ) -> Result<Self, MediaError> {
        let mut ids = HashSet::new();
        for d in &devices {
            if !ids.insert(d.device_id().to_owned()) {
                return Err(MediaError::type_error(format!(
                    "two devices share the deviceId {:?}",
                    d.device_id()
                )));
            }
        }
        Ok(MediaDevices::with_distinct_ids(devices, policy))
    }

    /// The devices of a virtual devices file (DESIGN.md's format).
    pub fn from_devices_file(
        path: &Path,
        policy: PermissionPolicy,
    ) -> Result<Self, DevicesFileError> {
        let devices = file::load(path)?;
        MediaDevices::new(devices, policy).map_err(|e| DevicesFileError::Invalid {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })
    }

    /// Only the built-in virtual camera and microphone.
    pub fn builtin_virtual(policy: PermissionPolicy) -> Self {
        let devices = vec![
            virtual_devices::pattern_camera(),
            virtual_devices::tone_microphone(),
        ];
        MediaDevices::with_distinct_ids(devices, policy)
    }

    /// The machine's real devices (cameras, then microphones); only when it has none at
    /// all, the built-in virtual set (DESIGN.md). See [`virtual_devices::system_devices`].
    pub fn system(policy: PermissionPolicy) -> Self {
        let (cameras, microphones) = probe_hardware();
        if cameras.is_empty() && microphones.is_empty() {
            tracing::info!(
                "no camera or microphone found; using the built-in virtual camera and microphone"
            );
        }
        let devices = virtual_devices::system_devices(cameras, microphones);
        // Ids are `video{N}` / `alsa-{card}` from distinct kernel indices, or the two
        // distinct built-in ids: they cannot clash.
        MediaDevices::with_distinct_ids(devices, policy)
    }

    fn with_distinct_ids(devices: Vec<DeviceDescriptor>, policy: PermissionPolicy) -> Self {
        MediaDevices {
            devices: devices.into_iter().map(Arc::new).collect(),
            policy,
            exposed: Mutex::new(HashSet::new()),
            usage: Arc::default(),
        }
    }

    /// Every device, in order, with its label and source (the operator's view).
    pub fn devices(&self) -> &[Arc<DeviceDescriptor>] {
        &self.devices
    }

    /// The permission policy in force.
    pub fn policy(&self) -> &PermissionPolicy {
        &self.policy
    }

    /// `enumerateDevices()`: every device; labels are empty for kinds the caller has not
    /// been granted.
    pub fn enumerate_devices(&self) -> Vec<MediaDeviceInfo> {
        self.devices
            .iter()
            .map(|d| MediaDeviceInfo {
                device_id: d.device_id().to_owned(),
                kind: d.kind().into(),
                label: if self.labels_exposed(d.kind()) {
                    d.label.clone()
                } else {
                    String::new()
                },
                group_id: d.model.group_id.clone(),
            })
            .collect()
    }

    /// `getSupportedConstraints()`.
    pub fn get_supported_constraints(&self) -> SupportedConstraints {
        SupportedConstraints::new()
    }

    fn labels_exposed(&self, kind: MediaKind) -> bool {
        self.policy.for_kind(kind) == Permission::Granted
            || self
                .exposed
                .lock()
                .map(|set| set.contains(&kind))
                .unwrap_or(false)
    }

    /// `getUserMedia(constraints)`: selects a device and settings for each requested kind,
    /// opens the sources and returns live tracks (audio first, as browsers order them).
    /// All or nothing: if one source fails to open (`NotReadableError`), none stays open.
    pub fn get_user_media(
        &self,
        constraints: &MediaStreamConstraints,
    ) -> Result<MediaStream, MediaError> {
        let selections = self.select(constraints)?;
        let mut opened = Vec::with_capacity(selections.len());
        for sel in selections {
            let source = open_source(&sel.device, &sel.selection.settings)?;
            opened.push((sel, source));
        }
        let mut tracks = Vec::with_capacity(opened.len());
        for (sel, source) in opened {
            tracing::info!(
                "device in use: {} {:?} ({}) at {}",
                sel.kind.device_kind(),
                sel.device.device_id(),
                sel.device.label,
                describe(&sel)
            );
            if let Ok(mut exposed) = self.exposed.lock() {
                exposed.insert(sel.kind);
            }
            tracks.push(MediaStreamTrack::start(
                Arc::clone(&sel.device),
                sel.selection.settings,
                sel.constraints,
                source,
                Arc::clone(&self.usage),
            )?);
        }
        Ok(MediaStream::new(tracks))
    }

    /// The devices with open sources now, in device order.
    pub fn devices_in_use(&self) -> Vec<DeviceInUse> {
        let open = self.usage.snapshot();
        self.devices
            .iter()
            .filter_map(|d| {
                open.get(d.device_id()).map(|&n| DeviceInUse {
                    device_id: d.device_id().to_owned(),
                    kind: d.kind().into(),
                    label: d.label.clone(),
                    open_sources: n,
                })
            })
            .collect()
    }

    /// `getUserMedia` from JSON text. Text that is not JSON is a `TypeError` carrying the
    /// parser's line and column; warnings about ignored keys are logged.
    pub fn get_user_media_json(&self, json: &str) -> Result<MediaStream, MediaError> {
        let (constraints, warnings) =
            MediaStreamConstraints::from_json_str(json).map_err(|e| match e {
                crate::constraints::ConstraintsError::Type(t) => t,
                other => MediaError::type_error(other.to_string()),
            })?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        self.get_user_media(&constraints)
    }

    /// getUserMedia's selection without opening anything: what `usermedia select` prints.
    pub fn select(
        &self,
        constraints: &MediaStreamConstraints,
    ) -> Result<Vec<TrackSelection>, MediaError> {
        if constraints.audio.is_none() && constraints.video.is_none() {
            return Err(MediaError::type_error(
                "at least one of audio and video must be requested",
            ));
        }
        let mut out = Vec::new();
        for kind in [MediaKind::Audio, MediaKind::Video] {
            if let Some(c) = constraints.for_kind(kind) {
                out.push(self.select_kind(kind, c)?);
            }
        }
        Ok(out)
    }

    /// Like [`select`](Self::select), and also every candidate considered with its distance.
    pub fn explain(
        &self,
        constraints: &MediaStreamConstraints,
    ) -> (
        Result<Vec<TrackSelection>, MediaError>,
        Vec<KindExplanation>,
    ) {
        let mut explanations = Vec::new();
        for kind in [MediaKind::Audio, MediaKind::Video] {
            if let Some(c) = constraints.for_kind(kind) {
                let allowed = self.allowed_of_kind(kind);
                let models: Vec<&DeviceModel> = allowed.iter().map(|d| &d.model).collect();
                let (_, candidates) = explain_selection(kind, c, &models);
                explanations.push(KindExplanation { kind, candidates });
            }
        }
        (self.select(constraints), explanations)
    }

    fn of_kind(&self, kind: MediaKind) -> Vec<&Arc<DeviceDescriptor>> {
        self.devices.iter().filter(|d| d.kind() == kind).collect()
    }

    fn allowed_of_kind(&self, kind: MediaKind) -> Vec<&Arc<DeviceDescriptor>> {
        self.of_kind(kind)
            .into_iter()
            .filter(|d| self.policy.for_device(kind, d.device_id()) != Permission::Denied)
            .collect()
    }

    fn select_kind(
        &self,
        kind: MediaKind,
        constraints: &MediaTrackConstraints,
    ) -> Result<TrackSelection, MediaError> {
        let all = self.of_kind(kind);
        if all.is_empty() {
            return Err(MediaError::NotFoundError {
                message: format!("no {} device exists", kind.device_kind()),
            });
        }
        let what = match kind {
            MediaKind::Video => "camera",
            MediaKind::Audio => "microphone",
        };
        if self.policy.for_kind(kind) == Permission::Denied {
            return Err(MediaError::NotAllowedError {
                message: format!("{what} access is denied by the permission policy"),
            });
        }
        let allowed = self.allowed_of_kind(kind);
        if allowed.is_empty() {
            return Err(MediaError::NotAllowedError {
                message: format!(
                    "every {} device is denied by the permission policy",
                    kind.device_kind()
                ),
            });
        }
        let models: Vec<&DeviceModel> = allowed.iter().map(|d| &d.model).collect();
        match select_settings(kind, constraints, &models) {
            Ok(selection) => Ok(TrackSelection {
                kind,
                device: Arc::clone(allowed[selection.device_index]),
                selection,
                constraints: constraints.clone(),
            }),
            Err(err @ MediaError::OverconstrainedError { .. }) if allowed.len() < all.len() => {
                // Would a denied device have satisfied it? Then permission is the reason.
                let every: Vec<&DeviceModel> = all.iter().map(|d| &d.model).collect();
                match select_settings(kind, constraints, &every) {
                    Ok(sel) => Err(MediaError::NotAllowedError {
                        message: format!(
                            "device {:?} is denied by the permission policy",
                            all[sel.device_index].device_id()
                        ),
                    }),
                    Err(_) => Err(err),
                }
            }
            Err(err) => Err(err),
        }
    }
}

/// Opens the source of `device` at `settings`. Every failure is `NotReadableError` naming
/// the device and the problem (busy, missing file, bad file).
pub(crate) fn open_source(
    device: &DeviceDescriptor,
    settings: &MediaTrackSettings,
) -> Result<Box<dyn Source>, MediaError> {
    let opened: Result<Box<dyn Source>, SourceError> = match (&device.source, device.kind()) {
        (SourceSpec::Pattern, _) => {
            pattern::PatternSource::open(settings).map(|s| Box::new(s) as _)
        }
        (SourceSpec::Tone, _) => tone::ToneSource::open(settings).map(|s| Box::new(s) as _),
        (SourceSpec::File(path), MediaKind::Video) => {
            media_file::Y4mSource::open(path, settings).map(|s| Box::new(s) as _)
        }
        (SourceSpec::File(path), MediaKind::Audio) => {
            media_file::WavSource::open(path, settings).map(|s| Box::new(s) as _)
        }
        #[cfg(feature = "hardware")]
        (SourceSpec::Camera { index }, _) => match &device.model.modes {
            crate::constraints::DeviceModes::Video(modes) => {
                camera::CameraSource::open(*index, modes, settings).map(|s| Box::new(s) as _)
            }
            _ => Err(SourceError::Open("not a camera".into())),
        },
        #[cfg(feature = "hardware")]
        (SourceSpec::Microphone { pcm_id }, _) => {
            microphone::MicrophoneSource::open(pcm_id, settings).map(|s| Box::new(s) as _)
        }
        (SourceSpec::Remote, _) => Err(SourceError::Unsupported(
            "a remote track's source cannot be reopened".into(),
        )),
        #[cfg(not(feature = "hardware"))]
        (SourceSpec::Camera { .. } | SourceSpec::Microphone { .. }, _) => Err(SourceError::Open(
            "built without the `hardware` feature".into(),
        )),
    };
    opened.map_err(|e| MediaError::NotReadableError {
        message: format!(
            "{} {:?}: {e}",
            device.kind().device_kind(),
            device.device_id()
        ),
    })
}

/// A short description of selected settings for logs: `1280x720@30 none` or
/// `48000 Hz 2 ch`.
fn describe(sel: &TrackSelection) -> String {
    let s = &sel.selection.settings;
    match sel.kind {
        MediaKind::Video => format!(
            "{}x{}@{} ({})",
            s.width.unwrap_or(0),
            s.height.unwrap_or(0),
            s.frame_rate.unwrap_or(0.0),
            s.resize_mode.map(|r| r.as_str()).unwrap_or("none")
        ),
        MediaKind::Audio => format!(
            "{} Hz, {} ch, {}-bit",
            s.sample_rate.unwrap_or(0),
            s.channel_count.unwrap_or(0),
            s.sample_size.unwrap_or(0)
        ),
    }
}

#[cfg(feature = "hardware")]
fn probe_hardware() -> (Vec<DeviceDescriptor>, Vec<DeviceDescriptor>) {
    (camera::enumerate(), microphone::enumerate())
}

#[cfg(not(feature = "hardware"))]
fn probe_hardware() -> (Vec<DeviceDescriptor>, Vec<DeviceDescriptor>) {
    (Vec::new(), Vec::new())
}
