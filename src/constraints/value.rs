//! The MediaStreamConstraints model: typed constraint values, constraint sets and the
//! per-kind track constraints. Parsing lives in `parse.rs`; this file holds the data and
//! serializes it back to the JSON a web developer writes.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::property::{MediaKind, Property};

/// Tolerance for comparing doubles in `exact`/`min`/`max` (aspect ratios and frame rates
/// come out of divisions, so bit-exact comparison would reject what the user meant).
pub const EPSILON: f64 = 1e-6;

/// A value of echoCancellation (and, restricted to booleans, of autoGainControl and
/// noiseSuppression): `false`, `true`, `"all"` or `"remote-only"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    Off,
    /// `true`: on, the mode left to the implementation.
    On,
    /// `"all"`: cancel all system-generated audio.
    All,
    /// `"remote-only"`: cancel only audio that came from remote peers.
    RemoteOnly,
}

impl Flag {
    /// `false`/`true` as a flag.
    pub fn from_bool(b: bool) -> Flag {
        if b {
            Flag::On
        } else {
            Flag::Off
        }
    }

    /// Parses `"all"` / `"remote-only"`.
    pub fn from_mode(s: &str) -> Option<Flag> {
        match s {
            "all" => Some(Flag::All),
            "remote-only" => Some(Flag::RemoteOnly),
            _ => None,
        }
    }

    /// Whether a setting of `self` satisfies a constraint value of `wanted`. `true` asks for
    /// any form of cancellation; `"all"` is met by a device that only says `true`, since
    /// such a device cancels what it can.
    pub fn satisfies(self, wanted: Flag) -> bool {
        match wanted {
            Flag::Off => self == Flag::Off,
            Flag::On => self != Flag::Off,
            Flag::All => matches!(self, Flag::All | Flag::On),
            Flag::RemoteOnly => self == Flag::RemoteOnly,
        }
    }
}

impl Serialize for Flag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Flag::Off => serializer.serialize_bool(false),
            Flag::On => serializer.serialize_bool(true),
            Flag::All => serializer.serialize_str("all"),
            Flag::RemoteOnly => serializer.serialize_str("remote-only"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Str(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Bool(b) => Ok(Flag::from_bool(b)),
            Raw::Str(s) => Flag::from_mode(&s).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid echoCancellation value {s:?}: expected false, true, \"all\" or \"remote-only\""
                ))
            }),
        }
    }
}

/// `ConstrainULong` / `ConstrainDouble`. Any of the members may be absent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NumberConstraint {
    pub exact: Option<f64>,
    pub ideal: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl NumberConstraint {
    /// Whether `value` meets the required members (exact, min, max).
    #[inline]
    pub fn is_met_by(&self, value: f64) -> bool {
        // `value.abs().max(1.0)` by comparison (NaN gives 1.0 either way): this runs per
        // candidate and constraint.
        let magnitude = value.abs();
        let tol = EPSILON * if magnitude > 1.0 { magnitude } else { 1.0 };
        if let Some(exact) = self.exact {
            if (value - exact).abs() > tol {
                return false;
            }
        }
        if let Some(min) = self.min {
            if value < min - tol {
                return false;
            }
        }
        if let Some(max) = self.max {
            if value > max + tol {
                return false;
            }
        }
        true
    }

    /// The narrowest closed range the required members allow.
    pub fn required_range(&self) -> (f64, f64) {
        let mut lo = self.min.unwrap_or(f64::NEG_INFINITY);
        let mut hi = self.max.unwrap_or(f64::INFINITY);
        if let Some(exact) = self.exact {
            lo = lo.max(exact);
            hi = hi.min(exact);
        }
        (lo, hi)
    }

    fn is_required(&self) -> bool {
        self.exact.is_some() || self.min.is_some() || self.max.is_some()
    }
}

/// `ConstrainDOMString`: each member a list of acceptable strings (a single string is a
/// one-element list).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StringConstraint {
    pub exact: Option<Vec<String>>,
    pub ideal: Option<Vec<String>>,
}

/// `ConstrainBoolean` / `ConstrainBooleanOrDOMString`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FlagConstraint {
    pub exact: Option<Flag>,
    pub ideal: Option<Flag>,
}

/// A number that serializes and displays as an integer when it is one (`640`, not
/// `640.0`), so constraints print back the way people write them.
pub(crate) struct JsonNumber(pub f64);

impl std::fmt::Display for JsonNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.fract() == 0.0 && self.0.abs() < 1e15 {
            write!(f, "{}", self.0 as i64)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl Serialize for JsonNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const EXACT_INT: f64 = 9_007_199_254_740_992.0; // 2^53
        if self.0.fract() == 0.0 && self.0.abs() < EXACT_INT {
            serializer.serialize_i64(self.0 as i64)
        } else {
            serializer.serialize_f64(self.0)
        }
    }
}

/// One constraint value; the variant follows the property's [`ValueType`](super::ValueType).
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    Number(NumberConstraint),
    String(StringConstraint),
    Flag(FlagConstraint),
}

impl Constraint {
    /// Whether the constraint has a required member (`exact`, `min` or `max`).
    pub fn is_required(&self) -> bool {
        match self {
            Constraint::Number(n) => n.is_required(),
            Constraint::String(s) => s.exact.is_some(),
            Constraint::Flag(f) => f.exact.is_some(),
        }
    }

    /// The required part only (ideal dropped): what `OverconstrainedError` talks about.
    pub fn required_part(&self) -> Constraint {
        match self {
            Constraint::Number(n) => Constraint::Number(NumberConstraint { ideal: None, ..*n }),
            Constraint::String(s) => Constraint::String(StringConstraint {
                exact: s.exact.clone(),
                ideal: None,
            }),
            Constraint::Flag(f) => Constraint::Flag(FlagConstraint {
                exact: f.exact,
                ideal: None,
            }),
        }
    }
}

impl Serialize for Constraint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self {
            Constraint::Number(n) => {
                for (key, value) in [
                    ("exact", n.exact),
                    ("ideal", n.ideal),
                    ("min", n.min),
                    ("max", n.max),
                ] {
                    if let Some(v) = value {
                        map.serialize_entry(key, &JsonNumber(v))?;
                    }
                }
            }
            Constraint::String(s) => {
                for (key, value) in [("exact", &s.exact), ("ideal", &s.ideal)] {
                    match value.as_deref() {
                        Some([one]) => map.serialize_entry(key, one)?,
                        Some(list) => map.serialize_entry(key, list)?,
                        None => {}
                    }
                }
            }
            Constraint::Flag(f) => {
                for (key, value) in [("exact", f.exact), ("ideal", f.ideal)] {
                    if let Some(v) = value {
                        map.serialize_entry(key, &v)?;
                    }
                }
            }
        }
        map.end()
    }
}

/// A `MediaTrackConstraintSet`: at most one constraint per property, kept in the
/// canonical property order so evaluation never depends on the order of JSON keys.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConstraintSet {
    entries: Vec<(Property, Constraint)>,
}

impl ConstraintSet {
    /// An empty set: every settings dictionary has distance 0 against it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the constraint on `property`, replacing an earlier one.
    pub fn insert(&mut self, property: Property, constraint: Constraint) {
        match self.entries.binary_search_by_key(&property, |(p, _)| *p) {
            Ok(i) => self.entries[i].1 = constraint,
            Err(i) => self.entries.insert(i, (property, constraint)),
        }
    }

    /// Builder form of [`insert`](Self::insert).
    pub fn with(mut self, property: Property, constraint: Constraint) -> Self {
        self.insert(property, constraint);
        self
    }

    /// The constraint on `property`, if any.
    pub fn get(&self, property: Property) -> Option<&Constraint> {
        self.entries
            .binary_search_by_key(&property, |(p, _)| *p)
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// The constraints in canonical property order.
    pub fn iter(&self) -> impl Iterator<Item = (Property, &Constraint)> {
        self.entries.iter().map(|(p, c)| (*p, c))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The number constraint on `property`, if the set has one.
    pub fn number(&self, property: Property) -> Option<&NumberConstraint> {
        match self.get(property) {
            Some(Constraint::Number(n)) => Some(n),
            _ => None,
        }
    }
}

impl Serialize for ConstraintSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (property, constraint) in &self.entries {
            map.serialize_entry(property.name(), constraint)?;
        }
        map.end()
    }
}

/// `MediaTrackConstraints`: the basic set plus the ordered `advanced` sets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaTrackConstraints {
    pub basic: ConstraintSet,
    pub advanced: Vec<ConstraintSet>,
}

impl MediaTrackConstraints {
    /// No constraints at all (what `video: true` means).
    pub fn unconstrained() -> Self {
        Self::default()
    }

    /// Parses the JSON of one track's constraints (as given to `applyConstraints`), for a
    /// track of `kind`. Returns the constraints and the warnings about ignored keys.
    pub fn from_json_str(
        json: &str,
        kind: MediaKind,
    ) -> Result<(Self, Vec<String>), super::ConstraintsError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(super::ConstraintsError::Json)?;
        let mut warnings = Vec::new();
        let parsed = super::parse::track_constraints(&value, kind, kind.as_str(), &mut warnings)
            .map_err(super::ConstraintsError::Type)?;
        Ok((parsed, warnings))
    }
}

impl Serialize for MediaTrackConstraints {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (property, constraint) in self.basic.iter() {
            map.serialize_entry(property.name(), constraint)?;
        }
        if !self.advanced.is_empty() {
            map.serialize_entry("advanced", &self.advanced)?;
        }
        map.end()
    }
}

/// `MediaStreamConstraints`: which kinds are requested and how. `None` = not requested.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaStreamConstraints {
    pub audio: Option<MediaTrackConstraints>,
    pub video: Option<MediaTrackConstraints>,
}

impl MediaStreamConstraints {
    /// The constraints for `kind`, if that kind is requested.
    pub fn for_kind(&self, kind: MediaKind) -> Option<&MediaTrackConstraints> {
        match kind {
            MediaKind::Audio => self.audio.as_ref(),
            MediaKind::Video => self.video.as_ref(),
        }
    }

    /// `{video: true}`-style constraints.
    pub fn kinds(audio: bool, video: bool) -> Self {
        MediaStreamConstraints {
            audio: audio.then(MediaTrackConstraints::unconstrained),
            video: video.then(MediaTrackConstraints::unconstrained),
        }
    }
}

impl Serialize for MediaStreamConstraints {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        for (key, value) in [("audio", &self.audio), ("video", &self.video)] {
            match value {
                None => map.serialize_entry(key, &false)?,
                Some(c) if c.basic.is_empty() && c.advanced.is_empty() => {
                    map.serialize_entry(key, &true)?
                }
                Some(c) => map.serialize_entry(key, c)?,
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_keeps_canonical_order_and_replaces() {
        let n = |v| {
            Constraint::Number(NumberConstraint {
                ideal: Some(v),
                ..Default::default()
            })
        };
        let mut set = ConstraintSet::new();
        set.insert(Property::FrameRate, n(30.0));
        set.insert(Property::Width, n(640.0));
        set.insert(Property::Width, n(1280.0));
        let props: Vec<_> = set.iter().map(|(p, _)| p).collect();
        assert_eq!(props, vec![Property::Width, Property::FrameRate]);
        assert_eq!(set.number(Property::Width).unwrap().ideal, Some(1280.0));
    }

    #[test]
    fn number_constraint_ranges() {
        let c = NumberConstraint {
            min: Some(100.0),
            max: Some(200.0),
            ..Default::default()
        };
        assert!(c.is_met_by(100.0) && c.is_met_by(200.0));
        assert!(!c.is_met_by(99.0) && !c.is_met_by(201.0));
        let inverted = NumberConstraint {
            min: Some(300.0),
            max: Some(200.0),
            ..Default::default()
        };
        assert!((0..1000).all(|v| !inverted.is_met_by(v as f64)));
        let exact = NumberConstraint {
            exact: Some(16.0 / 9.0),
            ..Default::default()
        };
        assert!(exact.is_met_by(1280.0 / 720.0));
        assert!(!exact.is_met_by(4.0 / 3.0));
    }

    #[test]
    fn echo_flags() {
        assert!(Flag::All.satisfies(Flag::On));
        assert!(Flag::RemoteOnly.satisfies(Flag::On));
        assert!(!Flag::Off.satisfies(Flag::On));
        assert!(Flag::On.satisfies(Flag::All));
        assert!(!Flag::RemoteOnly.satisfies(Flag::All));
        assert!(Flag::Off.satisfies(Flag::Off));
        assert!(!Flag::All.satisfies(Flag::Off));
    }

    #[test]
    fn serializes_like_web_json() {
        let set = ConstraintSet::new()
            .with(
                Property::FacingMode,
                Constraint::String(StringConstraint {
                    exact: Some(vec!["user".into()]),
                    ideal: None,
                }),
            )
            .with(
                Property::Width,
                Constraint::Number(NumberConstraint {
                    min: Some(640.0),
                    ..Default::default()
                }),
            );
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(
            json,
            r#"{"width":{"min":640},"facingMode":{"exact":"user"}}"#
        );
    }
}
