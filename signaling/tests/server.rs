//! The signaling server over real HTTP(S) on loopback, with a stand-in media side: tokens
//! (401 vs 403), ICE restart statuses (200 + fragment + new ETag, 412, 422, 428, 400),
//! sessions checked against their path, TLS with a self-signed certificate and the
//! errors for unusable certificate and key files.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::http::{delete, http, patch_fragment, post_offer, FRAG};
use usermedia_signaling::{
    router, server_config, Answer, ClientError, Direction, Endpoint, EndpointError, HttpClient,
    IceRestart, LinkIceServer, ServerConfig, SessionDescription, SessionInfo, TlsError,
    TlsListener,
};

const OFFER: &str =
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
     a=mid:0\r\na=ice-ufrag:cli1\r\na=ice-pwd:clientpassword1\r\n";
const ANSWER: &str =
    "v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n";

/// A media side that remembers sessions and what was sent to them.
#[derive(Default)]
struct Fake {
    sessions: Mutex<HashMap<String, SessionInfo>>,
    trickled: Mutex<Vec<String>>,
    /// Off: the trait's default restart_ice (not supported).
    restarts: bool,
}

#[async_trait::async_trait]
impl Endpoint for Fake {
    type Status = serde_json::Value;

    async fn offer(
        &self,
        direction: Direction,
        stream: &str,
        _offer: SessionDescription,
    ) -> Result<Answer, EndpointError> {
        let mut sessions = self.sessions.lock().unwrap();
        let id = format!("s{}", sessions.len() + 1);
        sessions.insert(
            id.clone(),
            SessionInfo {
                stream: stream.to_owned(),
                direction,
                etag: id.clone(),
            },
        );
        Ok(Answer {
            session: id,
            sdp: ANSWER.to_owned(),
        })
    }

    async fn trickle(&self, session: &str, fragment: &str) -> Result<(), EndpointError> {
        if !self.sessions.lock().unwrap().contains_key(session) {
            return Err(EndpointError::UnknownSession(session.to_owned()));
        }
        if fragment.contains("a=ice-ufrag:other") {
            return Err(EndpointError::PreconditionRequired("new ufrag".into()));
        }
        self.trickled.lock().unwrap().push(fragment.to_owned());
        Ok(())
    }

    async fn session(&self, session: &str) -> Option<SessionInfo> {
        self.sessions.lock().unwrap().get(session).cloned()
    }

    async fn restart_ice(
        &self,
        session: &str,
        fragment: &str,
    ) -> Result<IceRestart, EndpointError> {
        if !self.restarts {
            return Err(EndpointError::Unprocessable("no restarts here".into()));
        }
        let mut sessions = self.sessions.lock().unwrap();
        let info = sessions
            .get_mut(session)
            .ok_or_else(|| EndpointError::UnknownSession(session.to_owned()))?;
        info.etag = format!("{session}-{}", fragment.len());
        Ok(IceRestart {
            fragment: "a=ice-ufrag:srv2\r\na=ice-pwd:serverpassword2\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=end-of-candidates\r\n".into(),
            etag: info.etag.clone(),
        })
    }

    async fn end(&self, session: &str) -> Result<(), EndpointError> {
        match self.sessions.lock().unwrap().remove(session) {
            Some(_) => Ok(()),
            None => Err(EndpointError::UnknownSession(session.to_owned())),
        }
    }

    async fn status(&self) -> serde_json::Value {
        serde_json::json!({})
    }
}

async fn serve(endpoint: Arc<Fake>, config: ServerConfig) -> SocketAddr {
    let app = router(endpoint, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn a_token_for_another_stream_is_403_a_missing_or_unknown_one_401() {
    let fake = Arc::new(Fake::default());
    let config = ServerConfig {
        token: Some("all".into()),
        stream_tokens: vec!["a=ta".parse().unwrap(), "b=tb".parse().unwrap()],
        token_for_viewing: true,
        ..ServerConfig::default()
    };
    let addr = serve(Arc::clone(&fake), config).await;
    for prefix in ["/whip", "/whep"] {
        let path = format!("{prefix}/a");
        let r = post_offer(addr, &path, None, OFFER).await;
        assert_eq!(r.status, 401, "{path} without a token: {}", r.body);
        assert_eq!(
            r.headers.get("www-authenticate").map(String::as_str),
            Some("Bearer")
        );
        assert!(r.body.contains("missing"), "{}", r.body);
        let r = post_offer(addr, &path, Some("nope"), OFFER).await;
        assert_eq!(r.status, 401, "{path} with an unknown token");
        assert!(r.body.contains("wrong bearer token"), "{}", r.body);
        let r = post_offer(addr, &path, Some("tb"), OFFER).await;
        assert_eq!(r.status, 403, "{path} with stream b's token: {}", r.body);
        assert!(r.body.contains("\"a\""), "{}", r.body);
        let r = post_offer(addr, &path, Some("ta"), OFFER).await;
        assert_eq!(r.status, 201, "{path} with stream a's token: {}", r.body);
    }
    // The token for every stream works on any stream, a stream token on its own only.
    let r = post_offer(addr, "/whip/c", Some("all"), OFFER).await;
    assert_eq!(r.status, 201);
    let r = post_offer(addr, "/whip/c", Some("ta"), OFFER).await;
    assert_eq!(r.status, 403);

    // Session requests check the token against the stream in their path, and the session
    // must live at that path.
    let created = post_offer(addr, "/whip/b", Some("tb"), OFFER).await;
    let location = created.headers["location"].clone();
    assert!(location.starts_with("/whip/b/"), "{location}");
    let session = location.rsplit('/').next().unwrap().to_owned();
    let r = delete(addr, &location, Some("ta")).await;
    assert_eq!(r.status, 403, "DELETE with another stream's token");
    let r = http(
        addr,
        "PATCH",
        &location,
        &[FRAG, ("Authorization", "Bearer ta")],
        "a=mid:0\r\n",
    )
    .await;
    assert_eq!(r.status, 403, "PATCH with another stream's token");
    let r = delete(addr, &location, None).await;
    assert_eq!(r.status, 401);
    // Stream a's token cannot reach stream b's session through stream a's path.
    let r = delete(addr, &format!("/whip/a/{session}"), Some("ta")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = delete(addr, &format!("/whep/b/{session}"), Some("tb")).await;
    assert_eq!(r.status, 404, "a WHIP session is not at a WHEP path");
    assert!(fake.sessions.lock().unwrap().contains_key(&session));
    let r = delete(addr, &location, Some("tb")).await;
    assert_eq!(r.status, 200);
    assert!(!fake.sessions.lock().unwrap().contains_key(&session));
}

#[tokio::test]
async fn a_viewing_token_gets_turn_in_the_whep_link_headers() {
    let config = ServerConfig {
        token: Some("all".into()),
        view_tokens: vec!["a=va".parse().unwrap()],
        token_for_viewing: true,
        ice_servers: vec![
            LinkIceServer {
                url: "stun:192.0.2.1".into(),
                ..LinkIceServer::default()
            },
            LinkIceServer {
                url: "turns:192.0.2.1".into(),
                username: Some("u".into()),
                credential: Some("turn-secret".into()),
            },
        ],
        ..ServerConfig::default()
    };
    let addr = serve(Arc::new(Fake::default()), config).await;
    let client = HttpClient::new().unwrap();
    let urls = |servers: Vec<LinkIceServer>| -> Vec<(String, Option<String>)> {
        servers.into_iter().map(|s| (s.url, s.credential)).collect()
    };
    let stun_only = || vec![("stun:192.0.2.1".to_owned(), None)];
    let turn = ("turns:192.0.2.1".to_owned(), Some("turn-secret".to_owned()));
    let stun = ("stun:192.0.2.1".to_owned(), None);
    let whep = format!("http://{addr}/whep/a");
    // OPTIONS: the viewing token gets TURN on its stream's WHEP endpoint.
    let given = client.ice_servers(&whep, Some("va")).await.unwrap();
    assert_eq!(urls(given), [stun.clone(), turn.clone()]);
    // Not on another stream, not on WHIP (it may not publish), not without a token.
    let other = format!("http://{addr}/whep/b");
    let given = client.ice_servers(&other, Some("va")).await.unwrap();
    assert_eq!(urls(given), stun_only());
    let whip = format!("http://{addr}/whip/a");
    let given = client.ice_servers(&whip, Some("va")).await.unwrap();
    assert_eq!(urls(given), stun_only());
    let given = client.ice_servers(&whep, None).await.unwrap();
    assert_eq!(urls(given), stun_only());
    // The all-streams token gets TURN on both.
    let given = client.ice_servers(&whip, Some("all")).await.unwrap();
    assert_eq!(urls(given), [stun.clone(), turn.clone()]);
    // The 201 of a viewing session carries them too.
    let r = post_offer(addr, "/whep/a", Some("va"), OFFER).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let links = r.headers.get("link").cloned().unwrap_or_default();
    assert!(links.contains("turns:192.0.2.1"), "{links}");
    assert!(links.contains("turn-secret"), "{links}");
}

#[tokio::test]
async fn viewing_stays_open_without_token_for_viewing() {
    let fake = Arc::new(Fake::default());
    let config = ServerConfig {
        stream_tokens: vec!["a=ta".parse().unwrap()],
        ..ServerConfig::default()
    };
    let addr = serve(fake, config).await;
    let r = post_offer(addr, "/whep/a", None, OFFER).await;
    assert_eq!(r.status, 201);
    let r = delete(addr, &r.headers["location"], None).await;
    assert_eq!(
        r.status, 200,
        "ending a viewing session needs no token either"
    );
    let r = post_offer(addr, "/whip/a", None, OFFER).await;
    assert_eq!(
        r.status, 401,
        "publishing needs one as soon as any token is configured"
    );
}

#[tokio::test]
async fn ice_restart_and_entity_tags() {
    let fake = Arc::new(Fake {
        restarts: true,
        ..Fake::default()
    });
    let addr = serve(Arc::clone(&fake), ServerConfig::default()).await;
    let created = post_offer(addr, "/whep/cam", None, OFFER).await;
    assert_eq!(created.status, 201);
    let location = created.headers["location"].clone();
    let first_tag = created.headers["etag"].clone();
    assert!(
        first_tag.starts_with('"') && first_tag.ends_with('"'),
        "{first_tag}"
    );

    // Trickle: with the current tag, without If-Match (earlier drafts), with a stale one.
    let r = patch_fragment(addr, &location, Some(&first_tag), "a=mid:0\r\n").await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = patch_fragment(addr, &location, None, "a=mid:0\r\n").await;
    assert_eq!(r.status, 204);
    let r = patch_fragment(addr, &location, Some("\"stale\""), "a=mid:0\r\n").await;
    assert_eq!(r.status, 412, "{}", r.body);
    assert_eq!(fake.trickled.lock().unwrap().len(), 2);

    // A restart needs the new credentials.
    let r = patch_fragment(addr, &location, Some("*"), "a=ice-ufrag:cli2\r\n").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("ice-pwd"), "{}", r.body);
    let restart = "a=ice-ufrag:cli2\r\na=ice-pwd:clientpassword2\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n\
                   a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n";
    let r = patch_fragment(addr, &location, Some("*"), restart).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("application/trickle-ice-sdpfrag")
    );
    assert!(
        r.body.contains("a=ice-ufrag:srv2") && r.body.contains("a=ice-pwd:"),
        "{}",
        r.body
    );
    let new_tag = r.headers["etag"].clone();
    assert_ne!(new_tag, first_tag);
    // The old tag is stale now; the new one is current (a weak comparison is accepted).
    let r = patch_fragment(addr, &location, Some(&first_tag), "a=mid:0\r\n").await;
    assert_eq!(r.status, 412);
    assert!(r.body.contains(&new_tag), "{}", r.body);
    let listed = format!("\"x\", W/{new_tag}");
    let r = patch_fragment(addr, &location, Some(&listed), "a=mid:0\r\n").await;
    assert_eq!(r.status, 204, "{}", r.body);
    // The media side's 428 (a new generation sent as trickle).
    let r = patch_fragment(addr, &location, None, "a=ice-ufrag:other\r\n").await;
    assert_eq!(r.status, 428);
    // Unknown session; a session that supports no restarts (422, the trait's default).
    let r = patch_fragment(addr, "/whep/cam/none", Some("*"), restart).await;
    assert_eq!(r.status, 404);
    let plain = Arc::new(Fake::default());
    let addr2 = serve(plain, ServerConfig::default()).await;
    let created = post_offer(addr2, "/whep/cam", None, OFFER).await;
    let r = patch_fragment(addr2, &created.headers["location"], Some("*"), restart).await;
    assert_eq!(r.status, 422, "{}", r.body);
    // CORS: the page may send If-Match and read the new ETag.
    let r = http(addr, "OPTIONS", &location, &[], "").await;
    assert!(r.headers["access-control-allow-headers"].contains("If-Match"));
    assert!(created.headers["access-control-expose-headers"].contains("ETag"));
}

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("usermedia-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost: (cert PEM, key PEM).
fn self_signed() -> (String, String) {
    let c =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

#[tokio::test]
async fn whep_over_https_with_a_self_signed_certificate() {
    let dir = TempDir::new("tls");
    let (cert, key) = self_signed();
    let cert_path = dir.file("cert.pem", &cert);
    let key_path = dir.file("key.pem", &key);
    let fake = Arc::new(Fake {
        restarts: true,
        ..Fake::default()
    });
    let config = ServerConfig {
        token: Some("t".into()),
        token_for_viewing: true,
        ..ServerConfig::default()
    };
    let app = router(Arc::clone(&fake), config);
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let tls = server_config(&cert_path, &key_path).unwrap();
    let listener = TlsListener::new(tcp, tls).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // A client trusting the certificate: the whole WHEP exchange over https.
    let client = HttpClient::with_ca_certs(std::slice::from_ref(&cert_path)).unwrap();
    let url = format!("https://127.0.0.1:{}/whep/cam", addr.port());
    let mut session = client.post_offer(&url, Some("t"), OFFER).await.unwrap();
    assert_eq!(session.answer, ANSWER);
    assert!(
        session.location.starts_with(&format!("{url}/")),
        "{}",
        session.location
    );
    let first_tag = session.etag.clone().expect("ETag");
    session
        .trickle("a=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n")
        .await
        .unwrap();
    let theirs = session
        .restart_ice("a=ice-ufrag:cli2\r\na=ice-pwd:clientpassword2\r\n")
        .await
        .unwrap();
    assert!(theirs.contains("a=ice-ufrag:srv2"), "{theirs}");
    assert_ne!(session.etag.as_deref(), Some(first_tag.as_str()));
    session
        .trickle("a=mid:0\r\n")
        .await
        .expect("trickle with the new ETag");
    assert_eq!(fake.trickled.lock().unwrap().len(), 2);
    session.end().await.unwrap();
    assert!(fake.sessions.lock().unwrap().is_empty());
    // The 401 comes back through TLS as well.
    match client.post_offer(&url, None, OFFER).await {
        Err(ClientError::Status { status: 401, .. }) => {}
        other => panic!("expected 401, got {other:?}"),
    }

    // Not trusting it: the handshake fails (or, on a machine with no trust roots at all,
    // https is refused before connecting); either way no session is made.
    let untrusting = HttpClient::new().unwrap();
    match untrusting.post_offer(&url, Some("t"), OFFER).await {
        Err(ClientError::Transport { message, .. }) => {
            assert!(message.contains("certificate"), "{message}")
        }
        Err(ClientError::Tls(_)) => {}
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    // Plain http to the TLS port: no response a client could take for a session.
    let plain = format!("http://127.0.0.1:{}/whep/cam", addr.port());
    assert!(client.post_offer(&plain, Some("t"), OFFER).await.is_err());
    assert!(fake.sessions.lock().unwrap().is_empty());
}

#[test]
fn unusable_certificate_and_key_files_are_errors_naming_the_file() {
    let dir = TempDir::new("badtls");
    let (cert, key) = self_signed();
    let (_, other_key) = self_signed();
    let cert_path = dir.file("cert.pem", &cert);
    let key_path = dir.file("key.pem", &key);
    assert!(server_config(&cert_path, &key_path).is_ok());

    let missing = dir.0.join("missing.pem");
    let e = server_config(&missing, &key_path).unwrap_err();
    assert!(matches!(e, TlsError::Read { .. }), "{e:?}");
    assert!(
        e.to_string().contains("missing.pem") && e.to_string().contains("certificate"),
        "{e}"
    );
    let e = server_config(&cert_path, &missing).unwrap_err();
    assert!(
        e.to_string().contains("TLS key file") && e.to_string().contains("missing.pem"),
        "{e}"
    );

    // Not PEM at all.
    let garbage = dir.file("garbage.pem", "this is not a key\n");
    let e = server_config(&cert_path, &garbage).unwrap_err();
    assert_eq!(e, TlsError::NoKey(garbage.clone()));
    assert!(
        e.to_string().contains("garbage.pem") && e.to_string().contains("no PEM private key"),
        "{e}"
    );
    // PEM armour around garbage.
    let armoured = dir.file(
        "armoured.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n",
    );
    let e = server_config(&cert_path, &armoured).unwrap_err();
    assert!(matches!(e, TlsError::BadKey { .. }), "{e:?}");
    assert!(e.to_string().contains("armoured.pem"), "{e}");
    // A certificate file holding a key; a key that belongs to another certificate.
    let e = server_config(&key_path, &key_path).unwrap_err();
    assert!(matches!(e, TlsError::NoCertificate { .. }), "{e:?}");
    assert!(e.to_string().contains("key.pem"), "{e}");
    let other = dir.file("other-key.pem", &other_key);
    let e = server_config(&cert_path, &other).unwrap_err();
    assert!(matches!(e, TlsError::Mismatch { .. }), "{e:?}");
    assert!(
        e.to_string().contains("other-key.pem") && e.to_string().contains("cert.pem"),
        "{e}"
    );

    // The client's CA files too.
    match HttpClient::with_ca_certs(std::slice::from_ref(&garbage)) {
        Err(ClientError::Tls(TlsError::NoCertificate { path, .. })) => assert_eq!(path, garbage),
        other => panic!("expected NoCertificate, got {other:?}"),
    }
}
