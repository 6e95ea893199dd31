//! `usermedia view` against `usermedia serve` on loopback: a clean run's summary (no
//! freezes, no skips, low latency, A/V offset near zero) agrees with an independent read
//! of the same frames (the `--record` file decoded by ffmpeg, strips re-read); a Y4M clip
//! with a 1-second freeze and a 40-frame jump is reported exactly; viewing nothing is a
//! clear error with the documented exit code.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{exclusive, spawn_serve, spawn_serve_with};
use serde_json::Value;
use usermedia::devices::media_file::Y4mWriter;
use usermedia::devices::pattern::{read_strip_luma, render};
use usermedia::media::{QualityAnalyzer, StripFrame};

/// Runs `usermedia view` with `args`; its exit code, JSON lines and stderr.
async fn view(args: &[&str]) -> (i32, Vec<Value>, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_usermedia"))
        .arg("view")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), lines, stderr)
}

/// The summary's track of `kind`.
fn track<'a>(lines: &'a [Value], kind: &str) -> &'a Value {
    let summary = lines
        .iter()
        .find(|l| l["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary: {lines:?}"));
    summary["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} track: {summary}"))
}

/// The strips of a recording's video, decoded by ffmpeg (as the frames were stored,
/// none dropped or duplicated), fed to the analyzer as they come.
fn strips_of_recording(file: &Path, width: u32, height: u32) -> (u64, QualityAnalyzer) {
    let (frames, analyzer, _) = strips_and_gaps_of_recording(file, width, height);
    (frames, analyzer)
}

/// [`strips_of_recording`], and the longest gap between the capture times of consecutive
/// new frames (ms): how long the sender itself went without capturing.
fn strips_and_gaps_of_recording(
    file: &Path,
    width: u32,
    height: u32,
) -> (u64, QualityAnalyzer, u64) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-map", "0:v:0", "-fps_mode", "passthrough"])
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .expect("ffmpeg (Debian's ffmpeg: scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = (width * height) as usize;
    let mut analyzer = QualityAnalyzer::with_frame_rate(30.0);
    let mut frames = 0;
    let (mut newest, mut longest_gap) = (None::<(u32, u32)>, 0u64);
    for (k, y) in out.stdout.chunks_exact(size).enumerate() {
        frames += 1;
        if let Some(s) = read_strip_luma(y, width, height) {
            if newest.is_none_or(|(n, _)| s.frame_number > n) {
                if let Some((_, t)) = newest {
                    longest_gap = longest_gap.max(u64::from(s.capture_time_ms.wrapping_sub(t)));
                }
                newest = Some((s.frame_number, s.capture_time_ms));
            }
            analyzer.push(StripFrame {
                number: s.frame_number,
                capture_ms: s.capture_time_ms,
                decoded_ms: k as u64 * 33,
            });
        }
    }
    (frames, analyzer, longest_gap)
}

/// What ffprobe says of a file's streams: (codec_name, nb_frames) each.
fn ffprobe(file: &Path) -> Vec<(String, u64)> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,nb_frames",
        ])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (codec, n) = l.split_once(',')?;
            Some((codec.to_owned(), n.trim().parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn a_clean_run_reports_no_freezes_no_skips_and_agrees_with_its_recording() {
    let _guard = exclusive().await;
    let (_serve, addr) =
        spawn_serve(r#"{"video": {"width": 320, "height": 240}, "audio": true}"#).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/whep/default");
    let (code, lines, stderr) = view(&[
        "--whep",
        &url,
        "--ice-addr",
        "127.0.0.1",
        "--seconds",
        "4",
        "--record",
        dir.path().to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.iter().filter(|l| l["event"] == "track").count(), 2);
    let video = track(&lines, "video");
    assert_eq!(video["source"], "strip", "{video}");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(320), Some(240))
    );
    let frames = video["frames"].as_u64().unwrap();
    assert!(frames >= 90, "{video}");
    assert_eq!(video["frames_skipped"], 0, "{video}");
    let freezes = video["freezes"]["count"].as_u64().unwrap();
    let p50 = video["latency_ms"]["p50"].as_u64().unwrap();
    assert!(p50 < 100, "{video}");
    let fps = video["fps"].as_f64().unwrap();
    assert!((25.0..=35.0).contains(&fps), "{video}");
    // A/V: the tone's marker against the pattern's marker block, loopback, no impairment.
    let audio = track(&lines, "audio");
    assert!(audio["seconds"].as_f64().unwrap() > 3.0, "{audio}");
    assert!(audio["level"].as_f64().unwrap() > 0.1, "{audio}");
    eprintln!("clean run: {video}\n{audio}");
    let offset = audio["av_offset_ms"].as_i64().expect("an A/V offset");
    assert!((-20..=20).contains(&offset), "{audio}");

    // The recording: an MP4 with the H.264 and Opus as received, readable by ffmpeg.
    let summary = lines.iter().find(|l| l["event"] == "summary").unwrap();
    let file = summary["files"][0].as_str().expect("the recording's path");
    let streams = ffprobe(Path::new(file));
    let mut codecs: Vec<&str> = streams.iter().map(|(c, _)| c.as_str()).collect();
    codecs.sort_unstable();
    assert_eq!(codecs, ["h264", "opus"], "{streams:?}");
    // The same frames read independently: decoded by ffmpeg, strips re-read.
    let (decoded, analyzer, capture_gap) = strips_and_gaps_of_recording(Path::new(file), 320, 240);
    // No freeze on a clean path. On a loaded machine the sender itself may stall past three
    // frame intervals (its capture times then show the same gap): that one is no fault of
    // the path, and allowed.
    let longest = video["freezes"]["longest_ms"].as_u64().unwrap();
    assert!(
        freezes == 0 || (capture_gap > 100 && longest <= capture_gap + 40),
        "freezes the sender did not make: {video}, longest capture gap {capture_gap} ms"
    );
    let h264 = streams.iter().find(|(c, _)| c == "h264").map(|(_, n)| *n);
    assert_eq!(h264, Some(decoded), "ffprobe's count is ffmpeg's");
    let again = analyzer.report(0);
    assert!(
        decoded.abs_diff(frames) <= 3,
        "{decoded} recorded, {frames} viewed"
    );
    assert_eq!(again.frames, decoded, "every recorded frame's strip reads");
    for (field, value) in [
        ("frames_skipped", again.frames_skipped),
        ("frames_repeated", again.frames_repeated),
        ("frames_reordered", again.frames_reordered),
    ] {
        assert_eq!(video[field].as_u64(), Some(value), "{field}: {video}");
    }
}

/// A devices file whose only camera plays `clip` (320×240 at 30 fps).
fn clip_devices(dir: &Path, clip: &Path) -> std::path::PathBuf {
    let path = dir.join("devices.json");
    let text = format!(
        r#"{{"devices": [{{"kind": "videoinput", "deviceId": "clip", "source": {{"file": {:?}}},
            "modes": [{{"width": 320, "height": 240, "frameRate": 30}}]}}]}}"#,
        clip.display().to_string()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_clip_with_a_one_second_freeze_and_a_forty_frame_jump_is_reported_exactly() {
    let _guard = exclusive().await;
    // 3 s of frames 0..=89; frame 89 shown 30 more times (1 s); frames 90..=129 never
    // shown; then 130.. for 5 s. The clip loops after 10 s: the view ends before that.
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.y4m");
    let mut w = Y4mWriter::new(std::fs::File::create(&clip).unwrap(), 320, 240, 30.0).unwrap();
    let at = |n: u32| u64::from(n) * 1000 / 30;
    for n in 0..90 {
        w.write(&render(320, 240, n, at(n))).unwrap();
    }
    let frozen = render(320, 240, 89, at(89));
    for _ in 0..30 {
        w.write(&frozen).unwrap();
    }
    for n in 130..280 {
        w.write(&render(320, 240, n, at(n))).unwrap();
    }
    w.finish().unwrap();
    let devices = clip_devices(dir.path(), &clip);
    let (_serve, addr) = spawn_serve_with(&devices, r#"{"video": true}"#, &[]).await;
    let url = format!("http://{addr}/whep/default");
    let (code, lines, stderr) =
        view(&["--whep", &url, "--ice-addr", "127.0.0.1", "--seconds", "6"]).await;
    assert_eq!(code, 0, "{stderr}");
    let video = track(&lines, "video");
    assert_eq!(video["source"], "strip", "{video}");
    eprintln!("clip: {video}");
    assert_eq!(video["frames_skipped"], 40, "{video}");
    assert_eq!(video["frames_reordered"], 0, "{video}");
    let repeated = video["frames_repeated"].as_u64().unwrap();
    assert!((28..=30).contains(&repeated), "{video}");
    assert_eq!(video["freezes"]["count"], 1, "{video}");
    let longest = video["freezes"]["longest_ms"].as_u64().unwrap();
    assert!((900..=1200).contains(&longest), "{video}");
}

#[tokio::test]
async fn viewing_nothing_is_a_clear_runtime_error() {
    let (code, lines, stderr) = view(&[
        "--whep",
        "http://127.0.0.1:1/whep/default",
        "--ice-addr",
        "127.0.0.1",
        "--seconds",
        "2",
    ])
    .await;
    assert_eq!(code, 3, "{stderr}");
    assert!(lines.is_empty(), "{lines:?}");
    assert!(
        stderr.contains("viewing http://127.0.0.1:1/whep/default"),
        "{stderr}"
    );
}

#[tokio::test]
async fn ctrl_c_ends_with_the_summary_and_a_complete_recording() {
    let _guard = exclusive().await;
    let (_serve, addr) =
        spawn_serve(r#"{"video": {"width": 320, "height": 240}, "audio": true}"#).await;
    let dir = tempfile::tempdir().unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_usermedia"))
        .args(["view", "--ice-addr", "127.0.0.1", "--whep"])
        .arg(format!("http://{addr}/whep/default"))
        .arg("--record")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("view ends promptly on Ctrl-C")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let video = track(&lines, "video");
    assert!(video["frames"].as_u64().unwrap() > 30, "{video}");
    let summary = lines.iter().find(|l| l["event"] == "summary").unwrap();
    let file = summary["files"][0].as_str().expect("the recording's path");
    let streams = ffprobe(Path::new(file));
    assert!(
        streams.iter().any(|(c, n)| c == "h264" && *n > 30),
        "{streams:?}"
    );
    assert!(streams.iter().any(|(c, _)| c == "opus"), "{streams:?}");
}

#[tokio::test]
async fn a_vp8_stream_is_recorded_as_received_and_reads_back() {
    let _guard = exclusive().await;
    let builtin = common::example("builtin.json");
    let (_serve, addr) = spawn_serve_with(
        &builtin,
        r#"{"video": {"width": 320, "height": 240}, "audio": true}"#,
        &["--video-codec", "vp8"],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/whep/default");
    let (code, lines, stderr) = view(&[
        "--whep",
        &url,
        "--ice-addr",
        "127.0.0.1",
        "--seconds",
        "3",
        "--record",
        dir.path().to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    let started = lines
        .iter()
        .find(|l| l["event"] == "track" && l["track"]["kind"] == "video");
    assert_eq!(started.unwrap()["track"]["mimeType"], "video/VP8");
    let video = track(&lines, "video");
    let frames = video["frames"].as_u64().unwrap();
    let summary = lines.iter().find(|l| l["event"] == "summary").unwrap();
    let file = Path::new(summary["files"][0].as_str().unwrap());
    let streams = ffprobe(file);
    assert!(streams.iter().any(|(c, _)| c == "vp8"), "{streams:?}");
    assert!(streams.iter().any(|(c, _)| c == "opus"), "{streams:?}");
    let (decoded, analyzer) = strips_of_recording(file, 320, 240);
    assert!(
        decoded.abs_diff(frames) <= 3,
        "{decoded} recorded, {frames} viewed"
    );
    let again = analyzer.report(0);
    assert_eq!((again.frames, again.frames_skipped), (decoded, 0));
}

#[tokio::test]
async fn ten_percent_loss_is_reported_beside_what_the_frames_say_and_the_recording_agrees() {
    let _guard = exclusive().await;
    let (_serve, addr) =
        spawn_serve(r#"{"video": {"width": 320, "height": 240}, "audio": true}"#).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/whep/default");
    let (code, lines, stderr) = view(&[
        "--whep",
        &url,
        "--ice-addr",
        "127.0.0.1",
        "--seconds",
        "4",
        "--impair",
        "loss=10%,seed=3",
        "--record",
        dir.path().to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    let summary = lines.iter().find(|l| l["event"] == "summary").unwrap();
    let dropped = summary["impairment"]["inbound"]["dropped"]
        .as_u64()
        .unwrap();
    assert!(dropped > 0, "{summary}");
    let video = track(&lines, "video");
    eprintln!("10% loss: {video}\n{}", summary["impairment"]["inbound"]);
    let frames = video["frames"].as_u64().unwrap();
    assert!(frames >= 60, "{video}");
    // Retransmissions (NACK) or a keyframe (PLI) recover: what is still missing shows as
    // skipped frames, what came late as freezes; either way the strip says which.
    let skipped = video["frames_skipped"].as_u64().unwrap();
    assert!(
        skipped == 0 || video["freezes"]["count"].as_u64().unwrap() > 0,
        "{video}"
    );
    let file = Path::new(summary["files"][0].as_str().unwrap());
    let (decoded, analyzer) = strips_of_recording(file, 320, 240);
    let again = analyzer.report(0);
    assert!(
        decoded.abs_diff(frames) <= 3,
        "{decoded} recorded, {frames} viewed"
    );
    // The recording holds every unit that arrived; ffmpeg conceals what a lost packet
    // broke and shows a frame openh264 refuses until the next keyframe, so a frame the
    // viewer could not decode is one it counts as skipped and the recording does not:
    // the skipped counts differ by at most the frames decoded from the recording and not
    // by the viewer (seen: 2 of them in about 1 run in 3).
    let undecodable = decoded.saturating_sub(frames);
    assert!(
        skipped >= again.frames_skipped && skipped <= again.frames_skipped + undecodable,
        "frames_skipped: viewer {skipped}, recording {} ({decoded} recorded, {frames} viewed): \
         {video}",
        again.frames_skipped
    );
    for (field, value) in [
        ("frames_repeated", again.frames_repeated),
        ("frames_reordered", again.frames_reordered),
    ] {
        assert_eq!(video[field].as_u64(), Some(value), "{field}: {video}");
    }
}

#[tokio::test]
async fn audio_held_back_by_a_known_delay_is_reported_as_that_a_v_offset() {
    let _guard = exclusive().await;
    let (_serve, addr) =
        spawn_serve(r#"{"video": {"width": 320, "height": 240}, "audio": true}"#).await;
    let url = format!("http://{addr}/whep/default");
    // The test hook: the viewer holds its decoded audio 100 ms (video is not held), as if
    // only the audio came 100 ms later.
    let (code, lines, stderr) = view(&[
        "--whep",
        &url,
        "--ice-addr",
        "127.0.0.1",
        "--seconds",
        "4",
        "--audio-delay-ms",
        "100",
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    let audio = track(&lines, "audio");
    eprintln!("audio delayed 100 ms: {audio}");
    assert!(audio["seconds"].as_f64().unwrap() > 3.0, "{audio}");
    let offset = audio["av_offset_ms"].as_i64().expect("an A/V offset");
    assert!((80..=120).contains(&offset), "{audio}");
}
