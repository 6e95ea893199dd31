//! getUserMedia in Rust, as a web page would call it: pick a camera by constraints, read
//! its settings and capabilities, then change them live with applyConstraints.
//!
//! `cargo run --example constraints`

use std::path::Path;

use usermedia::devices::{MediaDevices, PermissionPolicy};

fn main() -> anyhow::Result<()> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/devices/phone.json");
    let devices = MediaDevices::from_devices_file(&file, PermissionPolicy::prompt())?;

    // Before any getUserMedia, labels are hidden, as in a browser.
    for d in devices.enumerate_devices() {
        println!("{} {} label={:?}", d.kind, d.device_id, d.label);
    }

    // The back camera, as close to 720p as it goes, and the microphone.
    let stream = devices.get_user_media_json(
        r#"{"video": {"facingMode": {"exact": "environment"}, "width": 1280, "height": 720},
            "audio": true}"#,
    )?;
    for track in stream.get_tracks() {
        println!(
            "{} track {:?}: {}",
            track.kind(),
            track.label(),
            serde_json::to_string(&track.get_settings())?
        );
    }

    let video = &stream.get_video_tracks()[0];
    println!(
        "capabilities: {}",
        serde_json::to_string(&video.get_capabilities())?
    );

    // Scale down live; then ask for the impossible and see nothing change.
    video.apply_constraints_json(r#"{"width": {"exact": 320}, "height": {"exact": 180}}"#)?;
    println!(
        "after applyConstraints: {}",
        serde_json::to_string(&video.get_settings())?
    );
    match video.apply_constraints_json(r#"{"width": {"min": 4000}}"#) {
        Ok(()) => println!("unexpectedly satisfied"),
        Err(e) => println!(
            "{} ({:?}); settings unchanged: {}",
            e.name(),
            e.constraint(),
            serde_json::to_string(&video.get_settings())?
        ),
    }

    // Labels of the granted kinds are visible now.
    for d in devices.enumerate_devices() {
        println!("{} {} label={:?}", d.kind, d.device_id, d.label);
    }
    Ok(())
}
