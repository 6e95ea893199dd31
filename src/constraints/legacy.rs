//! The legacy constraint syntax of old browsers (`{"mandatory": {...}, "optional": [...]}`),
//! translated to the modern dictionary: the inverse of adapter.js's `constraintsToChrome_`.
//!
//! Pure JSON → JSON: `mandatory` becomes required members (`minX` → `X.min`, `maxX` →
//! `X.max`, a plain key → `X.exact`), each `optional` entry one `advanced` set, in order.
//! The modern parser then reads the result, so selection, errors and settings are those of
//! the modern constraints it became. docs/legacy.md has the key and error tables.

use serde_json::{Map, Number, Value};

use super::parse::{is_probable_typo, type_name};
use super::property::{MediaKind, Property, ValueType};
use crate::error::MediaError;

/// The two keys that make a track constraints dictionary legacy.
const LEGACY_CONTAINERS: [&str; 2] = ["mandatory", "optional"];

/// Chrome-only legacy keys with no modern property: ignored with a warning saying so
/// rather than a did-you-mean.
const WITHOUT_MODERN_EQUIVALENT: [&str; 14] = [
    "googEchoCancellation2",
    "googDAEchoCancellation",
    "googAutoGainControl2",
    "googNoiseSuppression2",
    "googHighpassFilter",
    "googTypingNoiseDetection",
    "googAudioMirroring",
    "googNoiseReduction",
    "googExperimentalEchoCancellation",
    "googExperimentalAutoGainControl",
    "googExperimentalNoiseSuppression",
    "googLeakyBucket",
    "chromeMediaSource",
    "chromeMediaSourceId",
];

/// Which member of the modern constraint a legacy key sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyMember {
    Min,
    Max,
    Exact,
}

impl LegacyMember {
    /// `"min"`, `"max"` or `"exact"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LegacyMember::Min => "min",
            LegacyMember::Max => "max",
            LegacyMember::Exact => "exact",
        }
    }
}

/// The names without a `min`/`max` prefix: (legacy name, property). `deviceId` was
/// `sourceId`; Chrome named the audio processing flags `goog…` (adapter.js remaps
/// autoGainControl and noiseSuppression; old Chrome also read `googEchoCancellation`).
const PLAIN_NAMES: [(&str, Property); 8] = [
    ("sourceId", Property::DeviceId),
    ("groupId", Property::GroupId),
    ("facingMode", Property::FacingMode),
    ("resizeMode", Property::ResizeMode),
    ("echoCancellation", Property::EchoCancellation),
    ("googEchoCancellation", Property::EchoCancellation),
    ("googAutoGainControl", Property::AutoGainControl),
    ("googNoiseSuppression", Property::NoiseSuppression),
];

fn is_number(property: Property) -> bool {
    matches!(property.value_type(), ValueType::Long | ValueType::Double)
}

/// `width` → `Width`.
fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Every legacy key we translate with its property and member, in the spec's property
/// order (the table of docs/legacy.md).
pub fn legacy_keys() -> Vec<(String, Property, LegacyMember)> {
    let mut keys = Vec::new();
    for property in Property::ALL {
        if is_number(property) {
            let cap = capitalized(property.name());
            keys.push((format!("min{cap}"), property, LegacyMember::Min));
            keys.push((format!("max{cap}"), property, LegacyMember::Max));
        }
        for (name, p) in PLAIN_NAMES {
            if p == property {
                keys.push((name.to_owned(), property, LegacyMember::Exact));
            }
        }
    }
    keys
}

/// The property and member a legacy key sets, if it is one we translate.
fn lookup(key: &str) -> Option<(Property, LegacyMember)> {
    if let Some((_, p)) = PLAIN_NAMES.iter().find(|(name, _)| *name == key) {
        return Some((*p, LegacyMember::Exact));
    }
    let (member, rest) = if let Some(rest) = key.strip_prefix("min") {
        (LegacyMember::Min, rest)
    } else if let Some(rest) = key.strip_prefix("max") {
        (LegacyMember::Max, rest)
    } else {
        return None;
    };
    Property::ALL
        .into_iter()
        .find(|p| is_number(*p) && capitalized(p.name()) == rest)
        .map(|p| (p, member))
}

/// Whether `key` is a legacy key (for the modern parser's hint on a legacy key written
/// outside `mandatory`/`optional`).
pub(crate) fn is_legacy_key(key: &str) -> bool {
    lookup(key).is_some() && Property::from_name(key).is_none()
}

/// Whether a track constraints dictionary is written in the legacy syntax.
pub(crate) fn is_legacy(obj: &Map<String, Value>) -> bool {
    LEGACY_CONTAINERS.iter().any(|k| obj.contains_key(*k))
}

fn mixed(path: &str, modern: &[&str], legacy: &[&str]) -> MediaError {
    let quote = |keys: &[&str]| {
        keys.iter()
            .map(|k| format!("{k:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    MediaError::type_error(format!(
        "{path}: legacy and modern constraint keys mixed in one dictionary: modern {} beside legacy {}; write one syntax or the other",
        quote(modern),
        quote(legacy)
    ))
}

/// Translates a legacy track constraints dictionary found at `path` to the modern one.
/// `Ok(None)` when `obj` is not legacy (no `mandatory`/`optional`). Unknown legacy keys
/// are ignored with a warning; mixing in modern keys or a value of the wrong type is a
/// `TypeError` naming the key path.
pub(crate) fn translate(
    obj: &Map<String, Value>,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<Value>, MediaError> {
    if !is_legacy(obj) {
        return Ok(None);
    }
    let mut modern_keys = Vec::new();
    for key in obj.keys() {
        if LEGACY_CONTAINERS.contains(&key.as_str()) {
            continue;
        }
        if key == "advanced" || Property::from_name(key).is_some() {
            modern_keys.push(key.as_str());
        } else {
            warnings.push(format!(
                "{path}.{key}: unknown key ignored (a legacy dictionary holds only \"mandatory\" and \"optional\")"
            ));
        }
    }
    if !modern_keys.is_empty() {
        let legacy: Vec<&str> = LEGACY_CONTAINERS
            .into_iter()
            .filter(|k| obj.contains_key(*k))
            .collect();
        return Err(mixed(path, &modern_keys, &legacy));
    }
    let mut result = Map::new();
    match obj.get("mandatory") {
        None | Some(Value::Null) => {}
        Some(Value::Object(mandatory)) => {
            let set_path = format!("{path}.mandatory");
            result = legacy_set(mandatory, &set_path, "mandatory", warnings)?;
        }
        Some(other) => {
            return Err(MediaError::type_error(format!(
                "{path}.mandatory: expected an object of legacy constraints, got {}",
                type_name(other)
            )))
        }
    }
    match obj.get("optional") {
        None | Some(Value::Null) => {}
        Some(Value::Array(entries)) => {
            let mut advanced = Vec::with_capacity(entries.len());
            for (i, entry) in entries.iter().enumerate() {
                let entry_path = format!("{path}.optional[{i}]");
                let Value::Object(entry) = entry else {
                    return Err(MediaError::type_error(format!(
                        "{entry_path}: expected an object such as {{\"minWidth\": 1280}}, got {}",
                        type_name(entry)
                    )));
                };
                advanced.push(Value::Object(legacy_set(
                    entry,
                    &entry_path,
                    "optional",
                    warnings,
                )?));
            }
            if !advanced.is_empty() {
                result.insert("advanced".into(), Value::Array(advanced));
            }
        }
        Some(other) => {
            return Err(MediaError::type_error(format!(
                "{path}.optional: expected an array of legacy constraint objects, got {}",
                type_name(other)
            )))
        }
    }
    Ok(Some(Value::Object(result)))
}

/// One legacy dictionary (`mandatory`, or one `optional` entry) → a modern constraint set
/// whose members are all required (`min`/`max`/`exact`).
fn legacy_set(
    obj: &Map<String, Value>,
    path: &str,
    container: &str,
    warnings: &mut Vec<String>,
) -> Result<Map<String, Value>, MediaError> {
    let modern: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| *k == "advanced" || (Property::from_name(k).is_some() && lookup(k).is_none()))
        .collect();
    if !modern.is_empty() {
        let mut legacy: Vec<&str> = obj
            .keys()
            .map(String::as_str)
            .filter(|k| lookup(k).is_some())
            .collect();
        if legacy.is_empty() {
            legacy.push(container);
        }
        return Err(mixed(path, &modern, &legacy));
    }
    let mut set = Map::new();
    for (key, value) in obj {
        let key_path = format!("{path}.{key}");
        let Some((property, member)) = lookup(key) else {
            warnings.push(unknown_key_warning(key, &key_path));
            continue;
        };
        let value = legacy_value(value, property, &key_path)?;
        let entry = set
            .entry(property.name())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(members) = entry {
            members.insert(member.as_str().to_owned(), value);
        }
    }
    Ok(set)
}

fn unknown_key_warning(key: &str, key_path: &str) -> String {
    if WITHOUT_MODERN_EQUIVALENT.contains(&key) {
        return format!("{key_path}: legacy constraint without a modern equivalent, ignored");
    }
    let hint = legacy_keys()
        .into_iter()
        .map(|(name, _, _)| name)
        .find(|name| is_probable_typo(key, &name.to_lowercase()))
        .map(|name| format!(" (did you mean {name:?}?)"))
        .unwrap_or_default();
    format!("{key_path}: unknown legacy constraint ignored{hint}")
}

/// A legacy value, checked for its property's type. Old Chrome read every value as text,
/// so numbers and booleans written as strings (`"1280"`, `"false"`) are taken too.
fn legacy_value(value: &Value, property: Property, path: &str) -> Result<Value, MediaError> {
    let wrong = |expected: &str| {
        MediaError::type_error(format!(
            "{path}: expected {expected}, got {}",
            type_name(value)
        ))
    };
    match property.value_type() {
        ValueType::Long | ValueType::Double => match value {
            Value::Number(_) => Ok(value.clone()),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(json_number)
                .ok_or_else(|| wrong("a number")),
            _ => Err(wrong("a number")),
        },
        ValueType::String => match value {
            Value::String(_) => Ok(value.clone()),
            Value::Array(items) if items.iter().all(Value::is_string) => Ok(value.clone()),
            _ => Err(wrong("a string")),
        },
        ValueType::Boolean | ValueType::BooleanOrMode => match value {
            Value::Bool(_) => Ok(value.clone()),
            Value::String(s) if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
            _ => Err(wrong("a boolean")),
        },
    }
}

/// `1280.0` as `1280`, other values as they are.
fn json_number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// One kind's legacy constraints and the modern ones they became (`select --explain`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LegacyTranslation {
    #[serde(skip)]
    pub kind: MediaKind,
    /// The legacy dictionary as given.
    pub input: Value,
    /// The modern dictionary it became.
    pub translated: Value,
}

/// The legacy dictionaries of a getUserMedia argument and their translations, audio then
/// video; empty when neither kind uses the legacy syntax. A dictionary that does not
/// translate (a TypeError) is left out: parsing reports it.
pub fn legacy_translations(constraints: &Value) -> Vec<LegacyTranslation> {
    let mut out = Vec::new();
    for kind in [MediaKind::Audio, MediaKind::Video] {
        let Some(Value::Object(obj)) = constraints.get(kind.as_str()) else {
            continue;
        };
        if let Ok(Some(translated)) = translate(obj, kind.as_str(), &mut Vec::new()) {
            out.push(LegacyTranslation {
                kind,
                input: Value::Object(obj.clone()),
                translated,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tr(v: Value) -> (Value, Vec<String>) {
        let mut warnings = Vec::new();
        let out = translate(v.as_object().unwrap(), "video", &mut warnings)
            .unwrap()
            .expect("legacy");
        (out, warnings)
    }

    fn type_error(v: Value) -> String {
        match translate(v.as_object().unwrap(), "video", &mut Vec::new()) {
            Err(MediaError::TypeError { message }) => message,
            other => panic!("expected a TypeError, got {other:?}"),
        }
    }

    #[test]
    fn modern_dictionaries_are_left_alone() {
        let v = json!({"width": 640, "advanced": [{"width": 1280}]});
        assert_eq!(
            translate(v.as_object().unwrap(), "video", &mut Vec::new()).unwrap(),
            None
        );
    }

    #[test]
    fn mandatory_becomes_required_members() {
        let (out, w) = tr(json!({"mandatory": {
            "minWidth": 1280, "maxWidth": 1920, "minHeight": 720, "maxHeight": 1080,
            "minFrameRate": 15, "maxFrameRate": 30, "minAspectRatio": 1.5, "maxAspectRatio": 1.8,
            "sourceId": "cam", "facingMode": "user"
        }}));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            out,
            json!({
                "width": {"min": 1280, "max": 1920},
                "height": {"min": 720, "max": 1080},
                "frameRate": {"min": 15, "max": 30},
                "aspectRatio": {"min": 1.5, "max": 1.8},
                "deviceId": {"exact": "cam"},
                "facingMode": {"exact": "user"}
            })
        );
    }

    #[test]
    fn optional_entries_become_advanced_sets_in_order() {
        let (out, _) = tr(json!({
            "mandatory": {"minWidth": 640},
            "optional": [{"minWidth": 1920}, {"maxFrameRate": 15, "minHeight": 100}, {"sourceId": "x"}]
        }));
        assert_eq!(
            out,
            json!({
                "width": {"min": 640},
                "advanced": [
                    {"width": {"min": 1920}},
                    {"frameRate": {"max": 15}, "height": {"min": 100}},
                    {"deviceId": {"exact": "x"}}
                ]
            })
        );
        let (out, _) = tr(json!({"optional": []}));
        assert_eq!(out, json!({}));
    }

    #[test]
    fn audio_keys_follow_adapter_js() {
        let (out, _) = tr(json!({"mandatory": {
            "googEchoCancellation": false, "googAutoGainControl": "true",
            "googNoiseSuppression": false, "minSampleRate": 48000, "maxChannelCount": 2,
            "minSampleSize": 16, "maxLatency": 0.02, "groupId": "g"
        }}));
        assert_eq!(
            out,
            json!({
                "echoCancellation": {"exact": false},
                "autoGainControl": {"exact": true},
                "noiseSuppression": {"exact": false},
                "sampleRate": {"min": 48000},
                "channelCount": {"max": 2},
                "sampleSize": {"min": 16},
                "latency": {"max": 0.02},
                "groupId": {"exact": "g"}
            })
        );
        let (out, _) = tr(json!({"optional": [{"echoCancellation": true}]}));
        assert_eq!(
            out,
            json!({"advanced": [{"echoCancellation": {"exact": true}}]})
        );
    }

    #[test]
    fn numbers_written_as_text_are_taken() {
        let (out, _) = tr(json!({"mandatory": {"minWidth": "1280", "maxAspectRatio": " 1.5 "}}));
        assert_eq!(
            out,
            json!({"width": {"min": 1280}, "aspectRatio": {"max": 1.5}})
        );
    }

    #[test]
    fn every_table_key_translates_back_to_its_property() {
        let keys = legacy_keys();
        assert_eq!(keys.len(), 8 * 2 + PLAIN_NAMES.len());
        for (name, property, member) in keys {
            assert_eq!(lookup(&name), Some((property, member)), "{name}");
        }
        assert_eq!(lookup("minFacingMode"), None);
        assert_eq!(lookup("minwidth"), None);
        assert_eq!(lookup("width"), None);
    }

    #[test]
    fn mixing_legacy_and_modern_keys_is_a_type_error_naming_them() {
        let m = type_error(json!({"mandatory": {"minWidth": 640}, "height": 480, "advanced": []}));
        assert!(m.starts_with("video: legacy and modern"), "{m}");
        assert!(
            m.contains("\"height\"") && m.contains("\"advanced\""),
            "{m}"
        );
        assert!(m.contains("\"mandatory\""), "{m}");
        let m = type_error(json!({"mandatory": {"minWidth": 640, "width": 800}}));
        assert!(m.starts_with("video.mandatory:"), "{m}");
        assert!(
            m.contains("modern \"width\" beside legacy \"minWidth\""),
            "{m}"
        );
        let m = type_error(json!({"optional": [{"deviceId": "x"}]}));
        assert!(
            m.contains("video.optional[0]") && m.contains("\"deviceId\""),
            "{m}"
        );
        assert!(m.contains("legacy \"optional\""), "{m}");
        let m = type_error(json!({"mandatory": {"minWidth": {"exact": 5}}}));
        assert!(
            m.contains("video.mandatory.minWidth: expected a number"),
            "{m}"
        );
    }

    #[test]
    fn wrong_shapes_name_the_path() {
        assert!(
            type_error(json!({"mandatory": [1]})).contains("video.mandatory: expected an object")
        );
        assert!(type_error(json!({"optional": {}})).contains("video.optional: expected an array"));
        assert!(
            type_error(json!({"optional": [5]})).contains("video.optional[0]: expected an object")
        );
        assert!(type_error(json!({"mandatory": {"sourceId": 5}}))
            .contains("sourceId: expected a string"));
        assert!(
            type_error(json!({"mandatory": {"googAutoGainControl": "yes"}}))
                .contains("googAutoGainControl: expected a boolean")
        );
        assert!(
            type_error(json!({"mandatory": {"minWidth": "wide"}})).contains("a string (\"wide\")")
        );
    }

    #[test]
    fn unknown_legacy_keys_warn_with_a_suggestion() {
        let (out, w) = tr(
            json!({"mandatory": {"minWidht": 640, "maxheight": 5, "googHighpassFilter": true, "bogus": 1}}),
        );
        assert_eq!(out, json!({}));
        let all = w.join("\n");
        assert!(all.contains("video.mandatory.minWidht: unknown legacy constraint ignored (did you mean \"minWidth\"?)"), "{all}");
        assert!(
            all.contains("maxheight") && all.contains("\"maxHeight\""),
            "{all}"
        );
        assert!(
            all.contains("googHighpassFilter: legacy constraint without a modern equivalent"),
            "{all}"
        );
        assert!(
            w.iter()
                .any(|w| w == "video.mandatory.bogus: unknown legacy constraint ignored"),
            "{all}"
        );
        let (_, w) = tr(json!({"optional": [{"minFramerate": 5}]}));
        assert!(
            w[0].contains("video.optional[0].minFramerate") && w[0].contains("\"minFrameRate\""),
            "{w:?}"
        );
    }

    #[test]
    fn the_parser_reads_legacy_as_its_modern_twin() {
        use crate::constraints::{MediaStreamConstraints, MediaTrackConstraints};
        let parse = |j: &str| MediaStreamConstraints::from_json_str(j).unwrap().0;
        assert_eq!(
            parse(
                r#"{"video": {"mandatory": {"minWidth": 640, "sourceId": "a"}, "optional": [{"maxFrameRate": 15}]}, "audio": {"optional": [{"googNoiseSuppression": true}]}}"#
            ),
            parse(
                r#"{"video": {"width": {"min": 640}, "deviceId": {"exact": "a"}, "advanced": [{"frameRate": {"max": 15}}]}, "audio": {"advanced": [{"noiseSuppression": true}]}}"#
            )
        );
        // applyConstraints' parser too.
        let (track, _) = MediaTrackConstraints::from_json_str(
            r#"{"mandatory": {"maxHeight": 480}}"#,
            MediaKind::Video,
        )
        .unwrap();
        assert_eq!(
            track,
            MediaTrackConstraints::from_json_str(r#"{"height": {"max": 480}}"#, MediaKind::Video)
                .unwrap()
                .0
        );
        // A legacy key at the modern level: ignored, with a hint where it belongs.
        let (c, w) =
            MediaStreamConstraints::from_json_str(r#"{"video": {"minWidth": 640}}"#).unwrap();
        assert!(c.video.unwrap().basic.is_empty());
        assert!(
            w[0].contains("video.minWidth: unknown constraint ignored (a legacy key"),
            "{w:?}"
        );
    }

    #[test]
    fn translations_of_a_stream_argument() {
        let t = legacy_translations(&json!({
            "audio": {"mandatory": {"googEchoCancellation": false}},
            "video": {"width": 640}
        }));
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].kind, MediaKind::Audio);
        assert_eq!(
            t[0].translated,
            json!({"echoCancellation": {"exact": false}})
        );
        assert!(legacy_translations(&json!({"video": true})).is_empty());
        assert!(legacy_translations(&json!({"video": {"mandatory": 5}})).is_empty());
    }
}
