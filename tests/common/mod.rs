//! Helpers shared by the integration tests: device sets, the CLI, the library, and one
//! JSON shape for both so their answers can be compared byte for byte.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use usermedia::client::RemoteSession;
use usermedia::devices::pattern::read_strip;
use usermedia::devices::{MediaDevices, Permission, PermissionPolicy};
use usermedia::peer::RemoteTrack;
use usermedia::{MediaFrame, MediaKind};

/// The minimal HTTP/1.1 client of the signaling crate's tests, included from there by path
/// (that file says why it lives there).
#[path = "../../signaling/tests/common/http.rs"]
pub mod http;

/// Which devices a case runs against.
#[derive(Debug, Clone, Copy)]
pub enum Devices {
    /// The built-in virtual set (the CLI gets `examples/devices/builtin.json`, its mirror,
    /// so the answer does not depend on this machine's hardware).
    Builtin,
    /// `examples/devices/phone.json`: back camera (environment), front (user), microphone.
    Phone,
    /// A devices file given inline.
    Json(&'static str),
}

pub fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/devices")
        .join(name)
}

pub fn temp_file(contents: &str, suffix: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(suffix)
        .tempfile()
        .expect("temp file");
    f.write_all(contents.as_bytes()).expect("write temp file");
    f
}

/// Keeps a temporary devices file alive as long as the path is used.
pub struct DevicesPath {
    pub path: PathBuf,
    _temp: Option<tempfile::NamedTempFile>,
}

impl Devices {
    pub fn path(self) -> DevicesPath {
        match self {
            Devices::Builtin => DevicesPath {
                path: example("builtin.json"),
                _temp: None,
            },
            Devices::Phone => DevicesPath {
                path: example("phone.json"),
                _temp: None,
            },
            Devices::Json(json) => {
                let f = temp_file(json, ".json");
                DevicesPath {
                    path: f.path().to_owned(),
                    _temp: Some(f),
                }
            }
        }
    }

    /// The library's `MediaDevices` for this set, everything granted except `deny`.
    pub fn media_devices(self, deny: &[&str]) -> MediaDevices {
        let policy = policy(deny);
        match self {
            Devices::Builtin => MediaDevices::builtin_virtual(policy),
            other => MediaDevices::from_devices_file(&other.path().path, policy)
                .expect("valid devices file"),
        }
    }
}

/// The CLI's `--deny` semantics as a policy.
pub fn policy(deny: &[&str]) -> PermissionPolicy {
    let mut policy = PermissionPolicy::granted();
    for d in deny {
        match *d {
            "camera" => policy.set_kind(MediaKind::Video, Permission::Denied),
            "microphone" => policy.set_kind(MediaKind::Audio, Permission::Denied),
            id => {
                policy.devices.insert(id.to_string(), Permission::Denied);
            }
        }
    }
    policy
}

pub fn usermedia(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_usermedia"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run usermedia")
}

/// `usermedia select` for a case: (exit code, stdout JSON).
pub fn cli_select(devices: Devices, constraints: &str, deny: &[&str]) -> (i32, Value) {
    let path = devices.path();
    let mut args = vec![
        "select",
        "--constraints",
        constraints,
        "--devices",
        path.path.to_str().expect("utf-8 path"),
    ];
    for d in deny {
        args.push("--deny");
        args.push(d);
    }
    let out = usermedia(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "select printed no JSON ({e}): stdout {stdout:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), value)
}

/// `getUserMedia` through the library, rendered in the CLI's JSON shape.
pub fn library_select(devices: Devices, constraints: &str, deny: &[&str]) -> (i32, Value) {
    let media = devices.media_devices(deny);
    match media.get_user_media_json(constraints) {
        Ok(stream) => {
            let tracks: Vec<Value> = stream
                .get_tracks()
                .iter()
                .map(|t| {
                    let settings = t.get_settings();
                    json!({
                        "kind": t.kind(),
                        "label": t.label(),
                        "deviceId": settings.device_id.clone(),
                        "settings": settings,
                    })
                })
                .collect();
            (0, json!({ "tracks": tracks }))
        }
        Err(e) => (1, json!({ "error": e.to_json() })),
    }
}

/// Tests that count process-wide sockets or measure timing on a 2-core machine run one at a
/// time within their binary.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await
}

/// The session's video track, once connected.
pub async fn session_video(session: &RemoteSession) -> RemoteTrack {
    session
        .peer
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    loop {
        let t = session
            .peer
            .next_remote_track(Duration::from_secs(10))
            .await
            .expect("a track");
        if t.kind() == MediaKind::Video {
            return t;
        }
    }
}

/// The strip frame numbers of `video` decoded in the next `window` (a frame whose strip
/// does not read is left out).
pub async fn track_frame_numbers(video: &RemoteTrack, window: Duration) -> Vec<u32> {
    let rx = video.subscribe(64);
    tokio::task::spawn_blocking(move || {
        let end = Instant::now() + window;
        let mut numbers = Vec::new();
        while Instant::now() < end {
            if let Ok(Some(MediaFrame::Video(f))) = rx.recv_timeout(Duration::from_millis(100)) {
                numbers.extend(read_strip(&f).map(|s| s.frame_number));
            }
        }
        numbers
    })
    .await
    .unwrap()
}

/// [`track_frame_numbers`] of the session's video.
pub async fn frame_numbers(session: &RemoteSession, window: Duration) -> Vec<u32> {
    track_frame_numbers(&session_video(session).await, window).await
}

/// Starts `usermedia serve` on the built-in devices with `constraints`, gathering on
/// loopback; the child (killed when dropped) and the address it printed. Its later output
/// is drained so it never blocks on a full pipe.
pub async fn spawn_serve(constraints: &str) -> (tokio::process::Child, std::net::SocketAddr) {
    let builtin = example("builtin.json");
    spawn_serve_with(&builtin, constraints, &[]).await
}

/// [`spawn_serve`] on the devices file `devices`, with `extra` flags after the others.
pub async fn spawn_serve_with(
    devices: &std::path::Path,
    constraints: &str,
    extra: &[&str],
) -> (tokio::process::Child, std::net::SocketAddr) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_usermedia"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--devices",
            devices.to_str().unwrap(),
            "--constraints",
            constraints,
            "--ice-addr",
            "127.0.0.1",
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    // "usermedia: serving stream "default" — open http://127.0.0.1:PORT/ (WHEP: ...)"
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("serve printed its URL");
            if let Some((_, rest)) = line.split_once("open http://") {
                break rest.split('/').next().unwrap().parse().unwrap();
            }
        }
    })
    .await
    .expect("serve started");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// A server with call rooms (nothing published), on a free loopback port.
pub async fn room_server() -> std::net::SocketAddr {
    use std::sync::Arc;
    use usermedia::peer::{PeerConfig, PeerFactory};
    use usermedia::server::Publisher;
    use usermedia_signaling::{router, ServerConfig};
    let publisher = Arc::new(Publisher::new(PeerFactory::new(PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().unwrap()],
        ..PeerConfig::default()
    })));
    let app = router(publisher, ServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

/// The keys `usermedia bench fanout --json` promises (docs/cli.md, "bench fanout"), which
/// scripts/compare.sh's other publishers print too.
pub const FANOUT_KEYS: [&str; 9] = [
    "viewers",
    "publisher_cpu_per_media_s",
    "receiver_cpu_per_media_s",
    "fps_per_viewer_min",
    "fps_per_viewer_median",
    "kbps_per_viewer_median",
    "publisher_rss_bytes",
    "rss_per_viewer_bytes",
    "first_frame_ms_p50",
];

/// `usermedia bot --room URL --ice-addr 127.0.0.1 --seconds SECONDS`, for the caller to add
/// its devices and flags to.
pub fn bot_in_room(url: &str, seconds: &str) -> tokio::process::Command {
    let mut bot = tokio::process::Command::new(env!("CARGO_BIN_EXE_usermedia"));
    bot.args([
        "bot",
        "--room",
        url,
        "--ice-addr",
        "127.0.0.1",
        "--seconds",
        seconds,
    ]);
    bot
}
