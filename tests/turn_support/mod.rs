//! Debian's coturn for the STUN/TURN tests: started by a test in its own network
//! namespace with a test user, stopped by its PID. A missing `turnserver` is a failure,
//! not a skip: CI installs coturn (scripts/test.sh).

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A coturn started for one case; stopped (by its PID) when dropped.
pub struct Coturn {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Coturn {
    /// `turnserver` on `ip`:3478 (UDP and TCP), relaying on `ip`, long-term credentials
    /// for `user`, no TLS, no CLI, no configuration file; returns once it answers STUN.
    /// On loopback it relays to loopback peers too (coturn refuses them by default).
    pub fn start(ip: &str, user: &str, password: &str) -> Coturn {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let loopback = ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
        let log = dir.path().join("turn.log");
        let child = Command::new("turnserver")
            .args(["-n", "--listening-ip", ip, "--relay-ip", ip])
            .args(["--listening-port", "3478", "--lt-cred-mech"])
            .args(["--user", &format!("{user}:{password}")])
            .args([
                "--realm",
                "usermedia.test",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
            ])
            .args(["--min-port", "50000", "--max-port", "50999"])
            .arg("--pidfile")
            .arg(dir.path().join("turn.pid"))
            .arg("--log-file")
            .arg(&log)
            .args(["--simple-log", "--no-stdout-log"])
            .args(loopback.then_some("--allow-loopback-peers"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start turnserver (Debian's coturn): {e}"));
        let mut turn = Coturn { child, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !stun_answers(ip) {
            if let Ok(Some(status)) = turn.child.try_wait() {
                panic!(
                    "turnserver exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "turnserver never answered STUN");
        }
        turn
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Whether a STUN Binding request to `ip`:3478 is answered within 200 ms.
fn stun_answers(ip: &str) -> bool {
    let Ok(socket) = UdpSocket::bind((ip, 0)) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    let mut request = vec![0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(b"usermedia-tx");
    if socket.send_to(&request, (ip, 3478)).is_err() {
        std::thread::sleep(Duration::from_millis(200));
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(socket.recv_from(&mut buf), Ok((n, _)) if n >= 20 && buf[0..2] == [1, 1])
}
