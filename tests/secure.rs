//! `serve` and `publish` with TLS, per-stream tokens and ICE restarts, over real HTTPS and
//! UDP on loopback: frames decoded through an https WHEP session trusting a self-signed
//! certificate; the `serve` command with --tls-cert/--tls-key and token flags (401/403);
//! unusable certificate files refused at start; `publish --ca-cert`; WHEP and WHIP ICE
//! restarts that keep media flowing with new credentials on both sides.

mod common;

use common::http::{raw, FRAG};
use common::{exclusive, frame_numbers, session_video, track_frame_numbers};

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use usermedia::client::{
    join_room, join_room_with, publish_whip, view_whep, view_whep_with, RemoteSession, SessionError,
};
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::peer::{PeerConfig, PeerFactory, PeerState};
use usermedia::server::{encode_track, Publisher};
use usermedia::MediaStream;
use usermedia_signaling::{
    router, server_config, ClientError, HttpClient, ServerConfig, TlsListener,
};

/// Peers whose ICE gives up quickly: a side left with stale credentials after a restart
/// would lose consent within seconds, so media still flowing later proves both sides
/// took the new ones.
fn factory() -> PeerFactory {
    PeerFactory::new(PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().unwrap()],
        max_peers: 10,
        ice_disconnected_timeout: Duration::from_secs(2),
        ice_failed_timeout: Duration::from_secs(4),
        ..PeerConfig::default()
    })
}

fn camera() -> MediaStream {
    MediaDevices::builtin_virtual(PermissionPolicy::granted())
        .get_user_media_json(r#"{"video": {"width": 640, "height": 480}}"#)
        .unwrap()
}

/// A server publishing the pattern camera as `default`, over TLS when `tls` names a
/// certificate and key.
async fn server(config: ServerConfig, tls: Option<(&Path, &Path)>) -> (SocketAddr, Arc<Publisher>) {
    let stream = camera();
    let publisher = Arc::new(Publisher::new(factory()));
    publisher
        .publish("default", stream.get_tracks().to_vec(), 1_000_000)
        .unwrap();
    let app = router(Arc::clone(&publisher), config);
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let tls = tls.map(|(cert, key)| server_config(cert, key).unwrap());
    tokio::spawn(async move {
        let _keep = stream;
        match tls {
            Some(config) => axum::serve(TlsListener::new(tcp, config).unwrap(), app).await,
            None => axum::serve(tcp, app).await,
        }
    });
    (addr, publisher)
}

/// A self-signed certificate for 127.0.0.1 in a temporary directory: (dir, cert, key).
fn certificate() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let c =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    (dir, cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_over_https_trusting_a_self_signed_certificate_decodes_frames() {
    let _serial = exclusive().await;
    let (_dir, cert, key) = certificate();
    let (addr, publisher) = server(ServerConfig::default(), Some((&cert, &key))).await;
    let url = format!("https://127.0.0.1:{}/whep/default", addr.port());
    let client = HttpClient::with_ca_certs(std::slice::from_ref(&cert)).unwrap();
    let session = view_whep_with(&client, &factory(), &url, None)
        .await
        .unwrap();
    assert!(session.http.location.starts_with(&format!("{url}/")));
    let numbers = frame_numbers(&session, Duration::from_secs(2)).await;
    assert!(
        numbers.len() >= 30,
        "decoded {} frames in 2 s over https",
        numbers.len()
    );
    assert_eq!(publisher.session_count(), 1);
    session.end().await.unwrap();
    assert_eq!(publisher.session_count(), 0, "DELETE over https ended it");
    // The same URL without trusting the certificate: refused before any session exists.
    match view_whep(&factory(), &url, None).await {
        Err(SessionError::Http(ClientError::Transport { message, .. })) => {
            assert!(message.contains("certificate"), "{message}")
        }
        Err(SessionError::Http(ClientError::Tls(_))) => {}
        other => panic!("expected a certificate error, got {:?}", other.err()),
    }
    assert_eq!(publisher.session_count(), 0);
}

/// Restarts ICE on `session` and checks what changed: the server's credentials in the
/// answer, our own, the session's entity tag.
async fn restart(session: &mut RemoteSession) {
    let server_before = session.peer.remote_ice_ufrag().await.unwrap();
    let tag_before = session.http.etag.clone().expect("an ETag");
    session.restart_ice().await.expect("ICE restart");
    let server_after = session.peer.remote_ice_ufrag().await.unwrap();
    assert_ne!(
        server_after, server_before,
        "the server's ICE ufrag changed"
    );
    assert_ne!(session.http.etag.as_ref(), Some(&tag_before), "a new ETag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_ice_restart_keeps_media_flowing_with_new_credentials() {
    let _serial = exclusive().await;
    let (addr, publisher) = server(ServerConfig::default(), None).await;
    let url = format!("http://{addr}/whep/default");
    let mut session = view_whep(&factory(), &url, None).await.unwrap();
    let track = session_video(&session).await;
    let before = track_frame_numbers(&track, Duration::from_secs(1)).await;
    assert!(
        before.len() >= 15,
        "{} frames before the restart",
        before.len()
    );
    let first_tag = session.http.etag.clone().unwrap();

    restart(&mut session).await;
    // Media over the restarted ICE session, well past the 2 s consent-loss timeout that a
    // side holding stale credentials would hit.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = track_frame_numbers(&track, Duration::from_secs(2)).await;
    assert_eq!(session.peer.state(), PeerState::Connected);
    assert!(
        after.len() >= 30,
        "{} frames decoded 3-5 s after the restart",
        after.len()
    );
    assert!(
        after.first() > before.last(),
        "the stream went on: {:?} then {:?}",
        before.last(),
        after.first()
    );
    assert!(after.windows(2).all(|w| w[1] > w[0]), "in order");
    assert_eq!(publisher.session_count(), 1, "the same session");

    // Trickle after the restart: the old ETag is stale (412), the new one works, and
    // candidates of an old generation without If-Match: * are 428.
    let location = session.http.location.clone();
    let path = location.trim_start_matches(&format!("http://{addr}"));
    let r = raw(
        addr,
        "PATCH",
        path,
        &[FRAG, ("If-Match", &first_tag)],
        "a=mid:0\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 412"), "{r}");
    session
        .http
        .trickle("a=mid:0\r\n")
        .await
        .expect("trickle with the new ETag");
    let other = "a=ice-ufrag:othergeneration\r\na=mid:0\r\n";
    let r = raw(addr, "PATCH", path, &[FRAG], other).await;
    assert!(r.starts_with("HTTP/1.1 428"), "{r}");
    session.end().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_ice_restart_keeps_the_relay_flowing() {
    let _serial = exclusive().await;
    let (addr, _publisher) = server(ServerConfig::default(), None).await;
    let camera = camera();
    let encoded = usermedia::encode::pipeline::EncodedTrack::start(
        &camera.get_video_tracks()[0],
        usermedia::encode::pipeline::CodecConfig::H264 { bitrate: 1_000_000 },
    )
    .unwrap();
    let mut publication = publish_whip(
        &factory(),
        &format!("http://{addr}/whip/relay"),
        None,
        std::slice::from_ref(&encoded),
    )
    .await
    .unwrap();
    publication
        .peer
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    restart(&mut publication).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(publication.peer.state(), PeerState::Connected);
    // A viewer of the relay gets the publisher's frames after the restart.
    let deadline = Instant::now() + Duration::from_secs(10);
    let viewing = loop {
        match view_whep(&factory(), &format!("http://{addr}/whep/relay"), None).await {
            Ok(v) => break v,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("view the relay: {e}"),
        }
    };
    let numbers = frame_numbers(&viewing, Duration::from_secs(2)).await;
    assert!(
        numbers.len() >= 30,
        "{} relayed frames after the restart",
        numbers.len()
    );
    viewing.end().await.unwrap();
    publication.end().await.unwrap();
}

/// `usermedia serve` as a child process, stopped with SIGINT (Ctrl-C) by its PID on drop.
struct Serve {
    child: std::process::Child,
    url: String,
}

impl Serve {
    fn start(args: &[&str]) -> Serve {
        let builtin = common::example("builtin.json");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_usermedia"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--ice-addr",
                "127.0.0.1",
                "--devices",
            ])
            .arg(&builtin)
            .args([
                "--constraints",
                r#"{"video": {"width": 640, "height": 480}}"#,
            ])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "usermedia: serving stream "default" — open https://127.0.0.1:PORT/ (WHEP: ...)"
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http"))
            .unwrap_or_else(|| panic!("no URL printed: {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        Serve { child, url }
    }

    fn interrupt(&mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_command_with_tls_and_per_stream_tokens() {
    let _serial = exclusive().await;
    let (dir, cert, key) = certificate();
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        "# viewers of default\ndefault view-default\nother view-other\n",
    )
    .unwrap();
    let mut serve = Serve::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--token-file",
        tokens.to_str().unwrap(),
        "--stream-token",
        "cam=publish-cam",
        "--token-for-viewing",
    ]);
    assert!(serve.url.starts_with("https://127.0.0.1:"), "{}", serve.url);
    let client = HttpClient::with_ca_certs(std::slice::from_ref(&cert)).unwrap();
    let whep = format!("{}/whep/default", serve.url);
    let status = |r: Result<RemoteSession, SessionError>| match r {
        Err(SessionError::Http(ClientError::Status { status, .. })) => status,
        Ok(_) => 201,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        status(view_whep_with(&client, &factory(), &whep, None).await),
        401
    );
    assert_eq!(
        status(view_whep_with(&client, &factory(), &whep, Some("nope")).await),
        401
    );
    assert_eq!(
        status(view_whep_with(&client, &factory(), &whep, Some("view-other")).await),
        403,
        "another stream's token"
    );
    assert_eq!(
        status(view_whep_with(&client, &factory(), &whep, Some("publish-cam")).await),
        403,
        "--stream-token's stream is cam"
    );
    let session = view_whep_with(&client, &factory(), &whep, Some("view-default"))
        .await
        .unwrap();
    let numbers = frame_numbers(&session, Duration::from_secs(2)).await;
    assert!(
        numbers.len() >= 30,
        "decoded {} frames from serve over https",
        numbers.len()
    );
    session.end().await.unwrap();
    assert!(serve.interrupt().success(), "Ctrl-C: a clean exit");
}

#[test]
fn serve_refuses_unusable_certificate_files_at_start() {
    let (dir, cert, _key) = certificate();
    let garbage = dir.path().join("garbage-key.pem");
    std::fs::write(&garbage, "not a key at all\n").unwrap();
    let started = Instant::now();
    let out = common::usermedia(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        garbage.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TLS key file")
            && stderr.contains("garbage-key.pem")
            && stderr.contains("no PEM private key"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no URL printed");
    assert!(started.elapsed() < Duration::from_secs(10));
    let missing = dir.path().join("missing-cert.pem");
    let out = common::usermedia(&[
        "serve",
        "--tls-cert",
        missing.to_str().unwrap(),
        "--tls-key",
        garbage.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("missing-cert.pem") && stderr.contains("cannot read"),
        "{stderr}"
    );
    // One without the other is a usage error.
    let out = common::usermedia(&["serve", "--tls-cert", cert.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_over_https_with_ca_cert() {
    let _serial = exclusive().await;
    let (_dir, cert, key) = certificate();
    let config = ServerConfig {
        stream_tokens: vec!["cli=pub-cli".parse().unwrap()],
        ..ServerConfig::default()
    };
    let (addr, _publisher) = server(config, Some((&cert, &key))).await;
    let base = format!("https://127.0.0.1:{}", addr.port());
    let builtin = common::example("builtin.json");
    let publish = |stream: &str, seconds: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_usermedia"))
            .args([
                "publish",
                "--whip",
                &format!("{base}/whip/{stream}"),
                "--token",
                "pub-cli",
            ])
            .args([
                "--ca-cert",
                cert.to_str().unwrap(),
                "--devices",
                builtin.to_str().unwrap(),
            ])
            .args([
                "--constraints",
                r#"{"video": {"width": 640, "height": 480}}"#,
            ])
            .args(["--ice-addr", "127.0.0.1", "--seconds", seconds])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The token is for stream cli only.
    let out = publish("other", "1").wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("403") && stderr.contains("other"),
        "{stderr}"
    );

    let child = publish("cli", "4");
    let client = HttpClient::with_ca_certs(std::slice::from_ref(&cert)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let viewing = loop {
        match view_whep_with(&client, &factory(), &format!("{base}/whep/cli"), None).await {
            Ok(v) => break v,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("view: {e}"),
        }
    };
    let numbers = frame_numbers(&viewing, Duration::from_secs(2)).await;
    assert!(
        numbers.len() >= 30,
        "decoded {} frames published over https",
        numbers.len()
    );
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    viewing.peer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_meet_in_a_call_room_over_wss() {
    let _serial = exclusive().await;
    let (_dir, cert, key) = certificate();
    let (addr, _publisher) = server(ServerConfig::default(), Some((&cert, &key))).await;
    let url = format!("wss://127.0.0.1:{}/ws?room=secure", addr.port());
    let client = HttpClient::with_ca_certs(std::slice::from_ref(&cert)).unwrap();
    let stream = camera();
    let video = encode_track(&stream.get_video_tracks()[0], 500_000).unwrap();
    let mut first = join_room_with(&client, &url, factory(), vec![video.clone()])
        .await
        .unwrap();
    let mut second = join_room_with(&client, &url, factory(), vec![video])
        .await
        .unwrap();
    for (name, bot) in [("first", &mut first), ("second", &mut second)] {
        let track = bot
            .next_remote_track(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("the {name} bot got no track over wss://"));
        let numbers = track_frame_numbers(&track, Duration::from_secs(1)).await;
        assert!(
            numbers.len() >= 15,
            "the {name} bot decoded {} frames in 1 s",
            numbers.len()
        );
    }
    // Without trusting the certificate the room is refused before anything is sent.
    match join_room(&url, factory(), Vec::new()).await {
        Err(e) => assert!(e.to_string().contains("certificate"), "{e}"),
        Ok(_) => panic!("joined a wss:// room whose certificate nobody trusts"),
    }
}
