//! STUN and TURN against Debian's coturn: relay-only serving and viewing with the relay
//! pair in `/status` (TURN over UDP, over TCP with coturn's UDP listener off, over TLS with
//! only its TLS listener on), server-reflexive candidates, a wrong TURN password or an
//! unreachable server as a clear error, ICE servers advertised in WHEP `Link` headers and
//! used, public addresses in answers.
//!
//! Each case re-executes its test binary in a private network namespace (`unshare --net`)
//! with loopback and one `ifb` device at 10.99.0.1 (coturn does not relay to loopback
//! peers), starts its own `turnserver` there with a test user, and stops it by its PID.
//! A missing coturn, `unshare` or `ip` is a failure, not a skip: CI installs them.

mod common;
mod netns;
mod turn_support;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::frame_numbers;
use turn_support::{Coturn, Listeners, TestCa};
use usermedia::client::view_whep;
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::peer::{IceServer, PeerConfig, PeerError, PeerFactory};
use usermedia::server::Publisher;
use usermedia::MediaKind;
use usermedia_signaling::{router, LinkIceServer, ServerConfig};

/// The namespace's non-loopback address: coturn listens and relays on it, peers gather on it.
const ADDR: &str = "10.99.0.1";
const TURN_URL: &str = "turn:10.99.0.1:3478";
const STUN_URL: &str = "stun:10.99.0.1:3478";
const TCP_URL: &str = "turn:10.99.0.1:3478?transport=tcp";
const TLS_URL: &str = "turns:10.99.0.1:5349";
const USER: &str = "usermedia";
const PASSWORD: &str = "test-secret";
const CASE_LIMIT: Duration = Duration::from_secs(30);

/// Runs `case` inside a fresh network namespace with an `ifb` device at 10.99.0.1 (see the
/// module's comment).
fn in_netns<F, Fut>(name: &str, case: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    netns::run(
        name,
        "ip link add ifb0 type ifb; ip addr add 10.99.0.1/24 dev ifb0; ip link set ifb0 up;",
        CASE_LIMIT,
        case,
    );
}

fn turn_server(password: &str) -> IceServer {
    turn_at(TURN_URL, password)
}

fn turn_at(url: &str, password: &str) -> IceServer {
    IceServer {
        urls: vec![url.to_owned()],
        username: USER.to_owned(),
        credential: password.to_owned(),
    }
}

/// Peers gathering on 10.99.0.1 with `servers`, relay-only or not.
fn peers(servers: Vec<IceServer>, relay_only: bool) -> PeerFactory {
    PeerFactory::new(PeerConfig {
        ice_addrs: vec![ADDR.parse().expect("an address")],
        ice_servers: servers,
        ice_relay_only: relay_only,
        ..PeerConfig::default()
    })
}

/// Serves the pattern camera as `default` with `factory`'s peers and `config`.
async fn serve(factory: PeerFactory, config: ServerConfig) -> (SocketAddr, Arc<Publisher>) {
    let devices = Arc::new(MediaDevices::builtin_virtual(PermissionPolicy::granted()));
    let stream = devices
        .get_user_media_json(r#"{"video": {"width": 320, "height": 240}}"#)
        .expect("the pattern camera");
    let publisher = Arc::new(Publisher::new(factory).with_devices(devices));
    publisher
        .publish("default", stream.get_tracks().to_vec(), 500_000)
        .expect("encoders");
    let app = router(Arc::clone(&publisher), config);
    let listener = tokio::net::TcpListener::bind((ADDR, 0))
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        let _keep = stream;
        let _ = axum::serve(listener, app).await;
    });
    (addr, publisher)
}

/// The local candidate types of the viewers' selected pairs in `/status` (asked with the
/// operator's token of the serve command's test: /status needs it there, issue 11; the
/// servers without tokens ignore it).
async fn status_local_types(addr: SocketAddr) -> Vec<String> {
    let r = common::http::authorized(addr, "GET", "/status", &[], Some("t0ken"), "").await;
    let status: serde_json::Value = serde_json::from_str(&r.body).expect("status JSON");
    status["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .filter_map(|p| p["stats"]["selectedCandidatePair"]["local"]["type"].as_str())
        .map(str::to_owned)
        .collect()
}

#[test]
fn relay_only_server_and_viewer_exchange_media_through_coturn() {
    in_netns(
        "relay_only_server_and_viewer_exchange_media_through_coturn",
        || async {
            let _turn = Coturn::start(ADDR, USER, PASSWORD);
            let servers = || vec![turn_server(PASSWORD)];
            // The server on one UDP port (its TURN allocation through a socket of the
            // peer's own), the viewer on its own ports.
            let server = PeerFactory::new(PeerConfig {
                udp_port: Some(8189),
                ..peers(servers(), true).config().clone()
            });
            let (addr, _publisher) = serve(server, ServerConfig::default()).await;
            let viewer = peers(servers(), true);
            let url = format!("http://{addr}/whep/default");
            let session = view_whep(&viewer, &url, None).await.expect("viewing");
            assert!(
                session.http.answer.contains("typ relay"),
                "relay-only answer: {}",
                session.http.answer
            );
            assert!(!session.http.answer.contains("typ host"));
            let frames = frame_numbers(&session, Duration::from_secs(2)).await;
            assert!(frames.len() > 10, "decoded {} frames", frames.len());
            let ours = session.peer.stats().await.selected_candidate_pair;
            let ours = ours.expect("a selected pair on the viewer");
            assert_eq!(
                (
                    ours.local.candidate_type.as_str(),
                    ours.local.protocol.as_str()
                ),
                ("relay", "udp")
            );
            assert_eq!(status_local_types(addr).await, ["relay"]);
            session.end().await.expect("DELETE");
        },
    );
}

#[test]
fn stun_gives_server_reflexive_candidates() {
    in_netns("stun_gives_server_reflexive_candidates", || async {
        let _turn = Coturn::start(ADDR, USER, PASSWORD);
        let stun = IceServer {
            urls: vec![STUN_URL.to_owned()],
            ..IceServer::default()
        };
        let peer = peers(vec![stun], false).create().await.expect("a peer");
        peer.add_receiver(MediaKind::Video)
            .await
            .expect("a receiver");
        let offer = peer.create_offer().await.expect("an offer");
        assert!(offer.contains("typ srflx"), "no srflx candidate: {offer}");
        peer.close().await;
    });
}

#[test]
fn a_wrong_turn_password_is_a_clear_error_naming_the_server() {
    in_netns(
        "a_wrong_turn_password_is_a_clear_error_naming_the_server",
        || async {
            let _turn = Coturn::start(ADDR, USER, PASSWORD);
            let peer = peers(vec![turn_server("wrong")], true);
            let started = Instant::now();
            let peer = peer.create().await.expect("a peer");
            peer.add_receiver(MediaKind::Video)
                .await
                .expect("a receiver");
            let error = peer.create_offer().await.expect_err("no relay candidate");
            assert!(
                started.elapsed() < Duration::from_secs(6),
                "{:?}",
                started.elapsed()
            );
            assert!(
                matches!(error, PeerError::NoRelayCandidate { .. }),
                "{error:?}"
            );
            let message = error.to_string();
            assert!(message.contains(TURN_URL), "{message}");
            assert!(message.contains("credential"), "{message}");
        },
    );
}

/// What this process logs from now on (the case runs alone in its process, so the
/// subscriber can be global and see every runtime thread).
fn capture_logs() -> Arc<std::sync::Mutex<Vec<u8>>> {
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("the log buffer").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&logs);
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Sink(Arc::clone(&sink)))
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    logs
}

#[test]
fn a_wrong_turn_password_without_relay_only_is_a_warning_naming_the_server() {
    in_netns(
        "a_wrong_turn_password_without_relay_only_is_a_warning_naming_the_server",
        || async {
            let logs = capture_logs();
            let _turn = Coturn::start(ADDR, USER, PASSWORD);
            let peer = peers(vec![turn_server("not-the-password")], false)
                .create()
                .await
                .expect("a peer");
            peer.add_receiver(MediaKind::Video)
                .await
                .expect("a receiver");
            let offer = peer.create_offer().await.expect("an offer without relay");
            assert!(!offer.contains("typ relay"), "{offer}");
            assert!(offer.contains("typ host"), "{offer}");
            let text = String::from_utf8_lossy(&logs.lock().expect("the log buffer")).into_owned();
            assert!(
                text.contains(&format!(
                    "no relay candidate from the TURN server(s) {TURN_URL}"
                )),
                "{text}"
            );
            assert!(!text.contains("not-the-password"), "{text}");
            peer.close().await;
        },
    );
}

#[test]
fn whep_link_headers_bring_the_turn_server_to_our_client() {
    in_netns(
        "whep_link_headers_bring_the_turn_server_to_our_client",
        || async {
            let _turn = Coturn::start(ADDR, USER, PASSWORD);
            let config = ServerConfig {
                ice_servers: vec![
                    LinkIceServer {
                        url: STUN_URL.to_owned(),
                        ..LinkIceServer::default()
                    },
                    LinkIceServer {
                        url: TURN_URL.to_owned(),
                        username: Some(USER.to_owned()),
                        credential: Some(PASSWORD.to_owned()),
                    },
                ],
                ..ServerConfig::default()
            };
            let (addr, _publisher) = serve(peers(vec![], false), config).await;
            // Our client, relay-only with no server of its own, asks (OPTIONS) and uses them.
            let viewer = peers(vec![], true);
            let url = format!("http://{addr}/whep/default");
            let session = view_whep(&viewer, &url, None).await.expect("viewing");
            assert_eq!(
                session.http.ice_servers.len(),
                2,
                "{:?}",
                session.http.ice_servers
            );
            assert_eq!(
                session.http.ice_servers[1].credential.as_deref(),
                Some(PASSWORD)
            );
            let frames = frame_numbers(&session, Duration::from_secs(1)).await;
            assert!(frames.len() > 5, "decoded {} frames", frames.len());
            let pair = session.peer.stats().await.selected_candidate_pair;
            assert_eq!(pair.expect("a selected pair").local.candidate_type, "relay");
            // Without the advertised servers, relay-only has nothing to gather from.
            let alone = peers(vec![], true).create().await;
            assert!(matches!(alone, Err(PeerError::IceConfig(_))));
        },
    );
}

#[test]
fn a_public_ip_appears_in_the_answer_on_the_single_port() {
    in_netns(
        "a_public_ip_appears_in_the_answer_on_the_single_port",
        || async {
            let public: IpAddr = "192.0.2.10".parse().expect("an address");
            let factory = PeerFactory::new(PeerConfig {
                ice_addrs: vec![ADDR.parse().expect("an address")],
                public_ips: vec![public],
                udp_port: Some(8189),
                ..PeerConfig::default()
            });
            let (addr, _publisher) = serve(factory, ServerConfig::default()).await;
            let viewer = peers(vec![], false);
            let url = format!("http://{addr}/whep/default");
            let session = view_whep(&viewer, &url, None).await.expect("viewing");
            let answer = &session.http.answer;
            let port_of = |ip: &str| {
                answer.lines().find_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (l.starts_with("a=candidate:") && f.len() > 7 && f[4] == ip && f[7] == "host")
                        .then(|| f[5].to_owned())
                })
            };
            assert_eq!(port_of(ADDR).as_deref(), Some("8189"), "{answer}");
            assert_eq!(port_of("192.0.2.10").as_deref(), Some("8189"), "{answer}");
            // The local candidate still works: media flows.
            let frames = frame_numbers(&session, Duration::from_secs(1)).await;
            assert!(frames.len() > 5, "decoded {} frames", frames.len());
        },
    );
}

/// The UDP sockets of this network namespace bound on `ip` (IPv4), from /proc/self/net/udp.
fn udp_sockets_on(ip: std::net::Ipv4Addr) -> Vec<u16> {
    let hex = format!("{:08X}", u32::from_le_bytes(ip.octets()));
    std::fs::read_to_string("/proc/self/net/udp")
        .expect("/proc/self/net/udp")
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|local| local.split_once(':'))
        .filter(|(addr, _)| *addr == hex)
        .filter_map(|(_, port)| u16::from_str_radix(port, 16).ok())
        .collect()
}

/// Every UDP socket of this network namespace, IPv4 and IPv6, as `ADDRESS:PORT` (IPv4
/// addresses readable, IPv6 ones in /proc's hex).
fn all_udp_sockets() -> Vec<String> {
    let mut out = Vec::new();
    for table in ["/proc/self/net/udp", "/proc/self/net/udp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for local in text
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
        {
            let Some((addr, port)) = local.split_once(':') else {
                continue;
            };
            let port = u16::from_str_radix(port, 16).unwrap_or(0);
            let addr = match u32::from_str_radix(addr, 16) {
                Ok(v4) if addr.len() == 8 => std::net::Ipv4Addr::from(v4.to_le_bytes()).to_string(),
                _ => addr.to_owned(),
            };
            out.push(format!("{addr}:{port}"));
        }
    }
    out
}

#[test]
fn eight_viewers_share_one_server_udp_port() {
    in_netns("eight_viewers_share_one_server_udp_port", || async {
        let factory = PeerFactory::new(PeerConfig {
            ice_addrs: vec![ADDR.parse().expect("an address")],
            udp_port: Some(8189),
            ..PeerConfig::default()
        });
        let (addr, publisher) = serve(factory, ServerConfig::default()).await;
        // The viewers gather on loopback: every socket on 10.99.0.1 is the server's.
        let viewers = PeerFactory::new(PeerConfig {
            ice_addrs: vec!["127.0.0.1".parse().expect("loopback")],
            ..PeerConfig::default()
        });
        let url = format!("http://{addr}/whep/default");
        let mut sessions = Vec::new();
        for _ in 0..8 {
            sessions.push(view_whep(&viewers, &url, None).await.expect("viewing"));
        }
        for session in &sessions {
            let frames = frame_numbers(session, Duration::from_millis(500)).await;
            assert!(frames.len() > 3, "a viewer decoded {} frames", frames.len());
            assert!(session.http.answer.contains("10.99.0.1 8189 typ host"));
        }
        assert_eq!(udp_sockets_on(ADDR.parse().expect("IPv4")), [8189]);
        assert_eq!(status_local_types(addr).await, vec!["host"; 8]);
        // Every other UDP socket (on 127.0.0.1, 0.0.0.0, IPv6) is a viewer's: once the
        // viewers are gone, the namespace holds the server's one port and nothing else.
        for session in sessions {
            session.end().await.expect("ending a viewer");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while all_udp_sockets().len() > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(all_udp_sockets(), [format!("{ADDR}:8189")]);
        drop(publisher);
    });
}

/// `usermedia serve` as a child process in the namespace, interrupted by its PID on drop.
struct ServeCommand(std::process::Child);

impl Drop for ServeCommand {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn the_serve_command_relays_on_one_port_and_gives_turn_to_token_holders() {
    in_netns(
        "the_serve_command_relays_on_one_port_and_gives_turn_to_token_holders",
        || async {
            use std::io::{BufRead, BufReader};
            let _turn = Coturn::start(ADDR, USER, PASSWORD);
            let dir = tempfile::tempdir().expect("a directory");
            let credential = dir.path().join("credential");
            std::fs::write(&credential, format!("{PASSWORD}\n")).expect("written");
            let usermedia = env!("CARGO_BIN_EXE_usermedia");
            // Relay-only without a TURN server is bad input.
            let out = Command::new(usermedia)
                .args(["serve", "--ice-relay-only"])
                .output()
                .expect("usermedia runs");
            assert_eq!(out.status.code(), Some(2));
            assert!(String::from_utf8_lossy(&out.stderr).contains("TURN"));
            let mut child = Command::new(usermedia)
                .args(["serve", "--listen", "10.99.0.1:0", "--ice-addr", ADDR])
                .arg("--devices")
                .arg(common::example("builtin.json"))
                .args([
                    "--constraints",
                    r#"{"video": {"width": 320, "height": 240}}"#,
                ])
                .args(["--udp-port", "8189", "--ice-relay-only", "--token", "t0ken"])
                .args(["--ice-server", STUN_URL, "--ice-server", TURN_URL])
                .args(["--ice-username", USER, "--ice-credential-file"])
                .arg(&credential)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("usermedia serve");
            let stdout = child.stdout.take().expect("stdout");
            let serve = ServeCommand(child);
            let mut lines = BufReader::new(stdout).lines();
            let mut printed = Vec::new();
            let url = loop {
                let line = lines.next().expect("a line").expect("text");
                printed.push(line.clone());
                if let Some(u) = line.split_whitespace().find(|w| w.starts_with("http")) {
                    break u.trim_end_matches('/').to_owned();
                }
            };
            assert!(printed[0].contains("UDP 10.99.0.1:8189"), "{printed:?}");
            let whep = format!("{url}/whep/default");
            // Without a token: STUN only, so a relay-only client has nothing to relay on.
            let viewer = peers(vec![], true);
            let refused = view_whep(&viewer, &whep, None).await;
            assert!(
                matches!(
                    refused,
                    Err(usermedia::client::SessionError::Peer(PeerError::IceConfig(
                        _
                    )))
                ),
                "{:?}",
                refused.err()
            );
            // With the token: the TURN server and its credential, and media through it.
            let session = view_whep(&viewer, &whep, Some("t0ken"))
                .await
                .expect("viewing");
            let frames = frame_numbers(&session, Duration::from_secs(1)).await;
            assert!(frames.len() > 5, "decoded {} frames", frames.len());
            let addr: SocketAddr = url
                .trim_start_matches("http://")
                .parse()
                .expect("the address");
            assert_eq!(status_local_types(addr).await, ["relay"]);
            drop(serve);
        },
    );
}

#[test]
fn an_ice_restart_on_the_shared_port_keeps_media_flowing() {
    in_netns(
        "an_ice_restart_on_the_shared_port_keeps_media_flowing",
        || async {
            let server = PeerFactory::new(PeerConfig {
                udp_port: Some(8189),
                ..peers(vec![], false).config().clone()
            });
            let (addr, _publisher) = serve(server, ServerConfig::default()).await;
            let viewer = PeerFactory::new(PeerConfig {
                ice_addrs: vec!["127.0.0.1".parse().expect("loopback")],
                ice_disconnected_timeout: Duration::from_secs(2),
                ice_failed_timeout: Duration::from_secs(4),
                ..PeerConfig::default()
            });
            let url = format!("http://{addr}/whep/default");
            let mut session = view_whep(&viewer, &url, None).await.expect("viewing");
            let video = common::session_video(&session).await;
            let before = common::track_frame_numbers(&video, Duration::from_millis(500)).await;
            assert!(before.len() > 3, "{} frames before", before.len());
            let ufrag = session.peer.remote_ice_ufrag().await;
            session.restart_ice().await.expect("ICE restart");
            assert_ne!(session.peer.remote_ice_ufrag().await, ufrag);
            // Past the consent-loss timeout a side on stale credentials would hit.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let after = common::track_frame_numbers(&video, Duration::from_secs(1)).await;
            assert!(
                after.len() > 10,
                "{} frames 3-4 s after the restart",
                after.len()
            );
            assert!(after.first() > before.last(), "{before:?} then {after:?}");
        },
    );
}

/// The established TCP connections of this namespace whose remote port is `port` (our
/// side of the connections to a TURN server there), from /proc/self/net/tcp.
fn established_to(port: u16) -> usize {
    let port = format!("{port:04X}");
    std::fs::read_to_string("/proc/self/net/tcp")
        .expect("/proc/self/net/tcp")
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 3 && f[3] == "01")
        .filter(|f| f[2].rsplit_once(':').is_some_and(|(_, p)| p == port))
        .count()
}

/// Waits up to 5 s for `done`.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done()
}

#[test]
fn relay_only_over_turn_tcp_when_the_server_has_no_udp() {
    in_netns(
        "relay_only_over_turn_tcp_when_the_server_has_no_udp",
        || async {
            let _turn = Coturn::start_with(ADDR, USER, PASSWORD, Listeners::TcpOnly);
            // TURN over UDP cannot work here: coturn has no UDP socket on 3478.
            assert!(!udp_sockets_on(ADDR.parse().expect("IPv4")).contains(&3478));
            let servers = || vec![turn_at(TCP_URL, PASSWORD)];
            // The server on one UDP port (its TURN bridge reached through a socket of the
            // peer's own), the viewer on its own ports.
            let server = PeerFactory::new(PeerConfig {
                udp_port: Some(8189),
                ..peers(servers(), true).config().clone()
            });
            let (addr, publisher) = serve(server, ServerConfig::default()).await;
            let viewer = peers(servers(), true);
            let url = format!("http://{addr}/whep/default");
            let started = Instant::now();
            let session = view_whep(&viewer, &url, None).await.expect("viewing");
            let negotiated = started.elapsed();
            let answer = &session.http.answer;
            assert!(answer.contains("typ relay"), "relay-only answer: {answer}");
            assert!(!answer.contains("typ host"), "{answer}");
            let frames = frame_numbers(&session, Duration::from_secs(2)).await;
            assert!(frames.len() > 10, "decoded {} frames", frames.len());
            let ours = session.peer.stats().await.selected_candidate_pair;
            assert_eq!(ours.expect("a selected pair").local.candidate_type, "relay");
            assert_eq!(status_local_types(addr).await, ["relay"]);
            // One allocation per peer, each on its own TCP connection to coturn.
            assert_eq!(established_to(3478), 2);
            eprintln!(
                "TURN/TCP: negotiated in {negotiated:?}, {} frames in 2 s",
                frames.len()
            );
            // Ended and dropped: no connection left.
            session.end().await.expect("DELETE");
            let ended = Instant::now();
            assert!(
                eventually(|| established_to(3478) == 0).await,
                "{} TCP connections to coturn left",
                established_to(3478)
            );
            eprintln!(
                "TURN/TCP: connections closed {:?} after the end",
                ended.elapsed()
            );
            drop(publisher);
        },
    );
}

#[test]
fn the_serve_command_relays_over_turns_trusting_its_ice_ca_cert() {
    in_netns(
        "the_serve_command_relays_over_turns_trusting_its_ice_ca_cert",
        || async {
            use std::io::{BufRead, BufReader};
            let dir = tempfile::tempdir().expect("a directory");
            let ca = TestCa::generate(dir.path(), ADDR);
            let listeners = Listeners::TlsOnly {
                cert: ca.cert.clone(),
                key: ca.key.clone(),
            };
            let _turn = Coturn::start_with(ADDR, USER, PASSWORD, listeners);
            // Neither plain UDP nor plain TCP: only TLS reaches coturn.
            assert!(!udp_sockets_on(ADDR.parse().expect("IPv4")).contains(&3478));
            assert!(std::net::TcpStream::connect((ADDR, 3478)).is_err());
            let credential = dir.path().join("credential");
            std::fs::write(&credential, format!("{PASSWORD}\n")).expect("written");
            let usermedia = env!("CARGO_BIN_EXE_usermedia");
            // A CA file that holds no certificate is bad input, named.
            let out = Command::new(usermedia)
                .args(["serve", "--ice-server", TLS_URL, "--ice-username", USER])
                .arg("--ice-credential-file")
                .arg(&credential)
                .arg("--ice-ca-cert")
                .arg(&credential)
                .output()
                .expect("usermedia runs");
            assert_eq!(out.status.code(), Some(2));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("credential") && stderr.contains("CERTIFICATE"),
                "{stderr}"
            );
            let mut child = Command::new(usermedia)
                .args(["serve", "--listen", "10.99.0.1:0", "--ice-addr", ADDR])
                .arg("--devices")
                .arg(common::example("builtin.json"))
                .args([
                    "--constraints",
                    r#"{"video": {"width": 320, "height": 240}}"#,
                ])
                .args(["--ice-relay-only", "--ice-server", TLS_URL])
                .args(["--ice-username", USER, "--ice-credential-file"])
                .arg(&credential)
                .arg("--ice-ca-cert")
                .arg(&ca.ca)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("usermedia serve");
            let stdout = child.stdout.take().expect("stdout");
            let serve = ServeCommand(child);
            let mut lines = BufReader::new(stdout).lines();
            let url = loop {
                let line = lines.next().expect("a line").expect("text");
                if let Some(u) = line.split_whitespace().find(|w| w.starts_with("http")) {
                    break u.trim_end_matches('/').to_owned();
                }
            };
            let whep = format!("{url}/whep/default");
            let viewer = PeerFactory::new(PeerConfig {
                ice_ca_certs: vec![ca.ca.clone()],
                ..peers(vec![turn_at(TLS_URL, PASSWORD)], true)
                    .config()
                    .clone()
            });
            let session = view_whep(&viewer, &whep, None).await.expect("viewing");
            assert!(session.http.answer.contains("typ relay"));
            assert!(!session.http.answer.contains("typ host"));
            let frames = frame_numbers(&session, Duration::from_secs(1)).await;
            assert!(frames.len() > 5, "decoded {} frames", frames.len());
            let pair = session.peer.stats().await.selected_candidate_pair;
            assert_eq!(pair.expect("a selected pair").local.candidate_type, "relay");
            let addr: SocketAddr = url
                .trim_start_matches("http://")
                .parse()
                .expect("the address");
            assert_eq!(status_local_types(addr).await, ["relay"]);
            assert_eq!(established_to(5349), 2, "one TLS connection per peer");
            // Trusting another CA: the handshake fails, a clear error naming the server.
            let other = tempfile::tempdir().expect("a directory");
            let stranger = TestCa::generate(other.path(), ADDR);
            let untrusting = PeerFactory::new(PeerConfig {
                ice_ca_certs: vec![stranger.ca],
                ..peers(vec![turn_at(TLS_URL, PASSWORD)], true)
                    .config()
                    .clone()
            });
            let peer = untrusting.create().await.expect("a peer");
            peer.add_receiver(MediaKind::Video)
                .await
                .expect("a receiver");
            let started = Instant::now();
            let error = peer.create_offer().await.expect_err("no relay candidate");
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "{:?}",
                started.elapsed()
            );
            let message = error.to_string();
            assert!(message.contains(TLS_URL), "{message}");
            assert!(message.contains("TLS handshake failed"), "{message}");
            eprintln!("turns: with another CA: {message}");
            drop(serve);
        },
    );
}

#[test]
fn over_tcp_a_wrong_password_or_no_server_is_a_clear_error_naming_it() {
    in_netns(
        "over_tcp_a_wrong_password_or_no_server_is_a_clear_error_naming_it",
        || async {
            let _turn = Coturn::start_with(ADDR, USER, PASSWORD, Listeners::TcpOnly);
            let nobody = "turn:10.99.0.1:3479?transport=tcp";
            // An address on the namespace's network that no host answers: the SYN goes
            // nowhere, so only the bridge's connect timeout ends the wait.
            let silent = "turn:10.99.0.2:3478?transport=tcp";
            for (url, password, why, limit) in [
                (TCP_URL, "wrong", "credential", 6),
                (nobody, PASSWORD, "cannot connect over TCP", 3),
                (silent, PASSWORD, "no connection within 3s", 5),
            ] {
                let peer = peers(vec![turn_at(url, password)], true)
                    .create()
                    .await
                    .expect("a peer");
                peer.add_receiver(MediaKind::Video)
                    .await
                    .expect("a receiver");
                let started = Instant::now();
                let error = peer.create_offer().await.expect_err("no relay candidate");
                let took = started.elapsed();
                assert!(took < Duration::from_secs(limit), "{url}: {took:?}");
                assert!(
                    matches!(error, PeerError::NoRelayCandidate { .. }),
                    "{error:?}"
                );
                let message = error.to_string();
                assert!(message.contains(url), "{message}");
                assert!(message.contains(why), "{message}");
                eprintln!("{url}: refused in {took:?}: {message}");
            }
        },
    );
}
