//! `usermedia bench` as CI runs it: each benchmark short and small, its JSON keys there
//! and its counts showing media arrived (no timing asserted: CI machines vary), and bad
//! input refused with exit 2.

mod common;

use std::process::{Command, Output};

use serde_json::Value;

fn usermedia(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_usermedia"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run usermedia")
}

/// The one JSON line a `--json` run prints, after checking it exited 0.
fn json_line(args: &[&str]) -> Value {
    let out = usermedia(args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {stdout} / {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn number(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

#[test]
fn fanout_reaches_every_viewer_and_reports_its_keys() {
    let v = json_line(&[
        "bench",
        "fanout",
        "--viewers",
        "4",
        "--seconds",
        "3",
        "--warmup",
        "0.5",
        "--width",
        "320",
        "--height",
        "240",
        "--json",
    ]);
    for key in common::FANOUT_KEYS {
        number(&v, key);
    }
    assert_eq!(v["viewers"], 4);
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(240))
    );
    // Every viewer received frames, in the window and overall.
    assert!(number(&v, "fps_per_viewer_min") > 0.0, "{v}");
    assert!(number(&v, "frames_per_viewer_min") > 0.0, "{v}");
    assert!(number(&v, "kbps_per_viewer_median") > 0.0, "{v}");
    assert!(number(&v, "publisher_cpu_per_media_s") > 0.0, "{v}");
    assert!(number(&v, "publisher_rss_bytes") > 0.0, "{v}");
}

#[test]
fn first_frame_latency_and_pipeline_report_their_numbers() {
    let v = json_line(&[
        "bench",
        "first-frame",
        "--runs",
        "2",
        "--width",
        "320",
        "--height",
        "240",
        "--json",
    ]);
    assert_eq!(v["runs"], 2);
    for key in [
        "offer_to_frame_ms_p50",
        "offer_to_frame_ms_p95",
        "get_user_media_to_frame_ms_p50",
        "get_user_media_to_frame_ms_p95",
    ] {
        assert!(number(&v, key) > 0.0, "{key}: {v}");
    }
    assert!(number(&v, "get_user_media_to_frame_ms_p50") >= number(&v, "offer_to_frame_ms_p50"));

    let v = json_line(&[
        "bench",
        "latency",
        "--seconds",
        "2",
        "--warmup",
        "0.2",
        "--width",
        "320",
        "--height",
        "240",
        "--codec",
        "vp8",
        "--json",
    ]);
    assert!(number(&v, "frames_with_strip") > 0.0, "{v}");
    for key in ["latency_ms_p50", "latency_ms_p95", "latency_ms_p99"] {
        number(&v, key);
    }
    assert!(
        number(&v, "latency_ms_p99") >= number(&v, "latency_ms_p50"),
        "{v}"
    );

    let v = json_line(&[
        "bench",
        "pipeline",
        "--size",
        "320x240",
        "--seconds",
        "0.3",
        "--json",
    ]);
    let rows = v["rows"].as_array().expect("rows");
    let codecs: Vec<&str> = rows.iter().filter_map(|r| r["codec"].as_str()).collect();
    assert_eq!(codecs, ["h264", "vp8"]);
    for r in rows {
        assert!(
            number(r, "fps") > 0.0 && number(r, "cpu_ms_per_frame") > 0.0,
            "{r}"
        );
        assert!(number(r, "kbps") > 0.0, "{r}");
    }
}

#[test]
fn bad_input_is_exit_2_naming_the_problem() {
    for (args, says) in [
        (&["bench", "fanout", "--viewers", "0"][..], "--viewers"),
        (&["bench", "fanout", "--codec", "av1"], "av1"),
        (&["bench", "fanout", "--width", "641"], "odd"),
        (&["bench", "fanout", "--bitrate", "fast"], "--bitrate"),
        (
            &["bench", "fanout", "--constraints", "{bad"],
            "not valid JSON",
        ),
        (&["bench", "first-frame", "--runs", "0"], "--runs"),
        (&["bench", "pipeline", "--size", "1281x720"], "even"),
    ] {
        let out = usermedia(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    // Each benchmark's help explains its numbers.
    for (bench, key) in [
        ("fanout", "publisher_cpu_per_media_s"),
        ("first-frame", "offer_to_frame_ms_p50"),
        ("latency", "latency_ms_p50"),
        ("pipeline", "cpu_ms_per_frame"),
    ] {
        let out = usermedia(&["bench", bench, "--help"]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(key),
            "{bench}"
        );
    }
}
