//! Selection over the catalogue: which device and settings getUserMedia would pick for
//! each requested kind (`usermedia select`), every candidate considered with its distance
//! (`--explain`), and the permission policy's part in a refusal (modes, device overrides,
//! the allow-list of the caller's context).

use std::sync::Arc;

use super::{DeviceDescriptor, Feature, MediaDevices, Permission};
use crate::constraints::{
    explain_selection, select_settings, CandidateReport, DeviceModel, MediaKind,
    MediaStreamConstraints, MediaTrackConstraints, Selection,
};
use crate::error::MediaError;

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

impl MediaDevices {
    /// getUserMedia's selection without opening anything: what `usermedia select` prints.
    /// The allow-list applies for this catalogue's context.
    pub fn select(
        &self,
        constraints: &MediaStreamConstraints,
    ) -> Result<Vec<TrackSelection>, MediaError> {
        self.select_in(self.context.as_deref(), constraints)
    }

    /// [`select`](Self::select) on behalf of `context`: a requested kind the allow-list
    /// does not give it is a `NotAllowedError` before any device is considered (as the
    /// spec checks Permissions-Policy first).
    pub fn select_in(
        &self,
        context: Option<&str>,
        constraints: &MediaStreamConstraints,
    ) -> Result<Vec<TrackSelection>, MediaError> {
        if constraints.audio.is_none() && constraints.video.is_none() {
            return Err(MediaError::type_error(
                "at least one of audio and video must be requested",
            ));
        }
        for kind in [MediaKind::Audio, MediaKind::Video] {
            if constraints.for_kind(kind).is_some() {
                self.check_allowed(context, kind)?;
            }
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

    /// `NotAllowedError` unless the allow-list gives `context` the feature of `kind`.
    pub fn check_allowed(&self, context: Option<&str>, kind: MediaKind) -> Result<(), MediaError> {
        if self.policy.allow.allows(context, kind) {
            return Ok(());
        }
        Err(MediaError::NotAllowedError {
            message: format!(
                "{} is not allowed in {} by the allow-list",
                Feature::of(kind),
                context.unwrap_or("the top-level context")
            ),
        })
    }

    /// `constraints` without the kinds the allow-list refuses this catalogue's context, and
    /// the `NotAllowedError` of each kind taken out: what a caller that would rather send
    /// video alone than nothing (a call bot in a room without `microphone`) asks for.
    pub fn permitted(
        &self,
        constraints: &MediaStreamConstraints,
    ) -> (MediaStreamConstraints, Vec<MediaError>) {
        let mut kept = constraints.clone();
        let mut refused = Vec::new();
        for kind in [MediaKind::Audio, MediaKind::Video] {
            if constraints.for_kind(kind).is_none() {
                continue;
            }
            if let Err(e) = self.check_allowed(self.context.as_deref(), kind) {
                match kind {
                    MediaKind::Audio => kept.audio = None,
                    MediaKind::Video => kept.video = None,
                }
                refused.push(e);
            }
        }
        (kept, refused)
    }

    fn of_kind(&self, kind: MediaKind) -> Vec<&Arc<DeviceDescriptor>> {
        self.devices
            .iter()
            .filter(|d| d.kind() == kind && self.is_present(d.device_id()))
            .collect()
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

/// A short description of selected settings for logs: `1280x720@30 none` or
/// `48000 Hz 2 ch`.
pub(super) fn describe(sel: &TrackSelection) -> String {
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
