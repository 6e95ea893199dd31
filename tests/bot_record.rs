//! `usermedia bot --record DIR` in a call room of an in-process server (and in a Janus
//! VideoRoom, Janus started in a network namespace as tests/janus.rs does): a participant who
//! comes, leaves and comes back (a new id: a new file) is recorded into one MP4 per stay,
//! and ffprobe/ffmpeg (Debian's) read each file back: H.264 at the sender's resolution
//! (not re-encoded: every stored frame is one the sender drew, counted by the pattern's
//! strip), Opus audio, a duration and frame count within 5% of what was sent. With
//! `--echo`, a participant receives its own media back from the bot's echo, forwarded as
//! it came.

mod common;
#[allow(dead_code)]
mod janus_support;
mod netns;

use std::path::Path;

use common::{example, exclusive, room_server};
use serde_json::Value;
use usermedia::devices::pattern::read_strip_luma;

/// Starts `usermedia bot` in `url` for `seconds` with the phone example's front camera at
/// 320×240 and the tone, and `extra` flags.
fn bot(url: &str, seconds: &str, extra: &[&str]) -> tokio::process::Child {
    bot_with(url, seconds, "front", 320, extra)
}

/// [`bot`] with the phone's `camera` at `width`×(3/4 of it).
fn bot_with(
    url: &str,
    seconds: &str,
    camera: &str,
    width: u32,
    extra: &[&str],
) -> tokio::process::Child {
    let constraints = format!(
        r#"{{"video": {{"deviceId": {{"exact": "{camera}"}}, "width": {width}, "height": {}}}, "audio": true}}"#,
        width * 3 / 4
    );
    common::bot_in_room(url, seconds)
        .arg("--devices")
        .arg(example("phone.json"))
        .args(["--constraints", &constraints])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start usermedia bot")
}

/// The JSON lines a finished bot printed, and its exit status.
async fn finish(child: tokio::process::Child) -> (std::process::ExitStatus, Vec<Value>) {
    let out = child.wait_with_output().await.unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (out.status, lines)
}

/// ffprobe's view of a file: its streams (codec_name, profile, width, height, duration)
/// and the format's duration in seconds.
fn ffprobe(file: &Path) -> (Vec<Value>, f64) {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .args(["stream=codec_name,width,height,profile,duration:format=duration"])
        .args(["-of", "json"])
        .arg(file)
        .output()
        .expect("ffprobe (Debian's ffmpeg: scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probe: Value = serde_json::from_slice(&out.stdout).unwrap();
    let duration = probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (probe["streams"].as_array().unwrap().clone(), duration)
}

/// The video's frames as stored (ffmpeg, none dropped or added): how many, and the
/// sender's strip (frame number, capture ms) of the first and last.
fn strips(file: &Path) -> (u64, (u32, u32), (u32, u32)) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-map", "0:v:0", "-fps_mode", "passthrough"])
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Vec<(u32, u32)> = out
        .stdout
        .chunks_exact(320 * 240)
        .filter_map(|y| read_strip_luma(y, 320, 240))
        .map(|s| (s.frame_number, s.capture_time_ms))
        .collect();
    let frames = (out.stdout.len() / (320 * 240)) as u64;
    assert!(read.len() as u64 >= frames * 95 / 100, "strips unreadable");
    (frames, read[0], read[read.len() - 1])
}

/// ffprobe and ffmpeg on `file`, participant `p`'s recording (`p` for messages): H.264 at
/// 320×240 as our sender encodes it, Opus; the video's frame count and duration within 5%
/// of what the sender drew over the span (read from the strip), the audio's duration within
/// 5% of the seconds the bot decoded, the file's that of the longer track. Returns the
/// frames stored.
fn check_recording(file: &Path, p: &Value) -> u64 {
    let (streams, duration) = ffprobe(file);
    // H.264 at the sender's resolution, and Opus.
    let video = streams
        .iter()
        .find(|s| s["codec_name"] == "h264")
        .expect("h264");
    assert_eq!(
        (&video["width"], &video["height"]),
        (&320.into(), &240.into())
    );
    // Our sender's encoder's profile: the stream was not re-encoded.
    assert_eq!(video["profile"], "Constrained Baseline", "{video}");
    let audio = streams
        .iter()
        .find(|s| s["codec_name"] == "opus")
        .expect("opus");
    let seconds = |s: &Value| -> f64 { s["duration"].as_str().unwrap().parse().unwrap() };
    let (video_seconds, audio_seconds) = (seconds(video), seconds(audio));
    // Against the seconds the bot decoded, or the recorded span (the video's): under load
    // the bot's analysis may skip audio frames its queue had no room for, so what it
    // counted can be short while the file is whole.
    let decoded_audio = p["audio_seconds"].as_f64().unwrap();
    let near = |reference: f64| (audio_seconds - reference).abs() <= reference * 0.05;
    assert!(
        near(decoded_audio) || near(video_seconds),
        "{audio_seconds} s of audio in the file, {decoded_audio} s decoded, {video_seconds} s of video"
    );
    assert!((duration - video_seconds.max(audio_seconds)).abs() < 0.05);
    // What the sender drew over the recorded span, frame by frame.
    let (frames, first, last) = strips(file);
    let sent = u64::from(last.0 - first.0) + 1;
    let sent_seconds = f64::from(last.1 - first.1) / 1000.0 + 1.0 / 30.0;
    println!(
        "{}: {frames} frames stored, {sent} sent; video {video_seconds:.3} s, {sent_seconds:.3} s sent; audio {audio_seconds:.3} s; {p}",
        file.display()
    );
    assert!(sent_seconds > 2.0, "{p}");
    assert!(
        frames.abs_diff(sent) * 100 <= sent * 5,
        "{frames} frames stored, {sent} sent"
    );
    assert!(
        (video_seconds - sent_seconds).abs() <= sent_seconds * 0.05,
        "{video_seconds} s of video in the file, {sent_seconds} s sent"
    );
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_record_files_parse_back_with_ffprobe_one_per_stay() {
    let _serial = exclusive().await;
    let addr = room_server().await;
    let url = format!("ws://{addr}/ws?room=rec");
    let dir = tempfile::tempdir().unwrap();
    // No --seconds that matters: it leaves on Ctrl-C (SIGINT) below.
    let recorder = bot(&url, "60", &["--record", dir.path().to_str().unwrap()]);
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    // One participant's first stay, then (after leaving) its second: a new id, a new file.
    for _ in 0..2 {
        let (status, _) = finish(bot(&url, "4", &[])).await;
        assert!(status.success());
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let pid = recorder.id().unwrap().to_string();
    let sigint = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status();
    assert!(sigint.unwrap().success());
    let (status, lines) =
        tokio::time::timeout(std::time::Duration::from_secs(10), finish(recorder))
            .await
            .expect("the bot leaves promptly on Ctrl-C");
    assert!(status.success(), "{lines:?}");
    // Each file is finalized as its participant leaves, before the bot does.
    let recorded: Vec<&Value> = lines.iter().filter(|l| l["event"] == "recorded").collect();
    assert_eq!(recorded.len(), 2, "{lines:?}");
    let left = lines.iter().find(|l| l["event"] == "left").expect("left");
    let participants = left["participants"].as_array().unwrap();
    assert_eq!(participants.len(), 2, "{left}");
    for p in participants {
        let files = p["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{p}");
        let file = Path::new(files[0].as_str().unwrap());
        assert!(file.starts_with(dir.path()), "{p}");
        let frames = check_recording(file, p);
        let decoded = p["video_frames"].as_u64().unwrap();
        assert!(decoded.abs_diff(frames) * 100 <= frames * 5, "{p}");
        assert!(p["audio_seconds"].as_f64().unwrap() > 2.0, "{p}");
        assert!(p["video_kbps"].as_f64().unwrap() > 10.0, "{p}");
        assert!(p["freezes"]["count"].is_u64(), "{p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echoing_bot_sends_a_participant_its_own_media_back() {
    let _serial = exclusive().await;
    let addr = room_server().await;
    let url = format!("ws://{addr}/ws?room=echo");
    // The echoing bot sends 160×120 of its own; the participant sends 320×240.
    let echoing = bot_with(&url, "8", "back", 160, &["--echo"]);
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let (status, lines) = finish(bot(&url, "5", &[])).await;
    assert!(status.success(), "{lines:?}");
    let (echo_status, echo_lines) = finish(echoing).await;
    assert!(echo_status.success(), "{echo_lines:?}");
    let echo = echo_lines
        .iter()
        .find(|l| l["event"] == "echo")
        .unwrap_or_else(|| panic!("no echo started: {echo_lines:?}"));
    let echo_id = echo["id"].as_str().unwrap();
    // The bot reports only the participant, not its own echo.
    let left = echo_lines.iter().find(|l| l["event"] == "left").unwrap();
    let seen = left["participants"].as_array().unwrap();
    assert_eq!(seen.len(), 1, "{left}");
    assert_eq!(seen[0]["id"], echo["participant"]);
    // Its video was forwarded as it came, not re-encoded.
    let tracks = left["tracks"].as_array().unwrap();
    let video = tracks.iter().find(|t| t["kind"] == "video").unwrap();
    let forwarded = video["stats"]["unitsForwarded"].as_u64().unwrap();
    assert!(forwarded >= 60, "{video}");
    // The participant receives its own 320×240 pattern back from the echo, strip intact.
    let left = lines.iter().find(|l| l["event"] == "left").unwrap();
    let from_echo = left["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == echo_id)
        .unwrap_or_else(|| panic!("nothing from the echo: {left}"));
    println!("echoing bot: forwarded {forwarded} units; the participant got back {from_echo}");
    assert!(
        from_echo["video_frames"].as_u64().unwrap() >= 60,
        "{from_echo}"
    );
    assert!(
        from_echo["audio_seconds"].as_f64().unwrap() >= 1.5,
        "{from_echo}"
    );
    let echoed_video: Vec<&Value> = left["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "video" && t["settings"]["width"] == 320)
        .collect();
    assert_eq!(echoed_video.len(), 1, "{left}");
    assert_eq!(echoed_video[0]["quality"]["source"], "strip", "{left}");
}

#[test]
fn bot_janus_record_files_a_publisher_that_leaves() {
    netns::run(
        "bot_janus_record_files_a_publisher_that_leaves",
        janus_support::NETNS_SETUP,
        std::time::Duration::from_secs(40),
        || async {
            let janus = janus_support::Janus::start();
            let room = janus_support::ROOM.to_string();
            let dir = tempfile::tempdir().unwrap();
            let janus_flags = |verb: &str, seconds: &str| {
                vec![
                    verb.to_owned(),
                    "--janus".into(),
                    janus_support::URL.into(),
                    "--janus-room".into(),
                    room.clone(),
                    "--ice-addr".into(),
                    janus_support::ICE_ADDR.into(),
                    "--seconds".into(),
                    seconds.into(),
                    "--devices".into(),
                    example("phone.json").display().to_string(),
                    "--constraints".into(),
                    r#"{"video": {"deviceId": {"exact": "front"}, "width": 320, "height": 240}, "audio": true}"#.into(),
                ]
            };
            let spawn = |args: Vec<String>| {
                tokio::process::Command::new(env!("CARGO_BIN_EXE_usermedia"))
                    .args(args)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap()
            };
            let mut bot_args = janus_flags("bot", "9");
            bot_args.extend(["--record".into(), dir.path().display().to_string()]);
            let recorder = spawn(bot_args);
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let (status, _) = finish(spawn(janus_flags("publish", "5"))).await;
            assert!(status.success(), "{}", janus.log());
            let (status, lines) = finish(recorder).await;
            assert!(status.success(), "{lines:?}\n{}", janus.log());
            // Finalized when the publisher left, before the bot did.
            let recorded = lines.iter().position(|l| l["event"] == "recorded");
            let left = lines.iter().position(|l| l["event"] == "left");
            assert!(recorded.is_some() && recorded < left, "{lines:?}");
            let left = &lines[left.unwrap()];
            let participants = left["participants"].as_array().unwrap();
            assert_eq!(participants.len(), 1, "{left}");
            let p = &participants[0];
            let files = p["files"].as_array().unwrap();
            assert_eq!(files.len(), 1, "{p}");
            let file = Path::new(files[0].as_str().unwrap());
            assert!(file.starts_with(dir.path()), "{p}");
            let frames = check_recording(file, p);
            println!("Janus: {frames} frames recorded; {p}");
        },
    );
}
