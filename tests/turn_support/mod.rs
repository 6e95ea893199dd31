//! Debian's coturn for the STUN/TURN tests: started by a test in its own network
//! namespace with a test user, stopped by its PID; over UDP and TCP, TCP only, or TLS
//! only (with a certificate the test makes). A missing `turnserver` is a failure, not a
//! skip: CI installs coturn (scripts/test.sh).

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where coturn takes its clients.
#[allow(dead_code)]
pub enum Listeners {
    /// UDP and TCP on 3478 (STUN and TURN).
    UdpAndTcp,
    /// TCP on 3478 only (`--no-udp`): TURN over UDP cannot work.
    TcpOnly,
    /// TLS on 5349 only (`--no-udp --no-tcp`), with this certificate and key.
    TlsOnly { cert: PathBuf, key: PathBuf },
}

/// A test CA and a certificate it signed for an IP address, as PEM files.
#[allow(dead_code)]
pub struct TestCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[allow(dead_code)]
impl TestCa {
    /// Writes `ca.pem`, and `cert.pem`/`key.pem` for `ip`, into `dir`.
    pub fn generate(dir: &Path, ip: &str) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().expect("a CA key");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("the CA");
        let params = CertificateParams::new(vec![ip.to_owned()]).expect("server params");
        let key = KeyPair::generate().expect("a server key");
        let cert = params.signed_by(&key, &ca).expect("the server certificate");
        let out = TestCa {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&out.ca, ca.pem()).expect("ca.pem");
        std::fs::write(&out.cert, cert.pem()).expect("cert.pem");
        std::fs::write(&out.key, key.serialize_pem()).expect("key.pem");
        out
    }
}

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
        Coturn::start_with(ip, user, password, Listeners::UdpAndTcp)
    }

    /// [`start`](Self::start) with only the `listeners` given; returns once they answer.
    pub fn start_with(ip: &str, user: &str, password: &str, listeners: Listeners) -> Coturn {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let loopback = ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
        let log = dir.path().join("turn.log");
        let mut command = Command::new("turnserver");
        match &listeners {
            Listeners::UdpAndTcp => {
                command.arg("--no-tls");
            }
            Listeners::TcpOnly => {
                command.args(["--no-tls", "--no-udp"]);
            }
            Listeners::TlsOnly { cert, key } => {
                command.args(["--no-udp", "--no-tcp", "--tls-listening-port", "5349"]);
                command.arg("--cert").arg(cert).arg("--pkey").arg(key);
            }
        }
        let child = command
            .args(["-n", "--listening-ip", ip, "--relay-ip", ip])
            .args(["--listening-port", "3478", "--lt-cred-mech"])
            .args(["--user", &format!("{user}:{password}")])
            .args(["--realm", "usermedia.test", "--no-dtls", "--no-cli"])
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
        let answers = || match &listeners {
            Listeners::UdpAndTcp => stun_answers(ip),
            Listeners::TcpOnly => stun_answers_over_tcp(ip),
            Listeners::TlsOnly { .. } => TcpStream::connect((ip, 5349)).is_ok(),
        };
        while !answers() {
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

fn binding_request() -> Vec<u8> {
    let mut request = vec![0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(b"usermedia-tx");
    request
}

/// Whether a STUN Binding request over TCP to `ip`:3478 is answered within 200 ms.
fn stun_answers_over_tcp(ip: &str) -> bool {
    let Ok(mut tcp) = TcpStream::connect((ip, 3478)) else {
        std::thread::sleep(Duration::from_millis(100));
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(200)));
    let mut header = [0u8; 20];
    tcp.write_all(&binding_request()).is_ok()
        && tcp.read_exact(&mut header).is_ok()
        && header[0..2] == [1, 1]
}

/// Whether a STUN Binding request to `ip`:3478 is answered within 200 ms.
fn stun_answers(ip: &str) -> bool {
    let Ok(socket) = UdpSocket::bind((ip, 0)) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    let request = binding_request();
    if socket.send_to(&request, (ip, 3478)).is_err() {
        std::thread::sleep(Duration::from_millis(200));
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(socket.recv_from(&mut buf), Ok((n, _)) if n >= 20 && buf[0..2] == [1, 1])
}
