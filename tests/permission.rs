//! Permission and privacy: the prompt (granted, denied, timed out, answered over HTTP with
//! and without the token), the allow-list per context, and the indicator of devices in use
//! (in `/status` and `/indicator`: live, muted, gone after stop), through the library, the
//! server and the CLI.

mod common;

use common::http::{get, http};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use usermedia::devices::{
    Decision, MediaDevices, Permission, PermissionPolicy, Prompter, UseState,
};
use usermedia::peer::{PeerConfig, PeerFactory};
use usermedia::server::Publisher;
use usermedia::{MediaKind, MediaStream};
use usermedia_signaling::{router, ServerConfig, StreamToken};

/// The built-in devices with both kinds in `prompt` mode, asked of a prompter whose
/// requests wait `timeout`.
fn prompting(timeout: Duration) -> (Arc<MediaDevices>, Arc<Prompter>) {
    let mut policy = PermissionPolicy::granted();
    policy.set_kind(MediaKind::Video, Permission::Prompt);
    policy.set_kind(MediaKind::Audio, Permission::Prompt);
    let prompter = Arc::new(Prompter::new(timeout, false));
    let devices = MediaDevices::builtin_virtual(policy)
        .with_context("stream:cam")
        .with_prompter(Arc::clone(&prompter));
    (Arc::new(devices), prompter)
}

/// getUserMedia for video and audio on its own thread.
fn ask_in_background(
    devices: &Arc<MediaDevices>,
) -> std::thread::JoinHandle<Result<MediaStream, usermedia::MediaError>> {
    let devices = Arc::clone(devices);
    std::thread::spawn(move || devices.get_user_media_json(r#"{"video": true, "audio": true}"#))
}

#[test]
fn a_prompt_granted_opens_the_devices_and_shows_the_labels() {
    let (devices, prompter) = prompting(Duration::from_secs(10));
    // Nothing asked yet: labels hidden, as before a browser's prompt.
    assert!(devices
        .enumerate_devices()
        .iter()
        .all(|d| d.label.is_empty()));
    let asking = ask_in_background(&devices);
    let request = prompter
        .next_request(0, Duration::from_secs(5))
        .expect("a request");
    assert_eq!(request.context.as_deref(), Some("stream:cam"));
    let features: Vec<&str> = request.features.iter().map(|f| f.as_str()).collect();
    assert_eq!(features, ["microphone", "camera"]);
    assert_eq!(
        request.devices,
        ["Virtual microphone (tone)", "Virtual camera (pattern)"]
    );
    // Nothing is open while the operator thinks.
    assert!(devices.devices_in_use().is_empty());
    prompter.decide(&request.id, Decision::Allow).unwrap();
    let stream = asking.join().unwrap().expect("granted");
    assert_eq!(stream.get_tracks().len(), 2);
    assert!(devices
        .enumerate_devices()
        .iter()
        .all(|d| !d.label.is_empty()));
    // Not remembered: the next getUserMedia asks again.
    let again = ask_in_background(&devices);
    let second = prompter.next_request(request.id.parse().unwrap(), Duration::from_secs(5));
    let second = second.expect("asked again");
    prompter.decide(&second.id, Decision::Deny).unwrap();
    let e = again.join().unwrap().unwrap_err();
    assert_eq!(e.name(), "NotAllowedError");
    for t in stream.get_tracks() {
        t.stop();
    }
}

#[test]
fn a_prompt_denied_is_not_allowed_and_opens_nothing() {
    let (devices, prompter) = prompting(Duration::from_secs(10));
    let asking = ask_in_background(&devices);
    let request = prompter.next_request(0, Duration::from_secs(5)).unwrap();
    prompter.decide(&request.id, Decision::Deny).unwrap();
    let e = asking.join().unwrap().unwrap_err();
    assert_eq!(e.name(), "NotAllowedError");
    assert!(e.message().contains("denied by the operator"), "{e:?}");
    assert!(devices.devices_in_use().is_empty());
    assert!(devices
        .enumerate_devices()
        .iter()
        .all(|d| d.label.is_empty()));
}

#[test]
fn a_prompt_nobody_answers_times_out_after_the_configured_time() {
    let (devices, _prompter) = prompting(Duration::from_millis(400));
    let started = Instant::now();
    let e = devices
        .get_user_media_json(r#"{"video": true}"#)
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(e.name(), "NotAllowedError");
    assert!(e.message().contains("within 0.4 s"), "{e:?}");
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[test]
fn a_remembered_grant_is_not_asked_again() {
    let mut policy = PermissionPolicy::granted();
    policy.set_kind(MediaKind::Video, Permission::Prompt);
    let prompter = Arc::new(Prompter::new(Duration::from_millis(300), true));
    let devices =
        Arc::new(MediaDevices::builtin_virtual(policy).with_prompter(Arc::clone(&prompter)));
    let asking = ask_in_background(&devices);
    let request = prompter.next_request(0, Duration::from_secs(5)).unwrap();
    // Only the camera is in prompt mode: the microphone is not asked about.
    assert_eq!(request.features.len(), 1);
    prompter.decide(&request.id, Decision::Allow).unwrap();
    let first = asking.join().unwrap().unwrap();
    // Nobody answers now, and no answer is needed.
    let second = devices.get_user_media_json(r#"{"video": true}"#).unwrap();
    for t in first.get_tracks().iter().chain(second.get_tracks()) {
        t.stop();
    }
}

#[test]
fn a_room_without_the_microphone_gets_not_allowed_for_audio_and_still_gets_video() {
    let mut policy = PermissionPolicy::granted();
    policy.allow.add_entry("room:r1=camera").unwrap();
    let devices = MediaDevices::builtin_virtual(policy);
    let audio = json!({"audio": true});
    let parse = |v: &Value| {
        usermedia::constraints::MediaStreamConstraints::from_json_str(&v.to_string())
            .unwrap()
            .0
    };
    let e = devices
        .get_user_media_in(Some("room:r1"), &parse(&audio))
        .unwrap_err();
    assert_eq!(e.name(), "NotAllowedError");
    assert!(e.message().contains("microphone"), "{e:?}");
    let video = devices
        .get_user_media_in(Some("room:r1"), &parse(&json!({"video": true})))
        .unwrap();
    assert_eq!(video.get_tracks().len(), 1);
    video.get_tracks()[0].stop();
    // Both at once: the spec's all or nothing.
    let both = parse(&json!({"video": true, "audio": true}));
    let e = devices
        .get_user_media_in(Some("room:r1"), &both)
        .unwrap_err();
    assert_eq!(e.name(), "NotAllowedError");
    // Other rooms and the top level are not restricted.
    let other = devices
        .get_user_media_in(Some("room:r2"), &parse(&audio))
        .unwrap();
    other.get_tracks()[0].stop();
    // A catalogue in the room's context: `permitted` takes audio out and says why, and
    // what is left is captured.
    let mut policy = PermissionPolicy::granted();
    policy.allow.add_entry("room:r1=camera").unwrap();
    let in_room = MediaDevices::builtin_virtual(policy).with_context("room:r1");
    let (kept, refused) = in_room.permitted(&both);
    assert!(kept.audio.is_none() && kept.video.is_some());
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].name(), "NotAllowedError");
    let stream = in_room.get_user_media(&kept).unwrap();
    assert_eq!(stream.get_tracks()[0].kind(), MediaKind::Video);
    stream.get_tracks()[0].stop();
}

/// A server over `devices` with `config`, nothing published yet.
async fn serve(devices: &Arc<MediaDevices>, config: ServerConfig) -> (SocketAddr, Arc<Publisher>) {
    let factory = PeerFactory::new(PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().unwrap()],
        ..PeerConfig::default()
    });
    let publisher = Arc::new(Publisher::new(factory).with_devices(Arc::clone(devices)));
    let app = router(Arc::clone(&publisher), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, publisher)
}

async fn decide(addr: SocketAddr, id: &str, token: Option<&str>, body: &str) -> u16 {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend(bearer.as_deref().map(|b| ("Authorization", b)));
    http(addr, "POST", &format!("/permissions/{id}"), &headers, body)
        .await
        .status
}

/// `GET /permissions` with `token`: (status, the requests' ids).
async fn pending(addr: SocketAddr, token: Option<&str>) -> (u16, Vec<String>) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    let r = http(addr, "GET", "/permissions", &headers, "").await;
    if r.status != 200 {
        return (r.status, Vec::new());
    }
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let ids = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    (r.status, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_is_answered_over_http_only_with_the_token() {
    let (devices, _prompter) = prompting(Duration::from_secs(10));
    let config = ServerConfig {
        token: Some("secret".into()),
        stream_tokens: vec![StreamToken {
            stream: "other".into(),
            token: "other-token".into(),
        }],
        ..ServerConfig::default()
    };
    let (addr, _publisher) = serve(&devices, config).await;
    let asking = {
        let devices = Arc::clone(&devices);
        tokio::task::spawn_blocking(move || {
            devices.get_user_media_json(r#"{"video": true, "audio": true}"#)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let id = loop {
        let (status, ids) = pending(addr, Some("secret")).await;
        assert_eq!(status, 200);
        if let Some(id) = ids.first() {
            break id.clone();
        }
        assert!(Instant::now() < deadline, "no request listed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Without the token, or with a wrong one: 401, listed or answered.
    assert_eq!(pending(addr, None).await.0, 401);
    assert_eq!(pending(addr, Some("wrong")).await.0, 401);
    let allow = r#"{"decision": "allow"}"#;
    assert_eq!(decide(addr, &id, None, allow).await, 401);
    assert_eq!(decide(addr, &id, Some("wrong"), allow).await, 401);
    // Another stream's token sees nothing to answer and may not answer this one.
    assert_eq!(pending(addr, Some("other-token")).await, (200, Vec::new()));
    assert_eq!(decide(addr, &id, Some("other-token"), allow).await, 403);
    // Bad bodies and types name the problem.
    assert_eq!(
        decide(addr, &id, Some("secret"), r#"{"decision": "maybe"}"#).await,
        400
    );
    let form = http(
        addr,
        "POST",
        &format!("/permissions/{id}"),
        &[
            ("Authorization", "Bearer secret"),
            ("Content-Type", "text/plain"),
        ],
        allow,
    )
    .await;
    assert_eq!(form.status, 415);
    assert_eq!(decide(addr, "999", Some("secret"), allow).await, 404);
    // Still waiting: the refused attempts answered nothing.
    assert!(!asking.is_finished());
    assert_eq!(decide(addr, &id, Some("secret"), allow).await, 204);
    let stream = asking.await.unwrap().expect("granted over HTTP");
    assert_eq!(stream.get_tracks().len(), 2);
    // Answered: gone from the list, and cannot be answered twice.
    assert_eq!(pending(addr, Some("secret")).await, (200, Vec::new()));
    assert_eq!(decide(addr, &id, Some("secret"), allow).await, 404);
    for t in stream.get_tracks() {
        t.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_denied_over_http_without_tokens_configured() {
    let (devices, _prompter) = prompting(Duration::from_secs(10));
    let (addr, _publisher) = serve(&devices, ServerConfig::default()).await;
    let asking = {
        let devices = Arc::clone(&devices);
        tokio::task::spawn_blocking(move || devices.get_user_media_json(r#"{"audio": true}"#))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let id = loop {
        if let Some(id) = pending(addr, None).await.1.first() {
            break id.clone();
        }
        assert!(Instant::now() < deadline, "no request listed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        decide(addr, &id, None, r#"{"decision": "deny"}"#).await,
        204
    );
    let e = asking.await.unwrap().unwrap_err();
    assert_eq!(e.name(), "NotAllowedError");
}

/// `/status`'s `devicesInUse` and `indicator`, and `/indicator`.
async fn in_use(addr: SocketAddr) -> (Value, Value, Value) {
    // The server has a token: /status is the operator's (issue 11), /indicator public.
    assert_eq!(get(addr, "/status").await.status, 401);
    let status = common::http::authorized(addr, "GET", "/status", &[], Some("secret"), "").await;
    let status: Value = serde_json::from_str(&status.body).unwrap();
    let indicator = get(addr, "/indicator").await;
    assert_eq!(indicator.status, 200);
    let indicator: Value = serde_json::from_str(&indicator.body).unwrap();
    (
        status["devicesInUse"].clone(),
        status["indicator"].clone(),
        indicator,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_indicator_shows_live_then_muted_and_goes_when_the_last_track_stops() {
    let devices = Arc::new(MediaDevices::builtin_virtual(PermissionPolicy::granted()));
    let config = ServerConfig {
        token: Some("secret".into()),
        ..ServerConfig::default()
    };
    let (addr, publisher) = serve(&devices, config).await;
    let (none, indicator, public) = in_use(addr).await;
    assert_eq!(none, json!([]));
    assert_eq!(indicator["camera"], json!({"state": "off"}));
    assert_eq!(public, indicator);

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let stream = devices
        .get_user_media_json(r#"{"video": true, "audio": true}"#)
        .unwrap();
    publisher
        .publish("cam", stream.get_tracks().to_vec(), 1_000_000)
        .unwrap();
    let (open, indicator, public) = in_use(addr).await;
    let open = open.as_array().unwrap().clone();
    assert_eq!(open.len(), 2, "{open:?}");
    for d in &open {
        assert_eq!(d["muted"], json!(false));
        let since = d["sinceMs"].as_u64().unwrap();
        assert!(
            since >= before.saturating_sub(5) && since < before + 10_000,
            "{d}"
        );
    }
    assert_eq!(indicator["camera"]["state"], json!("live"));
    assert_eq!(indicator["microphone"]["state"], json!("live"));
    // Public: the indicator names no session, stream or device.
    assert_eq!(public, indicator);
    assert!(!public.to_string().contains("virtual"), "{public}");

    // A clone shares the source: muting one of the two is still live.
    let video = stream.get_video_tracks()[0].clone();
    let clone = video.clone_track();
    video.set_enabled(false);
    assert_eq!(in_use(addr).await.1["camera"]["state"], json!("live"));
    clone.set_enabled(false);
    let (open, indicator, _) = in_use(addr).await;
    assert_eq!(indicator["camera"]["state"], json!("muted"));
    assert_eq!(indicator["microphone"]["state"], json!("live"));
    let camera = open
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == json!("videoinput"))
        .unwrap()
        .clone();
    assert_eq!(camera["muted"], json!(true));
    assert_eq!(devices.indicator().camera.state, UseState::Muted);

    // Stopped: the camera stays in use until its last track stops, then it goes.
    video.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(in_use(addr).await.1["camera"]["state"], json!("muted"));
    clone.stop();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (_, indicator, _) = in_use(addr).await;
        if indicator["camera"] == json!({"state": "off"}) {
            assert_eq!(indicator["microphone"]["state"], json!("live"));
            break;
        }
        assert!(Instant::now() < deadline, "camera still shown: {indicator}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in stream.get_tracks() {
        t.stop();
    }
}

/// `usermedia serve` with `args` on a free port: the child and its stdout lines.
fn serve_command(args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_usermedia"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--ice-addr", "127.0.0.1"])
        .args([
            "--devices",
            common::example("builtin.json").to_str().unwrap(),
        ])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run usermedia serve")
}

#[test]
fn serve_in_prompt_mode_fails_with_not_allowed_when_nobody_answers() {
    let started = Instant::now();
    let child = serve_command(&["--camera", "prompt", "--prompt-timeout", "0.5"]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("/operator"), "{stdout}");
    let error: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(error["error"]["name"], json!("NotAllowedError"));
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[test]
fn serve_takes_the_answer_over_http_while_it_waits() {
    use std::io::BufRead;
    let mut child = serve_command(&[
        "--camera",
        "prompt",
        "--microphone",
        "deny",
        "--token",
        "secret",
        "--constraints",
        r#"{"video": true}"#,
    ]);
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    // "... answered at http://127.0.0.1:PORT/operator (POST ...)"
    let addr: SocketAddr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        let id = loop {
            assert_eq!(pending(addr, None).await.0, 401);
            if let Some(id) = pending(addr, Some("secret")).await.1.first() {
                break id.clone();
            }
            assert!(Instant::now() < deadline, "no request listed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Not published before the answer.
        // With --token, /status is the operator's (issue 11).
        let status =
            common::http::authorized(addr, "GET", "/status", &[], Some("secret"), "").await;
        let status: Value = serde_json::from_str(&status.body).unwrap();
        assert_eq!(status["streams"], json!([]));
        assert_eq!(
            decide(addr, &id, None, r#"{"decision":"allow"}"#).await,
            401
        );
        assert_eq!(
            decide(addr, &id, Some("secret"), r#"{"decision":"allow"}"#).await,
            204
        );
    });
    let serving = lines.next().unwrap().unwrap();
    assert!(serving.contains("serving stream \"default\""), "{serving}");
    let indicator: Value = runtime
        .block_on(async { serde_json::from_str(&get(addr, "/indicator").await.body).unwrap() });
    assert_eq!(indicator["camera"]["state"], json!("live"));
    assert_eq!(indicator["microphone"]["state"], json!("off"));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn bad_permission_flags_are_bad_input() {
    for args in [
        &["select", "--camera", "ask", "--constraints", "{}"][..],
        &[
            "select",
            "--allow",
            "room:r1=speaker",
            "--constraints",
            "{\"video\":true}",
        ][..],
        &[
            "select",
            "--allow",
            "r1=camera",
            "--constraints",
            "{\"video\":true}",
        ][..],
        &["serve", "--prompt-timeout", "0"][..],
    ] {
        let out = common::usermedia(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_in_a_room_without_the_microphone_sends_video_only() {
    let _serial = common::exclusive().await;
    let devices = Arc::new(MediaDevices::builtin_virtual(PermissionPolicy::granted()));
    let (addr, _publisher) = serve(&devices, ServerConfig::default()).await;
    let url = format!("ws://{addr}/ws?room=r1");
    let factory = PeerFactory::new(PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().unwrap()],
        ..PeerConfig::default()
    });
    // A listener in the room that sends nothing and counts what arrives.
    let mut listener = usermedia::client::join_room(&url, factory, Vec::new())
        .await
        .unwrap();
    let builtin = common::example("builtin.json");
    let bot = tokio::process::Command::new(env!("CARGO_BIN_EXE_usermedia"))
        .args([
            "bot",
            "--room",
            &url,
            "--ice-addr",
            "127.0.0.1",
            "--seconds",
            "3",
        ])
        .args(["--allow", "room:r1=camera", "--allow", "*=microphone"])
        .arg("--devices")
        .arg(&builtin)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut kinds = Vec::new();
    while let Some(track) = listener.next_remote_track(Duration::from_secs(4)).await {
        kinds.push(track.kind());
    }
    let out = bot.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(kinds, [MediaKind::Video], "{stderr}");
    assert!(
        stderr.contains("NotAllowedError: microphone is not allowed in room:r1"),
        "{stderr}"
    );
    // Asking for the microphone alone there: nothing is left, the error is the result.
    let out = common::usermedia(&[
        "bot",
        "--room",
        &url,
        "--allow",
        "room:r1=camera",
        "--devices",
        builtin.to_str().unwrap(),
        "--constraints",
        r#"{"audio": true}"#,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["error"]["name"], json!("NotAllowedError"));
    listener.leave();
}

#[test]
fn capture_obeys_the_star_entry_at_the_top_level_and_drops_a_refused_kind() {
    let out_dir = tempfile::tempdir().unwrap();
    let builtin = common::example("builtin.json");
    let capture = |allow: &str| {
        common::usermedia(&[
            "capture",
            "--seconds",
            "0.5",
            "--out",
            out_dir.path().to_str().unwrap(),
            "--devices",
            builtin.to_str().unwrap(),
            "--allow",
            allow,
            "--constraints",
            r#"{"audio": true, "video": true}"#,
        ])
    };
    let out = capture("*=camera");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("NotAllowedError: microphone is not allowed"),
        "{stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&Value> = report["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["kind"])
        .collect();
    assert_eq!(kinds, [&json!("video")], "{report}");
    // Nothing allowed: the error is the result.
    let out = capture("*=");
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["error"]["name"], json!("NotAllowedError"));
}

#[test]
fn publish_captures_in_the_context_of_its_whip_stream() {
    let builtin = common::example("builtin.json");
    let publish = |allow: &str| {
        common::usermedia(&[
            "publish",
            // Nothing listens here: only the allow-list's refusal comes before connecting.
            "--whip",
            "http://127.0.0.1:9/whip/cam",
            "--devices",
            builtin.to_str().unwrap(),
            "--allow",
            allow,
            "--seconds",
            "1",
        ])
    };
    let out = publish("stream:cam=");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let error: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["error"]["name"], json!("NotAllowedError"));
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stream:cam"),
        "{error}"
    );
    // Another stream's entry does not apply: it captures and fails to connect instead.
    let out = publish("stream:other=");
    assert_ne!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
