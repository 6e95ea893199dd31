//! The virtual devices file (`--devices FILE`): a public interface, parsed strictly so a
//! typo is an error naming the field rather than a device that silently behaves oddly.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::descriptor::{DeviceDescriptor, SourceSpec};
use super::timeline::{event_from_file, timeline_from_file, DeviceTimeline};
use crate::constraints::{AudioMode, DeviceModel, DeviceModes, FacingMode, Flag, VideoMode};

/// Why a devices file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DevicesFileError {
    /// The OS error is part of the message and deliberately not also a `source()`: error
    /// reporters that print the chain (anyhow's `{:#}`) would print it twice.
    #[error("cannot read devices file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Malformed JSON or a bad field; the message names the field path and, for JSON
    /// errors, the line and column.
    #[error("devices file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    devices: Vec<RawDevice>,
    #[serde(default)]
    events: Vec<RawEvent>,
}

/// A scripted event: `{"at_s": 3, "device": "back", "do": "fail"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at_s: f64,
    device: String,
    #[serde(rename = "do")]
    action: String,
}

/// A devices file's content: its devices, in order, and its scripted events.
#[derive(Debug, Clone, PartialEq)]
pub struct DevicesFile {
    pub devices: Vec<DeviceDescriptor>,
    pub timeline: DeviceTimeline,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawDevice {
    kind: String,
    device_id: String,
    group_id: Option<String>,
    label: Option<String>,
    facing_mode: Option<FacingMode>,
    source: Option<Value>,
    modes: Vec<RawMode>,
    echo_cancellation: Option<Vec<Flag>>,
    auto_gain_control: Option<Vec<bool>>,
    noise_suppression: Option<Vec<bool>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawMode {
    width: Option<u32>,
    height: Option<u32>,
    frame_rate: Option<f64>,
    sample_rate: Option<u32>,
    channel_count: Option<u32>,
    sample_size: Option<u32>,
    latency: Option<f64>,
}

/// Largest frame side we accept (8K and a margin).
const MAX_SIDE: u32 = 16384;

/// Reads and validates a devices file. File sources are resolved relative to the file's
/// own directory, so a devices file and its media can travel together.
pub fn load(path: &Path) -> Result<DevicesFile, DevicesFileError> {
    let text = std::fs::read_to_string(path).map_err(|error| DevicesFileError::Read {
        path: path.to_owned(),
        error,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_file(&text, base).map_err(|message| DevicesFileError::Invalid {
        path: path.to_owned(),
        message,
    })
}

/// Parses devices-file JSON: its devices only; relative file sources are resolved against
/// `base`.
pub fn parse(text: &str, base: &Path) -> Result<Vec<DeviceDescriptor>, String> {
    parse_file(text, base).map(|f| f.devices)
}

/// Parses devices-file JSON: devices and events; relative file sources are resolved
/// against `base`.
pub fn parse_file(text: &str, base: &Path) -> Result<DevicesFile, String> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let raw: RawFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.devices.len());
    for (i, device) in raw.devices.into_iter().enumerate() {
        let at = format!("devices[{i}]");
        let descriptor = device_from_raw(device, &at, base)?;
        if !seen.insert(descriptor.model.device_id.clone()) {
            return Err(format!(
                "{at}.deviceId: {:?} is used by an earlier device; deviceIds must be unique",
                descriptor.model.device_id
            ));
        }
        out.push(descriptor);
    }
    let ids: Vec<&str> = out.iter().map(|d| d.device_id()).collect();
    let events = raw
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| event_from_file(e.at_s, &e.device, &e.action, &ids, &format!("events[{i}]")))
        .collect::<Result<_, _>>()?;
    Ok(DevicesFile {
        devices: out,
        timeline: timeline_from_file(events)?,
    })
}

fn device_from_raw(raw: RawDevice, at: &str, base: &Path) -> Result<DeviceDescriptor, String> {
    if raw.device_id.is_empty() {
        return Err(format!("{at}.deviceId: must not be empty"));
    }
    let video = match raw.kind.as_str() {
        "videoinput" => true,
        "audioinput" => false,
        "audiooutput" => {
            return Err(format!(
                "{at}.kind: \"audiooutput\" is not a capture device; expected \"videoinput\" or \"audioinput\""
            ))
        }
        other => {
            return Err(format!(
                "{at}.kind: unknown kind {other:?}; expected \"videoinput\" or \"audioinput\""
            ))
        }
    };
    if raw.modes.is_empty() {
        return Err(format!("{at}.modes: a device needs at least one mode"));
    }
    let source = source_from_raw(raw.source.as_ref(), video, at, base)?;
    let modes = if video {
        if raw.echo_cancellation.is_some()
            || raw.auto_gain_control.is_some()
            || raw.noise_suppression.is_some()
        {
            return Err(format!(
                "{at}: echoCancellation, autoGainControl and noiseSuppression belong to audioinput devices"
            ));
        }
        let modes = raw
            .modes
            .iter()
            .enumerate()
            .map(|(j, m)| video_mode(m, &format!("{at}.modes[{j}]")))
            .collect::<Result<_, _>>()?;
        DeviceModes::Video(modes)
    } else {
        if raw.facing_mode.is_some() {
            return Err(format!(
                "{at}.facingMode: only videoinput devices have a facing mode"
            ));
        }
        let modes = raw
            .modes
            .iter()
            .enumerate()
            .map(|(j, m)| audio_mode(m, &format!("{at}.modes[{j}]")))
            .collect::<Result<_, _>>()?;
        let non_empty = |list: Option<Vec<bool>>, name: &str| match list {
            None => Ok(vec![false]),
            Some(l) if l.is_empty() => Err(format!(
                "{at}.{name}: list the supported values, e.g. [false] or [false, true]"
            )),
            Some(l) => Ok(l),
        };
        let echo = match raw.echo_cancellation {
            None => vec![Flag::Off],
            Some(l) if l.is_empty() => {
                return Err(format!(
                "{at}.echoCancellation: list the supported values, e.g. [false] or [false, true]"
            ))
            }
            Some(l) => l,
        };
        DeviceModes::Audio {
            modes,
            echo_cancellation: echo,
            auto_gain_control: non_empty(raw.auto_gain_control, "autoGainControl")?,
            noise_suppression: non_empty(raw.noise_suppression, "noiseSuppression")?,
        }
    };
    let label = raw.label.unwrap_or_else(|| raw.device_id.clone());
    let group_id = raw.group_id.unwrap_or_else(|| raw.device_id.clone());
    Ok(DeviceDescriptor {
        model: DeviceModel {
            device_id: raw.device_id,
            group_id,
            facing_mode: raw.facing_mode,
            modes,
        },
        label,
        source,
    })
}

fn source_from_raw(
    raw: Option<&Value>,
    video: bool,
    at: &str,
    base: &Path,
) -> Result<SourceSpec, String> {
    let expected = if video {
        "\"pattern\" or {\"file\": \"path.y4m\"}"
    } else {
        "\"tone\" or {\"file\": \"path.wav\"}"
    };
    match raw {
        None => Ok(if video {
            SourceSpec::Pattern
        } else {
            SourceSpec::Tone
        }),
        Some(Value::String(s)) if s == "pattern" && video => Ok(SourceSpec::Pattern),
        Some(Value::String(s)) if s == "tone" && !video => Ok(SourceSpec::Tone),
        Some(Value::Object(obj)) => {
            let file = match (obj.len(), obj.get("file")) {
                (1, Some(Value::String(f))) if !f.is_empty() => f,
                _ => return Err(format!("{at}.source: expected {expected}")),
            };
            let path = base.join(file);
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            let wanted = if video { "y4m" } else { "wav" };
            if ext.as_deref() != Some(wanted) {
                return Err(format!(
                    "{at}.source.file: {file:?} must be a .{wanted} file for a {} device",
                    if video { "videoinput" } else { "audioinput" }
                ));
            }
            Ok(SourceSpec::File(path))
        }
        Some(other) => Err(format!("{at}.source: expected {expected}, got {other}")),
    }
}

fn video_mode(m: &RawMode, at: &str) -> Result<VideoMode, String> {
    if m.sample_rate.is_some() || m.channel_count.is_some() || m.sample_size.is_some() {
        return Err(format!(
            "{at}: sampleRate, channelCount and sampleSize belong to audioinput modes"
        ));
    }
    let (Some(width), Some(height), Some(frame_rate)) = (m.width, m.height, m.frame_rate) else {
        return Err(format!(
            "{at}: a videoinput mode needs width, height and frameRate"
        ));
    };
    for (name, v) in [("width", width), ("height", height)] {
        if !(1..=MAX_SIDE).contains(&v) {
            return Err(format!("{at}.{name}: must be 1..={MAX_SIDE}, got {v}"));
        }
    }
    if !(frame_rate > 0.0 && frame_rate <= 1000.0) {
        return Err(format!(
            "{at}.frameRate: must be above 0 and at most 1000, got {frame_rate}"
        ));
    }
    Ok(VideoMode {
        width,
        height,
        frame_rate,
    })
}

fn audio_mode(m: &RawMode, at: &str) -> Result<AudioMode, String> {
    if m.width.is_some() || m.height.is_some() || m.frame_rate.is_some() {
        return Err(format!(
            "{at}: width, height and frameRate belong to videoinput modes"
        ));
    }
    let (Some(sample_rate), Some(channel_count)) = (m.sample_rate, m.channel_count) else {
        return Err(format!(
            "{at}: an audioinput mode needs sampleRate and channelCount"
        ));
    };
    if !(8000..=384_000).contains(&sample_rate) {
        return Err(format!(
            "{at}.sampleRate: must be 8000..=384000, got {sample_rate}"
        ));
    }
    if !(1..=32).contains(&channel_count) {
        return Err(format!(
            "{at}.channelCount: must be 1..=32, got {channel_count}"
        ));
    }
    let sample_size = m.sample_size.unwrap_or(16);
    if ![8, 16, 24, 32].contains(&sample_size) {
        return Err(format!(
            "{at}.sampleSize: must be 8, 16, 24 or 32, got {sample_size}"
        ));
    }
    let latency = m.latency.unwrap_or(0.01);
    if !(0.0..=10.0).contains(&latency) {
        return Err(format!(
            "{at}.latency: must be 0..=10 seconds, got {latency}"
        ));
    }
    Ok(AudioMode {
        sample_rate,
        channel_count,
        sample_size,
        latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        parse(json, Path::new("/base")).unwrap_err()
    }

    #[test]
    fn parses_the_design_example() {
        let json = r#"{ "devices": [
          { "kind": "videoinput", "deviceId": "front", "groupId": "phone", "label": "Front camera",
            "facingMode": "user", "source": "pattern",
            "modes": [ {"width": 640, "height": 480, "frameRate": 30},
                       {"width": 1280, "height": 720, "frameRate": 30} ] },
          { "kind": "audioinput", "deviceId": "mic", "groupId": "phone", "label": "Microphone",
            "source": "tone",
            "modes": [ {"sampleRate": 48000, "channelCount": 1, "sampleSize": 16, "latency": 0.01} ],
            "echoCancellation": [false], "autoGainControl": [false], "noiseSuppression": [false] }
        ] }"#;
        let devices = parse(json, Path::new("/base")).unwrap();
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[0].model.facing_mode, Some(FacingMode::User));
        assert_eq!(devices[0].label, "Front camera");
        assert!(matches!(devices[1].model.modes, DeviceModes::Audio { .. }));
    }

    #[test]
    fn file_sources_resolve_against_the_file_directory() {
        let json = r#"{"devices":[{"kind":"videoinput","deviceId":"f","source":{"file":"clip.y4m"},
            "modes":[{"width":64,"height":48,"frameRate":10}]}]}"#;
        let d = parse(json, Path::new("/base")).unwrap();
        assert_eq!(
            d[0].source,
            SourceSpec::File(PathBuf::from("/base/clip.y4m"))
        );
        let bad = r#"{"devices":[{"kind":"videoinput","deviceId":"f","source":{"file":"clip.wav"},
            "modes":[{"width":64,"height":48,"frameRate":10}]}]}"#;
        assert!(err(bad).contains("devices[0].source.file"));
    }

    #[test]
    fn errors_name_the_field() {
        let m = err(
            r#"{"devices":[{"kind":"videoinput","deviceId":"a","modes":[{"width":"x","height":1,"frameRate":1}]}]}"#,
        );
        assert!(m.contains("devices[0].modes[0].width"), "{m}");
        assert!(m.contains("line 1"), "{m}");
        let m = err(
            r#"{"devices":[{"kind":"videoinput","deviceId":"a","facingmode":"user","modes":[]}]}"#,
        );
        assert!(m.contains("facingmode"), "{m}");
        let m = err(
            r#"{"devices":[{"kind":"videoinput","deviceId":"a","facingMode":"front","modes":[{"width":1,"height":1,"frameRate":1}]}]}"#,
        );
        assert!(
            m.contains("devices[0].facingMode") && m.contains("environment"),
            "{m}"
        );
        let m = err(
            r#"{"devices":[{"kind":"camera","deviceId":"a","modes":[{"width":1,"height":1,"frameRate":1}]}]}"#,
        );
        assert!(m.contains("devices[0].kind"), "{m}");
        let m = err(r#"{"devices":[{"kind":"videoinput","deviceId":"a","modes":[]}]}"#);
        assert!(m.contains("devices[0].modes"), "{m}");
        let m = err(
            r#"{"devices":[{"kind":"videoinput","deviceId":"a","modes":[{"width":0,"height":1,"frameRate":1}]}]}"#,
        );
        assert!(m.contains("devices[0].modes[0].width"), "{m}");
        let m = err(
            r#"{"devices":[{"kind":"audioinput","deviceId":"a","modes":[{"width":640,"height":1,"frameRate":1}]}]}"#,
        );
        assert!(m.contains("devices[0].modes[0]"), "{m}");
        let m = err(
            r#"{"devices":[{"kind":"videoinput","deviceId":"a","source":"tone","modes":[{"width":1,"height":1,"frameRate":1}]}]}"#,
        );
        assert!(m.contains("devices[0].source"), "{m}");
        let dup = r#"{"devices":[
            {"kind":"videoinput","deviceId":"a","modes":[{"width":1,"height":1,"frameRate":1}]},
            {"kind":"audioinput","deviceId":"a","modes":[{"sampleRate":48000,"channelCount":1}]}]}"#;
        assert!(err(dup).contains("devices[1].deviceId"));
        let m = err(r#"{"devices": ["#);
        assert!(m.contains("line 1"), "{m}");
    }

    #[test]
    fn events_are_parsed_and_checked() {
        let file = |events: &str| {
            format!(
                r#"{{"devices":[{{"kind":"videoinput","deviceId":"back","modes":[{{"width":64,"height":48,"frameRate":10}}]}}],
                   "events": {events}}}"#
            )
        };
        let f = parse_file(
            &file(r#"[{"at_s": 3, "device": "back", "do": "fail"}]"#),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(f.timeline.events().len(), 1);
        assert_eq!(f.timeline.events()[0].at, std::time::Duration::from_secs(3));
        let no_events = parse_file(
            r#"{"devices":[{"kind":"videoinput","deviceId":"back","modes":[{"width":64,"height":48,"frameRate":10}]}]}"#,
            Path::new("."),
        )
        .unwrap();
        assert!(no_events.timeline.is_empty());
        let m = err(&file(r#"[{"at_s": 3, "device": "front", "do": "fail"}]"#));
        assert!(
            m.contains("events[0].device") && m.contains("\"front\""),
            "{m}"
        );
        let m = err(&file(r#"[{"at_s": 3, "device": "back", "do": "explode"}]"#));
        assert!(
            m.contains("events[0].do") && m.contains("\"explode\""),
            "{m}"
        );
        let m = err(&file(
            r#"[{"at_s": 3, "device": "back", "do": "fail", "why": 1}]"#,
        ));
        assert!(m.contains("events[0]") && m.contains("why"), "{m}");
        let m = err(&file(r#"[{"at_s": -1, "device": "back", "do": "fail"}]"#));
        assert!(m.contains("events[0].at_s"), "{m}");
        // Checked in sequence: a replug needs an unplug before it (in time, not in the list).
        let m = err(&file(
            r#"[{"at_s": 6, "device": "back", "do": "replug"}, {"at_s": 7, "device": "back", "do": "unplug"}]"#,
        ));
        assert!(
            m.contains("events[0].do") && m.contains("without an unplug"),
            "{m}"
        );
        let ok = parse_file(
            &file(
                r#"[{"at_s": 6, "device": "back", "do": "replug"}, {"at_s": 3, "device": "back", "do": "unplug"}]"#,
            ),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(ok.timeline.events().len(), 2);
    }

    #[test]
    fn audio_defaults() {
        let d = parse(
            r#"{"devices":[{"kind":"audioinput","deviceId":"m","modes":[{"sampleRate":16000,"channelCount":1}]}]}"#,
            Path::new("."),
        )
        .unwrap();
        match &d[0].model.modes {
            DeviceModes::Audio {
                modes,
                echo_cancellation,
                auto_gain_control,
                ..
            } => {
                assert_eq!(modes[0].sample_size, 16);
                assert_eq!(echo_cancellation, &vec![Flag::Off]);
                assert_eq!(auto_gain_control, &vec![false]);
            }
            _ => panic!(),
        }
        assert_eq!(d[0].source, SourceSpec::Tone);
        assert_eq!(d[0].model.group_id, "m");
    }
}
