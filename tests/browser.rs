//! Interop with real browsers: headless Chromium and Firefox (Debian's packages) against
//! usermedia on loopback, each case in its own network namespace (see
//! `browser_support`). Every case runs for both browsers; Firefox has no H.264 in Debian,
//! so its video is VP8. The numbers each passing case measured go into the interop
//! matrix (target/tmp/interop/matrix.md), which docs/interop.md ("The matrix") copies.

mod browser_support;
#[path = "../signaling/tests/common/http.rs"]
mod http;
mod netns;
mod turn_support;

use std::time::{Duration, Instant};

use browser_support::{
    in_netns, loopback_peers, percentile, phone_devices, record, serve, serve_devices, serve_with,
    Browser, MatrixRow, Served,
};
use serde_json::Value;
use usermedia::client::{join_room, join_room_saying, CallBot, Chat};
use usermedia::peer::RemoteTrack;
use usermedia::server::encode_track;
use usermedia::track::MediaStreamTrack;
use usermedia::{MediaFrame, MediaKind, MediaStream};
use usermedia_signaling::{Endpoint, LinkIceServer, ServerConfig};

/// What we capture for a browser to view: the phone's back camera, which faces the
/// environment, so the remote side can be checked for not reporting it.
fn environment_camera(width: u32, height: u32) -> String {
    format!(
        r#"{{"video": {{"facingMode": {{"exact": "environment"}}, "width": {{"exact": {width}}},
            "height": {{"exact": {height}}}}}, "audio": true}}"#
    )
}

fn number(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} missing from the page's result: {v}"))
}

fn mime(codec: &str) -> String {
    match codec {
        "h264" => "video/H264".into(),
        "vp8" => "video/VP8".into(),
        other => panic!("no such codec {other}"),
    }
}

fn assert_codec(result: &Value, pointer: &str, expected: &str) {
    let got = result
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("");
    assert!(
        got.eq_ignore_ascii_case(expected),
        "{pointer}: expected {expected}, the browser used {got:?}"
    );
}

/// Frame numbers read from the strip: enough of them, and never going backwards.
fn assert_counter_increases(result: &Value) -> usize {
    let frames: Vec<u64> = result
        .pointer("/strip/frames")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    assert!(
        frames.len() >= 30,
        "the page read only {} frame numbers from the strip ({} unreadable): {frames:?}",
        frames.len(),
        result.pointer("/strip/unreadable").unwrap_or(&Value::Null)
    );
    assert!(
        frames.windows(2).all(|w| w[1] > w[0]),
        "the frame counter went backwards or repeated: {frames:?}"
    );
    frames.len()
}

/// Capture → browser display latency percentiles (ms) read off the strip.
fn latency_summary(result: &Value) -> String {
    let latencies: Vec<f64> = result
        .pointer("/strip/latenciesMs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    match (
        percentile(&latencies, 50.0),
        percentile(&latencies, 95.0),
        percentile(&latencies, 99.0),
    ) {
        (Some(p50), Some(p95), Some(p99)) => {
            format!("glass-to-glass p50 {p50:.0} ms, p95 {p95:.0} ms, p99 {p99:.0} ms")
        }
        _ => "no latency samples".into(),
    }
}

fn assert_no_facing_mode(settings: &Value, whose: &str) {
    assert!(
        settings.is_object(),
        "{whose}: no settings reported: {settings}"
    );
    assert!(
        settings.get("facingMode").is_none(),
        "{whose} reports facingMode although it is never carried over RTP: {settings}"
    );
}

/// The browser views our WHEP stream in `codec` at `width`×`height`.
async fn browser_views(case: &str, browser: Browser, codec: &str, width: u32, height: u32) {
    let served = serve(Some(&environment_camera(width, height))).await;
    let camera = served
        .publisher
        .tracks("default")
        .into_iter()
        .find(|t| t.kind() == MediaKind::Video)
        .expect("a published camera");
    let ours = serde_json::to_value(camera.get_settings()).expect("settings");
    assert_eq!(ours["facingMode"], "environment", "our camera: {ours}");

    let query = format!("case=view&stream=default&codec={codec}");
    let (result, _browser) = served.run_page(browser, &query).await;

    assert_codec(&result, "/video/codec", &mime(codec));
    let decoded = number(&result, "/video/framesDecoded");
    assert!(decoded >= 60.0, "{decoded} frames decoded in 3 s: {result}");
    assert_eq!(
        (
            number(&result, "/video/frameWidth"),
            number(&result, "/video/frameHeight")
        ),
        (f64::from(width), f64::from(height)),
        "decoded size differs from what our constraints selected"
    );
    let read = assert_counter_increases(&result);
    assert_no_facing_mode(&result["remoteSettings"], "the browser's remote track");

    assert_codec(&result, "/audio/codec", "audio/opus");
    let samples = number(&result, "/audio/samplesReceived");
    assert!(
        samples > 48_000.0,
        "{samples} audio samples in 3 s: {result}"
    );
    let (level, energy) = (
        number(&result, "/audio/audioLevel"),
        number(&result, "/audio/totalAudioEnergy"),
    );
    assert!(
        level > 0.0 && energy > 0.0,
        "our tone arrived silent: audioLevel {level}, energy {energy}"
    );
    assert_eq!(
        number(&result, "/deleteStatus"),
        200.0,
        "DELETE of the session"
    );

    record(MatrixRow {
        case,
        browser,
        direction: "views usermedia (WHEP)",
        codec: &format!("{codec} {width}×{height} + opus"),
        detail: format!(
            "{decoded} frames decoded in 3 s, {read} counters read; audioLevel {level:.2}; {}",
            latency_summary(&result)
        ),
    });
}

/// Counts the frames a remote track delivers over `window` and returns (frames, audio RMS).
async fn count_frames(track: &MediaStreamTrack, window: Duration) -> (u64, f64) {
    let receiver = track.subscribe(64);
    tokio::task::spawn_blocking(move || {
        let (mut frames, mut sum, mut samples) = (0u64, 0f64, 0u64);
        let end = Instant::now() + window;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match receiver.recv_timeout(left) {
                Ok(Some(MediaFrame::Video(_))) => frames += 1,
                Ok(Some(MediaFrame::Audio(a))) => {
                    frames += 1;
                    for s in a.to_i16() {
                        sum += f64::from(s) * f64::from(s);
                        samples += 1;
                    }
                }
                Ok(None) => {}
                Err(_) => break,
            }
        }
        let rms = if samples == 0 {
            0.0
        } else {
            (sum / samples as f64).sqrt()
        };
        (frames, rms)
    })
    .await
    .expect("frame counter")
}

/// Waits until `find` returns a track (remote tracks appear with their first packets).
async fn wait_for<T>(what: &str, mut find: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(t) = find() {
            return t;
        }
        assert!(Instant::now() < end, "{what} never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks a remote video track of ours: frames decoded over 3 s, and settings like a
/// browser's remote track (size and rate, never facingMode).
async fn assert_remote_video(track: &MediaStreamTrack, whose: &str) -> (u64, String) {
    let (frames, _) = count_frames(track, Duration::from_secs(3)).await;
    assert!(frames >= 40, "{whose}: we decoded {frames} frames in 3 s");
    let settings = serde_json::to_value(track.get_settings()).expect("settings");
    for key in ["width", "height", "frameRate"] {
        assert!(
            settings
                .get(key)
                .and_then(Value::as_f64)
                .is_some_and(|v| v > 0.0),
            "{whose}: our remote track's settings lack {key}: {settings}"
        );
    }
    assert_no_facing_mode(&settings, whose);
    let size = format!("{}×{}", settings["width"], settings["height"]);
    (frames, size)
}

/// The browser publishes its fake camera and microphone to our WHIP endpoint.
async fn browser_publishes(case: &str, browser: Browser, codec: &str) {
    let served = serve(None).await;
    let query = format!("case=publish&stream=cam&codec={codec}");
    let (result, _browser) = served.run_page(browser, &query).await;
    assert_codec(&result, "/codec", &mime(codec));

    let tracks = || served.publisher.tracks("cam");
    let video = wait_for("the browser's video track", || {
        tracks().into_iter().find(|t| t.kind() == MediaKind::Video)
    })
    .await;
    let audio = wait_for("the browser's audio track", || {
        tracks().into_iter().find(|t| t.kind() == MediaKind::Audio)
    })
    .await;
    assert!(video.is_remote() && audio.is_remote());
    let (frames, size) = assert_remote_video(&video, "the ingested video").await;
    let (_, rms) = count_frames(&audio, Duration::from_secs(1)).await;
    assert!(rms > 0.0, "the browser's microphone arrived silent");

    record(MatrixRow {
        case,
        browser,
        direction: "publishes to usermedia (WHIP)",
        codec: &format!("{codec} + opus"),
        detail: format!("we decoded {frames} frames in 3 s at {size}; audio RMS {rms:.0}"),
    });
}

/// A usermedia bot in call room `room` of `served`, sending the phone's back camera (the
/// pattern) and tone; the stream is returned so its capture lives as long as the bot.
async fn bot_in_room(served: &Served, room: &str) -> (CallBot, MediaStream) {
    let stream = phone_devices()
        .get_user_media_json(&environment_camera(640, 480))
        .expect("the bot's camera");
    let encoders = stream
        .get_tracks()
        .iter()
        .map(|t| encode_track(t, 1_000_000).expect("encoder"))
        .collect();
    let url = format!("ws://{}/ws?room={room}", served.addr);
    let bot = join_room(&url, loopback_peers(), encoders)
        .await
        .expect("the bot joins");
    (bot, stream)
}

/// The browser's video and audio tracks as they reach `bot`.
async fn browser_tracks_at(bot: &mut CallBot) -> (RemoteTrack, RemoteTrack) {
    let (mut video, mut audio) = (None, None);
    while video.is_none() || audio.is_none() {
        let track = bot
            .next_remote_track(Duration::from_secs(10))
            .await
            .expect("the browser's camera and microphone reach the bot");
        match track.kind() {
            MediaKind::Video => video = Some(track),
            MediaKind::Audio => audio = Some(track),
        }
    }
    (video.expect("video"), audio.expect("audio"))
}

/// The browser and a usermedia bot in one call room: both send camera and microphone,
/// both decode what the other sends.
async fn browser_calls_bot(case: &str, browser: Browser, codec: &str) {
    let served = serve(None).await;
    let (mut bot, _camera) = bot_in_room(&served, "interop").await;

    let query = format!("case=call&room=interop&codec={codec}");
    let (result, _browser) = served.run_page(browser, &query).await;

    // The browser's side: our pattern and tone.
    assert_codec(&result, "/video/codec", &mime(codec));
    let decoded = number(&result, "/video/framesDecoded");
    assert!(
        decoded >= 60.0,
        "the browser decoded {decoded} of our frames in 3 s"
    );
    assert_counter_increases(&result);
    assert_no_facing_mode(&result["remoteSettings"], "the browser's remote track");
    let level = number(&result, "/audio/audioLevel");
    let energy = number(&result, "/audio/totalAudioEnergy");
    assert!(
        level > 0.0 && energy > 0.0,
        "our tone arrived silent in the browser: audioLevel {level}, energy {energy}"
    );

    // Our side: the browser's camera and microphone.
    let (video, audio) = browser_tracks_at(&mut bot).await;
    let (frames, size) = assert_remote_video(video.track(), "the bot's remote video").await;
    let (_, rms) = count_frames(audio.track(), Duration::from_secs(1)).await;
    assert!(
        rms > 0.0,
        "the browser's microphone arrived silent at the bot"
    );
    bot.leave();

    record(MatrixRow {
        case,
        browser,
        direction: "call room with a usermedia bot (both ways)",
        codec: &format!("{codec} + opus"),
        detail: format!(
            "browser decoded {decoded} frames in 3 s, audioLevel {level:.2}; bot decoded {frames} at {size}, audio RMS {rms:.0}; {}",
            latency_summary(&result)
        ),
    });
}

/// The codecs of the video encoders `/status` shows running (one per codec in use).
fn video_encoder_codecs(status: &Value) -> String {
    let codecs: Vec<&str> = status["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["tracks"].as_array().into_iter().flatten())
        .filter(|t| t["kind"] == "video")
        .flat_map(|t| t["encoders"].as_array().into_iter().flatten())
        .filter_map(|e| e["codec"].as_str())
        .collect();
    assert!(!codecs.is_empty(), "no video encoder running: {status}");
    codecs.join(", ")
}

/// The viewer page the service ships (`/`) plays our stream: the session it opens shows
/// up in `/status` as a connected viewer that is being sent video.
async fn shipped_viewer_plays(case: &str, browser: Browser) {
    let served = serve(Some(&environment_camera(640, 480))).await;
    let _browser = served.open(browser, "/");
    let frames_sent = |status: &Value| {
        status["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["role"] == "viewer")
            .map(|p| {
                (
                    p["stats"]["state"].clone(),
                    p["stats"]["framesSent"].as_u64(),
                )
            })
    };
    let end = Instant::now() + Duration::from_secs(12);
    let (sent, status) = loop {
        let status = serde_json::to_value(served.publisher.status().await).unwrap();
        if let Some((state, Some(sent))) = frames_sent(&status) {
            if state == "connected" && sent >= 60 {
                break (sent, status);
            }
        }
        assert!(
            Instant::now() < end,
            "the viewer page never reached 60 frames sent: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    record(MatrixRow {
        case,
        browser,
        direction: "the shipped viewer page `/` (WHEP)",
        codec: &format!("{} (the browser's first)", video_encoder_codecs(&status)),
        detail: format!("connected, {sent} frames sent"),
    });
}

/// The shipped viewer page with `?relay` (iceTransportPolicy "relay") on a server that
/// advertises a TURN server (coturn on loopback, over `transport`: udp or tcp) in its Link
/// headers: the browser's side of the pair in `/status` is a relay candidate, and the
/// page's own peer connection decoded video (read from the page in a same-origin frame).
/// With `token`, the server has that token configured (TURN only for requests carrying
/// it) and the page is given it as `#token=`.
async fn shipped_viewer_plays_through_turn(
    case: &str,
    browser: Browser,
    transport: &str,
    token: Option<&str>,
) {
    let _turn = turn_support::Coturn::start("127.0.0.1", "browser", "turn-secret");
    let config = ServerConfig {
        ice_servers: vec![LinkIceServer {
            url: format!("turn:127.0.0.1:3478?transport={transport}"),
            username: Some("browser".into()),
            credential: Some("turn-secret".into()),
        }],
        // With a token configured, TURN is advertised only to requests that carry it.
        token: token.map(str::to_owned),
        ..ServerConfig::default()
    };
    let served = serve_with(Some(&environment_camera(640, 480)), config).await;
    let path = match token {
        Some(t) => format!("/?relay#token={t}"),
        None => "/?relay".to_owned(),
    };
    let query = format!(
        "case=shipped&frames=30&path={}",
        path.replace('?', "%3F").replace('#', "%23")
    );
    let (page, _browser) = served.run_page(browser, &query).await;
    let decoded = number(&page, "/framesDecoded");
    assert!(decoded >= 30.0, "the page decoded {decoded} frames: {page}");
    assert_eq!(
        page["localCandidateType"], "relay",
        "the page's own side: {page}"
    );
    let viewer = |status: &Value| {
        status["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["role"] == "viewer")
            .map(|p| p["stats"].clone())
    };
    let end = Instant::now() + Duration::from_secs(12);
    let (sent, remote) = loop {
        let status = serde_json::to_value(served.publisher.status().await).unwrap();
        if let Some(stats) = viewer(&status) {
            let sent = stats["framesSent"].as_u64().unwrap_or(0);
            let remote = stats["selectedCandidatePair"]["remote"]["type"].clone();
            if stats["state"] == "connected" && sent >= 60 {
                break (sent, remote);
            }
        }
        assert!(
            Instant::now() < end,
            "the viewer page never reached 60 frames sent through TURN: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(remote, "relay", "the browser came through TURN");
    let with_token = if token.is_some() {
        " with `#token=`, on a server with a token"
    } else {
        ""
    };
    record(MatrixRow {
        case,
        browser,
        direction: &format!(
            "the shipped viewer page `/?relay`{with_token} through coturn (TURN/{transport})"
        ),
        codec: "(the browser's first)",
        detail: format!(
            "connected through a relay, {sent} frames sent, the page decoded {decoded}"
        ),
    });
}

/// The call page the service ships (`/call?room=R&join`) joins a room where a bot
/// waits: the browser's camera and microphone reach the bot.
async fn shipped_call_page_joins(case: &str, browser: Browser) {
    let served = serve(None).await;
    let (mut bot, _camera) = bot_in_room(&served, "page").await;
    let _browser = served.open(browser, "/call?room=page&join");
    let (video, _audio) = browser_tracks_at(&mut bot).await;
    let (frames, size) = assert_remote_video(video.track(), "the call page's video").await;
    let codec = video
        .mime_type()
        .trim_start_matches("video/")
        .to_lowercase();
    bot.leave();
    record(MatrixRow {
        case,
        browser,
        direction: "the shipped call page `/call` with a bot",
        codec: &format!("{codec} (the browser's first)"),
        detail: format!("the bot decoded {frames} frames in 3 s at {size}"),
    });
}

/// The call page's chat box: Chromium on `/call?…&say=TEXT` says TEXT to a bot on their
/// `chat` data channel (the bot receives it as a message from the page's participant id),
/// and shows what the bot says (`join_room_saying` with a `Chat`, as `bot --say` does).
async fn call_page_chats_with_a_bot(case: &str, browser: Browser) {
    let served = serve(None).await;
    let stream = phone_devices()
        .get_user_media_json(&environment_camera(320, 240))
        .expect("the bot's camera");
    let encoders = stream
        .get_tracks()
        .iter()
        .map(|t| encode_track(t, 500_000).expect("encoder"))
        .collect();
    let url = format!("ws://{}/ws?room=chat", served.addr);
    let chat = Chat::new(Some("hello from the bot".into())).expect("a short message");
    let http = usermedia_signaling::HttpClient::new().expect("an HTTP client");
    let mut bot = join_room_saying(&http, &url, loopback_peers(), encoders, Some(chat))
        .await
        .expect("the bot joins");
    let started = Instant::now();
    let query =
        "case=callChat&room=chat&say=hello%20from%20the%20page&expect=hello%20from%20the%20bot";
    let (result, _browser) = served.run_page(browser, query).await;
    let shown = result["chat"].to_string();
    assert!(shown.contains("hello from the bot"), "{result}");
    let message = bot
        .next_message(Duration::from_secs(10))
        .await
        .expect("the page's message in time");
    let took = started.elapsed();
    assert_eq!(message.text, "hello from the page");
    assert!(!message.from.is_empty());
    bot.leave();
    drop(stream);
    record(MatrixRow {
        case,
        browser,
        direction: "the call page's chat box with a bot (data channel, both ways)",
        codec: "-",
        detail: format!("both messages through within {took:?} of the page opening"),
    });
}

/// A phone whose cameras differ in size: front 640×480 (user), back 320×240 (environment).
const FLIP_PHONE: &str = r#"{"devices": [
  {"kind": "videoinput", "deviceId": "front", "label": "Front camera", "facingMode": "user",
   "source": "pattern", "modes": [{"width": 640, "height": 480, "frameRate": 30}]},
  {"kind": "videoinput", "deviceId": "back", "label": "Back camera",
   "facingMode": "environment", "source": "pattern",
   "modes": [{"width": 320, "height": 240, "frameRate": 30}]}
]}"#;

/// The browser views a stream while the test flips its camera (`POST
/// /streams/default/flip`): the page keeps showing frames (no gap over 500 ms), sees the
/// back camera's size, and its track stays live without a facingMode.
async fn browser_follows_a_flip(case: &str, browser: Browser) {
    let file = tempfile::Builder::new()
        .suffix(".json")
        .tempfile()
        .expect("devices file");
    std::fs::write(file.path(), FLIP_PHONE).expect("devices file");
    let devices = usermedia::MediaDevices::from_devices_file(
        file.path(),
        usermedia::PermissionPolicy::granted(),
    )
    .expect("the flip phone");
    let served = serve_devices(devices, Some(r#"{"video": {"facingMode": "user"}}"#)).await;
    let flip_while_viewed = async {
        let end = Instant::now() + Duration::from_secs(12);
        loop {
            let status = serde_json::to_value(served.publisher.status().await).expect("status");
            let sent = status["peers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["stats"]["framesSent"].as_u64())
                .max()
                .unwrap_or(0);
            if sent >= 45 {
                break;
            }
            assert!(
                Instant::now() < end,
                "the page never started viewing: {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        http::http(served.addr, "POST", "/streams/default/flip", &[], "").await
    };
    let ((result, _browser), flipped) = tokio::join!(
        served.run_page(browser, "case=flip&stream=default"),
        flip_while_viewed
    );
    assert_eq!(flipped.status, 200, "{}", flipped.body);
    assert!(
        flipped.body.contains(r#""deviceId":"back""#),
        "{}",
        flipped.body
    );
    let sizes: Vec<&str> = result["sizes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(sizes, ["640x480", "320x240"], "the sizes shown: {result}");
    let gap = number(&result, "/maxGapMs");
    assert!(gap < 500.0, "a {gap} ms gap in the frames shown: {result}");
    let after = number(&result, "/framesAtLastSize");
    assert!(after >= 30.0, "{after} frames after the flip: {result}");
    assert_eq!(result["trackState"], "live");
    assert_no_facing_mode(&result["remoteSettings"], "the browser's remote track");
    record(MatrixRow {
        case,
        browser,
        direction: "views usermedia (WHEP) across a camera flip",
        codec: "(the browser's first)",
        detail: format!(
            "640×480 → 320×240 without renegotiation; longest gap {gap:.0} ms, {after} frames after"
        ),
    });
}

/// The viewer page's *Flip camera* button, clicked as a user would (no direct POST): the
/// page's own video changes from the front camera's size to the back one's.
async fn viewer_page_flip_button(case: &str, browser: Browser) {
    let file = tempfile::Builder::new()
        .suffix(".json")
        .tempfile()
        .expect("devices file");
    std::fs::write(file.path(), FLIP_PHONE).expect("devices file");
    let devices = usermedia::MediaDevices::from_devices_file(
        file.path(),
        usermedia::PermissionPolicy::granted(),
    )
    .expect("the flip phone");
    let served = serve_devices(devices, Some(r#"{"video": {"facingMode": "user"}}"#)).await;
    let (page, _browser) = served
        .run_page(browser, "case=shipped&frames=15&path=/&click=flip")
        .await;
    assert_eq!(page["sizeBefore"], "640x480", "{page}");
    assert_eq!(page["sizeAfter"], "320x240", "{page}");
    assert_eq!(page["shown"], "camera: Back camera", "{page}");
    record(MatrixRow {
        case,
        browser,
        direction: "the shipped viewer page's Flip camera button",
        codec: "(the browser's first)",
        detail: "clicked: 640×480 → 320×240 on the page".into(),
    });
}

/// The shipped viewer page shows the strip's live figures under the video (frame number,
/// latency, freezes); its latency agrees with `usermedia view`'s, run on the same stream at
/// the same time, within 30 ms — capture → decoded on both sides where the browser tells
/// when it decoded a frame (Chromium: requestVideoFrameCallback's receiveTime and
/// processingDuration), else capture → shown. It asks for abs-capture-time where the
/// browser can.
async fn viewer_page_shows_live_latency(case: &str, browser: Browser) {
    let served = serve(Some(&environment_camera(640, 480))).await;
    let view = tokio::process::Command::new(env!("CARGO_BIN_EXE_usermedia"))
        .args([
            "view",
            "--whep",
            &format!("http://{}/whep/default", served.addr),
        ])
        .args(["--ice-addr", "127.0.0.1", "--seconds", "9"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("usermedia view");
    let (result, _browser) = served.run_page(browser, "case=viewerPage&ms=3000").await;
    let out = view.wait_with_output().await.expect("view's output");
    assert!(out.status.success(), "usermedia view failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary from view: {stdout}"));
    let viewed = summary["tracks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["kind"] == "video"))
        .unwrap_or_else(|| panic!("no video in view's summary: {summary}"));
    let view_p50 = number(viewed, "/latency_ms/p50");
    let latencies: Vec<f64> = result["latenciesMs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    assert!(
        latencies.len() >= 30,
        "the page read too few frames: {result}"
    );
    let shown_p50 = percentile(&latencies, 50.0).expect("latencies");
    let decoded: Vec<f64> = result["decodedLatenciesMs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    // Chromium tells when it decoded each frame: compare like with like.
    if browser == Browser::Chromium {
        assert!(
            decoded.len() >= 30,
            "no decode times from Chromium: {result}"
        );
    }
    let page_p50 = percentile(&decoded, 50.0).unwrap_or(shown_p50);
    assert!(
        shown_p50 + 5.0 >= page_p50,
        "a frame is shown after it is decoded: shown p50 {shown_p50}, decoded p50 {page_p50}"
    );
    let shown = result["shown"].as_str().unwrap_or("");
    assert!(
        shown.starts_with("frame ") && shown.contains(" latency ") && shown.contains(" freezes "),
        "the page shows {shown:?}"
    );
    assert!(number(&result, "/live/frame") > 0.0, "{result}");
    eprintln!(
        "page p50 {page_p50} ms decoded, {shown_p50} ms shown; view p50 {view_p50} ms; {result}"
    );
    assert!(
        (page_p50 - view_p50).abs() <= 30.0,
        "the page's latency p50 {page_p50} ms vs view's {view_p50} ms"
    );
    // abs-capture-time: asked for through setHeaderExtensionsToNegotiate where the browser
    // has it, and then in our answer.
    if result["headerExtensionsApi"] == true {
        assert_eq!(result["captureTime"]["asked"], true, "{result}");
        assert_eq!(result["captureTime"]["negotiated"], true, "{result}");
        // Chromium reads it: capture → receive from its getSynchronizationSources.
        let delay = number(&result, "/captureTime/delayMs");
        assert!((0.0..200.0).contains(&delay), "{result}");
    }
    record(MatrixRow {
        case,
        browser,
        direction: "the shipped viewer page `/`: live strip figures vs `usermedia view`",
        codec: "the browser's first",
        detail: format!(
            "page latency p50 {page_p50} ms to decoded ({shown_p50} ms to shown), view's {view_p50} ms; shows {shown:?}; abs-capture-time {}",
            result["captureTime"]
        ),
    });
}

/// `case!(name => body(args))`: test `name` runs `body(name, args)` in its own network
/// namespace.
macro_rules! case {
    ($name:ident => $body:ident($($arg:expr),*)) => {
        #[test]
        fn $name() {
            in_netns(stringify!($name), || $body(stringify!($name), $($arg),*));
        }
    };
}

case!(chromium_views_h264_640x480 => browser_views(Browser::Chromium, "h264", 640, 480));
case!(chromium_views_h264_1280x720 => browser_views(Browser::Chromium, "h264", 1280, 720));
case!(chromium_views_vp8_640x480 => browser_views(Browser::Chromium, "vp8", 640, 480));
case!(chromium_views_vp8_1280x720 => browser_views(Browser::Chromium, "vp8", 1280, 720));
case!(firefox_views_vp8_640x480 => browser_views(Browser::Firefox, "vp8", 640, 480));
case!(firefox_views_vp8_1280x720 => browser_views(Browser::Firefox, "vp8", 1280, 720));
case!(chromium_publishes_h264 => browser_publishes(Browser::Chromium, "h264"));
case!(chromium_publishes_vp8 => browser_publishes(Browser::Chromium, "vp8"));
case!(firefox_publishes_vp8 => browser_publishes(Browser::Firefox, "vp8"));
case!(chromium_calls_a_bot_h264 => browser_calls_bot(Browser::Chromium, "h264"));
case!(firefox_calls_a_bot_vp8 => browser_calls_bot(Browser::Firefox, "vp8"));
case!(chromium_plays_the_viewer_page => shipped_viewer_plays(Browser::Chromium));
case!(firefox_plays_the_viewer_page => shipped_viewer_plays(Browser::Firefox));
case!(chromium_plays_the_viewer_page_through_turn => shipped_viewer_plays_through_turn(Browser::Chromium, "udp", None));
case!(chromium_plays_the_viewer_page_through_turn_tcp => shipped_viewer_plays_through_turn(Browser::Chromium, "tcp", None));
case!(chromium_plays_the_viewer_page_through_turn_with_a_token => shipped_viewer_plays_through_turn(Browser::Chromium, "udp", Some("page-token")));
case!(chromium_joins_with_the_call_page => shipped_call_page_joins(Browser::Chromium));
case!(firefox_joins_with_the_call_page => shipped_call_page_joins(Browser::Firefox));
case!(chromium_chats_on_the_call_page => call_page_chats_with_a_bot(Browser::Chromium));
case!(chromium_follows_a_camera_flip => browser_follows_a_flip(Browser::Chromium));
case!(chromium_flips_with_the_viewer_page_button => viewer_page_flip_button(Browser::Chromium));
case!(chromium_viewer_page_shows_live_latency => viewer_page_shows_live_latency(Browser::Chromium));
