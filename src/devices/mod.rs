//! `MediaDevices`: the device catalogue, enumerateDevices, getSupportedConstraints and
//! getUserMedia, with the permission policy (modes, prompt, allow-list) in front of every
//! device and the privacy indicator behind them.
//!
//! Devices come from a virtual devices file, or from the machine (cameras through nokhwa,
//! microphones through cpal); a machine with no real device at all gets the built-in
//! virtual set instead.

mod allow_list;
mod descriptor;
mod device_change;
pub mod file;
mod indicator;
pub mod media_file;
mod open;
pub mod pattern;
mod permission;
mod prompt;
mod prompter;
mod scripted;
mod select;
pub mod timeline;
pub mod tone;
pub mod virtual_devices;

#[cfg(feature = "hardware")]
mod camera;
#[cfg(feature = "hardware")]
mod microphone;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use allow_list::{AllowList, AllowListError, Feature};
#[cfg(feature = "hardware")]
pub use camera::CameraError;
pub use descriptor::{DeviceDescriptor, MediaDeviceInfo, MediaDeviceKind, SourceSpec};
pub use device_change::{DeviceChange, DeviceChangeReceiver};
pub use file::{DevicesFile, DevicesFileError};
pub use indicator::{DeviceInUse, Indicator, KindIndicator, UseState};
pub use media_file::{WavError, Y4mError};
#[cfg(feature = "hardware")]
pub use microphone::MicrophoneError;
pub use permission::{Permission, PermissionPolicy};
pub use prompt::{Decision, PendingRequest, PromptBook, PromptError};
pub use prompter::Prompter;
pub use select::{KindExplanation, TrackSelection};
pub use timeline::{DeviceAction, DeviceCondition, DeviceEvent, DeviceTimeline, TimelineError};

use device_change::DeviceChangeHub;
use scripted::{ScriptClock, ScriptedDevice};

use crate::constraints::{MediaKind, MediaStreamConstraints, SupportedConstraints};
use crate::error::{LegacyError, MediaError};
use crate::media::{open_readable, SourceOpener, UsageRegistry};
use crate::track::{MediaStream, MediaStreamTrack};

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
    /// Who answers `prompt`-mode requests (none: the answer is yes).
    prompter: Option<Arc<Prompter>>,
    /// The context this catalogue serves (`stream:NAME`, `room:NAME`), for the allow-list.
    context: Option<String>,
    /// The devices file's scripted events and when their time started (none: no events).
    script: Option<Arc<ScriptClock>>,
    /// Who hears `devicechange`.
    changes: DeviceChangeHub,
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

    /// The devices of a virtual devices file (the format of docs/devices-file.md).
    pub fn from_devices_file(
        path: &Path,
        policy: PermissionPolicy,
    ) -> Result<Self, DevicesFileError> {
        let file = file::load(path)?;
        let devices =
            MediaDevices::new(file.devices, policy).map_err(|e| DevicesFileError::Invalid {
                path: path.to_owned(),
                message: e.message().to_owned(),
            })?;
        Ok(devices.with_timeline(file.timeline))
    }

    /// Plays `timeline` on these devices, its time counting from now: a device fails at
    /// its `fail` event (its tracks end, opening it is a `NotReadableError`); at `unplug`
    /// its tracks end, it leaves [`enumerate_devices`](Self::enumerate_devices) and
    /// selection, and `devicechange` fires ([`on_device_change`](Self::on_device_change));
    /// at `replug` it is back (and `devicechange` fires); between `mute` and `unmute` its
    /// tracks are `muted` and deliver black frames or silence. The devices file's
    /// `"events"` ([`from_devices_file`](Self::from_devices_file) calls this).
    pub fn with_timeline(mut self, timeline: DeviceTimeline) -> Self {
        self.script = (!timeline.is_empty()).then(|| Arc::new(ScriptClock::start(timeline)));
        self
    }

    /// `devicechange`: a receiver of every unplug and replug from now on, each at its
    /// time (a thread at the edge plays the timeline). Without scripted events, nothing
    /// ever comes.
    pub fn on_device_change(&self) -> DeviceChangeReceiver {
        self.changes.subscribe(self.script.as_ref(), || {
            self.devices
                .iter()
                .map(|d| (d.device_id().to_owned(), d.kind().into()))
                .collect()
        })
    }

    /// Whether `device_id` is plugged in now (a device the timeline unplugged is not, until
    /// its replug): listed and selectable.
    pub fn is_present(&self, device_id: &str) -> bool {
        self.script
            .as_ref()
            .is_none_or(|s| s.timeline().is_present(device_id, s.elapsed()))
    }

    /// How long until `device_id`, unplugged now, is replugged (`None`: it is not unplugged,
    /// or no replug is scripted).
    pub fn replug_in(&self, device_id: &str) -> Option<Duration> {
        let script = self.script.as_ref()?;
        let now = script.elapsed();
        let at = script.timeline().replug_at(device_id, now)?;
        Some(at.saturating_sub(now))
    }

    /// The scripted events in play (empty without any).
    pub fn timeline(&self) -> DeviceTimeline {
        self.script
            .as_ref()
            .map(|s| s.timeline().clone())
            .unwrap_or_default()
    }

    /// What opens `device`'s sources: the device itself, or, when the timeline scripts
    /// it, the device under its timeline.
    fn opener(&self, device: &Arc<DeviceDescriptor>) -> Arc<dyn SourceOpener> {
        match &self.script {
            Some(script) if script.timeline().scripts(device.device_id()) => {
                Arc::new(ScriptedDevice::new(Arc::clone(device), Arc::clone(script)))
            }
            _ => Arc::clone(device) as _,
        }
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
    /// all, the built-in virtual set (docs/ARCHITECTURE.md, "The built-in virtual devices"). See [`virtual_devices::system_devices`].
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
            prompter: None,
            context: None,
            script: None,
            changes: DeviceChangeHub::default(),
        }
    }

    /// Asks `prompter` before opening a device whose permission is `prompt`, and waits for
    /// the answer (without one, `prompt` means yes).
    pub fn with_prompter(mut self, prompter: Arc<Prompter>) -> Self {
        self.prompter = Some(prompter);
        self
    }

    /// The prompt in use, if any (what `GET /permissions` lists and answers).
    pub fn prompter(&self) -> Option<&Arc<Prompter>> {
        self.prompter.as_ref()
    }

    /// Serves `context` (`stream:NAME`, `room:NAME`): the allow-list of the policy applies
    /// to every getUserMedia of this catalogue as to a document embedded there.
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// The context set by [`with_context`](Self::with_context).
    pub fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// Every device, in order, with its label and source (the operator's view).
    pub fn devices(&self) -> &[Arc<DeviceDescriptor>] {
        &self.devices
    }

    /// The permission policy in force.
    pub fn policy(&self) -> &PermissionPolicy {
        &self.policy
    }

    /// `enumerateDevices()`: every device plugged in now; labels are empty for kinds the
    /// caller has not been granted.
    pub fn enumerate_devices(&self) -> Vec<MediaDeviceInfo> {
        self.devices
            .iter()
            .filter(|d| self.is_present(d.device_id()))
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
    ///
    /// The allow-list applies for this catalogue's context ([`with_context`](
    /// Self::with_context)); a kind whose permission is `prompt` is asked of the
    /// [`Prompter`], after selection (as the spec orders it) and before anything opens.
    pub fn get_user_media(
        &self,
        constraints: &MediaStreamConstraints,
    ) -> Result<MediaStream, MediaError> {
        self.get_user_media_in(self.context.as_deref(), constraints)
    }

    /// `getUserMedia` on behalf of `context` (`stream:NAME`, `room:NAME`; `None`: the
    /// top level): a kind the allow-list does not give the context is a `NotAllowedError`,
    /// as in a frame whose Permissions-Policy lacks the feature.
    pub fn get_user_media_in(
        &self,
        context: Option<&str>,
        constraints: &MediaStreamConstraints,
    ) -> Result<MediaStream, MediaError> {
        let selections = self.select_in(context, constraints)?;
        self.ask_prompt(context, &selections)?;
        let mut opened = Vec::with_capacity(selections.len());
        for sel in selections {
            let opener = self.opener(&sel.device);
            let source = open_readable(opener.as_ref(), &sel.selection.settings)?;
            opened.push((sel, opener, source));
        }
        let mut tracks = Vec::with_capacity(opened.len());
        for (sel, opener, source) in opened {
            tracing::info!(
                "device in use: {} {:?} ({}) at {}",
                sel.kind.device_kind(),
                sel.device.device_id(),
                sel.device.label,
                select::describe(&sel)
            );
            if let Ok(mut exposed) = self.exposed.lock() {
                exposed.insert(sel.kind);
            }
            tracks.push(MediaStreamTrack::start(
                opener,
                sel.selection.settings,
                sel.constraints,
                source,
                Arc::clone(&self.usage),
            )?);
        }
        Ok(MediaStream::new(tracks))
    }

    /// Asks the prompter about the selected devices whose permission is `prompt`.
    fn ask_prompt(
        &self,
        context: Option<&str>,
        selections: &[TrackSelection],
    ) -> Result<(), MediaError> {
        let Some(prompter) = &self.prompter else {
            return Ok(());
        };
        let asked: Vec<&TrackSelection> = selections
            .iter()
            .filter(|s| self.policy.for_device(s.kind, s.device.device_id()) == Permission::Prompt)
            .collect();
        if asked.is_empty() {
            return Ok(());
        }
        let features: Vec<Feature> = asked.iter().map(|s| Feature::of(s.kind)).collect();
        let labels = asked.iter().map(|s| s.device.label.clone()).collect();
        prompter.ask(context, &features, labels)
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
}

/// The legacy callback form, `navigator.getUserMedia(constraints, successCallback,
/// errorCallback)` of old browsers (docs/legacy.md).
impl MediaDevices {
    /// Runs [`get_user_media`](Self::get_user_media) and calls exactly one of the two
    /// callbacks, once, before returning: `on_success` with the stream, or `on_error`
    /// with the error under its legacy code (`PERMISSION_DENIED`, `NOT_SUPPORTED_ERROR`,
    /// `MANDATORY_UNSATISFIED_ERROR`). The constraints may have been written in either
    /// syntax: parsing translates `mandatory`/`optional`.
    pub fn get_user_media_legacy(
        &self,
        constraints: &MediaStreamConstraints,
        on_success: impl FnOnce(MediaStream),
        on_error: impl FnOnce(LegacyError),
    ) {
        match self.get_user_media(constraints) {
            Ok(stream) => on_success(stream),
            Err(e) => on_error(e.into()),
        }
    }

    /// [`get_user_media_legacy`](Self::get_user_media_legacy) from JSON text, legacy or
    /// modern: constraints that do not parse reach `on_error` as `NOT_SUPPORTED_ERROR`
    /// (their modern name is `TypeError`), as the legacy API reported them.
    pub fn get_user_media_legacy_json(
        &self,
        json: &str,
        on_success: impl FnOnce(MediaStream),
        on_error: impl FnOnce(LegacyError),
    ) {
        match self.get_user_media_json(json) {
            Ok(stream) => on_success(stream),
            Err(e) => on_error(e.into()),
        }
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
