//! The side-by-side script's smoke test (CI): `scripts/compare.sh --usermedia-only` runs the
//! usermedia half (the shared clip as a Y4M, `usermedia bench fanout` at 4 viewers in a
//! private network namespace) and prints the table; bad options are refused before anything
//! is installed or run. No timing is asserted: only that every viewer received frames and
//! that the JSON and the table carry the documented keys and rows.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn compare(args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new(root.join("scripts/compare.sh"))
        .args(args)
        .env("USERMEDIA_BIN", env!("CARGO_BIN_EXE_usermedia"))
        .output()
        .expect("run scripts/compare.sh")
}

#[test]
fn usermedia_half_runs_and_prints_the_table() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("runs");
    let run = compare(&[
        "--usermedia-only",
        "--viewers",
        "4",
        "--seconds",
        "3",
        "--rounds",
        "1",
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "compare.sh failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        run.status
    );
    let json = std::fs::read_to_string(out.join("usermedia_n4_r1.json"))
        .unwrap_or_else(|e| panic!("the run's JSON: {e}\nstderr:\n{stderr}"));
    let v: serde_json::Value = serde_json::from_str(&json).expect("one JSON object");
    for key in common::FANOUT_KEYS {
        assert!(v.get(key).is_some(), "{key} missing from {json}");
    }
    assert_eq!(v["viewers"], 4, "{json}");
    let fps_min = v["fps_per_viewer_min"].as_f64().expect("fps a number");
    assert!(fps_min > 0.0, "a viewer received no frames: {json}");
    assert!(
        stdout.contains("| viewers | publisher | publisher CPU s/s | × usermedia |"),
        "no table header:\n{stdout}"
    );
    assert!(
        stdout.contains("| 4 | usermedia (openh264, one encode) |"),
        "no usermedia row at 4 viewers:\n{stdout}"
    );
    let table = std::fs::read_to_string(out.join("table.md")).expect("table.md kept");
    assert!(table.contains("| 4 | usermedia"), "{table}");
}

#[test]
fn bad_options_are_refused_before_any_run() {
    for (args, needle) in [
        (&["--peers", "usermedia,obs"][..], "unknown peer 'obs'"),
        (&["--viewers", "4,x"][..], "--viewers '4,x'"),
        (&["--seconds", "0"][..], "--seconds '0'"),
        (&["--rounds"][..], "--rounds needs a value"),
        (&["--frobnicate"][..], "unknown option '--frobnicate'"),
    ] {
        let run = compare(args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let help = compare(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--viewers",
        "--seconds",
        "--rounds",
        "--peers",
        "--out",
        "--usermedia-only",
    ] {
        assert!(
            text.contains(option),
            "--help does not mention {option}:\n{text}"
        );
    }
}
