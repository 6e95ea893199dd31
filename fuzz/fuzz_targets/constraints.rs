//! Constraints JSON (getUserMedia's argument, modern or legacy syntax) parsed, then
//! selected against the built-in virtual devices and a richer catalogue, with `--explain`.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use usermedia::constraints::legacy_translations;
use usermedia::devices::file;
use usermedia::{MediaDevices, MediaStreamConstraints, PermissionPolicy};

/// Two cameras (one facing the user) and two microphones, several modes each.
const CATALOGUE: &str = r#"{"devices": [
  {"kind": "videoinput", "deviceId": "front", "facingMode": "user",
   "modes": [{"width": 640, "height": 480, "frameRate": 30},
             {"width": 1280, "height": 720, "frameRate": 30},
             {"width": 1920, "height": 1080, "frameRate": 15}]},
  {"kind": "videoinput", "deviceId": "back", "facingMode": "environment",
   "modes": [{"width": 320, "height": 240, "frameRate": 60}]},
  {"kind": "audioinput", "deviceId": "mic", "modes": [{"sampleRate": 48000, "channelCount": 2}]},
  {"kind": "audioinput", "deviceId": "mono", "modes": [{"sampleRate": 16000, "channelCount": 1}]}
]}"#;

fn catalogues() -> &'static [MediaDevices; 2] {
    static CATALOGUES: OnceLock<[MediaDevices; 2]> = OnceLock::new();
    CATALOGUES.get_or_init(|| {
        let devices = file::parse(CATALOGUE, Path::new(".")).expect("the catalogue parses");
        [
            MediaDevices::builtin_virtual(PermissionPolicy::granted()),
            MediaDevices::new(devices, PermissionPolicy::granted()).expect("distinct ids"),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(json) {
        let _ = legacy_translations(&value);
    }
    let Ok((constraints, _warnings)) = MediaStreamConstraints::from_json_str(json) else {
        return;
    };
    for devices in catalogues() {
        let _ = devices.select(&constraints);
        let _ = devices.explain(&constraints);
    }
});
