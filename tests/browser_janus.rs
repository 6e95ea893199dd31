//! Headless Chromium and usermedia in one Janus VideoRoom (Debian's Janus 1.1.x), the page
//! speaking the Janus HTTP API itself (no janus.js): Chromium subscribes to what
//! `usermedia publish --janus` publishes and decodes it (reading our pattern's strip), and
//! Chromium publishes its fake camera while a `usermedia bot --janus --record DIR` decodes
//! and records it (ffprobe, Debian's, decodes the file whole: Chromium's size, Opus, frame
//! count and durations within 5% of what the bot received); and with a `bot --janus --echo`
//! Chromium decodes its own pattern's counters back from the bot's echo of its feed.
//!
//! Each case runs in a network namespace with the `ifb` device Janus gathers on
//! (`janus_support`), where the browser gathers too; Janus and the browser are stopped by
//! their PIDs. A missing Janus or Chromium is a failure, not a skip: CI installs them.

#[allow(dead_code)]
mod browser_support;
mod common;
#[allow(dead_code)]
mod janus_support;
mod netns;

use std::future::Future;
use std::time::{Duration, Instant};

use browser_support::{serve, Browser};
use janus_support::{Janus, ROOM, URL};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Janus, usermedia and the browser, started and checked (the issue asks ~20 s a case).
const CASE_LIMIT: Duration = Duration::from_secs(30);

fn in_netns<F, Fut>(name: &str, case: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    netns::run(name, janus_support::NETNS_SETUP, CASE_LIMIT, case);
}

/// `usermedia ARGS… --janus URL --janus-room 1234` gathering on the namespace's device,
/// the built-in pattern at 320×240 and tone.
fn usermedia(args: &[&str]) -> tokio::process::Child {
    let room = ROOM.to_string();
    let args = [args, &["--janus-room", &room]].concat();
    janus_support::usermedia_at(
        env!("CARGO_BIN_EXE_usermedia"),
        &args,
        r#"{"video": {"width": 320, "height": 240}, "audio": true}"#,
    )
}

/// Reads `child`'s stdout until a line starting with `prefix`; the feed id it names.
async fn feed_line(child: &mut tokio::process::Child, prefix: &str) -> u64 {
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with(prefix) {
                return Some(line);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("no line {prefix:?}"));
    line.rsplit("feed ")
        .next()
        .and_then(|s| s.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no feed id in {line:?}"))
}

#[test]
fn chromium_subscribes_through_janus_to_our_publisher() {
    in_netns(
        "chromium_subscribes_through_janus_to_our_publisher",
        || async {
            let started = Instant::now();
            let janus = Janus::start();
            let mut publisher = usermedia(&["publish", "--seconds", "20"]);
            let feed = feed_line(&mut publisher, "usermedia: publishing into").await;
            let served = serve(None).await;
            let query = format!("case=janusView&janus={URL}&room={ROOM}&feed={feed}");
            let (result, _browser) = served.run_page(Browser::Chromium, &query).await;
            let decoded = result["video"]["framesDecoded"].as_f64().unwrap_or(0.0);
            let strip: Vec<u64> = result["strip"]["frames"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            eprintln!(
                "Chromium decoded {decoded} frames in 3 s through Janus, {} read from the strip ({:?}); case took {:?}",
                strip.len(),
                result["video"]["codec"],
                started.elapsed()
            );
            assert!(
                decoded >= 45.0,
                "Chromium decoded {decoded} frames in 3 s: {result}\n{}",
                janus.log()
            );
            // Our pattern's counters, read back in the browser, go forward.
            assert!(strip.len() >= 30, "{result}");
            assert!(strip.windows(2).all(|w| w[1] > w[0]), "{strip:?}");
            assert!(result["remoteSettings"].get("facingMode").is_none());
        },
    );
}

/// ffprobe's reading of a recording, decoding it whole (`-count_frames`): per stream its
/// codec, size, duration and frames read.
fn probe(file: &std::path::Path) -> Vec<Value> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .args(["stream=codec_type,codec_name,width,height,duration,nb_read_frames"])
        .args(["-of", "json"])
        .arg(file)
        .output()
        .expect("ffprobe (Debian's ffmpeg: scripts/test.sh installs it)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffprobe on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let probe: Value = serde_json::from_slice(&out.stdout).expect("ffprobe's JSON");
    probe["streams"].as_array().cloned().unwrap_or_default()
}

/// A number ffprobe prints as a string.
fn number(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0.0)
}

#[test]
fn our_bot_decodes_chromium_publishing_into_janus() {
    in_netns("our_bot_decodes_chromium_publishing_into_janus", || async {
        let started = Instant::now();
        let janus = Janus::start();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let record = dir.path().to_str().expect("a UTF-8 path");
        let mut bot = usermedia(&["bot", "--seconds", "9", "--record", record]);
        feed_line(&mut bot, "usermedia: in Janus room").await;
        let served = serve(None).await;
        let query = format!("case=janusPublish&janus={URL}&room={ROOM}&display=chromium");
        let (result, _browser) = served.run_page(Browser::Chromium, &query).await;
        eprintln!("Chromium publishes {} into Janus", result["codec"]);
        let out = tokio::time::timeout(Duration::from_secs(20), bot.wait_with_output())
            .await
            .expect("the bot ends")
            .expect("its output");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}\n{}", janus.log());
        let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let left = lines
            .iter()
            .find(|l| l["event"] == "left")
            .expect("a left line");
        let video = left["tracks"]
            .as_array()
            .and_then(|t| {
                t.iter()
                    .find(|t| t["kind"] == "video" && t["display"] == "chromium")
            })
            .unwrap_or_else(|| panic!("no video from Chromium: {lines:?}"));
        let frames = video["stats"]["framesDecoded"].as_u64().unwrap_or(0);
        eprintln!(
            "the bot decoded {frames} frames of Chromium's {} at {}x{}; case took {:?}",
            video["mimeType"],
            video["settings"]["width"],
            video["settings"]["height"],
            started.elapsed()
        );
        assert!(frames >= 60, "{video}");
        assert!(video["settings"].get("facingMode").is_none(), "{video}");
        // The recording: one file, finalized when the bot left; ffprobe decodes it whole.
        let feed = video["feed"].to_string();
        let chromium = left["participants"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["id"].as_str() == Some(feed.as_str())))
            .unwrap_or_else(|| panic!("Chromium is not among the participants: {left}"));
        let files = chromium["files"].as_array().expect("files");
        assert_eq!(files.len(), 1, "{chromium}");
        let file = std::path::Path::new(files[0].as_str().expect("a path"));
        let streams = probe(file);
        let stream = |kind: &str| {
            streams
                .iter()
                .find(|s| s["codec_type"] == kind)
                .unwrap_or_else(|| panic!("no {kind} in {}: {streams:?}", file.display()))
        };
        let (v, a) = (stream("video"), stream("audio"));
        let stored = number(&v["nb_read_frames"]);
        let (video_seconds, audio_seconds) = (number(&v["duration"]), number(&a["duration"]));
        let received = chromium["video_frames"].as_f64().unwrap_or(0.0);
        let heard = chromium["audio_seconds"].as_f64().unwrap_or(0.0);
        eprintln!(
            "recorded Chromium: {} {}x{} {stored} frames in {video_seconds:.2} s (the bot \
             took {received} frames), {} {audio_seconds:.2} s (the bot decoded {heard} s)",
            v["codec_name"], v["width"], v["height"], a["codec_name"]
        );
        // Not re-encoded: the size Chromium sent, the codec Janus relayed.
        assert_eq!(v["width"], video["settings"]["width"], "{v}");
        assert_eq!(v["height"], video["settings"]["height"], "{v}");
        assert_eq!(a["codec_name"], "opus", "{a}");
        let near = |x: f64, reference: f64| (x - reference).abs() <= reference * 0.05;
        assert!(
            near(stored, received),
            "{stored} frames stored, {received} received"
        );
        assert!(
            near(video_seconds, heard) && near(audio_seconds, heard),
            "video {video_seconds} s, audio {audio_seconds} s stored; {heard} s decoded"
        );
    });
}

/// `bot --janus --echo` with Chromium in the room: the page publishes a canvas drawing the
/// pattern's strip at 640×480 and decodes its own counters back from the feed the bot
/// publishes as `echo of <its feed>` (the bot's own camera is 320×240).
#[test]
fn chromium_decodes_its_own_pattern_back_through_janus_from_an_echoing_bot() {
    in_netns(
        "chromium_decodes_its_own_pattern_back_through_janus_from_an_echoing_bot",
        || async {
            let janus = Janus::start();
            let mut bot = usermedia(&["bot", "--seconds", "11", "--echo"]);
            feed_line(&mut bot, "usermedia: in Janus room").await;
            let served = serve(None).await;
            let query = format!("case=janusEcho&janus={URL}&room={ROOM}");
            let (result, browser) = served.run_page(Browser::Chromium, &query).await;
            drop(browser);
            let back: Vec<u64> = result["back"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            let drawn = result["drawn"].as_u64().unwrap_or(0);
            eprintln!(
                "Chromium drew {drawn} frames and read {} back through Janus from the echo \
                 ({} unreadable) at {}x{}",
                back.len(),
                result["unreadable"],
                result["width"],
                result["height"]
            );
            // Its own counters: fewer than it drew, always increasing, about 30 a second.
            assert!(back.len() >= 45, "{result}\n{}", janus.log());
            assert!(back.iter().all(|&f| f < drawn), "{result}");
            assert!(back.windows(2).all(|w| w[0] < w[1]), "{result}");
            // At the size it sent, not the bot's camera's.
            assert_eq!(
                (result["width"].as_u64(), result["height"].as_u64()),
                (Some(640), Some(480))
            );
            let out = tokio::time::timeout(Duration::from_secs(20), bot.wait_with_output())
                .await
                .expect("the bot ends")
                .expect("its output");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains(r#""event":"echo""#), "{stdout}");
        },
    );
}
