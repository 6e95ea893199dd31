//! Conformance cases derived from web-platform-tests' `mediacapture-streams` folder. Each
//! case runs twice — through the library's getUserMedia and through `usermedia select` —
//! and both answers must be identical JSON and meet the expectation. The legacy cases
//! (`mandatory`/`optional`, docs/legacy.md) mirror modern ones: the same devices, the same
//! outcome as their modern twin.

mod common;

use std::cell::RefCell;

use common::{cli_select, library_select, usermedia, Devices};
use serde_json::{json, Value};
use usermedia::error::{LegacyError, LegacyErrorCode};
use usermedia::MediaStream;

/// What a case expects.
enum Expect {
    /// Tracks in order (audio before video), each `(kind, deviceId, settings subset)`. A
    /// `null` in the subset means the member must be absent.
    Tracks(Vec<(&'static str, &'static str, Value)>),
    /// A media error by name, with the constraint for OverconstrainedError.
    Error(&'static str, Option<&'static str>),
}

fn tracks(t: Vec<(&'static str, &'static str, Value)>) -> Expect {
    Expect::Tracks(t)
}

fn over(constraint: &'static str) -> Expect {
    Expect::Error("OverconstrainedError", Some(constraint))
}

fn error(name: &'static str) -> Expect {
    Expect::Error(name, None)
}

fn run(devices: Devices, constraints: &str, deny: &[&str], expect: Expect) {
    let (lib_code, lib) = library_select(devices, constraints, deny);
    let (cli_code, cli) = cli_select(devices, constraints, deny);
    assert_eq!(lib, cli, "library and CLI disagree for {constraints}");
    assert_eq!(lib_code, cli_code, "exit codes disagree for {constraints}");
    match expect {
        Expect::Error(name, constraint) => {
            assert_eq!(cli_code, 1, "{constraints}: expected exit 1, got {cli}");
            let err = &cli["error"];
            assert_eq!(err["name"], name, "{constraints}: {cli}");
            match constraint {
                Some(c) => assert_eq!(err["constraint"], c, "{constraints}: {cli}"),
                None => assert!(err.get("constraint").is_none(), "{cli}"),
            }
            assert!(
                err["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{cli}"
            );
        }
        Expect::Tracks(expected) => {
            assert_eq!(cli_code, 0, "{constraints}: expected success, got {cli}");
            let got = cli["tracks"].as_array().expect("tracks array");
            assert_eq!(got.len(), expected.len(), "{constraints}: {cli}");
            for ((kind, device, subset), track) in expected.iter().zip(got) {
                assert_eq!(track["kind"], *kind, "{constraints}: {cli}");
                assert_eq!(track["deviceId"], *device, "{constraints}: {cli}");
                assert_eq!(track["settings"]["deviceId"], *device);
                for (key, want) in subset.as_object().expect("settings subset") {
                    let have = track["settings"].get(key);
                    if want.is_null() {
                        assert!(have.is_none(), "{constraints}: {key} must be absent: {cli}");
                    } else {
                        let have = have.unwrap_or_else(|| panic!("{constraints}: no {key}: {cli}"));
                        let equal = match (have.as_f64(), want.as_f64()) {
                            (Some(a), Some(b)) => (a - b).abs() < 1e-9,
                            _ => have == want,
                        };
                        assert!(equal, "{constraints}: {key} = {have}, want {want}: {cli}");
                    }
                }
            }
        }
    }
}

macro_rules! cases {
    ($( $(#[$doc:meta])* $name:ident: $devices:expr, $constraints:expr, [$($deny:expr),*], $expect:expr; )*) => {
        $(
            $(#[$doc])*
            #[test]
            fn $name() {
                run($devices, $constraints, &[$($deny),*], $expect);
            }
        )*
        /// The number of cases, so a test can hold the suite to its minimum size.
        const CASE_COUNT: usize = [$(stringify!($name)),*].len();
    };
}

use Devices::{Builtin, Phone};

const VP: &str = "virtual-pattern";
const VT: &str = "virtual-tone";

cases! {
    // --- GUM-trivial-constraint / MediaDevices-getUserMedia basics ---
    /// `{video: true}`: the default 640×480 at 30 fps, a native mode.
    trivial_video: Builtin, r#"{"video": true}"#, [],
        tracks(vec![("video", VP, json!({"width": 640, "height": 480, "frameRate": 30.0, "resizeMode": "none", "groupId": "virtual"}))]);
    /// `{audio: true}`: the first native mode (mono).
    trivial_audio: Builtin, r#"{"audio": true}"#, [],
        tracks(vec![("audio", VT, json!({"sampleRate": 48000, "channelCount": 1, "sampleSize": 16}))]);
    /// Both kinds: audio first, as browsers order getTracks().
    trivial_both: Builtin, r#"{"video": true, "audio": true}"#, [],
        tracks(vec![("audio", VT, json!({})), ("video", VP, json!({}))]);
    /// An empty constraints dictionary is like `true`.
    trivial_empty_dictionary: Builtin, r#"{"video": {}}"#, [],
        tracks(vec![("video", VP, json!({"width": 640, "height": 480}))]);
    /// `audio: false` with video: only video.
    trivial_audio_false: Builtin, r#"{"video": true, "audio": false}"#, [],
        tracks(vec![("video", VP, json!({}))]);

    // --- TypeErrors (MediaDevices-getUserMedia) ---
    /// Neither kind requested.
    type_error_empty: Builtin, r#"{}"#, [], error("TypeError");
    /// Both false.
    type_error_both_false: Builtin, r#"{"audio": false, "video": false}"#, [], error("TypeError");
    /// A value of the wrong JSON type.
    type_error_wrong_type: Builtin, r#"{"video": {"width": "wide"}}"#, [], error("TypeError");
    /// `video` that is neither boolean nor dictionary.
    type_error_video_number: Builtin, r#"{"video": 3}"#, [], error("TypeError");
    /// A boolean constraint given a string.
    type_error_boolean_constraint: Builtin, r#"{"audio": {"autoGainControl": {"exact": "yes"}}}"#, [], error("TypeError");

    // --- GUM-unknownkey-option-param ---
    /// An unknown top-level key beside a valid request is ignored.
    unknown_key_ignored: Builtin, r#"{"video": true, "unknownkey": true}"#, [],
        tracks(vec![("video", VP, json!({}))]);
    /// Only unknown keys: nothing requested, TypeError.
    unknown_key_only: Builtin, r#"{"unknownkey": true}"#, [], error("TypeError");
    /// An unknown constraint inside a track dictionary is ignored.
    unknown_constraint_ignored: Builtin, r#"{"video": {"unknownkey": {"exact": 5}}}"#, [],
        tracks(vec![("video", VP, json!({"width": 640}))]);

    // --- GUM-non-applicable-constraint ---
    /// A required video constraint on audio does not apply.
    non_applicable_width_on_audio: Builtin, r#"{"audio": {"width": {"exact": 640}}}"#, [],
        tracks(vec![("audio", VT, json!({"width": null}))]);
    /// A required audio constraint on video does not apply.
    non_applicable_sample_rate_on_video: Builtin, r#"{"video": {"sampleRate": {"exact": 1}}}"#, [],
        tracks(vec![("video", VP, json!({"sampleRate": null}))]);
    /// facingMode on a microphone does not apply.
    non_applicable_facing_on_audio: Builtin, r#"{"audio": {"facingMode": {"exact": "user"}}}"#, [],
        tracks(vec![("audio", VT, json!({"facingMode": null}))]);
    /// Constraints for the other kind are ignored even when malformed.
    non_applicable_malformed_ignored: Builtin, r#"{"audio": {"width": "wide"}}"#, [],
        tracks(vec![("audio", VT, json!({}))]);

    // --- GUM-impossible-constraint ---
    /// A width no device reaches.
    impossible_width_min: Builtin, r#"{"video": {"width": {"min": 100000000}}}"#, [], over("width");
    /// An exact height no native mode or crop reaches.
    impossible_height_exact: Builtin, r#"{"video": {"height": {"exact": 2000}}}"#, [], over("height");
    /// A frame rate above every mode.
    impossible_frame_rate: Builtin, r#"{"video": {"frameRate": {"min": 1000}}}"#, [], over("frameRate");
    /// min > max is not a TypeError, just unsatisfiable.
    impossible_min_above_max: Builtin, r#"{"video": {"width": {"min": 800, "max": 600}}}"#, [], over("width");
    /// A channel count the microphone lacks.
    impossible_channel_count: Builtin, r#"{"audio": {"channelCount": {"exact": 3}}}"#, [], over("channelCount");
    /// A sample rate the microphone lacks (no resampling during selection).
    impossible_sample_rate: Builtin, r#"{"audio": {"sampleRate": {"exact": 44100}}}"#, [], over("sampleRate");
    /// Echo cancellation required on a device without it.
    impossible_echo_cancellation: Builtin, r#"{"audio": {"echoCancellation": {"exact": true}}}"#, [], over("echoCancellation");

    // --- GUM-optional-constraint ---
    /// An unreachable ideal picks the closest mode instead of failing.
    optional_width_ideal_huge: Builtin, r#"{"video": {"width": {"ideal": 100000}}}"#, [],
        tracks(vec![("video", VP, json!({"width": 1920, "height": 1080}))]);
    /// An ideal facingMode on a camera without one still succeeds.
    optional_facing_without_facing: Builtin, r#"{"video": {"facingMode": "user"}}"#, [],
        tracks(vec![("video", VP, json!({"facingMode": null}))]);
    /// An ideal echo cancellation the device lacks: succeeds with it off.
    optional_echo_cancellation: Builtin, r#"{"audio": {"echoCancellation": true}}"#, [],
        tracks(vec![("audio", VT, json!({"echoCancellation": false}))]);

    // --- GUM-required-constraint-with-ideal-value ---
    /// min plus ideal: the ideal is reached.
    required_min_with_ideal: Builtin, r#"{"video": {"width": {"min": 320, "ideal": 1280}}}"#, [],
        tracks(vec![("video", VP, json!({"width": 1280, "height": 720, "resizeMode": "none"}))]);
    /// max below the ideal: the closest allowed, by crop-and-scale.
    required_max_below_ideal: Builtin, r#"{"video": {"width": {"max": 800, "ideal": 1280}}}"#, [],
        tracks(vec![("video", VP, json!({"width": 800, "height": 450, "resizeMode": "crop-and-scale"}))]);
    /// exact wins over a conflicting ideal.
    required_exact_with_ideal: Builtin, r#"{"video": {"height": {"exact": 720, "ideal": 1080}}}"#, [],
        tracks(vec![("video", VP, json!({"height": 720, "width": 1280}))]);

    // --- GUM-invalid-facing-mode ---
    /// An invalid facingMode as exact: OverconstrainedError naming facingMode.
    invalid_facing_mode_exact: Phone, r#"{"video": {"facingMode": {"exact": "invalid"}}}"#, [], over("facingMode");
    /// An invalid facingMode as ideal: ignored.
    invalid_facing_mode_ideal: Phone, r#"{"video": {"facingMode": "invalid"}}"#, [],
        tracks(vec![("video", "back", json!({}))]);

    // --- facingMode and device selection ---
    /// The issue's example: exact environment picks the back camera.
    facing_exact_environment: Phone, r#"{"video": {"facingMode": {"exact": "environment"}}}"#, [],
        tracks(vec![("video", "back", json!({"facingMode": "environment"}))]);
    /// An ideal user picks the front camera although the back one comes first.
    facing_ideal_user: Phone, r#"{"video": {"facingMode": "user"}}"#, [],
        tracks(vec![("video", "front", json!({"facingMode": "user"}))]);
    /// An exact list: any listed value will do.
    facing_exact_list: Phone, r#"{"video": {"facingMode": {"exact": ["left", "user"]}}}"#, [],
        tracks(vec![("video", "front", json!({"facingMode": "user"}))]);
    /// Required facingMode on a camera that has none.
    facing_exact_on_camera_without_facing: Builtin, r#"{"video": {"facingMode": {"exact": "user"}}}"#, [], over("facingMode");
    /// deviceId exact.
    device_id_exact: Phone, r#"{"video": {"deviceId": {"exact": "front"}}}"#, [],
        tracks(vec![("video", "front", json!({}))]);
    /// deviceId ideal overrides device order.
    device_id_ideal: Phone, r#"{"video": {"deviceId": "front"}}"#, [],
        tracks(vec![("video", "front", json!({}))]);
    /// An unknown deviceId as exact.
    device_id_unknown: Phone, r#"{"video": {"deviceId": {"exact": "nope"}}}"#, [], over("deviceId");
    /// groupId exact.
    group_id_exact: Phone, r#"{"audio": {"groupId": {"exact": "phone"}}}"#, [],
        tracks(vec![("audio", "mic", json!({"groupId": "phone"}))]);
    /// An unknown groupId as exact.
    group_id_unknown: Phone, r#"{"video": {"groupId": {"exact": "other"}}}"#, [], over("groupId");

    // --- resizeMode (MediaDevices-getUserMedia resizeMode cases) ---
    /// resizeMode none: only native modes.
    resize_none_exact: Builtin, r#"{"video": {"resizeMode": {"exact": "none"}, "width": 1000}}"#, [],
        tracks(vec![("video", VP, json!({"width": 1280, "height": 720, "resizeMode": "none"}))]);
    /// resizeMode crop-and-scale required without sizes: the default size, scaled.
    resize_crop_exact: Builtin, r#"{"video": {"resizeMode": {"exact": "crop-and-scale"}}}"#, [],
        tracks(vec![("video", VP, json!({"width": 640, "height": 480, "resizeMode": "crop-and-scale"}))]);
    /// An invalid resizeMode as exact.
    resize_invalid: Builtin, r#"{"video": {"resizeMode": {"exact": "invalid"}}}"#, [], over("resizeMode");
    /// Sizes no native mode has: crop-and-scale produces them exactly.
    resize_exact_size: Builtin, r#"{"video": {"width": {"exact": 300}, "height": {"exact": 200}}}"#, [],
        tracks(vec![("video", VP, json!({"width": 300, "height": 200, "resizeMode": "crop-and-scale"}))]);
    /// An ideal none outweighs an ideal width that only scaling meets.
    resize_ideal_none: Builtin, r#"{"video": {"resizeMode": "none", "width": 1000}}"#, [],
        tracks(vec![("video", VP, json!({"width": 1280, "resizeMode": "none"}))]);
    /// A lower frame rate by dropping frames.
    resize_frame_rate: Builtin, r#"{"video": {"frameRate": {"exact": 15}}}"#, [],
        tracks(vec![("video", VP, json!({"width": 640, "height": 480, "frameRate": 15.0, "resizeMode": "crop-and-scale"}))]);
    /// Frame dropping stops at the frameRate capability's minimum (1 fps).
    frame_rate_below_capability_min: Builtin, r#"{"video": {"frameRate": {"exact": 0.5}}}"#, [], over("frameRate");
    /// At the minimum it works.
    frame_rate_at_capability_min: Builtin, r#"{"video": {"frameRate": {"exact": 1}}}"#, [],
        tracks(vec![("video", VP, json!({"frameRate": 1.0, "resizeMode": "crop-and-scale"}))]);
    /// resizeMode none cannot drop frames.
    resize_none_frame_rate: Builtin, r#"{"video": {"resizeMode": {"exact": "none"}, "frameRate": {"exact": 15}}}"#, [], over("frameRate");
    /// A square crop, closest to the default size.
    resize_square: Builtin, r#"{"video": {"aspectRatio": {"exact": 1}}}"#, [],
        tracks(vec![("video", VP, json!({"width": 480, "height": 480, "aspectRatio": 1.0}))]);
    /// 16:9 at width 640: a crop of 640×480.
    resize_wide_crop: Builtin, r#"{"video": {"aspectRatio": 1.7777777777777777, "width": 640}}"#, [],
        tracks(vec![("video", VP, json!({"width": 640, "height": 360}))]);

    /// A camera whose only mode is slower than 1 fps still crops and scales: frame
    /// dropping stops at the native rate there, not at 1 fps.
    slow_mode_scales: Devices::Json(SLOW_CAMERA), r#"{"video": {"width": {"exact": 320}}}"#, [],
        tracks(vec![("video", "slow", json!({"width": 320, "height": 240, "frameRate": 0.5, "resizeMode": "crop-and-scale"}))]);
    /// Its native rate, exactly.
    slow_mode_native_rate: Devices::Json(SLOW_CAMERA), r#"{"video": {"frameRate": {"exact": 0.5}}}"#, [],
        tracks(vec![("video", "slow", json!({"width": 640, "height": 480, "frameRate": 0.5, "resizeMode": "none"}))]);
    /// Its native rate with a scaled size.
    slow_mode_native_rate_scaled: Devices::Json(SLOW_CAMERA), r#"{"video": {"frameRate": {"exact": 0.5}, "width": {"exact": 320}}}"#, [],
        tracks(vec![("video", "slow", json!({"width": 320, "height": 240, "frameRate": 0.5, "resizeMode": "crop-and-scale"}))]);
    /// Below its native rate: no frames to drop.
    slow_mode_below_native_rate: Devices::Json(SLOW_CAMERA), r#"{"video": {"frameRate": {"exact": 0.25}}}"#, [], over("frameRate");
    /// An advanced set met only through the slow mode narrows the later sets.
    slow_mode_advanced: Devices::Json(SLOW_CAMERA), r#"{"video": {"advanced": [{"width": {"max": 400}}, {"height": 200}]}}"#, [],
        tracks(vec![("video", "slow", json!({"width": 267, "height": 200, "frameRate": 0.5, "resizeMode": "crop-and-scale"}))]);

    // --- advanced (MediaDevices-getUserMedia, applied across devices) ---
    /// An advanced set decides between devices.
    advanced_decides_device: Phone, r#"{"video": {"advanced": [{"facingMode": "user"}]}}"#, [],
        tracks(vec![("video", "front", json!({}))]);
    /// An unsatisfiable advanced set is skipped; the next applies.
    advanced_skips_impossible: Phone, r#"{"video": {"advanced": [{"width": 100000}, {"facingMode": "user"}]}}"#, [],
        tracks(vec![("video", "front", json!({}))]);
    /// Earlier sets win: a later set the survivors cannot meet is skipped.
    advanced_order_matters: Phone, r#"{"video": {"advanced": [{"facingMode": "user"}, {"facingMode": "environment"}]}}"#, [],
        tracks(vec![("video", "front", json!({}))]);
    /// An advanced size beats the basic ideal, by scaling.
    advanced_beats_basic_ideal: Builtin, r#"{"video": {"width": 1280, "advanced": [{"width": 400, "height": 300}]}}"#, [],
        tracks(vec![("video", VP, json!({"width": 400, "height": 300}))]);
    /// Advanced sets never cause a failure.
    advanced_never_fails: Builtin, r#"{"video": {"advanced": [{"width": 100000}]}}"#, [],
        tracks(vec![("video", VP, json!({"width": 640}))]);
    /// Advanced sets narrow one after the other: a square, then width 500 among squares —
    /// 500×500, a crop of 1280×720 (not 480×480, the square closest to the default).
    advanced_sets_narrow_cumulatively: Builtin, r#"{"video": {"advanced": [{"aspectRatio": 1}, {"width": 500}]}}"#, [],
        tracks(vec![("video", VP, json!({"width": 500, "height": 500, "resizeMode": "crop-and-scale"}))]);
    /// The same as a basic aspect ratio with one advanced set.
    advanced_after_basic_aspect: Builtin, r#"{"video": {"aspectRatio": 1, "advanced": [{"width": 500}]}}"#, [],
        tracks(vec![("video", VP, json!({"width": 500, "height": 500}))]);
    /// A set no device can meet is skipped, and does not stop the later sets from
    /// narrowing by scaling.
    advanced_skipped_set_does_not_block_later_ones: Builtin, r#"{"video": {"advanced": [{"width": 5000}, {"width": 500}, {"height": 300}]}}"#, [],
        tracks(vec![("video", VP, json!({"width": 500, "height": 300, "resizeMode": "crop-and-scale"}))]);
    /// Three sets, each narrowing the last: 4:3, at most 400 wide, 15 fps.
    advanced_three_sets_cumulative: Builtin, r#"{"video": {"advanced": [{"aspectRatio": 1.3333333333333333}, {"width": {"max": 400}}, {"frameRate": 15}]}}"#, [],
        tracks(vec![("video", VP, json!({"width": 400, "height": 300, "frameRate": 15.0}))]);

    // --- audio selection ---
    /// channelCount ideal 2 picks the stereo mode.
    audio_stereo: Builtin, r#"{"audio": {"channelCount": 2}}"#, [],
        tracks(vec![("audio", VT, json!({"channelCount": 2}))]);
    /// Audio settings carry every member docs/cli.md ("select") names.
    audio_settings_members: Builtin, r#"{"audio": true}"#, [],
        tracks(vec![("audio", VT, json!({"groupId": "virtual", "sampleRate": 48000, "sampleSize": 16, "channelCount": 1, "latency": 0.01, "echoCancellation": false, "autoGainControl": false, "noiseSuppression": false}))]);

    // --- MediaStreamTrack-getSettings (through selection) ---
    /// Video settings carry every member docs/cli.md ("select") names, and no facingMode without one.
    video_settings_members: Builtin, r#"{"video": {"width": 1280}}"#, [],
        tracks(vec![("video", VP, json!({"groupId": "virtual", "width": 1280, "height": 720, "aspectRatio": 1.7777777777777777, "frameRate": 30.0, "resizeMode": "none", "facingMode": null}))]);

    // --- GUM-deny and NotFoundError ---
    /// The camera permission denied.
    deny_camera: Phone, r#"{"video": true}"#, ["camera"], error("NotAllowedError");
    /// A denied microphone does not matter to a video-only request.
    deny_microphone_video_only: Phone, r#"{"video": true}"#, ["microphone"],
        tracks(vec![("video", "back", json!({}))]);
    /// A denied microphone fails a request that includes audio.
    deny_microphone_with_audio: Phone, r#"{"video": true, "audio": true}"#, ["microphone"], error("NotAllowedError");
    /// Asking exactly for a denied device: NotAllowedError, not OverconstrainedError.
    deny_device_required: Phone, r#"{"video": {"facingMode": {"exact": "environment"}}}"#, ["back"], error("NotAllowedError");
    /// A denied device is passed over for an allowed one.
    deny_device_fallback: Phone, r#"{"video": true}"#, ["back"],
        tracks(vec![("video", "front", json!({}))]);
    /// The Done-when example does not rest on device order: with the front camera listed
    /// first, an exact facingMode of environment still picks the back camera.
    facing_exact_front_listed_first: Devices::Json(FRONT_FIRST), r#"{"video": {"facingMode": {"exact": "environment"}}}"#, [],
        tracks(vec![("video", "back", json!({"facingMode": "environment"}))]);
    /// And without a constraint the first listed camera (here the front one) is chosen, so
    /// the case above is decided by facingMode.
    front_listed_first_default: Devices::Json(FRONT_FIRST), r#"{"video": true}"#, [],
        tracks(vec![("video", "front", json!({"facingMode": "user"}))]);
    /// `null` for a kind is WebIDL's conversion of null to the dictionary: `{}`, requested.
    null_requests_the_kind: Builtin, r#"{"video": null}"#, [],
        tracks(vec![("video", VP, json!({"width": 640, "height": 480}))]);
    /// No device of the kind at all.
    not_found_no_camera: Devices::Json(r#"{"devices": [{"kind": "audioinput", "deviceId": "m", "modes": [{"sampleRate": 48000, "channelCount": 1}]}]}"#),
        r#"{"video": true}"#, [], error("NotFoundError");
}

/// One camera whose only native mode is 640×480 at 0.5 fps.
const SLOW_CAMERA: &str = r#"{ "devices": [
  { "kind": "videoinput", "deviceId": "slow", "groupId": "slow", "label": "Slow camera",
    "source": "pattern",
    "modes": [ {"width": 640, "height": 480, "frameRate": 0.5} ] }
] }"#;

/// `examples/devices/phone.json` with the front camera listed before the back one.
const FRONT_FIRST: &str = r#"{ "devices": [
  { "kind": "videoinput", "deviceId": "front", "groupId": "phone", "label": "Front camera",
    "facingMode": "user", "source": "pattern",
    "modes": [ {"width": 640, "height": 480, "frameRate": 30},
               {"width": 1280, "height": 720, "frameRate": 30} ] },
  { "kind": "videoinput", "deviceId": "back", "groupId": "phone", "label": "Back camera",
    "facingMode": "environment", "source": "pattern",
    "modes": [ {"width": 640, "height": 480, "frameRate": 30},
               {"width": 1280, "height": 720, "frameRate": 30},
               {"width": 1920, "height": 1080, "frameRate": 30} ] },
  { "kind": "audioinput", "deviceId": "mic", "groupId": "phone", "label": "Microphone",
    "source": "tone",
    "modes": [ {"sampleRate": 48000, "channelCount": 1} ] }
] }"#;

// --- MediaStreamTrack-getCapabilities: `devices --json` against the library ---

/// Every device's capabilities as `usermedia devices --json` prints them, by deviceId.
fn cli_capabilities(devices: Devices) -> Vec<(String, Value)> {
    let path = devices.path();
    let out = usermedia(&[
        "devices",
        "--json",
        "--devices",
        path.path.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).expect("devices --json prints JSON");
    v["devices"]
        .as_array()
        .expect("devices array")
        .iter()
        .map(|d| {
            (
                d["deviceId"].as_str().expect("deviceId").to_owned(),
                d["capabilities"].clone(),
            )
        })
        .collect()
}

/// A live track of every device through the library's getUserMedia (deviceId exact), and
/// its `get_capabilities()`, in device order.
fn library_capabilities(devices: Devices) -> Vec<(String, Value)> {
    let media = devices.media_devices(&[]);
    media
        .enumerate_devices()
        .iter()
        .map(|info| {
            let kind = if info.kind.as_str() == "videoinput" {
                "video"
            } else {
                "audio"
            };
            let constraints = json!({ kind: {"deviceId": {"exact": info.device_id}} });
            let stream = media
                .get_user_media_json(&constraints.to_string())
                .expect("a track of every device");
            let track = &stream.get_tracks()[0];
            let caps = serde_json::to_value(track.get_capabilities()).expect("JSON");
            track.stop();
            (info.device_id.clone(), caps)
        })
        .collect()
}

fn capabilities_agree(devices: Devices, expected_ids: &[&str]) {
    let cli = cli_capabilities(devices);
    let lib = library_capabilities(devices);
    let ids: Vec<&str> = cli.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, expected_ids);
    assert_eq!(cli, lib, "devices --json and get_capabilities() disagree");
    // The comparison is not vacuous: each has the members of its kind.
    for (id, caps) in &cli {
        assert_eq!(caps["deviceId"], id.as_str());
        assert!(
            caps.get("width").is_some() || caps.get("sampleRate").is_some(),
            "{caps}"
        );
    }
}

#[test]
fn capabilities_cli_and_library_agree_phone() {
    capabilities_agree(Devices::Phone, &["back", "front", "mic"]);
}

#[test]
fn capabilities_cli_and_library_agree_builtin() {
    capabilities_agree(Devices::Builtin, &["virtual-pattern", "virtual-tone"]);
}

// --- The legacy syntax, mirroring modern cases ---

/// Runs a legacy case as [`run`] does (library and CLI), and its modern twin through the
/// library: the same tracks, or the same error name and constraint.
fn mirror(devices: Devices, legacy: &str, modern: &str, deny: &[&str], expect: Expect) {
    run(devices, legacy, deny, expect);
    let (legacy_code, legacy_out) = library_select(devices, legacy, deny);
    let (modern_code, modern_out) = library_select(devices, modern, deny);
    assert_eq!(
        legacy_code, modern_code,
        "{legacy} vs {modern}: {legacy_out} / {modern_out}"
    );
    if legacy_code == 0 {
        assert_eq!(
            legacy_out, modern_out,
            "{legacy} vs its modern twin {modern}"
        );
    } else {
        for key in ["name", "constraint"] {
            assert_eq!(
                legacy_out["error"].get(key),
                modern_out["error"].get(key),
                "{legacy} vs {modern}: {legacy_out} / {modern_out}"
            );
        }
    }
}

macro_rules! legacy_cases {
    ($( $(#[$doc:meta])* $name:ident: $devices:expr, $legacy:expr, $modern:expr, [$($deny:expr),*], $expect:expr; )*) => {
        $(
            $(#[$doc])*
            #[test]
            fn $name() {
                mirror($devices, $legacy, $modern, &[$($deny),*], $expect);
            }
        )*
        /// The number of legacy cases, held to the issue's minimum below.
        const LEGACY_CASE_COUNT: usize = [$(stringify!($name)),*].len();
    };
}

legacy_cases! {
    /// `impossible_width_min`: a mandatory minWidth no device reaches names `width`.
    legacy_impossible_min_width: Builtin, r#"{"video": {"mandatory": {"minWidth": 100000000}}}"#,
        r#"{"video": {"width": {"min": 100000000}}}"#, [], over("width");
    /// `impossible_height_exact`: minHeight = maxHeight is adapter.js's exact.
    legacy_impossible_height_exact: Builtin, r#"{"video": {"mandatory": {"minHeight": 2000, "maxHeight": 2000}}}"#,
        r#"{"video": {"height": {"exact": 2000}}}"#, [], over("height");
    /// `impossible_frame_rate`.
    legacy_impossible_frame_rate: Builtin, r#"{"video": {"mandatory": {"minFrameRate": 1000}}}"#,
        r#"{"video": {"frameRate": {"min": 1000}}}"#, [], over("frameRate");
    /// `impossible_min_above_max`: not a TypeError, just unsatisfiable.
    legacy_min_above_max: Builtin, r#"{"video": {"mandatory": {"minWidth": 800, "maxWidth": 600}}}"#,
        r#"{"video": {"width": {"min": 800, "max": 600}}}"#, [], over("width");
    /// A mandatory minimum that a native mode meets.
    legacy_min_width_met: Builtin, r#"{"video": {"mandatory": {"minWidth": 1280}}}"#,
        r#"{"video": {"width": {"min": 1280}}}"#, [],
        tracks(vec![("video", VP, json!({"width": 1280, "height": 720, "resizeMode": "none"}))]);
    /// A mandatory range met only by crop-and-scale.
    legacy_width_range_scaled: Builtin, r#"{"video": {"mandatory": {"minWidth": 700, "maxWidth": 800}}}"#,
        r#"{"video": {"width": {"min": 700, "max": 800}}}"#, [],
        tracks(vec![("video", VP, json!({"width": 800, "height": 450, "resizeMode": "crop-and-scale"}))]);
    /// `resize_frame_rate`: min = max frame rate by dropping frames.
    legacy_frame_rate_exact: Builtin, r#"{"video": {"mandatory": {"minFrameRate": 15, "maxFrameRate": 15}}}"#,
        r#"{"video": {"frameRate": {"exact": 15}}}"#, [],
        tracks(vec![("video", VP, json!({"width": 640, "height": 480, "frameRate": 15.0, "resizeMode": "crop-and-scale"}))]);
    /// `resize_square`: an aspect-ratio range of one value.
    legacy_square: Builtin, r#"{"video": {"mandatory": {"minAspectRatio": 1, "maxAspectRatio": 1}}}"#,
        r#"{"video": {"aspectRatio": {"exact": 1}}}"#, [],
        tracks(vec![("video", VP, json!({"width": 480, "height": 480, "aspectRatio": 1.0}))]);
    /// `facing_exact_environment`: a mandatory facingMode picks the back camera.
    legacy_facing_environment: Phone, r#"{"video": {"mandatory": {"facingMode": "environment"}}}"#,
        r#"{"video": {"facingMode": {"exact": "environment"}}}"#, [],
        tracks(vec![("video", "back", json!({"facingMode": "environment"}))]);
    /// `facing_exact_on_camera_without_facing`.
    legacy_facing_without_facing: Builtin, r#"{"video": {"mandatory": {"facingMode": "user"}}}"#,
        r#"{"video": {"facingMode": {"exact": "user"}}}"#, [], over("facingMode");
    /// `device_id_exact`: `sourceId` is deviceId.
    legacy_source_id: Phone, r#"{"video": {"mandatory": {"sourceId": "front"}}}"#,
        r#"{"video": {"deviceId": {"exact": "front"}}}"#, [],
        tracks(vec![("video", "front", json!({}))]);
    /// `device_id_unknown`: the error names the modern `deviceId`, not `sourceId`.
    legacy_source_id_unknown: Phone, r#"{"video": {"mandatory": {"sourceId": "nope"}}}"#,
        r#"{"video": {"deviceId": {"exact": "nope"}}}"#, [], over("deviceId");
    /// `advanced_decides_device`: an optional entry is an advanced set.
    legacy_optional_decides_device: Phone, r#"{"video": {"optional": [{"facingMode": "user"}]}}"#,
        r#"{"video": {"advanced": [{"facingMode": "user"}]}}"#, [],
        tracks(vec![("video", "front", json!({}))]);
    /// `advanced_skips_impossible`: an unsatisfiable optional entry is skipped.
    legacy_optional_skips_impossible: Phone, r#"{"video": {"optional": [{"minWidth": 100000}, {"facingMode": "user"}]}}"#,
        r#"{"video": {"advanced": [{"width": {"min": 100000}}, {"facingMode": "user"}]}}"#, [],
        tracks(vec![("video", "front", json!({}))]);
    /// `advanced_order_matters`: optional entries apply in order.
    legacy_optional_order: Phone, r#"{"video": {"optional": [{"facingMode": "user"}, {"facingMode": "environment"}]}}"#,
        r#"{"video": {"advanced": [{"facingMode": "user"}, {"facingMode": "environment"}]}}"#, [],
        tracks(vec![("video", "front", json!({}))]);
    /// `advanced_never_fails`: optional entries never cause a failure.
    legacy_optional_never_fails: Builtin, r#"{"video": {"optional": [{"minWidth": 100000}]}}"#,
        r#"{"video": {"advanced": [{"width": 100000}]}}"#, [],
        tracks(vec![("video", VP, json!({"width": 640}))]);
    /// `advanced_sets_narrow_cumulatively`: a square, then width 500 among squares.
    legacy_optional_cumulative: Builtin, r#"{"video": {"optional": [{"minAspectRatio": 1, "maxAspectRatio": 1}, {"minWidth": 500, "maxWidth": 500}]}}"#,
        r#"{"video": {"advanced": [{"aspectRatio": 1}, {"width": 500}]}}"#, [],
        tracks(vec![("video", VP, json!({"width": 500, "height": 500, "resizeMode": "crop-and-scale"}))]);
    /// The issue's form: a mandatory range with an optional wish outside it (skipped).
    legacy_mandatory_and_optional: Phone, r#"{"video": {"mandatory": {"minWidth": 1280, "maxWidth": 1920}, "optional": [{"minWidth": 1920}]}}"#,
        r#"{"video": {"width": {"min": 1280, "max": 1920}, "advanced": [{"width": {"min": 1920}}]}}"#, [],
        tracks(vec![("video", "back", json!({"width": 1920, "height": 1080, "resizeMode": "none"}))]);
    /// `trivial_empty_dictionary`: an empty mandatory is `{}`.
    legacy_empty_mandatory: Builtin, r#"{"video": {"mandatory": {}, "optional": []}}"#,
        r#"{"video": {}}"#, [],
        tracks(vec![("video", VP, json!({"width": 640, "height": 480}))]);
    /// `impossible_echo_cancellation`: Chrome's `googEchoCancellation`.
    legacy_impossible_echo_cancellation: Builtin, r#"{"audio": {"mandatory": {"googEchoCancellation": true}}}"#,
        r#"{"audio": {"echoCancellation": {"exact": true}}}"#, [], over("echoCancellation");
    /// adapter.js's `googAutoGainControl`, met by a device without it when off.
    legacy_auto_gain_off: Builtin, r#"{"audio": {"mandatory": {"googAutoGainControl": false, "googNoiseSuppression": false}}}"#,
        r#"{"audio": {"autoGainControl": {"exact": false}, "noiseSuppression": {"exact": false}}}"#, [],
        tracks(vec![("audio", VT, json!({"autoGainControl": false, "noiseSuppression": false}))]);
    /// `audio_stereo`, as a mandatory minimum.
    legacy_audio_stereo: Builtin, r#"{"audio": {"mandatory": {"minChannelCount": 2}}}"#,
        r#"{"audio": {"channelCount": {"min": 2}}}"#, [],
        tracks(vec![("audio", VT, json!({"channelCount": 2}))]);
    /// `impossible_sample_rate`.
    legacy_impossible_sample_rate: Builtin, r#"{"audio": {"mandatory": {"minSampleRate": 96000}}}"#,
        r#"{"audio": {"sampleRate": {"min": 96000}}}"#, [], over("sampleRate");
    /// `non_applicable_width_on_audio`: a video key on audio does not apply.
    legacy_non_applicable: Builtin, r#"{"audio": {"mandatory": {"minWidth": 100000}}}"#,
        r#"{"audio": {"width": {"min": 100000}}}"#, [],
        tracks(vec![("audio", VT, json!({"width": null}))]);
    /// `deny_camera`.
    legacy_deny_camera: Phone, r#"{"video": {"mandatory": {"minWidth": 640}}}"#,
        r#"{"video": {"width": {"min": 640}}}"#, ["camera"], error("NotAllowedError");
    /// `deny_device_required`: NotAllowedError, not OverconstrainedError.
    legacy_deny_device_required: Phone, r#"{"video": {"mandatory": {"facingMode": "environment"}}}"#,
        r#"{"video": {"facingMode": {"exact": "environment"}}}"#, ["back"], error("NotAllowedError");
    /// `not_found_no_camera`.
    legacy_not_found: Devices::Json(r#"{"devices": [{"kind": "audioinput", "deviceId": "m", "modes": [{"sampleRate": 48000, "channelCount": 1}]}]}"#),
        r#"{"video": {"mandatory": {"minWidth": 640}}}"#, r#"{"video": {"width": {"min": 640}}}"#, [], error("NotFoundError");
    /// `type_error_wrong_type`: a legacy value of the wrong type.
    legacy_wrong_type: Builtin, r#"{"video": {"mandatory": {"minWidth": "wide"}}}"#,
        r#"{"video": {"width": "wide"}}"#, [], error("TypeError");
    /// Mixing the syntaxes in one dictionary is a TypeError (its twin: another TypeError).
    legacy_mixed_with_modern: Builtin, r#"{"video": {"mandatory": {"minWidth": 640}, "height": 480}}"#,
        r#"{"video": 3}"#, [], error("TypeError");
}

/// The issue asks for at least 15 legacy cases.
const _: () = assert!(LEGACY_CASE_COUNT >= 15, "at least 15 legacy cases");

#[test]
fn a_mixed_dictionary_names_the_clashing_keys_in_the_library_and_the_cli() {
    let constraints = r#"{"video": {"mandatory": {"minWidth": 640, "width": 800}}}"#;
    let (_, lib) = library_select(Builtin, constraints, &[]);
    let (code, cli) = cli_select(Builtin, constraints, &[]);
    assert_eq!(code, 1);
    assert_eq!(lib, cli);
    let message = cli["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("video.mandatory")
            && message.contains("\"width\"")
            && message.contains("\"minWidth\""),
        "{message}"
    );
}

// --- The legacy callback API ---

/// What the callbacks of one `get_user_media_legacy_json` call received.
enum Outcome {
    Success(MediaStream),
    Failure(LegacyError),
}

fn legacy_call(devices: Devices, deny: &[&str], constraints: &str) -> Outcome {
    let media = devices.media_devices(deny);
    let calls = RefCell::new(Vec::new());
    media.get_user_media_legacy_json(
        constraints,
        |stream| calls.borrow_mut().push(Outcome::Success(stream)),
        |error| calls.borrow_mut().push(Outcome::Failure(error)),
    );
    let mut calls = calls.into_inner();
    assert_eq!(
        calls.len(),
        1,
        "exactly one callback, once, for {constraints}"
    );
    calls.remove(0)
}

fn legacy_failure(devices: Devices, deny: &[&str], constraints: &str) -> LegacyError {
    match legacy_call(devices, deny, constraints) {
        Outcome::Failure(e) => e,
        Outcome::Success(_) => panic!("{constraints}: expected the error callback"),
    }
}

#[test]
fn legacy_callback_delivers_the_stream() {
    let Outcome::Success(stream) = legacy_call(
        Phone,
        &[],
        r#"{"video": {"mandatory": {"facingMode": "user"}}, "audio": true}"#,
    ) else {
        panic!("expected the success callback");
    };
    let tracks = stream.get_tracks();
    assert_eq!(tracks.len(), 2);
    let settings = tracks[1].get_settings();
    assert_eq!(settings.device_id.as_deref(), Some("front"));
    for t in tracks {
        t.stop();
    }
    // The typed form, with constraints parsed from the legacy syntax.
    let media = Phone.media_devices(&[]);
    let (constraints, _) = usermedia::MediaStreamConstraints::from_json_str(
        r#"{"video": {"mandatory": {"sourceId": "back"}}}"#,
    )
    .expect("legacy constraints parse");
    let mut got = None;
    media.get_user_media_legacy(
        &constraints,
        |s| got = Some(s),
        |e| panic!("unexpected error callback: {e}"),
    );
    let stream = got.expect("success callback");
    assert_eq!(
        stream.get_tracks()[0].get_settings().device_id.as_deref(),
        Some("back")
    );
    stream.get_tracks()[0].stop();
}

#[test]
fn legacy_callback_permission_denied() {
    let e = legacy_failure(
        Phone,
        &["camera"],
        r#"{"video": {"mandatory": {"minWidth": 640}}}"#,
    );
    assert_eq!(e.code, LegacyErrorCode::PermissionDenied);
    assert_eq!(e.code.as_str(), "PERMISSION_DENIED");
    assert_eq!(e.name, "NotAllowedError");
    assert_eq!(e.constraint_name, None);
    assert!(e.to_string().starts_with("PERMISSION_DENIED: "), "{e}");
}

#[test]
fn legacy_callback_a_device_that_cannot_open_is_permission_denied() {
    let devices = Devices::Json(
        r#"{"devices": [{"kind": "videoinput", "deviceId": "gone", "source": {"file": "/nonexistent/clip.y4m"},
            "modes": [{"width": 320, "height": 240, "frameRate": 30}]}]}"#,
    );
    let e = legacy_failure(
        devices,
        &[],
        r#"{"video": {"mandatory": {"minWidth": 320}}}"#,
    );
    assert_eq!(e.code, LegacyErrorCode::PermissionDenied);
    assert_eq!(e.name, "NotReadableError");
}

#[test]
fn legacy_callback_mandatory_unsatisfied_names_the_modern_constraint() {
    let e = legacy_failure(
        Builtin,
        &[],
        r#"{"video": {"mandatory": {"minWidth": 100000}}}"#,
    );
    assert_eq!(e.code, LegacyErrorCode::MandatoryUnsatisfiedError);
    assert_eq!(e.code.as_str(), "MANDATORY_UNSATISFIED_ERROR");
    assert_eq!(e.name, "OverconstrainedError");
    assert_eq!(e.constraint_name.as_deref(), Some("width"));
    let e = legacy_failure(
        Phone,
        &[],
        r#"{"video": {"mandatory": {"sourceId": "nope"}}}"#,
    );
    assert_eq!(e.constraint_name.as_deref(), Some("deviceId"));
}

#[test]
fn legacy_callback_not_supported() {
    // No device of the kind.
    let devices = Devices::Json(
        r#"{"devices": [{"kind": "audioinput", "deviceId": "m", "modes": [{"sampleRate": 48000, "channelCount": 1}]}]}"#,
    );
    let e = legacy_failure(devices, &[], r#"{"video": {"mandatory": {}}}"#);
    assert_eq!(e.code, LegacyErrorCode::NotSupportedError);
    assert_eq!(e.code.as_str(), "NOT_SUPPORTED_ERROR");
    assert_eq!(e.name, "NotFoundError");
    // Constraints that are not usable: the syntaxes mixed, and nothing requested.
    let e = legacy_failure(
        Builtin,
        &[],
        r#"{"video": {"mandatory": {"minWidth": 640}, "advanced": []}}"#,
    );
    assert_eq!(e.code, LegacyErrorCode::NotSupportedError);
    assert_eq!(e.name, "TypeError");
    assert!(e.message.contains("\"advanced\""), "{}", e.message);
    let e = legacy_failure(Builtin, &[], r#"{"video": false}"#);
    assert_eq!(
        (e.code, e.name),
        (LegacyErrorCode::NotSupportedError, "TypeError")
    );
}

/// The suite holds at least 40 cases; checked when it compiles.
const _: () = assert!(
    CASE_COUNT >= 40,
    "the conformance suite needs at least 40 cases"
);
