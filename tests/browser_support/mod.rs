//! The harness of the browser interop tests.
//!
//! Each case re-executes its own test binary inside a private network namespace with only
//! loopback up (`unshare --net`; docs/interop.md, "How the browser tests work": outside one
//! the browsers gather and probe every interface and look up public hosts). Inside, the case serves
//! usermedia's signaling routes plus a test page on one loopback origin, launches a
//! headless browser on that page, and waits for the JSON result the page POSTs back. The
//! browser runs in its own process group, which the harness kills when the case ends.
//!
//! A missing browser, `unshare` or root is a failure, not a skip: CI installs them.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::peer::{PeerConfig, PeerFactory};
use usermedia::server::Publisher;
use usermedia::MediaStream;
use usermedia_signaling::{router, ServerConfig};

/// How long a whole case may take, browser start included (the issue asks for < 20 s).
const CASE_LIMIT: Duration = Duration::from_secs(20);
/// How long the page may take to report.
pub const PAGE_LIMIT: Duration = Duration::from_secs(15);

const PAGE: &str = include_str!("page.html");
const FIREFOX_PREFS: &str = include_str!("firefox-user.js");

/// Runs `case` (the body of test `name`) inside a fresh network namespace that has only
/// loopback. The cases run one at a time: two browsers at once on two cores would make
/// the frame-rate assertions measure the machine, not the code.
pub fn in_netns<F, Fut>(name: &str, case: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    crate::netns::run(name, "", CASE_LIMIT, case);
}

/// The two browsers under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Browser {
    Chromium,
    Firefox,
}

impl Browser {
    pub fn name(self) -> &'static str {
        match self {
            Browser::Chromium => "Chromium",
            Browser::Firefox => "Firefox",
        }
    }

    fn executable(self) -> &'static str {
        match self {
            // The binary itself: the /usr/bin/chromium wrapper adds API keys and flags.
            Browser::Chromium => "/usr/lib/chromium/chromium",
            Browser::Firefox => "/usr/lib/firefox-esr/firefox-esr",
        }
    }

    /// Starts the browser on `url` in a new process group with a fresh profile.
    fn launch(self, url: &str, origin: &str) -> BrowserProcess {
        let executable = self.executable();
        assert!(
            Path::new(executable).exists(),
            "{} is not installed ({executable} is missing): scripts/setup.sh installs it",
            self.name()
        );
        let profile = tempfile::tempdir().expect("a profile directory");
        let home = profile.path().join("home");
        std::fs::create_dir_all(&home).expect("browser home");
        let log_path = profile.path().join("browser.log");
        let log = std::fs::File::create(&log_path).expect("browser log");
        let mut command = Command::new(executable);
        command
            .env_clear()
            .env("HOME", &home)
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .process_group(0);
        match self {
            Browser::Chromium => {
                let data_dir = profile.path().join("chromium");
                command
                    .args(CHROMIUM_FLAGS)
                    .arg(format!("--user-data-dir={}", data_dir.display()))
                    .arg(url);
            }
            Browser::Firefox => {
                let dir = profile.path().join("firefox");
                std::fs::create_dir_all(&dir).expect("firefox profile");
                // Firefox gathers loopback candidates only for an origin holding camera and
                // microphone permission (docs/interop.md, "How the browser tests work").
                let permissions = dir.join("permissions.txt");
                std::fs::write(
                    &permissions,
                    format!("origin\tcamera\t1\t{origin}\norigin\tmicrophone\t1\t{origin}\n"),
                )
                .expect("permissions file");
                let prefs = format!(
                    "{FIREFOX_PREFS}\nuser_pref(\"permissions.manager.defaultsUrl\", \"file://{}\");\n",
                    permissions.display()
                );
                std::fs::write(dir.join("user.js"), prefs).expect("user.js");
                command
                    .env("MOZ_HEADLESS", "1")
                    .env("MOZ_CRASHREPORTER_DISABLE", "1")
                    .env("MOZ_REMOTE_SETTINGS_DEVTOOLS", "1")
                    .args(["-headless", "-no-remote", "-profile"])
                    .arg(&dir)
                    .arg(url);
            }
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name()));
        BrowserProcess {
            child,
            log_path,
            _profile: profile,
        }
    }
}

/// docs/interop.md ("How the browser tests work")'s flags: loopback candidates on, every background
/// connection and public host lookup off, fake camera and microphone.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-breakpad",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--disable-quic",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--disable-features=WebRtcHideLocalIpsWithMdns,MediaRouter,DialMediaRouteProvider,OptimizationHints,Translate,AutofillServerCommunication",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
];

/// A running browser; dropping it kills its whole process group.
pub struct BrowserProcess {
    child: Child,
    log_path: PathBuf,
    _profile: tempfile::TempDir,
}

impl BrowserProcess {
    /// The last lines the browser printed (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for BrowserProcess {
    fn drop(&mut self) {
        // The group we created for it (process_group(0): its PGID is its PID).
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// usermedia's signaling routes and the test page on one loopback origin.
pub struct Served {
    pub addr: SocketAddr,
    pub publisher: Arc<Publisher>,
    waiting: Waiting,
    _stream: Option<MediaStream>,
}

/// The devices file with a back camera facing the environment (pattern source) and a tone
/// microphone.
pub fn phone_devices() -> MediaDevices {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/devices/phone.json");
    MediaDevices::from_devices_file(&path, PermissionPolicy::granted()).expect("phone.json")
}

/// Peers gathering on 127.0.0.1 only: the namespace has nothing else.
pub fn loopback_peers() -> PeerFactory {
    PeerFactory::new(PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().expect("loopback")],
        ..PeerConfig::default()
    })
}

/// Serves usermedia on 127.0.0.1: with `constraints`, the phone's devices captured per
/// them and published as `default`; without, nothing published (a WHIP target).
pub async fn serve(constraints: Option<&str>) -> Served {
    serve_devices(phone_devices(), constraints).await
}

/// [`serve`] with the signaling routes configured by `config`.
pub async fn serve_with(constraints: Option<&str>, config: ServerConfig) -> Served {
    serve_devices_with(phone_devices(), constraints, config).await
}

/// [`serve`] capturing from `devices`, which the publisher is given (to flip cameras).
pub async fn serve_devices(devices: MediaDevices, constraints: Option<&str>) -> Served {
    serve_devices_with(devices, constraints, ServerConfig::default()).await
}

/// [`serve_devices`] with the signaling routes configured by `config`.
pub async fn serve_devices_with(
    devices: MediaDevices,
    constraints: Option<&str>,
    config: ServerConfig,
) -> Served {
    let devices = Arc::new(devices);
    let publisher = Arc::new(Publisher::new(loopback_peers()).with_devices(Arc::clone(&devices)));
    let stream = constraints.map(|c| {
        let stream = devices
            .get_user_media_json(c)
            .unwrap_or_else(|e| panic!("getUserMedia({c}): {e:?}"));
        publisher
            .publish("default", stream.get_tracks().to_vec(), 1_500_000)
            .expect("encoders");
        stream
    });
    let waiting: Waiting = Arc::default();
    let test_routes = Router::new()
        .route("/test", get(|| async { Html(PAGE) }))
        .route("/test/result/{id}", post(result))
        .route("/test/log/{id}", post(page_log))
        .with_state(Arc::clone(&waiting));
    let app = router(Arc::clone(&publisher), config).merge(test_routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Served {
        addr,
        publisher,
        waiting,
        _stream: stream,
    }
}

async fn result(
    State(waiting): State<Waiting>,
    UrlPath(id): UrlPath<String>,
    Json(v): Json<Value>,
) {
    let sender = waiting.lock().ok().and_then(|mut w| w.remove(&id));
    if let Some(sender) = sender {
        let _ = sender.send(v);
    }
}

async fn page_log(UrlPath(id): UrlPath<String>, body: String) {
    eprintln!("[page {id}] {body}");
}

impl Served {
    /// Opens `path` (one of the pages the service ships, or the test page) in `browser`.
    pub fn open(&self, browser: Browser, path: &str) -> BrowserProcess {
        let origin = format!("http://{}", self.addr);
        browser.launch(&format!("{origin}{path}"), &origin)
    }

    /// Opens the test page in `browser` with `query` (case and parameters) and returns the
    /// page's result, with the browser still running (a publishing page keeps sending).
    /// Panics with the page's error, or the browser's last output on a timeout.
    pub async fn run_page(&self, browser: Browser, query: &str) -> (Value, BrowserProcess) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .expect("waiting map")
            .insert(id.clone(), tx);
        let started = Instant::now();
        let process = self.open(browser, &format!("/test?{query}&id={id}"));
        let value = match tokio::time::timeout(PAGE_LIMIT, rx).await {
            Ok(Ok(v)) => v,
            _ => panic!(
                "{} did not report within {PAGE_LIMIT:?} for {query}; its output:\n{}",
                browser.name(),
                process.log_tail()
            ),
        };
        eprintln!(
            "{} reported after {:?}: {value}",
            browser.name(),
            started.elapsed()
        );
        if let Some(error) = value.get("error") {
            panic!(
                "the page failed in {}: {error}\nbrowser output:\n{}",
                browser.name(),
                process.log_tail()
            );
        }
        (value, process)
    }
}

/// Percentile `p` (0–100) of `values` (nearest rank), `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// One row of the interop matrix, written by a passing case.
pub struct MatrixRow<'a> {
    pub case: &'a str,
    pub browser: Browser,
    pub direction: &'a str,
    pub codec: &'a str,
    pub detail: String,
}

/// Records a passing case under target/tmp/interop/ and rewrites the matrix (Markdown)
/// from every row recorded so far; docs/interop.md's table ("The matrix") is a copy of it.
pub fn record(row: MatrixRow) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop");
    std::fs::create_dir_all(&dir).expect("interop dir");
    let entry = json!({
        "browser": row.browser.name(),
        "direction": row.direction,
        "codec": row.codec,
        "detail": row.detail,
    });
    std::fs::write(dir.join(format!("{}.json", row.case)), entry.to_string()).expect("matrix row");
    // Rows older than this test binary come from an earlier build (a renamed or removed
    // case); the matrix shows what this build passed.
    let built = std::env::current_exe()
        .and_then(std::fs::metadata)
        .and_then(|m| m.modified())
        .ok();
    let current = |e: &std::fs::DirEntry| {
        let written = e.metadata().and_then(|m| m.modified()).ok();
        matches!((written, built), (Some(w), Some(b)) if w >= b)
    };
    let mut rows: Vec<Value> = std::fs::read_dir(&dir)
        .expect("interop dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter(current)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect();
    let key = |v: &Value| {
        format!(
            "{}{}{}",
            v["browser"].as_str().unwrap_or(""),
            v["direction"].as_str().unwrap_or(""),
            v["codec"].as_str().unwrap_or("")
        )
    };
    rows.sort_by_key(key);
    let mut table = String::from("| browser | direction | codec | measured |\n|---|---|---|---|\n");
    for r in rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r["browser"].as_str().unwrap_or(""),
            r["direction"].as_str().unwrap_or(""),
            r["codec"].as_str().unwrap_or(""),
            r["detail"].as_str().unwrap_or("")
        ));
    }
    std::fs::write(dir.join("matrix.md"), table).expect("matrix");
}
