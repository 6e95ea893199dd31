//! The `usermedia` command line: output shapes, exit codes (0 ok, 1 media error, 2 bad
//! input, 3 a runtime or network failure) and error messages that name what is wrong.

mod common;

use common::{example, temp_file, usermedia};
use serde_json::Value;
use usermedia::devices::{MediaDevices, PermissionPolicy};

fn stdout_json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON on stdout ({e}): {:?} / {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn done_when_overconstrained_width() {
    // Exactly the issue's command: no devices file, whatever this machine has.
    let out = usermedia(&[
        "select",
        "--constraints",
        r#"{"video":{"width":{"min":100000}}}"#,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = stdout_json(&out);
    assert_eq!(v["error"]["name"], "OverconstrainedError");
    assert_eq!(v["error"]["constraint"], "width");
    assert!(v["error"]["message"].as_str().unwrap().contains("width"));
}

#[test]
fn done_when_phone_back_camera() {
    let phone = example("phone.json");
    let out = usermedia(&[
        "select",
        "--devices",
        phone.to_str().unwrap(),
        "--constraints",
        r#"{"video":{"facingMode":{"exact":"environment"}}}"#,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = stdout_json(&out);
    let track = &v["tracks"][0];
    assert_eq!(track["deviceId"], "back");
    assert_eq!(track["label"], "Back camera");
    assert_eq!(track["settings"]["facingMode"], "environment");
    // The exact key order of docs/cli.md's example ("select").
    let keys: Vec<&str> = track
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys, ["kind", "label", "deviceId", "settings"]);
    let keys: Vec<&str> = track["settings"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "deviceId",
            "groupId",
            "width",
            "height",
            "aspectRatio",
            "frameRate",
            "facingMode",
            "resizeMode"
        ]
    );
}

#[test]
fn invalid_json_exits_2_with_line_and_column() {
    let out = usermedia(&["select", "--constraints", "{\"video\":\n  tru}"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.contains("line 2 column"), "{err}");
    assert!(err.contains("not valid JSON"), "{err}");
}

#[test]
fn type_error_is_a_media_error_exit_1() {
    let out = usermedia(&["select", "--constraints", r#"{"video":{"width":"wide"}}"#]);
    assert_eq!(out.status.code(), Some(1));
    let v = stdout_json(&out);
    assert_eq!(v["error"]["name"], "TypeError");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("video.width"));
    assert!(v["error"].get("constraint").is_none());
}

#[test]
fn unknown_keys_are_named_on_stderr() {
    let out = usermedia(&[
        "select",
        "--devices",
        example("builtin.json").to_str().unwrap(),
        "--constraints",
        r#"{"vidoe": true, "audio": {"sampleRat": 48000}}"#,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("\"vidoe\""), "{err}");
    assert!(err.contains("audio.sampleRat"), "{err}");
}

#[test]
fn a_lone_typo_is_named_in_the_type_error_and_on_stderr() {
    // docs/selection.md's own example: `vidoe` alone requests nothing, a TypeError; the error must
    // still say which key was ignored, or the typo is invisible.
    let out = usermedia(&[
        "select",
        "--devices",
        example("builtin.json").to_str().unwrap(),
        "--constraints",
        r#"{"vidoe":true}"#,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = stdout_json(&out);
    assert_eq!(v["error"]["name"], "TypeError");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(r#"ignored unknown key "vidoe"; did you mean "video"?"#),
        "{message}"
    );
    let err = stderr(&out);
    assert!(err.contains("\"vidoe\""), "{err}");
}

#[test]
fn missing_devices_file_exits_2_naming_it() {
    let out = usermedia(&[
        "select",
        "--devices",
        "/nonexistent/devices.json",
        "--constraints",
        r#"{"video":true}"#,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("/nonexistent/devices.json"), "{err}");
    // The OS error once, not once per level of the error chain.
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn bad_devices_files_exit_2_naming_the_field() {
    let cases = [
        (
            r#"{"devices": [{"kind": "videoinput", "deviceId": "a", "modes": [{"width": "wide", "height": 1, "frameRate": 1}]}]}"#,
            "devices[0].modes[0].width",
        ),
        (
            "{\"devices\": [\n  {\"kind\": \"videoinput\",}\n]}",
            "line 2",
        ),
        (
            r#"{"devices": [{"kind": "videoinput", "deviceId": "a", "facingMode": "sideways", "modes": [{"width": 1, "height": 1, "frameRate": 1}]}]}"#,
            "devices[0].facingMode",
        ),
        (
            r#"{"devices": [{"kind": "videoinput", "deviceId": "a", "modes": []}]}"#,
            "devices[0].modes",
        ),
        (
            r#"{"devices": [{"kind": "videoinput", "deviceid": "a", "modes": []}]}"#,
            "deviceid",
        ),
        (
            r#"{"devices": [{"kind": "audioinput", "deviceId": "a", "modes": [{"sampleRate": 48000}]}]}"#,
            "channelCount",
        ),
        (r#"[]"#, "expected struct"),
    ];
    for (json, needle) in cases {
        let f = temp_file(json, ".json");
        for args in [
            vec!["devices"],
            vec!["select", "--constraints", r#"{"video":true}"#],
        ] {
            let mut args = args.clone();
            args.extend(["--devices", f.path().to_str().unwrap()]);
            let out = usermedia(&args);
            assert_eq!(out.status.code(), Some(2), "{json}");
            let err = stderr(&out);
            assert!(err.contains(needle), "{json}: {err}");
            assert!(
                err.contains(f.path().to_str().unwrap()),
                "names the file: {err}"
            );
        }
    }
}

#[test]
fn constraints_from_a_file() {
    let f = temp_file(r#"{"video": {"width": {"exact": 1280}}}"#, ".json");
    let arg = format!("@{}", f.path().display());
    let out = usermedia(&[
        "select",
        "--devices",
        example("builtin.json").to_str().unwrap(),
        "--constraints",
        &arg,
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_json(&out)["tracks"][0]["settings"]["width"], 1280);
    let out = usermedia(&["select", "--constraints", "@/nonexistent.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent.json"));
}

#[test]
fn explain_lists_candidates_with_distances() {
    let out = usermedia(&[
        "select",
        "--devices",
        example("phone.json").to_str().unwrap(),
        "--constraints",
        r#"{"video": {"width": {"min": 1000}, "advanced": [{"facingMode": "user"}]}}"#,
        "--explain",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = stdout_json(&out);
    let candidates = v["explain"]["video"].as_array().unwrap();
    assert!(candidates.len() >= 5, "{v}");
    let selected: Vec<&Value> = candidates
        .iter()
        .filter(|c| c["selected"] == true)
        .collect();
    assert_eq!(selected.len(), 1);
    assert_eq!(selected[0]["settings"], v["tracks"][0]["settings"]);
    assert_eq!(selected[0]["deviceId"], "front");
    assert!(candidates
        .iter()
        .any(|c| c["distance"].is_null() && c["unsatisfied"] == "width"));
    assert!(candidates
        .iter()
        .any(|c| c["eliminatedByAdvanced"] == 0 && c["deviceId"] == "back"));
    // On failure the explanation is printed beside the error.
    let out = usermedia(&[
        "select",
        "--devices",
        example("phone.json").to_str().unwrap(),
        "--constraints",
        r#"{"video": {"width": {"exact": 99999}}}"#,
        "--explain",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = stdout_json(&out);
    assert_eq!(v["error"]["constraint"], "width");
    assert!(v["explain"]["video"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["distance"].is_null()));
}

/// The top-level keys of a JSON object, in order.
fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(|k| k.as_str()).collect()
}

#[test]
fn explain_shows_the_legacy_translation() {
    let legacy = r#"{"audio": true, "video": {"mandatory": {"minWidth": 1000, "sourceId": "front"}, "optional": [{"maxFrameRate": 15}]}}"#;
    let out = usermedia(&[
        "select",
        "--devices",
        example("phone.json").to_str().unwrap(),
        "--constraints",
        legacy,
        "--explain",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = stdout_json(&out);
    // The existing keys first, in their order; `legacy` after them.
    assert_eq!(keys(&v), ["tracks", "explain", "legacy"]);
    assert_eq!(keys(&v["explain"]), ["audio", "video"]);
    // Only the kind written in the legacy syntax.
    assert_eq!(keys(&v["legacy"]), ["video"]);
    let video: Value = serde_json::from_str(legacy).unwrap();
    assert_eq!(v["legacy"]["video"]["input"], video["video"]);
    assert_eq!(
        v["legacy"]["video"]["translated"],
        serde_json::json!({
            "width": {"min": 1000},
            "deviceId": {"exact": "front"},
            "advanced": [{"frameRate": {"max": 15}}]
        })
    );
    assert_eq!(v["tracks"][1]["deviceId"], "front");
    assert_eq!(v["tracks"][1]["settings"]["frameRate"], 15.0);
    // Also beside an error, naming the modern constraint.
    let out = usermedia(&[
        "select",
        "--devices",
        example("phone.json").to_str().unwrap(),
        "--constraints",
        r#"{"video": {"mandatory": {"minWidth": 99999}}}"#,
        "--explain",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = stdout_json(&out);
    assert_eq!(keys(&v), ["error", "explain", "legacy"]);
    assert_eq!(v["error"]["constraint"], "width");
    assert_eq!(
        v["legacy"]["video"]["translated"],
        serde_json::json!({"width": {"min": 99999}})
    );
    // Modern constraints: no `legacy` key; without --explain neither.
    let out = usermedia(&[
        "select",
        "--devices",
        example("phone.json").to_str().unwrap(),
        "--constraints",
        r#"{"video": {"width": 640}}"#,
        "--explain",
    ]);
    assert_eq!(keys(&stdout_json(&out)), ["tracks", "explain"]);
    let out = usermedia(&[
        "select",
        "--devices",
        example("phone.json").to_str().unwrap(),
        "--constraints",
        legacy,
    ]);
    assert_eq!(keys(&stdout_json(&out)), ["tracks"]);
}

#[test]
fn the_issues_legacy_example_is_no_longer_ignored() {
    // `{"video":{"mandatory":{"minWidth":1920}}}` used to select as if it asked for nothing.
    let out = usermedia(&[
        "select",
        "--devices",
        example("builtin.json").to_str().unwrap(),
        "--constraints",
        r#"{"video":{"mandatory":{"minWidth":1920}}}"#,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = stdout_json(&out);
    assert_eq!(v["tracks"][0]["settings"]["width"], 1920);
    assert!(!stderr(&out).contains("WARN"), "{}", stderr(&out));
}

#[test]
fn unknown_legacy_keys_warn_with_a_suggestion() {
    let out = usermedia(&[
        "select",
        "--devices",
        example("builtin.json").to_str().unwrap(),
        "--constraints",
        r#"{"video": {"mandatory": {"minWidht": 1280}, "optional": [{"maxFramerate": 15}]}, "audio": {"minSampleRate": 48000}}"#,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("video.mandatory.minWidht: unknown legacy constraint ignored (did you mean \"minWidth\"?)"),
        "{err}"
    );
    assert!(
        err.contains("video.optional[0].maxFramerate") && err.contains("\"maxFrameRate\""),
        "{err}"
    );
    // A legacy key outside mandatory/optional: an unknown modern key, with a hint.
    assert!(
        err.contains("audio.minSampleRate: unknown constraint ignored (a legacy key"),
        "{err}"
    );
    // Ignored, as an unknown modern key is: the default size.
    let v = stdout_json(&out);
    assert_eq!(v["tracks"][1]["settings"]["width"], 640);
}

#[test]
fn mixing_legacy_and_modern_keys_is_a_type_error_exit_1() {
    let out = usermedia(&[
        "select",
        "--devices",
        example("builtin.json").to_str().unwrap(),
        "--constraints",
        r#"{"video": {"mandatory": {"minWidth": 640}, "width": 800, "advanced": []}}"#,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = stdout_json(&out);
    assert_eq!(v["error"]["name"], "TypeError");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("modern \"width\", \"advanced\" beside legacy \"mandatory\""),
        "{message}"
    );
}

#[test]
fn docs_legacy_lists_every_legacy_key() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/legacy.md");
    let doc = std::fs::read_to_string(path).unwrap();
    for (key, property, member) in usermedia::constraints::legacy_keys() {
        let row = doc
            .lines()
            .find(|l| l.starts_with('|') && l.contains(&format!("`{key}`")))
            .unwrap_or_else(|| panic!("docs/legacy.md has no row for {key}"));
        assert!(
            row.contains(&format!("`{}: {{{}}}`", property.name(), member.as_str())),
            "{key}: {row}"
        );
    }
}

#[test]
fn builtin_mirror_file_matches_the_builtin_set() {
    let from_file =
        MediaDevices::from_devices_file(&example("builtin.json"), PermissionPolicy::granted())
            .unwrap();
    let builtin = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    assert_eq!(from_file.devices().len(), builtin.devices().len());
    for (a, b) in from_file.devices().iter().zip(builtin.devices()) {
        assert_eq!(a, b);
    }
}

#[test]
fn without_a_devices_file_the_machine_or_the_builtin_set() {
    let out = usermedia(&["devices", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = stdout_json(&out);
    let devices = v["devices"].as_array().unwrap();
    let ids: Vec<&str> = devices
        .iter()
        .map(|d| d["deviceId"].as_str().unwrap())
        .collect();
    let is_real = |d: &Value| {
        let src = d["source"].as_str().unwrap();
        src.starts_with("camera") || src.starts_with("ALSA")
    };
    // docs/ARCHITECTURE.md ("The built-in virtual devices"): real devices when present, and then the virtual set is not added;
    // otherwise exactly the built-in set. (The mixed cases are unit tests of
    // `virtual_devices::system_devices`: CI has no hardware.)
    if devices.iter().any(is_real) {
        assert!(devices.iter().all(is_real), "{v}");
        // Cameras first, then microphones.
        let kinds: Vec<&str> = devices
            .iter()
            .map(|d| d["kind"].as_str().unwrap())
            .collect();
        let first_audio = kinds
            .iter()
            .position(|k| *k == "audioinput")
            .unwrap_or(kinds.len());
        assert!(
            kinds[first_audio..].iter().all(|k| *k == "audioinput"),
            "{v}"
        );
    } else {
        assert_eq!(ids, ["virtual-pattern", "virtual-tone"], "{v}");
    }
    // ALSA's `null` device is never a microphone.
    assert!(devices
        .iter()
        .all(|d| !d["source"].as_str().unwrap().contains("null")));
    // getUserMedia through the CLI works on whatever was found.
    let has = |kind: &str| devices.iter().any(|d| d["kind"] == kind);
    let constraints = serde_json::json!({"video": has("videoinput"), "audio": has("audioinput")});
    let out = usermedia(&["select", "--constraints", &constraints.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected = usize::from(has("videoinput")) + usize::from(has("audioinput"));
    assert_eq!(
        stdout_json(&out)["tracks"].as_array().unwrap().len(),
        expected
    );
}

#[test]
fn devices_text_and_json() {
    let phone = example("phone.json");
    let out = usermedia(&["devices", "--devices", phone.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("back") && text.contains("Back camera") && text.contains("1920x1080@30"),
        "{text}"
    );
    assert!(text.contains("facing environment"), "{text}");
    let out = usermedia(&[
        "devices",
        "--json",
        "--devices",
        phone.to_str().unwrap(),
        "--deny",
        "front",
    ]);
    let v = stdout_json(&out);
    let list = v["devices"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["deviceId"], "back");
    assert_eq!(list[0]["capabilities"]["facingMode"][0], "environment");
    assert_eq!(list[2]["kind"], "audioinput");
}

#[test]
fn deny_of_an_unknown_device_warns() {
    let out = usermedia(&[
        "select",
        "--devices",
        example("phone.json").to_str().unwrap(),
        "--deny",
        "fornt",
        "--constraints",
        r#"{"video": true}"#,
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("fornt"), "{}", stderr(&out));
}

#[test]
fn help_names_the_commands() {
    let out = usermedia(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("devices") && text.contains("select"),
        "{text}"
    );
    let out = usermedia(&["select", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--constraints") && text.contains("--explain") && text.contains("--deny")
    );
    // A missing required flag is a usage error: exit 2.
    assert_eq!(usermedia(&["select"]).status.code(), Some(2));
}

#[test]
fn help_documents_the_exit_codes() {
    let out = usermedia(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Exit codes:") && text.contains("  3  a runtime or network failure"),
        "{text}"
    );
    for command in ["serve", "publish", "bot", "capture", "select", "devices"] {
        let out = usermedia(&[command, "--help"]);
        assert!(out.status.success(), "{command}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Exit codes:") && text.contains("  2  bad input"),
            "{command}: {text}"
        );
    }
    let out = usermedia(&["serve", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cannot listen"), "{text}");
    // --video-codec still lists the codecs by name.
    assert!(text.contains("h264") && text.contains("vp8"), "{text}");
}

#[test]
fn a_codec_that_does_not_exist_is_a_usage_error_naming_the_codecs() {
    let out = usermedia(&["serve", "--video-codec", "av1"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = stderr(&out);
    assert!(
        stderr.contains("av1") && stderr.contains("h264") && stderr.contains("vp8"),
        "{stderr}"
    );
}

/// A loopback port nothing listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_on_a_port_in_use_is_a_runtime_failure_exit_3() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let builtin = example("builtin.json");
    let out = usermedia(&[
        "serve",
        "--listen",
        &addr,
        "--devices",
        builtin.to_str().unwrap(),
        "--constraints",
        r#"{"video": true}"#,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("cannot listen on {addr}")),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty(), "no URL printed");
    drop(taken);
}

#[test]
fn publish_to_a_server_that_is_not_there_is_a_network_failure_exit_3() {
    let whip = format!("http://127.0.0.1:{}/whip/cam", free_port());
    let builtin = example("builtin.json");
    let out = usermedia(&[
        "publish",
        "--whip",
        &whip,
        "--devices",
        builtin.to_str().unwrap(),
        "--constraints",
        r#"{"video": true}"#,
        "--ice-addr",
        "127.0.0.1",
        "--seconds",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("publishing to {whip}")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn publish_to_a_bad_url_is_bad_input_exit_2() {
    let builtin = example("builtin.json");
    for whip in ["not a url", "ftp://127.0.0.1/whip/cam"] {
        let out = usermedia(&[
            "publish",
            "--whip",
            whip,
            "--devices",
            builtin.to_str().unwrap(),
            "--constraints",
            r#"{"video": true}"#,
            "--ice-addr",
            "127.0.0.1",
        ]);
        assert_eq!(out.status.code(), Some(2), "{whip}: {}", stderr(&out));
        assert!(stderr(&out).contains("bad URL"), "{}", stderr(&out));
    }
}

/// A legacy dictionary only the legacy translation reads: 1280×720 of the built-in camera
/// (its default pick is 640×480).
const LEGACY_720P: &str = r#"{"video": {"mandatory": {"minWidth": 1280, "maxWidth": 1280, "minHeight": 720, "maxHeight": 720}}}"#;
/// A legacy dictionary no built-in device satisfies: ignored, it would capture.
const LEGACY_IMPOSSIBLE: &str = r#"{"video": {"mandatory": {"minWidth": 5000}}}"#;

#[test]
fn capture_takes_legacy_constraints() {
    let out_dir = tempfile::tempdir().unwrap();
    let builtin = example("builtin.json");
    let out = usermedia(&[
        "capture",
        "--seconds",
        "1",
        "--out",
        out_dir.path().to_str().unwrap(),
        "--devices",
        builtin.to_str().unwrap(),
        "--constraints",
        LEGACY_720P,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = stdout_json(&out);
    let video = &report["tracks"][0];
    assert_eq!(video["settings"]["width"], 1280, "{report}");
    assert_eq!(video["settings"]["height"], 720, "{report}");
    // The recorded file has that size: its Y4M header says so.
    let file = video["file"].as_str().unwrap();
    let bytes = std::fs::read(file).unwrap();
    let header = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
    let header = header.lines().next().unwrap_or_default().to_owned();
    assert!(
        header.contains(" W1280 ") && header.contains(" H720 "),
        "{header}"
    );
}

#[test]
fn serve_takes_legacy_constraints_and_status_shows_their_size() {
    use std::io::BufRead;
    let builtin = example("builtin.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_usermedia"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ice-addr",
            "127.0.0.1",
        ])
        .args([
            "--devices",
            builtin.to_str().unwrap(),
            "--constraints",
            LEGACY_720P,
        ])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("serving stream"))
        .unwrap_or_default();
    let addr: std::net::SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| {
            let _ = child.kill();
            panic!("no address in {line:?}")
        });
    let status = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(common::http::get(addr, "/status"));
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let status: Value = serde_json::from_str(&status.body).unwrap();
    let settings = &status["streams"][0]["tracks"][0]["settings"];
    assert_eq!(
        (&settings["width"], &settings["height"]),
        (&Value::from(1280), &Value::from(720)),
        "{status}"
    );
}

#[test]
fn publish_and_bot_read_legacy_constraints() {
    // Translated, the legacy dictionary asks for a width no device has: the media error
    // comes before any connection is tried (ignored, it would capture and fail to connect).
    let builtin = example("builtin.json");
    let port = free_port();
    let whip = format!("http://127.0.0.1:{port}/whip/cam");
    let room = format!("ws://127.0.0.1:{port}/ws?room=r");
    for (command, flag, url) in [("publish", "--whip", &whip), ("bot", "--room", &room)] {
        let out = usermedia(&[
            command,
            flag,
            url,
            "--devices",
            builtin.to_str().unwrap(),
            "--constraints",
            LEGACY_IMPOSSIBLE,
            "--ice-addr",
            "127.0.0.1",
            "--seconds",
            "1",
        ]);
        assert_eq!(out.status.code(), Some(1), "{command}: {}", stderr(&out));
        let error = stdout_json(&out);
        assert_eq!(
            error["error"]["name"], "OverconstrainedError",
            "{command}: {error}"
        );
        assert_eq!(error["error"]["constraint"], "width", "{command}: {error}");
    }
}
