//! Track and MediaDevices behaviour from web-platform-tests' mediacapture-streams:
//! MediaStreamTrack-init, -getSettings, -getCapabilities, -applyConstraints,
//! MediaDevices-getSupportedConstraints, enumerateDevices label exposure, GUM-deny.

mod common;

use common::{usermedia, Devices};
use serde_json::{json, Value};
use usermedia::constraints::{MediaTrackConstraints, ResizeMode};
use usermedia::devices::{MediaDevices, Permission, PermissionPolicy};
use usermedia::{MediaKind, MediaStreamConstraints, TrackState};

fn video_track(devices: &MediaDevices, json: &str) -> usermedia::MediaStreamTrack {
    let stream = devices.get_user_media_json(json).expect("getUserMedia");
    stream.get_video_tracks().remove(0)
}

// --- MediaStreamTrack-init ---

#[test]
fn track_init_state() {
    let devices = Devices::Builtin.media_devices(&[]);
    let stream = devices
        .get_user_media_json(r#"{"video": true, "audio": true}"#)
        .unwrap();
    let tracks = stream.get_tracks();
    assert_eq!(tracks.len(), 2);
    assert_eq!(tracks[0].kind(), MediaKind::Audio);
    assert_eq!(tracks[1].kind(), MediaKind::Video);
    for t in tracks {
        assert_eq!(t.ready_state(), TrackState::Live);
        assert!(t.enabled());
        assert!(!t.muted());
        assert_eq!(t.id().len(), 36, "a UUID: {}", t.id());
        assert!(!t.label().is_empty());
        assert!(stream.get_track_by_id(t.id()).is_some());
    }
    assert_ne!(tracks[0].id(), tracks[1].id());
    assert_eq!(stream.id().len(), 36);
    assert_eq!(tracks[1].label(), "Virtual camera (pattern)");
}

#[test]
fn stop_ends_the_track_and_enabled_toggles() {
    let devices = Devices::Builtin.media_devices(&[]);
    let track = video_track(&devices, r#"{"video": true}"#);
    track.set_enabled(false);
    assert!(!track.enabled());
    track.set_enabled(true);
    assert!(track.enabled());
    let copy = track.clone_track();
    assert_ne!(copy.id(), track.id());
    assert_eq!(copy.get_settings(), track.get_settings());
    track.stop();
    assert_eq!(track.ready_state(), TrackState::Ended);
    assert_eq!(
        copy.ready_state(),
        TrackState::Live,
        "clones end on their own"
    );
}

// --- MediaStreamTrack-getSettings ---

#[test]
fn settings_report_facing_mode_only_for_cameras_that_have_one() {
    let phone = Devices::Phone.media_devices(&[]);
    let front = video_track(&phone, r#"{"video": {"facingMode": {"exact": "user"}}}"#);
    let s = front.get_settings();
    assert_eq!(s.facing_mode.map(|f| f.as_str()), Some("user"));
    assert_eq!(s.device_id.as_deref(), Some("front"));
    let builtin = Devices::Builtin.media_devices(&[]);
    let t = video_track(&builtin, r#"{"video": true}"#);
    assert!(t.get_settings().facing_mode.is_none());
    let json = serde_json::to_value(t.get_settings()).unwrap();
    assert!(json.get("facingMode").is_none());
}

// --- MediaStreamTrack-getCapabilities ---

#[test]
fn video_capabilities() {
    let devices = Devices::Builtin.media_devices(&[]);
    let caps = serde_json::to_value(video_track(&devices, r#"{"video": true}"#).get_capabilities())
        .unwrap();
    assert_eq!(caps["width"], json!({"min": 1, "max": 1920}));
    assert_eq!(caps["height"], json!({"min": 1, "max": 1080}));
    assert_eq!(caps["frameRate"], json!({"min": 1.0, "max": 30.0}));
    assert_eq!(caps["resizeMode"], json!(["none", "crop-and-scale"]));
    assert_eq!(caps["facingMode"], json!([]));
    assert_eq!(caps["deviceId"], "virtual-pattern");
    assert_eq!(caps["groupId"], "virtual");
    assert_eq!(caps["aspectRatio"]["max"], 1920.0);
    assert!(caps.get("sampleRate").is_none());

    let phone = Devices::Phone.media_devices(&[]);
    let back = video_track(&phone, r#"{"video": {"deviceId": {"exact": "back"}}}"#);
    let caps = serde_json::to_value(back.get_capabilities()).unwrap();
    assert_eq!(caps["facingMode"], json!(["environment"]));
}

#[test]
fn audio_capabilities() {
    let devices = Devices::Builtin.media_devices(&[]);
    let stream = devices.get_user_media_json(r#"{"audio": true}"#).unwrap();
    let caps = serde_json::to_value(stream.get_audio_tracks()[0].get_capabilities()).unwrap();
    assert_eq!(caps["sampleRate"], json!({"min": 48000, "max": 48000}));
    assert_eq!(caps["channelCount"], json!({"min": 1, "max": 2}));
    assert_eq!(caps["sampleSize"], json!({"min": 16, "max": 16}));
    assert_eq!(caps["echoCancellation"], json!([false]));
    assert_eq!(caps["autoGainControl"], json!([false]));
    assert_eq!(caps["noiseSuppression"], json!([false]));
    assert!(caps.get("width").is_none() && caps.get("facingMode").is_none());
}

// --- MediaStreamTrack-applyConstraints ---

#[test]
fn apply_constraints_changes_settings_and_constraints() {
    let devices = Devices::Builtin.media_devices(&[]);
    let track = video_track(&devices, r#"{"video": true}"#);
    track
        .apply_constraints_json(r#"{"width": {"exact": 1280}, "height": {"exact": 720}}"#)
        .unwrap();
    let s = track.get_settings();
    assert_eq!((s.width, s.height), (Some(1280), Some(720)));
    let c = serde_json::to_value(track.get_constraints()).unwrap();
    assert_eq!(
        c,
        json!({"width": {"exact": 1280}, "height": {"exact": 720}})
    );
    // Scaling on a live track.
    track
        .apply_constraints_json(r#"{"width": 320, "height": 180}"#)
        .unwrap();
    let s = track.get_settings();
    assert_eq!((s.width, s.height), (Some(320), Some(180)));
    assert_eq!(s.resize_mode, Some(ResizeMode::CropAndScale));
}

#[test]
fn failed_apply_constraints_changes_nothing() {
    let devices = Devices::Builtin.media_devices(&[]);
    let track = video_track(&devices, r#"{"video": {"width": 1280}}"#);
    let before_settings = track.get_settings();
    let before_constraints = track.get_constraints();
    let err = track
        .apply_constraints_json(r#"{"width": {"min": 100000}}"#)
        .unwrap_err();
    assert_eq!(err.name(), "OverconstrainedError");
    assert_eq!(err.constraint(), Some("width"));
    assert_eq!(track.get_settings(), before_settings);
    assert_eq!(track.get_constraints(), before_constraints);
}

#[test]
fn apply_constraints_cannot_switch_devices() {
    let phone = Devices::Phone.media_devices(&[]);
    let back = video_track(&phone, r#"{"video": {"deviceId": {"exact": "back"}}}"#);
    let err = back
        .apply_constraints_json(r#"{"deviceId": {"exact": "front"}}"#)
        .unwrap_err();
    assert_eq!(err.constraint(), Some("deviceId"));
    let err = back
        .apply_constraints_json(r#"{"groupId": {"exact": "elsewhere"}}"#)
        .unwrap_err();
    assert_eq!(err.constraint(), Some("groupId"));
    // Its own id is fine, and an ideal for another device is simply not met.
    back.apply_constraints_json(r#"{"deviceId": {"exact": "back"}}"#)
        .unwrap();
    back.apply_constraints_json(r#"{"deviceId": "front"}"#)
        .unwrap();
    assert_eq!(back.get_settings().device_id.as_deref(), Some("back"));
}

#[test]
fn apply_empty_constraints_returns_to_defaults() {
    let devices = Devices::Builtin.media_devices(&[]);
    let track = video_track(&devices, r#"{"video": {"width": {"exact": 1920}}}"#);
    track
        .apply_constraints(MediaTrackConstraints::default())
        .unwrap();
    let s = track.get_settings();
    assert_eq!((s.width, s.height), (Some(640), Some(480)));
    assert_eq!(
        serde_json::to_value(track.get_constraints()).unwrap(),
        json!({})
    );
}

#[test]
fn apply_constraints_type_error_names_the_key() {
    let devices = Devices::Builtin.media_devices(&[]);
    let track = video_track(&devices, r#"{"video": true}"#);
    let err = track
        .apply_constraints_json(r#"{"height": [1]}"#)
        .unwrap_err();
    assert_eq!(err.name(), "TypeError");
    assert!(err.message().contains("video.height"), "{}", err.message());
    // Audio constraints on a video track are ignored, as on getUserMedia.
    track
        .apply_constraints_json(r#"{"sampleRate": {"exact": 1}}"#)
        .unwrap();
}

#[test]
fn apply_constraints_on_an_ended_track_does_nothing() {
    let devices = Devices::Builtin.media_devices(&[]);
    let track = video_track(&devices, r#"{"video": true}"#);
    track.stop();
    track
        .apply_constraints_json(r#"{"width": {"exact": 1280}}"#)
        .unwrap();
    assert_eq!(track.get_settings().width, Some(640));
}

// --- MediaDevices-getSupportedConstraints ---

#[test]
fn supported_constraints_library_and_cli() {
    let devices = Devices::Builtin.media_devices(&[]);
    let lib = serde_json::to_value(devices.get_supported_constraints()).unwrap();
    let expected = [
        "width",
        "height",
        "aspectRatio",
        "frameRate",
        "facingMode",
        "resizeMode",
        "sampleRate",
        "sampleSize",
        "echoCancellation",
        "autoGainControl",
        "noiseSuppression",
        "latency",
        "channelCount",
        "deviceId",
        "groupId",
    ];
    let obj = lib.as_object().unwrap();
    assert_eq!(obj.len(), expected.len());
    for name in expected {
        assert_eq!(obj[name], true, "{name}");
    }
    let out = usermedia(&[
        "devices",
        "--json",
        "--devices",
        common::example("builtin.json").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["supportedConstraints"], lib);
}

// --- enumerateDevices: labels hidden until granted ---

#[test]
fn labels_hidden_until_permission_is_granted() {
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::prompt());
    assert!(devices
        .enumerate_devices()
        .iter()
        .all(|d| d.label.is_empty()));
    assert!(devices
        .enumerate_devices()
        .iter()
        .all(|d| !d.device_id.is_empty()));
    devices.get_user_media_json(r#"{"video": true}"#).unwrap();
    for d in devices.enumerate_devices() {
        let json = serde_json::to_value(&d).unwrap();
        match json["kind"].as_str().unwrap() {
            "videoinput" => assert_eq!(d.label, "Virtual camera (pattern)"),
            "audioinput" => assert!(d.label.is_empty(), "microphone not granted yet"),
            other => panic!("unexpected kind {other}"),
        }
    }
    let granted = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    assert!(granted
        .enumerate_devices()
        .iter()
        .all(|d| !d.label.is_empty()));
}

#[test]
fn a_failed_request_exposes_nothing() {
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::prompt());
    devices
        .get_user_media_json(r#"{"video": {"width": {"exact": 5000}}}"#)
        .unwrap_err();
    assert!(devices
        .enumerate_devices()
        .iter()
        .all(|d| d.label.is_empty()));
}

// --- GUM-deny through a policy from configuration ---

#[test]
fn policy_from_configuration_denies() {
    let policy: PermissionPolicy =
        serde_json::from_str(r#"{"camera": "denied", "microphone": "granted"}"#).unwrap();
    assert_eq!(policy.for_kind(MediaKind::Video), Permission::Denied);
    let devices = MediaDevices::builtin_virtual(policy);
    let err = devices
        .get_user_media_json(r#"{"video": true}"#)
        .unwrap_err();
    assert_eq!(err.name(), "NotAllowedError");
    assert!(devices.get_user_media_json(r#"{"audio": true}"#).is_ok());
    // A denied request exposes no labels of that kind.
    assert!(devices
        .enumerate_devices()
        .iter()
        .filter(|d| serde_json::to_value(d).unwrap()["kind"] == "videoinput")
        .all(|d| d.label.is_empty()));
}

#[test]
fn typed_constraints_work_without_json() {
    let devices = Devices::Builtin.media_devices(&[]);
    let stream = devices
        .get_user_media(&MediaStreamConstraints::kinds(true, true))
        .unwrap();
    assert_eq!(stream.get_tracks().len(), 2);
    let err = devices
        .get_user_media(&MediaStreamConstraints::kinds(false, false))
        .unwrap_err();
    assert_eq!(err.name(), "TypeError");
}
