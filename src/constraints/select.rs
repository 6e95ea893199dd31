//! SelectSettings: choose one device and one settings dictionary for a track.
//!
//! 1. Score every candidate of every device against the basic set; drop the infinite.
//! 2. Apply each `advanced` set in order over all devices together, keeping only the
//!    candidates that satisfy it; a set that no candidate satisfies is skipped.
//! 3. Pick the lowest distance; ties go to resizeMode `none`, then closeness to
//!    640×480 at 30 fps, then device order (then mode order).
//!
//! Nothing left after step 1 → `OverconstrainedError` naming the first required
//! constraint (in the spec's property order) that no candidate of any device satisfies.

use std::cmp::Ordering;

use serde::Serialize;

use super::candidates::{
    self, is_device_level, Candidate, CandidateValues, CandidateView, DeviceView,
};
use super::fitness::{constraint_distance, first_unmet_required, number_distance};
use super::model::{DeviceModel, DeviceModes, ResizeMode};
use super::property::{MediaKind, Property};
use super::settings::{MediaTrackSettings, SettingValue, Settings};
use super::value::{
    Constraint, ConstraintSet, Flag, JsonNumber, MediaTrackConstraints, NumberConstraint,
};
use crate::error::MediaError;

/// Distances closer than this are ties (they come from the same arithmetic on the same
/// numbers, so real differences are far larger).
const TIE: f64 = 1e-12;

/// The outcome of a successful selection.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Index into the device list that was passed in.
    pub device_index: usize,
    pub candidate: Candidate,
    pub settings: MediaTrackSettings,
    /// Fitness distance against the basic constraint set.
    pub distance: f64,
}

/// One candidate as `--explain` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateReport {
    pub device_id: String,
    pub settings: MediaTrackSettings,
    /// Fitness distance against the basic set; `None` (JSON null) when infinite.
    pub distance: Option<f64>,
    /// The first required basic constraint this candidate fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsatisfied: Option<&'static str>,
    /// The index of the advanced set that removed this candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eliminated_by_advanced: Option<usize>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub selected: bool,
}

fn view<'a>(devices: &[&'a DeviceModel], c: &'a Candidate) -> CandidateView<'a> {
    CandidateView {
        device: devices[c.device],
        values: &c.values,
    }
}

struct Scored {
    candidate: Candidate,
    distance: f64,
    eliminated_by: Option<usize>,
}

impl Scored {
    fn alive(&self) -> bool {
        self.distance.is_finite() && self.eliminated_by.is_none()
    }
}

/// A constraint set prepared for scoring many candidates: constraints that do not apply
/// to the kind dropped, the rest split into device-level ones (scored once per device)
/// and mode-level ones (scored per candidate).
struct Compiled<'c> {
    device_level: Vec<(Property, &'c Constraint)>,
    mode_level: Vec<(Property, &'c Constraint)>,
    /// The mode-level constraints of a video track, evaluated straight from a candidate's
    /// values (the selection's hot loop); `None` when a constraint is not of the expected
    /// type, and then the general path scores.
    video: Option<Vec<VideoTerm<'c>>>,
}

/// One mode-level constraint of a video track. The arithmetic is `constraint_distance`'s
/// (the same `number_distance`), in the same order, so distances are bit-identical; only
/// the settings lookup is skipped.
enum VideoTerm<'c> {
    Width(&'c NumberConstraint),
    Height(&'c NumberConstraint),
    AspectRatio(&'c NumberConstraint),
    FrameRate(&'c NumberConstraint),
    /// resizeMode has two possible values: the distance for each, computed once.
    ResizeMode {
        none: f64,
        crop_and_scale: f64,
    },
}

/// Settings holding only a resizeMode, to score a resizeMode constraint once per value.
struct ResizeOnly(ResizeMode);

impl Settings for ResizeOnly {
    fn get(&self, property: Property) -> Option<SettingValue<'_>> {
        (property == Property::ResizeMode).then(|| SettingValue::Str(self.0.as_str()))
    }
}

impl<'c> Compiled<'c> {
    fn new(set: &'c ConstraintSet, kind: MediaKind) -> Self {
        let (device_level, mode_level): (Vec<_>, Vec<_>) = set
            .iter()
            .filter(|(p, _)| p.applies_to(kind))
            .partition(|(p, _)| is_device_level(*p));
        let video = if kind == MediaKind::Video {
            mode_level
                .iter()
                .map(|&(p, c)| match (p, c) {
                    (Property::Width, Constraint::Number(n)) => Some(VideoTerm::Width(n)),
                    (Property::Height, Constraint::Number(n)) => Some(VideoTerm::Height(n)),
                    (Property::AspectRatio, Constraint::Number(n)) => {
                        Some(VideoTerm::AspectRatio(n))
                    }
                    (Property::FrameRate, Constraint::Number(n)) => Some(VideoTerm::FrameRate(n)),
                    (Property::ResizeMode, c) => Some(VideoTerm::ResizeMode {
                        none: constraint_distance(p, c, kind, &ResizeOnly(ResizeMode::None)),
                        crop_and_scale: constraint_distance(
                            p,
                            c,
                            kind,
                            &ResizeOnly(ResizeMode::CropAndScale),
                        ),
                    }),
                    _ => None,
                })
                .collect()
        } else {
            None
        };
        Compiled {
            device_level,
            mode_level,
            video,
        }
    }

    fn sum<S: Settings>(parts: &[(Property, &Constraint)], kind: MediaKind, settings: &S) -> f64 {
        let mut total = 0.0;
        for (p, c) in parts {
            total += constraint_distance(*p, c, kind, settings);
            if total == f64::INFINITY {
                break;
            }
        }
        total
    }

    fn device_distance(&self, kind: MediaKind, device: &DeviceModel) -> f64 {
        Self::sum(&self.device_level, kind, &DeviceView(device))
    }

    #[inline]
    fn mode_distance(&self, kind: MediaKind, devices: &[&DeviceModel], c: &Candidate) -> f64 {
        if let (
            Some(terms),
            CandidateValues::Video {
                width,
                height,
                frame_rate,
                resize_mode,
            },
        ) = (&self.video, &c.values)
        {
            let mut total = 0.0;
            for term in terms {
                total += match term {
                    VideoTerm::Width(n) => number_distance(n, *width as f64),
                    VideoTerm::Height(n) => number_distance(n, *height as f64),
                    VideoTerm::AspectRatio(n) => number_distance(n, *width as f64 / *height as f64),
                    VideoTerm::FrameRate(n) => number_distance(n, *frame_rate),
                    VideoTerm::ResizeMode {
                        none,
                        crop_and_scale,
                    } => match resize_mode {
                        ResizeMode::None => *none,
                        ResizeMode::CropAndScale => *crop_and_scale,
                    },
                };
                if total == f64::INFINITY {
                    break;
                }
            }
            return total;
        }
        Self::sum(&self.mode_level, kind, &view(devices, c))
    }
}

/// The work of one selection, kept so that `--explain` can show it.
struct Run {
    scored: Vec<Scored>,
    winner: Option<usize>,
}

/// Scores and filters the candidates. With `prune`, devices whose ids or facing mode fail
/// a required basic constraint contribute no candidates at all (the fast path); without
/// it every candidate is kept, for explanations and error reports.
fn run(
    kind: MediaKind,
    constraints: &MediaTrackConstraints,
    devices: &[&DeviceModel],
    prune: bool,
) -> Run {
    let basic = Compiled::new(&constraints.basic, kind);
    let advanced: Vec<Compiled> = constraints
        .advanced
        .iter()
        .map(|set| Compiled::new(set, kind))
        .collect();
    // Device-level distances, once per device: of the basic set, and whether each device
    // meets each advanced set's device-level constraints.
    let device_distances: Vec<f64> = devices
        .iter()
        .map(|device| basic.device_distance(kind, device))
        .collect();
    let advanced_device_ok: Vec<Vec<bool>> = advanced
        .iter()
        .map(|set| {
            devices
                .iter()
                .map(|device| set.device_distance(kind, device).is_finite())
                .collect()
        })
        .collect();
    let contexts = candidates::scale_contexts(constraints, devices, |set, d| match set {
        None => device_distances[d].is_finite(),
        Some(k) => advanced_device_ok[k][d],
    });
    let resize_constrained = constraints.basic.get(Property::ResizeMode).is_some()
        || constraints
            .advanced
            .iter()
            .any(|set| set.get(Property::ResizeMode).is_some());

    // Room for each native mode and about one crop-and-scale candidate per mode, so the
    // list rarely grows (growing copies every candidate so far).
    let modes: usize = devices
        .iter()
        .map(|d| match &d.modes {
            DeviceModes::Video(modes) => modes.len(),
            DeviceModes::Audio { modes, .. } => modes.len(),
        })
        .sum();
    let mut scored = Vec::with_capacity(2 * modes);
    for (index, device) in devices.iter().enumerate() {
        let device_distance = device_distances[index];
        if prune && device_distance.is_infinite() {
            continue;
        }
        candidates::generate_device(
            index,
            device,
            &contexts,
            resize_constrained || !prune,
            |candidate| {
                // Without mode-level constraints the distance is the device's (adding 0.0
                // to a distance changes nothing).
                let distance = if device_distance.is_infinite() || basic.mode_level.is_empty() {
                    device_distance
                } else {
                    device_distance + basic.mode_distance(kind, devices, &candidate)
                };
                scored.push(Scored {
                    candidate,
                    distance,
                    eliminated_by: None,
                });
            },
        );
    }

    let mut satisfies = vec![false; scored.len()];
    for (k, (set, device_ok)) in advanced.iter().zip(&advanced_device_ok).enumerate() {
        let mut any = false;
        for (ok, s) in satisfies.iter_mut().zip(&scored) {
            *ok = s.alive()
                && device_ok[s.candidate.device]
                && set.mode_distance(kind, devices, &s.candidate).is_finite();
            any |= *ok;
        }
        if any {
            for (s, ok) in scored.iter_mut().zip(&satisfies) {
                if s.alive() && !ok {
                    s.eliminated_by = Some(k);
                }
            }
        }
    }

    Run {
        winner: pick_winner(&scored),
        scored,
    }
}

/// The best alive candidate: lowest distance; among ties, resizeMode none, then closest to
/// 640×480@30, then the earliest (device order, then mode order). The tie-breakers are
/// computed only for the tied candidates.
fn pick_winner(scored: &[Scored]) -> Option<usize> {
    let best = scored
        .iter()
        .filter(|s| s.alive())
        .map(|s| s.distance)
        .min_by(f64::total_cmp)?;
    let tied = |s: &Scored| s.alive() && s.distance - best <= TIE;
    scored
        .iter()
        .enumerate()
        .filter(|(_, s)| tied(s))
        .map(|(i, s)| {
            (
                i,
                s.candidate.resize_rank(),
                s.candidate.default_closeness(),
            )
        })
        .min_by(|a, b| {
            a.1.cmp(&b.1)
                .then_with(|| {
                    if (a.2 - b.2).abs() > TIE {
                        a.2.total_cmp(&b.2)
                    } else {
                        Ordering::Equal
                    }
                })
                .then(a.0.cmp(&b.0))
        })
        .map(|(i, _, _)| i)
}

fn overconstrained(
    kind: MediaKind,
    constraints: &MediaTrackConstraints,
    devices: &[&DeviceModel],
    scored: &[Scored],
) -> MediaError {
    // The first required constraint that no candidate of any device meets on its own.
    let alone = constraints.basic.iter().find(|(p, c)| {
        c.is_required()
            && scored.iter().all(|s| {
                constraint_distance(*p, c, kind, &view(devices, &s.candidate)).is_infinite()
            })
    });
    // Otherwise each is met somewhere but not together: name the first one that the
    // candidate failing the fewest required constraints fails.
    let property = alone.map(|(p, _)| p).or_else(|| {
        scored
            .iter()
            .map(|s| {
                let settings = view(devices, &s.candidate);
                let failures = constraints
                    .basic
                    .iter()
                    .filter(|(p, c)| {
                        c.is_required() && constraint_distance(*p, c, kind, &settings).is_infinite()
                    })
                    .count();
                (
                    failures,
                    first_unmet_required(&constraints.basic, kind, &settings),
                )
            })
            .min_by_key(|(failures, _)| *failures)
            .and_then(|(_, p)| p)
    });
    let property = property.unwrap_or(Property::DeviceId);
    let wanted = constraints
        .basic
        .get(property)
        .map(|c| serde_json::to_string(&c.required_part()).unwrap_or_default())
        .unwrap_or_default();
    let message = if alone.is_some() {
        format!(
            "no {} device can satisfy the required constraint {} {} ({})",
            kind.device_kind(),
            property.name(),
            wanted,
            available(property, devices, scored)
        )
    } else {
        format!(
            "no {} device can satisfy the required constraint {} {} together with the other required constraints",
            kind.device_kind(),
            property.name(),
            wanted
        )
    };
    MediaError::OverconstrainedError {
        constraint: property.name().to_owned(),
        message,
    }
}

/// What the devices offer for `property`, for error messages: a numeric range over the
/// native modes, or the distinct string values.
fn available(property: Property, devices: &[&DeviceModel], scored: &[Scored]) -> String {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    let mut strings: Vec<String> = Vec::new();
    let mut missing = false;
    for s in scored.iter().filter(|s| s.candidate.resize_rank() == 0) {
        let settings = view(devices, &s.candidate);
        match settings.get(property) {
            Some(SettingValue::Number(v)) => {
                lo = lo.min(v);
                hi = hi.max(v);
            }
            Some(SettingValue::Str(v)) => {
                if !strings.iter().any(|s| s == v) {
                    strings.push(v.to_owned());
                }
            }
            Some(SettingValue::Flag(f)) => {
                let name = match f {
                    Flag::Off => "false",
                    Flag::On => "true",
                    Flag::All => "all",
                    Flag::RemoteOnly => "remote-only",
                };
                if !strings.iter().any(|s| s == name) {
                    strings.push(name.to_owned());
                }
            }
            None => missing = true,
        }
    }
    if lo <= hi {
        let (lo, hi) = (JsonNumber(lo), JsonNumber(hi));
        if lo.0 == hi.0 {
            format!("devices offer {lo}")
        } else {
            format!("devices offer {lo} to {hi} natively")
        }
    } else if !strings.is_empty() {
        format!("devices offer {}", strings.join(", "))
    } else if missing {
        format!("no device reports {}", property.name())
    } else {
        "no candidates".into()
    }
}

/// Runs SelectSettings for a track of `kind` over `devices` (all of that kind, in
/// device order). No devices → `NotFoundError`; nothing satisfies the required
/// constraints → `OverconstrainedError`.
pub fn select_settings(
    kind: MediaKind,
    constraints: &MediaTrackConstraints,
    devices: &[&DeviceModel],
) -> Result<Selection, MediaError> {
    select_impl(kind, constraints, devices, false).0
}

/// Like [`select_settings`], and also reports every candidate with its distance.
pub fn explain_selection(
    kind: MediaKind,
    constraints: &MediaTrackConstraints,
    devices: &[&DeviceModel],
) -> (Result<Selection, MediaError>, Vec<CandidateReport>) {
    let (result, run) = select_impl(kind, constraints, devices, true);
    let reports = run
        .map(|run| {
            run.scored
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let device = devices[s.candidate.device];
                    let settings = s.candidate.to_settings(device);
                    CandidateReport {
                        device_id: device.device_id.clone(),
                        distance: s.distance.is_finite().then_some(s.distance),
                        unsatisfied: first_unmet_required(&constraints.basic, kind, &settings)
                            .map(Property::name),
                        settings,
                        eliminated_by_advanced: s.eliminated_by,
                        selected: run.winner == Some(i),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    (result, reports)
}

fn select_impl(
    kind: MediaKind,
    constraints: &MediaTrackConstraints,
    devices: &[&DeviceModel],
    explain: bool,
) -> (Result<Selection, MediaError>, Option<Run>) {
    if devices.is_empty() {
        let err = MediaError::NotFoundError {
            message: format!("no {} device is available", kind.device_kind()),
        };
        return (Err(err), None);
    }
    let mut run = run(kind, constraints, devices, !explain);
    if run.winner.is_none() && !explain {
        // Failure is the rare path: rerun over every candidate to name the constraint.
        run = self::run(kind, constraints, devices, false);
    }
    let result = match run.winner {
        Some(i) => {
            let s = &run.scored[i];
            let device_index = s.candidate.device;
            Ok(Selection {
                device_index,
                candidate: s.candidate,
                settings: s.candidate.to_settings(devices[device_index]),
                distance: s.distance,
            })
        }
        None => Err(overconstrained(kind, constraints, devices, &run.scored)),
    };
    (result, Some(run))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constraints::{
        AudioMode, DeviceModes, FacingMode, Flag, MediaStreamConstraints, ResizeMode,
    };

    fn camera(id: &str, facing: Option<FacingMode>, modes: &[(u32, u32, f64)]) -> DeviceModel {
        DeviceModel::test_camera(id, facing, modes)
    }

    fn builtin() -> DeviceModel {
        camera(
            "virtual-pattern",
            None,
            &[
                (320, 240, 30.0),
                (640, 480, 30.0),
                (1280, 720, 30.0),
                (1920, 1080, 30.0),
            ],
        )
    }

    fn select(json: &str, devices: &[&DeviceModel]) -> Result<MediaTrackSettings, MediaError> {
        let (c, _) = MediaStreamConstraints::from_json_str(json).unwrap();
        select_settings(MediaKind::Video, c.video.as_ref().unwrap(), devices).map(|s| s.settings)
    }

    fn size(s: &MediaTrackSettings) -> (u32, u32, f64, ResizeMode) {
        (
            s.width.unwrap(),
            s.height.unwrap(),
            s.frame_rate.unwrap(),
            s.resize_mode.unwrap(),
        )
    }

    #[test]
    fn defaults_pick_native_640x480() {
        let cam = builtin();
        let s = select(r#"{"video":true}"#, &[&cam]).unwrap();
        assert_eq!(size(&s), (640, 480, 30.0, ResizeMode::None));
    }

    #[test]
    fn ideal_prefers_exact_native_over_scaled() {
        let cam = builtin();
        let s = select(r#"{"video":{"width":1280,"height":720}}"#, &[&cam]).unwrap();
        assert_eq!(size(&s), (1280, 720, 30.0, ResizeMode::None));
    }

    #[test]
    fn crop_and_scale_when_it_fits_better() {
        let cam = builtin();
        let s = select(
            r#"{"video":{"width":{"exact":320},"height":{"exact":180}}}"#,
            &[&cam],
        )
        .unwrap();
        assert_eq!(size(&s), (320, 180, 30.0, ResizeMode::CropAndScale));
        let s = select(
            r#"{"video":{"resizeMode":{"exact":"none"},"width":1000}}"#,
            &[&cam],
        )
        .unwrap();
        assert_eq!(size(&s), (1280, 720, 30.0, ResizeMode::None));
    }

    #[test]
    fn overconstrained_names_the_constraint() {
        let cam = builtin();
        let e = select(r#"{"video":{"width":{"min":100000}}}"#, &[&cam]).unwrap_err();
        assert_eq!(e.constraint(), Some("width"));
        let e = select(r#"{"video":{"facingMode":{"exact":"user"}}}"#, &[&cam]).unwrap_err();
        assert_eq!(e.constraint(), Some("facingMode"));
        // Each satisfiable alone, not together.
        let e = select(
            r#"{"video":{"width":{"exact":1920},"frameRate":{"exact":60}}}"#,
            &[&camera("c", None, &[(1920, 1080, 30.0), (640, 480, 60.0)])],
        )
        .unwrap_err();
        assert_eq!(e.name(), "OverconstrainedError");
        assert!(e.message().contains("together"), "{}", e.message());
    }

    #[test]
    fn no_devices_is_not_found() {
        let e = select(r#"{"video":true}"#, &[]).unwrap_err();
        assert_eq!(e.name(), "NotFoundError");
    }

    #[test]
    fn advanced_sets_decide_between_devices_and_skip_the_impossible() {
        let front = camera("front", Some(FacingMode::User), &[(640, 480, 30.0)]);
        let back = camera("back", Some(FacingMode::Environment), &[(640, 480, 30.0)]);
        let s = select(
            r#"{"video":{"advanced":[{"width":99999},{"facingMode":"environment"}]}}"#,
            &[&front, &back],
        )
        .unwrap();
        assert_eq!(s.device_id.as_deref(), Some("back"));
    }

    #[test]
    fn advanced_can_be_met_by_scaling() {
        let cam = builtin();
        let s = select(
            r#"{"video":{"width":1280,"advanced":[{"width":400,"height":300}]}}"#,
            &[&cam],
        )
        .unwrap();
        assert_eq!((s.width, s.height), (Some(400), Some(300)));
    }

    #[test]
    fn advanced_sets_narrow_scaling_cumulatively() {
        let cam = builtin();
        let wh = |json: &str| {
            let s = select(json, &[&cam]).unwrap();
            (s.width.unwrap(), s.height.unwrap())
        };
        // Square, then 500 wide among squares.
        assert_eq!(
            wh(r#"{"video":{"advanced":[{"aspectRatio":1},{"width":500}]}}"#),
            (500, 500)
        );
        // A set the device cannot meet (no facing mode) is skipped: it does not narrow.
        assert_eq!(
            wh(r#"{"video":{"advanced":[{"facingMode":"user","aspectRatio":1},{"width":500}]}}"#),
            (500, 375)
        );
        // A set no mode can reach (wider than any) is skipped: the next still scales.
        assert_eq!(
            wh(r#"{"video":{"advanced":[{"width":5000},{"width":500,"height":500}]}}"#),
            (500, 500)
        );
        // Contradicting sets: the first wins, the second is skipped.
        assert_eq!(
            wh(r#"{"video":{"advanced":[{"width":300,"height":300},{"aspectRatio":2}]}}"#),
            (300, 300)
        );
    }

    #[test]
    fn frame_rates_agree_with_the_capabilities() {
        use crate::constraints::MediaTrackCapabilities;
        let cam = builtin();
        let caps = MediaTrackCapabilities::of_device(&cam);
        let min = caps.frame_rate.unwrap().min;
        assert_eq!(min, 1.0);
        // At the capability's minimum: frames dropped down to it.
        let s = select(r#"{"video":{"frameRate":{"exact":1}}}"#, &[&cam]).unwrap();
        assert_eq!(s.frame_rate, Some(1.0));
        // Below it: nothing, naming frameRate.
        let e = select(r#"{"video":{"frameRate":{"exact":0.5}}}"#, &[&cam]).unwrap_err();
        assert_eq!(e.constraint(), Some("frameRate"));
        let s = select(
            r#"{"video":{"frameRate":{"max":0.5, "ideal": 0.1}}}"#,
            &[&cam],
        );
        assert_eq!(s.unwrap_err().constraint(), Some("frameRate"));
        // An ideal below it is met as closely as allowed.
        let s = select(r#"{"video":{"frameRate":0.2}}"#, &[&cam]).unwrap();
        assert_eq!(s.frame_rate, Some(1.0));
        // A native mode slower than 1 fps stays selectable, and the capabilities say so.
        let slow = camera("slow", None, &[(640, 480, 0.5), (640, 480, 30.0)]);
        assert_eq!(
            MediaTrackCapabilities::of_device(&slow)
                .frame_rate
                .unwrap()
                .min,
            0.5
        );
        let s = select(r#"{"video":{"frameRate":{"exact":0.5}}}"#, &[&slow]).unwrap();
        assert_eq!(
            (s.frame_rate, s.resize_mode),
            (Some(0.5), Some(ResizeMode::None))
        );
    }

    #[test]
    fn ties_break_by_device_order() {
        let a = camera("a", None, &[(640, 480, 30.0)]);
        let b = camera("b", None, &[(640, 480, 30.0)]);
        assert_eq!(
            select(r#"{"video":true}"#, &[&a, &b])
                .unwrap()
                .device_id
                .as_deref(),
            Some("a")
        );
        assert_eq!(
            select(r#"{"video":true}"#, &[&b, &a])
                .unwrap()
                .device_id
                .as_deref(),
            Some("b")
        );
    }

    #[test]
    fn explain_marks_the_winner_and_the_failures() {
        let cam = builtin();
        let (c, _) =
            MediaStreamConstraints::from_json_str(r#"{"video":{"width":{"min":1000}}}"#).unwrap();
        let (res, reports) =
            explain_selection(MediaKind::Video, c.video.as_ref().unwrap(), &[&cam]);
        let sel = res.unwrap();
        assert_eq!(reports.iter().filter(|r| r.selected).count(), 1);
        assert!(reports
            .iter()
            .any(|r| r.distance.is_none() && r.unsatisfied == Some("width")));
        let winner = reports.iter().find(|r| r.selected).unwrap();
        assert_eq!(winner.settings, sel.settings);
    }

    #[test]
    fn audio_selection() {
        let mic = DeviceModel {
            device_id: "mic".into(),
            group_id: "g".into(),
            facing_mode: None,
            modes: DeviceModes::Audio {
                modes: vec![
                    AudioMode {
                        sample_rate: 48000,
                        channel_count: 1,
                        sample_size: 16,
                        latency: 0.01,
                    },
                    AudioMode {
                        sample_rate: 48000,
                        channel_count: 2,
                        sample_size: 16,
                        latency: 0.01,
                    },
                ],
                echo_cancellation: vec![Flag::Off],
                auto_gain_control: vec![false],
                noise_suppression: vec![false],
            },
        };
        let (c, _) =
            MediaStreamConstraints::from_json_str(r#"{"audio":{"channelCount":2}}"#).unwrap();
        let s = select_settings(MediaKind::Audio, c.audio.as_ref().unwrap(), &[&mic]).unwrap();
        assert_eq!(s.settings.channel_count, Some(2));
        let (c, _) = MediaStreamConstraints::from_json_str(
            r#"{"audio":{"echoCancellation":{"exact":true}}}"#,
        )
        .unwrap();
        let e = select_settings(MediaKind::Audio, c.audio.as_ref().unwrap(), &[&mic]).unwrap_err();
        assert_eq!(e.constraint(), Some("echoCancellation"));
    }
}
