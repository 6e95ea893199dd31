//! Debian's Janus (1.1.x) for the VideoRoom tests: started by a test in its own network
//! namespace with the configuration beside this file (`conf/`: HTTP API on
//! 127.0.0.1:8088, ICE gathered only on the namespace's `janus0` device, room 1234 with
//! "h264,vp8" and Opus, no event handler or logger), stopped by its PID. A missing `janus`
//! is a failure, not a skip: CI installs it (scripts/test.sh).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The namespace's set-up: loopback is up already; one `ifb` device at 192.0.2.1, as Janus
/// skips loopback when gathering and its config enforces `janus0`.
pub const NETNS_SETUP: &str = "sysctl -qw net.ipv6.conf.default.disable_ipv6=1; \
    ip link add janus0 type ifb; ip addr add 192.0.2.1/32 dev janus0; \
    ip link set janus0 multicast off up;";
/// Where our peers gather in that namespace.
pub const ICE_ADDR: &str = "192.0.2.1";
/// Janus's HTTP API there.
pub const URL: &str = "http://127.0.0.1:8088/janus";
/// The room the configuration creates.
pub const ROOM: u64 = 1234;

/// A Janus started for one case; stopped (by its PID) when dropped.
pub struct Janus {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Janus {
    /// `janus -F` with our configuration in a temporary folder; returns once its HTTP API
    /// answers.
    pub fn start() -> Janus {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let conf = dir.path().join("conf");
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&conf).expect("conf dir");
        std::fs::create_dir_all(&empty).expect("empty dir");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/janus_support/conf");
        for entry in std::fs::read_dir(&source).expect("tests/janus_support/conf") {
            let path = entry.expect("a config file").path();
            let text = std::fs::read_to_string(&path).expect("a readable config file");
            let text = text
                .replace("@CONFIG_DIR@", conf.to_str().expect("a UTF-8 path"))
                .replace("@EMPTY_DIR@", empty.to_str().expect("a UTF-8 path"));
            std::fs::write(conf.join(path.file_name().expect("a name")), text)
                .expect("write a config file");
        }
        let log = dir.path().join("janus.log");
        let out = std::fs::File::create(&log).expect("janus.log");
        let err = out.try_clone().expect("janus.log");
        let child = Command::new("janus")
            .arg("-F")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start janus (Debian's package `janus`): {e}"));
        let mut janus = Janus {
            child,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers() {
            if let Ok(Some(status)) = janus.child.try_wait() {
                panic!("janus exited ({status}): {}", janus.log());
            }
            assert!(
                Instant::now() < deadline,
                "janus never answered: {}",
                janus.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        janus
    }

    /// What Janus logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Janus {
    /// Kills it at once (SIGKILL, by its PID): Janus gone mid-call.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Janus {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Whether `GET /janus/info` answers 200.
fn answers() -> bool {
    let Ok(mut tcp) = TcpStream::connect("127.0.0.1:8088") else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(500)));
    let request = "GET /janus/info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut reply = [0u8; 16];
    tcp.write_all(request.as_bytes()).is_ok()
        && tcp.read_exact(&mut reply).is_ok()
        && reply.starts_with(b"HTTP/1.1 200")
}

/// `BIN ARGS… --janus URL --ice-addr ICE_ADDR --constraints C` on the built-in
/// devices (examples/devices/builtin.json), stdout and stderr piped, killed on drop.
/// `bin` is the caller's `env!("CARGO_BIN_EXE_usermedia")`: this module is also
/// compiled into an example, where that variable is not defined.
#[allow(dead_code)]
pub fn usermedia_at(bin: &str, args: &[&str], constraints: &str) -> tokio::process::Child {
    tokio::process::Command::new(bin)
        .args(args)
        .args([
            "--janus",
            URL,
            "--ice-addr",
            ICE_ADDR,
            "--constraints",
            constraints,
        ])
        .arg("--devices")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/devices/builtin.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start usermedia")
}
