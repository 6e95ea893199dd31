//! From the flags to the media a command works on: `--constraints` read and parsed, and
//! getUserMedia run (with the async runtime `serve`, `publish` and `bot` need). A media
//! error is printed here as JSON and comes back as `None` (exit 1).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use usermedia::constraints::{ConstraintsError, MediaStreamConstraints};
use usermedia::devices::{MediaDeviceKind, MediaDevices};
use usermedia::MediaStream;

use crate::args::DeviceArgs;
use crate::exit::{Classify, CliError};
use crate::print_json;

/// The text of `--constraints`: the argument itself, or the file it names after `@`.
pub fn read_constraints(arg: &str) -> Result<String, CliError> {
    match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(Path::new(path))
            .with_context(|| format!("cannot read constraints file {path}"))
            .bad_input(),
        None => Ok(arg.to_owned()),
    }
}

/// Prints a media error as `{"error": ...}` on stdout.
pub fn print_media_error(error: &impl serde::Serialize) {
    print_json(&json!({ "error": error }));
}

/// Parses `--constraints` (text or @FILE). Invalid JSON is bad input (exit 2); a
/// TypeError is a media error, printed as JSON (`Ok(None)`: exit 1).
pub fn parse_constraints(arg: &str) -> Result<Option<MediaStreamConstraints>, CliError> {
    let text = read_constraints(arg)?;
    match MediaStreamConstraints::from_json_str(&text) {
        Ok((constraints, warnings)) => {
            for w in warnings {
                tracing::warn!("{w}");
            }
            Ok(Some(constraints))
        }
        Err(ConstraintsError::Json(e)) => Err(CliError::bad_input(format!(
            "--constraints is not valid JSON: {e}"
        ))),
        Err(ConstraintsError::Type(e)) => {
            print_media_error(&e.to_json());
            Ok(None)
        }
    }
}

/// What `serve`, `publish` and `bot` start with: the devices, the captured stream and a
/// runtime.
pub type Captured = (Arc<MediaDevices>, MediaStream, tokio::runtime::Runtime);

/// Constraints asking for every kind of device `devices` has (both when it has none, so
/// getUserMedia reports NotFoundError).
fn default_constraints(devices: &MediaDevices) -> String {
    let kinds: Vec<MediaDeviceKind> = devices.enumerate_devices().iter().map(|d| d.kind).collect();
    let video = kinds.contains(&MediaDeviceKind::Videoinput);
    let audio = kinds.contains(&MediaDeviceKind::Audioinput);
    let (video, audio) = if video || audio {
        (video, audio)
    } else {
        (true, true)
    };
    json!({ "video": video, "audio": audio }).to_string()
}

/// Loads the devices, starts a multi-thread runtime and captures per `constraints` (default:
/// every kind of device there is). `None` after a media error was printed as JSON (exit 1).
pub fn capture(args: &DeviceArgs, constraints: Option<&str>) -> Result<Option<Captured>, CliError> {
    let Some((devices, constraints)) = prepare(args, constraints)? else {
        return Ok(None);
    };
    let runtime = runtime()?;
    // Inside the runtime: sources start their threads, encoders and peers need tokio.
    let stream = runtime.block_on(async { devices.get_user_media(&constraints) });
    match stream {
        Ok(stream) => Ok(Some((devices, stream, runtime))),
        Err(e) => {
            print_media_error(&e.to_json());
            Ok(None)
        }
    }
}

/// A multi-thread async runtime.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .runtime()
}

/// The devices and the constraints to capture with (default: every kind of device there
/// is), less the kinds the allow-list refuses the devices' context (each refusal logged as
/// the `NotAllowedError` it is; all refused: printed, `None`). `None` after a media error
/// was printed as JSON (exit 1).
pub fn prepare(
    args: &DeviceArgs,
    constraints: Option<&str>,
) -> Result<Option<(Arc<MediaDevices>, MediaStreamConstraints)>, CliError> {
    let devices = Arc::new(args.load()?);
    let constraints = match constraints {
        Some(c) => c.to_owned(),
        None => {
            let c = default_constraints(&devices);
            tracing::info!("capturing {c} (the kinds of device this machine has)");
            c
        }
    };
    let Some(constraints) = parse_constraints(&constraints)? else {
        return Ok(None);
    };
    let (permitted, refused) = devices.permitted(&constraints);
    if permitted.audio.is_none() && permitted.video.is_none() {
        if let Some(e) = refused.first() {
            print_media_error(&e.to_json());
            return Ok(None);
        }
    }
    for e in &refused {
        tracing::warn!("{}: {}; capturing the rest", e.name(), e.message());
    }
    Ok(Some((devices, permitted)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_default_constraints_ask_for_the_kinds_that_exist() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            MediaDevices::from_devices_file(&path, Default::default()).unwrap()
        };
        let camera = r#"{ "kind": "videoinput", "deviceId": "cam", "source": "pattern",
            "modes": [ {"width": 640, "height": 480, "frameRate": 30} ] }"#;
        let mic = r#"{ "kind": "audioinput", "deviceId": "mic", "source": "tone",
            "modes": [ {"sampleRate": 48000, "channelCount": 1, "sampleSize": 16} ] }"#;
        let only_camera = file("camera.json", &format!(r#"{{"devices": [{camera}]}}"#));
        let only_mic = file("mic.json", &format!(r#"{{"devices": [{mic}]}}"#));
        let both = file("both.json", &format!(r#"{{"devices": [{camera}, {mic}]}}"#));
        let none = file("none.json", r#"{"devices": []}"#);
        let parsed =
            |d: &MediaDevices| -> Value { serde_json::from_str(&default_constraints(d)).unwrap() };
        assert_eq!(parsed(&only_camera), json!({"video": true, "audio": false}));
        assert_eq!(parsed(&only_mic), json!({"video": false, "audio": true}));
        assert_eq!(parsed(&both), json!({"video": true, "audio": true}));
        // Nothing at all: ask for both, and getUserMedia says NotFoundError.
        assert_eq!(parsed(&none), json!({"video": true, "audio": true}));
    }
}
