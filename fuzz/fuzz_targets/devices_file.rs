//! The devices file (`--devices FILE`): parsed strictly, then made a catalogue and
//! enumerated, and a plain request selected from it.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use usermedia::devices::file;
use usermedia::{MediaDevices, MediaStreamConstraints, PermissionPolicy};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(devices) = file::parse(text, Path::new("/nonexistent-base")) else {
        return;
    };
    let Ok(catalogue) = MediaDevices::new(devices, PermissionPolicy::granted()) else {
        return;
    };
    let _ = catalogue.enumerate_devices();
    let _ = catalogue.get_supported_constraints();
    let request =
        r#"{"audio": true, "video": {"width": {"ideal": 1280}, "frameRate": {"max": 30}}}"#;
    if let Ok((constraints, _)) = MediaStreamConstraints::from_json_str(request) {
        let _ = catalogue.explain(&constraints);
    }
});
