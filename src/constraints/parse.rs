//! JSON → [`MediaStreamConstraints`], with the spec's TypeErrors and browser-like leniency.
//!
//! Written over `serde_json::Value` rather than derived: the rules (bare value = ideal, but
//! exact inside `advanced`; constraints of the other kind ignored even when malformed;
//! unknown keys ignored with a warning; errors naming the exact key path) are not what a
//! derive can express, and the messages are the user-facing part.

use serde_json::{Map, Value};

use super::legacy;
use super::property::{MediaKind, Property, ValueType};
use super::value::{
    Constraint, ConstraintSet, Flag, FlagConstraint, MediaStreamConstraints, MediaTrackConstraints,
    NumberConstraint, StringConstraint,
};
use crate::error::MediaError;

/// Why constraints JSON could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConstraintsError {
    /// Not JSON at all; the message carries line and column.
    #[error("invalid constraints JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// Valid JSON that breaks the spec's rules: a `TypeError`.
    #[error(transparent)]
    Type(MediaError),
}

impl MediaStreamConstraints {
    /// Parses getUserMedia's argument from JSON text. Returns the constraints and the
    /// warnings about ignored keys (each names the key path).
    pub fn from_json_str(json: &str) -> Result<(Self, Vec<String>), ConstraintsError> {
        let value: Value = serde_json::from_str(json).map_err(ConstraintsError::Json)?;
        MediaStreamConstraints::from_json_value(&value).map_err(ConstraintsError::Type)
    }

    /// Parses getUserMedia's argument from a JSON value; see [`from_json_str`](Self::from_json_str).
    /// On a `TypeError` the warnings gathered so far go to the log (the caller gets only
    /// the error, and an ignored key is often the reason for it).
    pub fn from_json_value(value: &Value) -> Result<(Self, Vec<String>), MediaError> {
        let mut warnings = Vec::new();
        match stream_constraints(value, &mut warnings) {
            Ok(parsed) => Ok((parsed, warnings)),
            Err(e) => {
                for w in warnings {
                    tracing::warn!("{w}");
                }
                Err(e)
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for MediaStreamConstraints {
    /// Deserializes with the same rules as [`MediaStreamConstraints::from_json_value`];
    /// warnings about ignored keys go to the log.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let (parsed, warnings) =
            MediaStreamConstraints::from_json_value(&value).map_err(serde::de::Error::custom)?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        Ok(parsed)
    }
}

pub(super) fn type_name(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string ({s:?})"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn wrong_type(path: &str, expected: &str, got: &Value) -> MediaError {
    MediaError::type_error(format!(
        "{path}: expected {expected}, got {}",
        type_name(got)
    ))
}

pub(crate) fn stream_constraints(
    value: &Value,
    warnings: &mut Vec<String>,
) -> Result<MediaStreamConstraints, MediaError> {
    let obj = value
        .as_object()
        .ok_or_else(|| wrong_type("constraints", "an object like {\"video\": true}", value))?;
    let mut result = MediaStreamConstraints::default();
    // Unknown top-level keys, with a suggestion: named again in the TypeError below, since
    // a lone typo (`{"vidoe": true}`) would otherwise be an error that hides its cause.
    let mut unknown = Vec::new();
    for (key, v) in obj {
        match key.as_str() {
            "audio" => result.audio = kind_request(v, MediaKind::Audio, warnings)?,
            "video" => result.video = kind_request(v, MediaKind::Video, warnings)?,
            other => {
                let hint = ["audio", "video"]
                    .into_iter()
                    .find(|known| is_probable_typo(other, known))
                    .map(|known| format!("; did you mean {known:?}?"))
                    .unwrap_or_default();
                warnings.push(format!(
                    "unknown key {other:?} in getUserMedia constraints ignored (expected \"audio\" or \"video\"{hint})"
                ));
                unknown.push(format!("ignored unknown key {other:?}{hint}"));
            }
        }
    }
    if result.audio.is_none() && result.video.is_none() {
        let mut message = String::from(
            "at least one of audio and video must be requested (true or a constraints object)",
        );
        if !unknown.is_empty() {
            message.push_str(&format!(" ({})", unknown.join(", ")));
        }
        return Err(MediaError::type_error(message));
    }
    Ok(result)
}

/// Whether `key` is plausibly a misspelling of `known`: equal ignoring case, or at most one
/// edit apart counting a swap of two neighbours as one edit (`vidoe`, `vide`, `auido`).
pub(super) fn is_probable_typo(key: &str, known: &str) -> bool {
    if key.eq_ignore_ascii_case(known) {
        return true;
    }
    let a: Vec<char> = key.to_lowercase().chars().collect();
    let b: Vec<char> = known.chars().collect();
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    // Optimal string alignment distance, small inputs only (keys of a few characters).
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()] <= 1
}

fn kind_request(
    v: &Value,
    kind: MediaKind,
    warnings: &mut Vec<String>,
) -> Result<Option<MediaTrackConstraints>, MediaError> {
    match v {
        Value::Bool(false) => Ok(None),
        // WebIDL converts null to the dictionary of a union that has one — `(boolean or
        // MediaTrackConstraints)` is not nullable — so `null` is `{}`: requested. (An
        // absent key is JavaScript's undefined for a dictionary member: the default, false.)
        Value::Null => Ok(Some(MediaTrackConstraints::unconstrained())),
        Value::Bool(true) => Ok(Some(MediaTrackConstraints::unconstrained())),
        Value::Object(_) => track_constraints(v, kind, kind.as_str(), warnings).map(Some),
        other => Err(wrong_type(
            kind.as_str(),
            "true, false or a constraints object",
            other,
        )),
    }
}

/// Parses one track's `MediaTrackConstraints` object found at `path`.
pub(crate) fn track_constraints(
    value: &Value,
    kind: MediaKind,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<MediaTrackConstraints, MediaError> {
    let obj = value
        .as_object()
        .ok_or_else(|| wrong_type(path, "a constraints object", value))?;
    // The legacy syntax (`mandatory`/`optional`) becomes the modern dictionary first; its
    // values are checked there, so the modern parse of the translation cannot fail.
    if let Some(translated) = legacy::translate(obj, path, warnings)? {
        return track_constraints(&translated, kind, path, warnings);
    }
    let mut result = MediaTrackConstraints {
        basic: constraint_set(obj, kind, path, false, warnings)?,
        advanced: Vec::new(),
    };
    if let Some(adv) = obj.get("advanced") {
        let adv_path = format!("{path}.advanced");
        match adv {
            // WebIDL: null is not a sequence (unlike a dictionary, which null converts to).
            Value::Array(sets) => {
                for (i, set) in sets.iter().enumerate() {
                    let set_path = format!("{adv_path}[{i}]");
                    let set_obj = set
                        .as_object()
                        .ok_or_else(|| wrong_type(&set_path, "a constraint set object", set))?;
                    if set_obj.contains_key("advanced") {
                        warnings.push(format!(
                            "{set_path}.advanced: nested advanced sets are not allowed, ignored"
                        ));
                    }
                    result
                        .advanced
                        .push(constraint_set(set_obj, kind, &set_path, true, warnings)?);
                }
            }
            other => return Err(wrong_type(&adv_path, "an array of constraint sets", other)),
        }
    }
    Ok(result)
}

fn constraint_set(
    obj: &Map<String, Value>,
    kind: MediaKind,
    path: &str,
    advanced: bool,
    warnings: &mut Vec<String>,
) -> Result<ConstraintSet, MediaError> {
    let mut set = ConstraintSet::new();
    for (key, v) in obj {
        if key == "advanced" {
            continue;
        }
        let key_path = format!("{path}.{key}");
        let Some(property) = Property::from_name(key) else {
            let hint = Property::ALL
                .into_iter()
                .find(|p| p.name().eq_ignore_ascii_case(key))
                .map(|p| format!(" (did you mean {:?}?)", p.name()))
                .or_else(|| {
                    legacy::is_legacy_key(key).then(|| {
                        " (a legacy key: it belongs inside \"mandatory\" or \"optional\")"
                            .to_owned()
                    })
                })
                .unwrap_or_default();
            warnings.push(format!("{key_path}: unknown constraint ignored{hint}"));
            continue;
        };
        if !property.applies_to(kind) {
            // Constraints meant for the other kind are ignored, valid or not.
            tracing::debug!("{key_path}: does not apply to {kind} tracks, ignored");
            continue;
        }
        set.insert(
            property,
            constraint(v, property, &key_path, advanced, warnings)?,
        );
    }
    Ok(set)
}

fn constraint(
    v: &Value,
    property: Property,
    path: &str,
    advanced: bool,
    warnings: &mut Vec<String>,
) -> Result<Constraint, MediaError> {
    match property.value_type() {
        ValueType::Long | ValueType::Double => {
            number_constraint(v, property, path, advanced, warnings).map(Constraint::Number)
        }
        ValueType::String => string_constraint(v, path, advanced, warnings).map(Constraint::String),
        ValueType::Boolean | ValueType::BooleanOrMode => {
            let modes = property.value_type() == ValueType::BooleanOrMode;
            flag_constraint(v, path, advanced, modes, warnings).map(Constraint::Flag)
        }
    }
}

/// Splits a dictionary value into its known members, warning about the others.
fn members<'a>(
    obj: &'a Map<String, Value>,
    allowed: &[&str],
    path: &str,
    warnings: &mut Vec<String>,
) -> Vec<(&'a str, &'a Value)> {
    let mut out = Vec::new();
    for (key, value) in obj {
        if allowed.contains(&key.as_str()) {
            if !value.is_null() {
                out.push((key.as_str(), value));
            }
        } else {
            warnings.push(format!(
                "{path}.{key}: unknown member ignored (expected one of {})",
                allowed.join(", ")
            ));
        }
    }
    out
}

fn number_value(v: &Value, property: Property, path: &str) -> Result<f64, MediaError> {
    let n = v.as_f64().ok_or_else(|| wrong_type(path, "a number", v))?;
    // WebIDL's `long` conversion truncates fractions.
    Ok(if property.value_type() == ValueType::Long {
        n.trunc()
    } else {
        n
    })
}

fn number_constraint(
    v: &Value,
    property: Property,
    path: &str,
    advanced: bool,
    warnings: &mut Vec<String>,
) -> Result<NumberConstraint, MediaError> {
    let mut c = NumberConstraint::default();
    match v {
        Value::Null => {}
        Value::Number(_) => {
            let n = number_value(v, property, path)?;
            if advanced {
                c.exact = Some(n);
            } else {
                c.ideal = Some(n);
            }
        }
        Value::Object(obj) => {
            for (key, value) in members(obj, &["exact", "ideal", "min", "max"], path, warnings) {
                let n = number_value(value, property, &format!("{path}.{key}"))?;
                match key {
                    "exact" => c.exact = Some(n),
                    "ideal" => c.ideal = Some(n),
                    "min" => c.min = Some(n),
                    _ => c.max = Some(n),
                }
            }
        }
        other => {
            return Err(wrong_type(
                path,
                "a number or an object with exact/ideal/min/max",
                other,
            ))
        }
    }
    Ok(c)
}

fn string_list(v: &Value, path: &str) -> Result<Vec<String>, MediaError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| wrong_type(&format!("{path}[{i}]"), "a string", item))
            })
            .collect(),
        other => Err(wrong_type(path, "a string or an array of strings", other)),
    }
}

fn string_constraint(
    v: &Value,
    path: &str,
    advanced: bool,
    warnings: &mut Vec<String>,
) -> Result<StringConstraint, MediaError> {
    let mut c = StringConstraint::default();
    match v {
        Value::Null => {}
        Value::String(_) | Value::Array(_) => {
            let list = string_list(v, path)?;
            if advanced {
                c.exact = Some(list);
            } else {
                c.ideal = Some(list);
            }
        }
        Value::Object(obj) => {
            for (key, value) in members(obj, &["exact", "ideal"], path, warnings) {
                let list = string_list(value, &format!("{path}.{key}"))?;
                if key == "exact" {
                    c.exact = Some(list);
                } else {
                    c.ideal = Some(list);
                }
            }
        }
        other => {
            return Err(wrong_type(
                path,
                "a string, an array of strings or an object with exact/ideal",
                other,
            ))
        }
    }
    Ok(c)
}

fn flag_value(v: &Value, path: &str, modes: bool) -> Result<Flag, MediaError> {
    match v {
        Value::Bool(b) => Ok(Flag::from_bool(*b)),
        Value::String(s) if modes => Flag::from_mode(s).ok_or_else(|| {
            MediaError::type_error(format!(
                "{path}: expected true, false, \"all\" or \"remote-only\", got {s:?}"
            ))
        }),
        other if modes => Err(wrong_type(
            path,
            "true, false, \"all\" or \"remote-only\"",
            other,
        )),
        other => Err(wrong_type(path, "a boolean", other)),
    }
}

fn flag_constraint(
    v: &Value,
    path: &str,
    advanced: bool,
    modes: bool,
    warnings: &mut Vec<String>,
) -> Result<FlagConstraint, MediaError> {
    let mut c = FlagConstraint::default();
    match v {
        Value::Null => {}
        Value::Object(obj) => {
            for (key, value) in members(obj, &["exact", "ideal"], path, warnings) {
                let f = flag_value(value, &format!("{path}.{key}"), modes)?;
                if key == "exact" {
                    c.exact = Some(f);
                } else {
                    c.ideal = Some(f);
                }
            }
        }
        bare => {
            let f = flag_value(bare, path, modes)?;
            if advanced {
                c.exact = Some(f);
            } else {
                c.ideal = Some(f);
            }
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<(MediaStreamConstraints, Vec<String>), MediaError> {
        match MediaStreamConstraints::from_json_str(json) {
            Ok(r) => Ok(r),
            Err(ConstraintsError::Type(e)) => Err(e),
            Err(e) => panic!("not a type error: {e}"),
        }
    }

    fn type_error(json: &str) -> String {
        match parse(json) {
            Err(MediaError::TypeError { message }) => message,
            other => panic!("expected TypeError for {json}, got {other:?}"),
        }
    }

    #[test]
    fn booleans_and_absence() {
        let (c, _) = parse(r#"{"video": true}"#).unwrap();
        assert!(c.video.is_some() && c.audio.is_none());
        let (c, _) = parse(r#"{"video": true, "audio": false}"#).unwrap();
        assert!(c.audio.is_none());
        let (c, _) = parse(r#"{"audio": {}}"#).unwrap();
        assert!(c.audio.is_some());
    }

    #[test]
    fn null_is_an_empty_constraints_dictionary() {
        // WebIDL: null converts to the union's dictionary member, so it requests the kind.
        let (c, _) = parse(r#"{"video": null}"#).unwrap();
        assert_eq!(c.video, Some(MediaTrackConstraints::unconstrained()));
        assert!(c.audio.is_none());
        let (c, _) = parse(r#"{"audio": null, "video": false}"#).unwrap();
        assert!(c.audio.is_some() && c.video.is_none());
        // ...but null is not a sequence: `advanced: null` is a TypeError, as in browsers.
        let message = type_error(r#"{"video": {"advanced": null}}"#);
        assert!(message.contains("video.advanced"), "{message}");
    }

    #[test]
    fn neither_kind_is_a_type_error() {
        assert!(type_error("{}").contains("at least one of audio and video"));
        type_error(r#"{"audio": false, "video": false}"#);
        // A lone typo: the error itself names the ignored key (the warnings are not
        // returned on the error path).
        let m = type_error(r#"{"vidoe": true}"#);
        assert!(
            m.contains("ignored unknown key \"vidoe\"; did you mean \"video\"?"),
            "{m}"
        );
        let m = type_error(r#"{"Audio": true, "screen": true}"#);
        assert!(m.contains("\"Audio\"; did you mean \"audio\"?"), "{m}");
        assert!(m.contains("ignored unknown key \"screen\")"), "{m}");
        assert!(!type_error("{}").contains("unknown"));
    }

    #[test]
    fn typo_suggestions() {
        for typo in ["vidoe", "vide", "videos", "VIDEO", "vdeo", "viddo"] {
            assert!(is_probable_typo(typo, "video"), "{typo}");
        }
        for other in ["audio", "screen", "vi", "videoooo", "oedivv"] {
            assert!(!is_probable_typo(other, "video"), "{other}");
        }
    }

    #[test]
    fn wrong_types_name_the_key() {
        let m = type_error(r#"{"video": {"width": "wide"}}"#);
        assert!(m.contains("video.width") && m.contains("\"wide\""), "{m}");
        let m = type_error(r#"{"video": {"width": {"min": "1"}}}"#);
        assert!(m.contains("video.width.min"), "{m}");
        let m = type_error(r#"{"video": {"facingMode": 5}}"#);
        assert!(m.contains("video.facingMode"), "{m}");
        let m = type_error(r#"{"video": {"facingMode": ["user", 5]}}"#);
        assert!(m.contains("video.facingMode[1]"), "{m}");
        let m = type_error(r#"{"audio": {"autoGainControl": "yes"}}"#);
        assert!(m.contains("audio.autoGainControl"), "{m}");
        let m = type_error(r#"{"audio": {"echoCancellation": "sometimes"}}"#);
        assert!(m.contains("remote-only"), "{m}");
        let m = type_error(r#"{"video": 5}"#);
        assert!(m.contains("video:"), "{m}");
        let m = type_error(r#"{"video": {"advanced": {}}}"#);
        assert!(m.contains("video.advanced"), "{m}");
        let m = type_error(r#"{"video": {"advanced": [{"width": true}]}}"#);
        assert!(m.contains("video.advanced[0].width"), "{m}");
        type_error("[1]");
    }

    #[test]
    fn other_kind_constraints_are_ignored_even_if_malformed() {
        let (c, _) = parse(r#"{"audio": {"width": "wide", "sampleRate": 48000}}"#).unwrap();
        let audio = c.audio.unwrap();
        assert_eq!(audio.basic.len(), 1);
        assert!(audio.basic.get(Property::SampleRate).is_some());
    }

    #[test]
    fn unknown_keys_warn_with_their_names() {
        let (c, w) = parse(r#"{"video": {"widht": 640, "Width": 5}, "vidoe": true}"#).unwrap();
        assert!(c.video.unwrap().basic.is_empty());
        let all = w.join("\n");
        assert!(all.contains("\"vidoe\""), "{all}");
        assert!(all.contains("video.widht"), "{all}");
        assert!(all.contains("did you mean \"width\""), "{all}");
    }

    #[test]
    fn bare_values_are_ideal_outside_advanced_and_exact_inside() {
        let (c, _) = parse(
            r#"{"video": {"width": 640, "facingMode": "user", "advanced": [{"width": 1280, "facingMode": ["environment"]}]}}"#,
        )
        .unwrap();
        let v = c.video.unwrap();
        assert_eq!(v.basic.number(Property::Width).unwrap().ideal, Some(640.0));
        assert_eq!(
            v.advanced[0].number(Property::Width).unwrap().exact,
            Some(1280.0)
        );
        match v.advanced[0].get(Property::FacingMode) {
            Some(Constraint::String(s)) => {
                assert_eq!(s.exact.as_deref(), Some(&["environment".to_string()][..]))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn long_values_truncate_and_min_greater_than_max_is_not_an_error() {
        let (c, _) =
            parse(r#"{"video": {"width": 640.9, "height": {"min": 500, "max": 100}}}"#).unwrap();
        let v = c.video.unwrap();
        assert_eq!(v.basic.number(Property::Width).unwrap().ideal, Some(640.0));
        assert_eq!(v.basic.number(Property::Height).unwrap().min, Some(500.0));
    }

    #[test]
    fn echo_cancellation_modes() {
        let (c, _) = parse(r#"{"audio": {"echoCancellation": {"exact": "remote-only"}}}"#).unwrap();
        match c.audio.unwrap().basic.get(Property::EchoCancellation) {
            Some(Constraint::Flag(f)) => assert_eq!(f.exact, Some(Flag::RemoteOnly)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_json_is_not_a_type_error() {
        match MediaStreamConstraints::from_json_str("{\"video\": tru}") {
            Err(ConstraintsError::Json(e)) => assert_eq!(e.line(), 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serde_deserialize_uses_the_same_rules() {
        let c: MediaStreamConstraints =
            serde_json::from_str(r#"{"video": {"width": {"exact": 320}}}"#).unwrap();
        assert_eq!(
            c.video
                .unwrap()
                .basic
                .number(Property::Width)
                .unwrap()
                .exact,
            Some(320.0)
        );
        let e = serde_json::from_str::<MediaStreamConstraints>(r#"{"video": {"width": "x"}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("video.width"));
    }

    #[test]
    fn round_trips_through_serialize() {
        let json = r#"{"video": {"width": {"min": 640, "ideal": 1280}, "facingMode": ["user", "environment"], "advanced": [{"frameRate": 60}]}, "audio": true}"#;
        let (c, _) = parse(json).unwrap();
        let back = serde_json::to_string(&c).unwrap();
        let (again, _) = parse(&back).unwrap();
        assert_eq!(c, again);
    }
}
