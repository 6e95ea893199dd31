//! The spec's fitness distance between a constraint set and a settings dictionary.

use super::property::{MediaKind, Property};
use super::settings::{SettingValue, Settings};
use super::value::{Constraint, ConstraintSet, NumberConstraint};

/// Distance of one constraint on `property` against a settings dictionary: 0 is a perfect
/// fit, `f64::INFINITY` means a required part is unmet.
///
/// - A property that does not apply to `kind` adds 0.
/// - A property this kind has but the settings lack adds 1 for an ideal, infinity for a
///   required constraint (a camera without facingMode asked for `{exact: "user"}`).
/// - Numbers: |actual − ideal| / max(|actual|, |ideal|). Strings and booleans: 0 if equal
///   (or in the list), else 1.
pub fn constraint_distance<S: Settings + ?Sized>(
    property: Property,
    constraint: &Constraint,
    kind: MediaKind,
    settings: &S,
) -> f64 {
    if !property.applies_to(kind) {
        return 0.0;
    }
    let required = constraint.is_required();
    let Some(actual) = settings.get(property) else {
        let has_ideal = match constraint {
            Constraint::Number(n) => n.ideal.is_some(),
            Constraint::String(s) => s.ideal.is_some(),
            Constraint::Flag(f) => f.ideal.is_some(),
        };
        return if required {
            f64::INFINITY
        } else if has_ideal {
            1.0
        } else {
            0.0
        };
    };
    match (constraint, actual) {
        (Constraint::Number(n), SettingValue::Number(v)) => number_distance(n, v),
        (Constraint::String(s), SettingValue::Str(v)) => {
            if let Some(exact) = &s.exact {
                if !exact.iter().any(|e| e == v) {
                    return f64::INFINITY;
                }
            }
            match &s.ideal {
                Some(ideal) if !ideal.iter().any(|i| i == v) => 1.0,
                _ => 0.0,
            }
        }
        (Constraint::Flag(f), SettingValue::Flag(v)) => {
            if let Some(exact) = f.exact {
                if !v.satisfies(exact) {
                    return f64::INFINITY;
                }
            }
            match f.ideal {
                Some(ideal) if !v.satisfies(ideal) => 1.0,
                _ => 0.0,
            }
        }
        // A settings value of another type than the constraint's cannot satisfy it.
        _ => {
            if required {
                f64::INFINITY
            } else {
                1.0
            }
        }
    }
}

/// Distance of a numeric constraint against a value the settings have: infinity when a
/// required member is unmet, else |actual − ideal| / max(|actual|, |ideal|) (0 without an
/// ideal). Shared with selection's fast scorer, so both compute bit-identical distances.
#[inline]
pub(crate) fn number_distance(n: &NumberConstraint, v: f64) -> f64 {
    if !n.is_met_by(v) {
        return f64::INFINITY;
    }
    match n.ideal {
        Some(ideal) => {
            // `v.abs().max(ideal.abs())` by comparison: the ideal is never NaN (JSON has
            // none), and a NaN `v` gives the ideal's magnitude either way.
            let (a, b) = (v.abs(), ideal.abs());
            let denom = if a > b { a } else { b };
            if denom == 0.0 {
                0.0
            } else {
                (v - ideal).abs() / denom
            }
        }
        None => 0.0,
    }
}

/// The fitness distance of a whole constraint set: the sum over its constraints, infinity
/// as soon as one required constraint is unmet.
pub fn fitness_distance<S: Settings + ?Sized>(
    set: &ConstraintSet,
    kind: MediaKind,
    settings: &S,
) -> f64 {
    let mut total = 0.0;
    for (property, constraint) in set.iter() {
        let d = constraint_distance(property, constraint, kind, settings);
        if d == f64::INFINITY {
            return d;
        }
        total += d;
    }
    total
}

/// The first (in canonical order) required constraint of `set` that `settings` fails.
pub fn first_unmet_required<S: Settings + ?Sized>(
    set: &ConstraintSet,
    kind: MediaKind,
    settings: &S,
) -> Option<Property> {
    set.iter()
        .find(|(p, c)| c.is_required() && constraint_distance(*p, c, kind, settings).is_infinite())
        .map(|(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constraints::settings::MediaTrackSettings;
    use crate::constraints::value::{Flag, FlagConstraint, NumberConstraint, StringConstraint};
    use crate::constraints::{FacingMode, ResizeMode};

    fn camera(width: u32, height: u32, fps: f64, facing: Option<FacingMode>) -> MediaTrackSettings {
        MediaTrackSettings {
            device_id: Some("cam".into()),
            group_id: Some("g".into()),
            width: Some(width),
            height: Some(height),
            aspect_ratio: Some(width as f64 / height as f64),
            frame_rate: Some(fps),
            facing_mode: facing,
            resize_mode: Some(ResizeMode::None),
            ..Default::default()
        }
    }

    fn num(f: impl FnOnce(&mut NumberConstraint)) -> Constraint {
        let mut n = NumberConstraint::default();
        f(&mut n);
        Constraint::Number(n)
    }

    fn strs(exact: Option<&[&str]>, ideal: Option<&[&str]>) -> Constraint {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Constraint::String(StringConstraint {
            exact: exact.map(own),
            ideal: ideal.map(own),
        })
    }

    const V: MediaKind = MediaKind::Video;

    #[test]
    fn numbers_relative_distance() {
        let s = camera(640, 480, 30.0, None);
        let d = constraint_distance(Property::Width, &num(|n| n.ideal = Some(1280.0)), V, &s);
        assert!((d - 0.5).abs() < 1e-12);
        let d = constraint_distance(Property::Width, &num(|n| n.ideal = Some(320.0)), V, &s);
        assert!((d - 0.5).abs() < 1e-12);
        let d = constraint_distance(Property::Width, &num(|n| n.ideal = Some(640.0)), V, &s);
        assert_eq!(d, 0.0);
        let d = constraint_distance(Property::FrameRate, &num(|n| n.ideal = Some(0.0)), V, &s);
        assert_eq!(d, 1.0);
    }

    #[test]
    fn numbers_required() {
        let s = camera(640, 480, 30.0, None);
        let inf = f64::INFINITY;
        let d = |c: Constraint| constraint_distance(Property::Width, &c, V, &s);
        assert_eq!(d(num(|n| n.min = Some(641.0))), inf);
        assert_eq!(d(num(|n| n.max = Some(639.0))), inf);
        assert_eq!(d(num(|n| n.exact = Some(641.0))), inf);
        assert_eq!(d(num(|n| n.min = Some(640.0))), 0.0);
        // Required and met, plus an ideal: the ideal still counts.
        let both = num(|n| {
            n.min = Some(320.0);
            n.ideal = Some(1280.0)
        });
        assert!((d(both) - 0.5).abs() < 1e-12);
        // min > max can never be met.
        let inverted = num(|n| {
            n.min = Some(700.0);
            n.max = Some(600.0)
        });
        assert_eq!(d(inverted), inf);
    }

    #[test]
    fn strings_and_lists() {
        let s = camera(640, 480, 30.0, Some(FacingMode::User));
        let d = |c: Constraint| constraint_distance(Property::FacingMode, &c, V, &s);
        assert_eq!(d(strs(None, Some(&["user"]))), 0.0);
        assert_eq!(d(strs(None, Some(&["environment"]))), 1.0);
        assert_eq!(d(strs(None, Some(&["environment", "user"]))), 0.0);
        assert_eq!(d(strs(Some(&["environment"]), None)), f64::INFINITY);
        assert_eq!(d(strs(Some(&["left", "user"]), None)), 0.0);
        assert_eq!(d(strs(Some(&[]), None)), f64::INFINITY);
    }

    #[test]
    fn booleans() {
        let s = MediaTrackSettings {
            auto_gain_control: Some(false),
            echo_cancellation: Some(Flag::All),
            ..Default::default()
        };
        let a = MediaKind::Audio;
        let flag = |exact, ideal| Constraint::Flag(FlagConstraint { exact, ideal });
        let d = |p, c: Constraint| constraint_distance(p, &c, a, &s);
        assert_eq!(
            d(Property::AutoGainControl, flag(None, Some(Flag::Off))),
            0.0
        );
        assert_eq!(
            d(Property::AutoGainControl, flag(None, Some(Flag::On))),
            1.0
        );
        assert_eq!(
            d(Property::AutoGainControl, flag(Some(Flag::On), None)),
            f64::INFINITY
        );
        assert_eq!(
            d(Property::EchoCancellation, flag(Some(Flag::On), None)),
            0.0
        );
        assert_eq!(
            d(
                Property::EchoCancellation,
                flag(None, Some(Flag::RemoteOnly))
            ),
            1.0
        );
    }

    #[test]
    fn missing_property_and_non_applicable_kind() {
        let s = camera(640, 480, 30.0, None);
        let d = |c: Constraint| constraint_distance(Property::FacingMode, &c, V, &s);
        assert_eq!(d(strs(None, Some(&["user"]))), 1.0);
        assert_eq!(d(strs(Some(&["user"]), None)), f64::INFINITY);
        assert_eq!(d(strs(None, None)), 0.0);
        // sampleRate on a camera: does not apply, adds 0 even when required.
        let c = num(|n| n.exact = Some(48000.0));
        assert_eq!(constraint_distance(Property::SampleRate, &c, V, &s), 0.0);
    }

    #[test]
    fn set_sums_and_names_the_first_unmet() {
        let s = camera(640, 480, 30.0, None);
        let set = ConstraintSet::new()
            .with(Property::Width, num(|n| n.ideal = Some(1280.0)))
            .with(Property::Height, num(|n| n.ideal = Some(960.0)));
        assert!((fitness_distance(&set, V, &s) - 1.0).abs() < 1e-12);
        let set = set
            .with(Property::FrameRate, num(|n| n.min = Some(60.0)))
            .with(Property::FacingMode, strs(Some(&["user"]), None));
        assert_eq!(fitness_distance(&set, V, &s), f64::INFINITY);
        assert_eq!(first_unmet_required(&set, V, &s), Some(Property::FrameRate));
    }
}
