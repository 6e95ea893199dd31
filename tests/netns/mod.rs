//! Running one test case in a private network namespace: the test binary re-executes
//! itself (that case only) under `unshare --net` with loopback up, plus whatever `setup`
//! adds (an `ifb` device for a non-loopback address), and the case runs in there on its
//! own tokio runtime. Shared by the browser and TURN harnesses.

use std::future::Future;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the re-executed child: the case runs here rather than re-executing again.
const INSIDE_NETNS: &str = "USERMEDIA_TEST_IN_NETNS";

/// Runs `case` (the body of test `name`) inside a fresh network namespace with loopback
/// up and `setup` (shell commands, may be empty) run first; the case may take `limit`.
/// A missing `unshare`, `ip` or root is a failure, not a skip: CI installs them.
pub fn run<F, Fut>(name: &str, setup: &str, limit: Duration, case: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    if std::env::var_os(INSIDE_NETNS).is_some() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        // The limit is kept here, inside: a case that overruns panics, which drops (and so
        // kills) what it started, rather than being killed from outside with it running.
        let finished = runtime.block_on(async { tokio::time::timeout(limit, case()).await });
        assert!(finished.is_ok(), "{name} ran over {limit:?}");
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let started = Instant::now();
    let mut unshare = Command::new("unshare");
    unshare.arg("--net");
    if !is_root() {
        // A user namespace makes us root inside it, enough to bring loopback up.
        unshare.arg("--map-root-user");
    }
    let script = format!(
        "PATH=\"$PATH:/usr/sbin:/sbin\"; set -e; ip link set lo up; {setup} exec \"$0\" \"$@\""
    );
    let mut child = unshare
        .args(["--", "sh", "-c", &script])
        .arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE_NETNS, "1")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run unshare (util-linux) for {name}: {e}"));
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the case") {
            break Some(status);
        }
        if started.elapsed() > limit + Duration::from_secs(10) {
            // Our own child, by its PID; what it started dies with the namespace.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    // Through print! so libtest shows it with the failure (and hides it on success).
    print!("{out}");
    print!("{err}");
    let elapsed = started.elapsed();
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("{name} failed inside its network namespace ({s}); output above"),
        None => panic!("{name} took longer than {elapsed:?} and was killed; output above"),
    }
    assert!(
        elapsed < limit,
        "{name} took {elapsed:?}, over the {limit:?} a case may take"
    );
}

/// Whether we run as root (CI does): then no user namespace is needed.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut p) = pipe {
            let mut bytes = Vec::new();
            let _ = p.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}
