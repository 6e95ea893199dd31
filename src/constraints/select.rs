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

use super::candidates::{self, Candidate, CandidateView};
use super::fitness::{constraint_distance, first_unmet_required, fitness_distance};
use super::model::DeviceModel;
use super::property::{MediaKind, Property};
use super::settings::{MediaTrackSettings, SettingValue, Settings};
use super::value::{Flag, MediaTrackConstraints};
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

/// The work of one selection, kept so that `--explain` can show it.
struct Run {
    scored: Vec<Scored>,
    winner: Option<usize>,
}

fn run(kind: MediaKind, constraints: &MediaTrackConstraints, devices: &[&DeviceModel]) -> Run {
    let mut cands = Vec::new();
    candidates::generate(devices, constraints, &mut cands);
    let mut scored: Vec<Scored> = cands
        .iter()
        .map(|c| Scored {
            candidate: *c,
            distance: fitness_distance(&constraints.basic, kind, &view(devices, c)),
            eliminated_by: None,
        })
        .collect();

    let mut satisfies = vec![false; scored.len()];
    for (k, set) in constraints.advanced.iter().enumerate() {
        let mut any = false;
        for (i, s) in scored.iter().enumerate() {
            satisfies[i] =
                s.alive() && fitness_distance(set, kind, &view(devices, &s.candidate)).is_finite();
            any |= satisfies[i];
        }
        if any {
            for (s, ok) in scored.iter_mut().zip(&satisfies) {
                if s.alive() && !ok {
                    s.eliminated_by = Some(k);
                }
            }
        }
    }

    let winner = scored
        .iter()
        .enumerate()
        .filter(|(_, s)| s.alive())
        .min_by(|(ia, a), (ib, b)| compare(a, b).then(ia.cmp(ib)))
        .map(|(i, _)| i);
    Run { scored, winner }
}

/// Orders candidates best first: distance, then resizeMode none, then default closeness.
/// Equal candidates keep their generation order (device order, then mode order).
fn compare(a: &Scored, b: &Scored) -> Ordering {
    if (a.distance - b.distance).abs() > TIE {
        return a.distance.total_cmp(&b.distance);
    }
    a.candidate
        .resize_rank()
        .cmp(&b.candidate.resize_rank())
        .then_with(|| {
            let (ca, cb) = (
                a.candidate.default_closeness(),
                b.candidate.default_closeness(),
            );
            if (ca - cb).abs() > TIE {
                ca.total_cmp(&cb)
            } else {
                Ordering::Equal
            }
        })
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
        let (lo, hi) = (JsonNum(lo), JsonNum(hi));
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

/// Formats integral numbers without a fraction.
struct JsonNum(f64);

impl std::fmt::Display for JsonNum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.fract() == 0.0 && self.0.abs() < 1e15 {
            write!(f, "{}", self.0 as i64)
        } else {
            write!(f, "{}", self.0)
        }
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
    select_impl(kind, constraints, devices).0
}

/// Like [`select_settings`], and also reports every candidate with its distance.
pub fn explain_selection(
    kind: MediaKind,
    constraints: &MediaTrackConstraints,
    devices: &[&DeviceModel],
) -> (Result<Selection, MediaError>, Vec<CandidateReport>) {
    let (result, run) = select_impl(kind, constraints, devices);
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
) -> (Result<Selection, MediaError>, Option<Run>) {
    if devices.is_empty() {
        let err = MediaError::NotFoundError {
            message: format!("no {} device is available", kind.device_kind()),
        };
        return (Err(err), None);
    }
    let run = run(kind, constraints, devices);
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
        AudioMode, DeviceModes, FacingMode, Flag, MediaStreamConstraints, ResizeMode, VideoMode,
    };

    fn camera(id: &str, facing: Option<FacingMode>, modes: &[(u32, u32, f64)]) -> DeviceModel {
        DeviceModel {
            device_id: id.into(),
            group_id: format!("{id}-group"),
            facing_mode: facing,
            modes: DeviceModes::Video(
                modes
                    .iter()
                    .map(|&(width, height, frame_rate)| VideoMode {
                        width,
                        height,
                        frame_rate,
                    })
                    .collect(),
            ),
        }
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
