//! Hardening attacks from outside against the library's server on loopback (the router
//! under [`usermedia_signaling::serve`]): each asserts that the attack is refused and that
//! a well-behaved client beside it is still served. Stream names, `/status` for the
//! operator only, token roles, room tokens and origins, room message size, rate and join
//! deadline, slow-loris sockets against the connection cap, and shutdown with a half-sent
//! request open.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::http::{delete, get, http, post_offer};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use usermedia_signaling::{
    router, serve, Answer, Direction, Endpoint, EndpointError, HttpLimits, RoomLimits,
    ServerConfig, SessionDescription, SessionInfo,
};

const OFFER: &str =
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n";

/// A media side that answers every offer and remembers the sessions.
#[derive(Default)]
struct Fake {
    sessions: Mutex<HashMap<String, SessionInfo>>,
}

#[async_trait::async_trait]
impl Endpoint for Fake {
    type Status = serde_json::Value;

    async fn offer(
        &self,
        direction: Direction,
        stream: &str,
        _: SessionDescription,
    ) -> Result<Answer, EndpointError> {
        let mut sessions = self.sessions.lock().unwrap();
        let id = format!("s{}", sessions.len() + 1);
        let info = SessionInfo {
            stream: stream.to_owned(),
            direction,
            etag: id.clone(),
        };
        sessions.insert(id.clone(), info);
        Ok(Answer {
            session: id,
            sdp: OFFER.to_owned(),
        })
    }

    async fn trickle(&self, _: &str, _: &str) -> Result<(), EndpointError> {
        Ok(())
    }

    async fn session(&self, session: &str) -> Option<SessionInfo> {
        self.sessions.lock().unwrap().get(session).cloned()
    }

    async fn end(&self, session: &str) -> Result<(), EndpointError> {
        match self.sessions.lock().unwrap().remove(session) {
            Some(_) => Ok(()),
            None => Err(EndpointError::UnknownSession(session.to_owned())),
        }
    }

    async fn status(&self) -> serde_json::Value {
        let ids: Vec<String> = self.sessions.lock().unwrap().keys().cloned().collect();
        serde_json::json!({ "sessions": ids })
    }
}

/// Serves `config` within `limits`; the address and the trigger of shutdown with the
/// server's task.
async fn start(
    config: ServerConfig,
    limits: HttpLimits,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(Arc::new(Fake::default()), config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app, limits, async {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

async fn start_with(config: ServerConfig) -> SocketAddr {
    let (addr, stop, _) = start(config, HttpLimits::default()).await;
    std::mem::forget(stop);
    addr
}

fn tokens() -> ServerConfig {
    ServerConfig {
        token: Some("all".into()),
        stream_tokens: vec!["a=pub-a".parse().unwrap(), "b=pub-b".parse().unwrap()],
        view_tokens: vec!["a=view-a".parse().unwrap()],
        status_token: Some("ops".into()),
        token_for_viewing: true,
        ..ServerConfig::default()
    }
}

fn location(r: &common::http::Response) -> String {
    r.headers.get("location").cloned().expect("a Location")
}

#[tokio::test]
async fn stream_names_outside_the_rule_are_400_on_every_route() {
    let addr = start_with(ServerConfig::default()).await;
    let long = "x".repeat(65);
    for bad in ["a%0Ab", "a%20b", "%C3%A9", long.as_str(), "a%2Fb"] {
        for path in [format!("/whip/{bad}"), format!("/whep/{bad}")] {
            let r = post_offer(addr, &path, None, OFFER).await;
            assert_eq!(r.status, 400, "{path}: {}", r.body);
            assert!(r.body.contains("A-Z a-z 0-9 . _ -"), "{}", r.body);
            let r = http(addr, "OPTIONS", &path, &[], "").await;
            assert_eq!(r.status, 400, "OPTIONS {path}");
            let r = delete(addr, &format!("{path}/s1"), None).await;
            assert_eq!(r.status, 400, "DELETE {path}/s1");
            let r = http(
                addr,
                "PATCH",
                &format!("{path}/s1"),
                &[common::http::FRAG],
                "a=end-of-candidates\r\n",
            )
            .await;
            assert_eq!(r.status, 400, "PATCH {path}/s1");
        }
        let r = http(addr, "POST", &format!("/streams/{bad}/flip"), &[], "").await;
        assert_eq!(r.status, 400, "flip {bad}: {}", r.body);
    }
    // Beside them, a good name is served.
    let ok = "Cam_1.main-2";
    let r = post_offer(addr, &format!("/whip/{ok}"), None, OFFER).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(location(&r), format!("/whip/{ok}/s1"));
}

#[tokio::test]
async fn status_is_the_operators_when_tokens_are_configured() {
    let addr = start_with(tokens()).await;
    let r = post_offer(addr, "/whep/a", Some("view-a"), OFFER).await;
    assert_eq!(r.status, 201, "{}", r.body);
    for (token, want) in [
        (None, 401),
        (Some("view-a"), 401),
        (Some("pub-a"), 401),
        (Some("nope"), 401),
    ] {
        let r = common::http::authorized(addr, "GET", "/status", &[], token, "").await;
        assert_eq!(r.status, want, "{token:?}");
        assert!(!r.body.contains("s1"), "no session id leaks: {}", r.body);
    }
    for token in ["ops", "all"] {
        let r = common::http::authorized(addr, "GET", "/status", &[], Some(token), "").await;
        assert_eq!(r.status, 200, "{token}");
        assert!(r.body.contains("s1"), "{}", r.body);
    }
    // Without any token configured, /status stays open (a trusted network).
    let open = start_with(ServerConfig::default()).await;
    assert_eq!(get(open, "/status").await.status, 200);
    // A status token alone guards /status only: publishing stays open.
    let ops_only = start_with(ServerConfig {
        status_token: Some("ops".into()),
        ..ServerConfig::default()
    })
    .await;
    assert_eq!(get(ops_only, "/status").await.status, 401);
    let r = common::http::authorized(ops_only, "GET", "/status", &[], Some("ops"), "").await;
    assert_eq!(r.status, 200);
    let r = post_offer(ops_only, "/whip/cam", None, OFFER).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn viewing_tokens_cannot_touch_publishers_and_stream_tokens_stay_on_their_stream() {
    let addr = start_with(tokens()).await;
    let whip = post_offer(addr, "/whip/a", Some("pub-a"), OFFER).await;
    assert_eq!(whip.status, 201, "{}", whip.body);
    let publisher = location(&whip);
    // A viewing token can view but not publish, nor end or patch the publisher.
    assert_eq!(
        post_offer(addr, "/whep/a", Some("view-a"), OFFER)
            .await
            .status,
        201
    );
    let r = post_offer(addr, "/whip/a", Some("view-a"), OFFER).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(delete(addr, &publisher, Some("view-a")).await.status, 403);
    let r = common::http::authorized(
        addr,
        "PATCH",
        &publisher,
        &[common::http::FRAG],
        Some("view-a"),
        "a=end-of-candidates\r\n",
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Stream b's publishing token cannot touch stream a's publisher.
    assert_eq!(delete(addr, &publisher, Some("pub-b")).await.status, 403);
    // Its own token can.
    assert_eq!(delete(addr, &publisher, Some("pub-a")).await.status, 200);
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn ws(addr: SocketAddr, query: &str, origin: Option<&str>) -> Result<Socket, u16> {
    let mut request = format!("ws://{addr}/ws?{query}")
        .into_client_request()
        .unwrap();
    if let Some(o) = origin {
        request.headers_mut().insert("origin", o.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((s, _)) => Ok(s),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

/// The next text message, or how the socket closed (`close:REASON`).
async fn next(socket: &mut Socket) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a message within 5 s")
        {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(Message::Close(frame))) => {
                return format!(
                    "close:{}",
                    frame.map(|f| f.reason.to_string()).unwrap_or_default()
                )
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return format!("error:{e}"),
            None => return "ended".into(),
        }
    }
}

async fn join(socket: &mut Socket) -> String {
    socket
        .send(Message::text(r#"{"type":"join"}"#))
        .await
        .unwrap();
    next(socket).await
}

#[tokio::test]
async fn rooms_need_the_viewing_token_and_an_allowed_origin() {
    let config = ServerConfig {
        allowed_origins: vec!["https://good.example".into()],
        ..tokens()
    };
    let addr = start_with(config).await;
    assert_eq!(ws(addr, "room=a", None).await.err(), Some(401));
    assert_eq!(ws(addr, "room=a&token=nope", None).await.err(), Some(401));
    assert_eq!(ws(addr, "room=b&token=view-a", None).await.err(), Some(403));
    assert_eq!(
        ws(addr, "room=a&token=view-a", Some("https://evil.example"))
            .await
            .err(),
        Some(403)
    );
    let mut good = ws(addr, "room=a&token=view-a", Some("https://good.example"))
        .await
        .unwrap();
    assert!(join(&mut good).await.contains("\"peers\""));
    // CORS answers only the allowed origin.
    let r = http(
        addr,
        "OPTIONS",
        "/whep/a",
        &[("Origin", "https://good.example")],
        "",
    )
    .await;
    assert_eq!(
        r.headers
            .get("access-control-allow-origin")
            .map(String::as_str),
        Some("https://good.example")
    );
    let r = http(
        addr,
        "OPTIONS",
        "/whep/a",
        &[("Origin", "https://evil.example")],
        "",
    )
    .await;
    assert!(!r.headers.contains_key("access-control-allow-origin"));
}

fn room_limits(limits: RoomLimits) -> ServerConfig {
    ServerConfig {
        room_limits: limits,
        ..ServerConfig::default()
    }
}

#[tokio::test]
async fn room_floods_oversize_frames_and_idle_sockets_are_cut_off_alone() {
    let addr = start_with(room_limits(RoomLimits {
        message_burst: 5,
        messages_per_second: 1,
        join_within: Duration::from_millis(300),
        ..RoomLimits::default()
    }))
    .await;
    let mut good = ws(addr, "room=r", None).await.unwrap();
    assert!(join(&mut good).await.contains("\"peers\""));
    // A frame over 64 KiB: refused before it is buffered, the socket dropped.
    let mut big = ws(addr, "room=r", None).await.unwrap();
    let _ = big.send(Message::text("x".repeat(100 * 1024))).await;
    let end = next(&mut big).await;
    assert!(
        end.starts_with("close") || end.starts_with("error") || end == "ended",
        "{end}"
    );
    // A flood: disconnected with a reason.
    let mut flood = ws(addr, "room=r", None).await.unwrap();
    assert!(join(&mut flood).await.contains("\"peers\""));
    assert!(next(&mut good).await.contains("\"join\""));
    let mut closed = None;
    for _ in 0..20 {
        if flood.send(Message::text("{}")).await.is_err() {
            break;
        }
    }
    for _ in 0..30 {
        let m = next(&mut flood).await;
        if m.starts_with("close") || m.starts_with("error") || m == "ended" {
            closed = Some(m);
            break;
        }
    }
    assert_eq!(closed.as_deref(), Some("close:too many messages"));
    assert!(next(&mut good).await.contains("\"leave\""));
    // A socket that never joins is closed after the deadline.
    let mut idle = ws(addr, "room=r", None).await.unwrap();
    let started = Instant::now();
    assert_eq!(next(&mut idle).await, "close:did not join in time");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The good participant is still served.
    good.send(Message::text(r#"{"type":"offer","to":"nobody","sdp":"x"}"#))
        .await
        .unwrap();
    assert!(next(&mut good).await.contains("no participant"));
}

#[tokio::test]
async fn room_connections_and_rooms_are_capped() {
    let addr = start_with(room_limits(RoomLimits {
        max_connections: 2,
        max_rooms: 1,
        ..RoomLimits::default()
    }))
    .await;
    let mut a = ws(addr, "room=one", None).await.unwrap();
    assert!(join(&mut a).await.contains("\"peers\""));
    let mut b = ws(addr, "room=two", None).await.unwrap();
    assert!(join(&mut b).await.contains("too many rooms"));
    let _ = b.close(None).await;
    drop(b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _c = ws(addr, "room=one", None).await.unwrap();
    assert_eq!(ws(addr, "room=one", None).await.err(), Some(503));
}

/// A request whose headers never finish.
async fn slow_loris(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    s
}

#[tokio::test]
async fn slow_loris_sockets_at_the_cap_get_nobody_stuck() {
    let limits = HttpLimits {
        max_connections: 4,
        header_read_timeout: Duration::from_millis(800),
        ..HttpLimits::default()
    };
    let (addr, _stop, _) = start(ServerConfig::default(), limits).await;
    let mut lorises = Vec::new();
    for _ in 0..4 {
        lorises.push(slow_loris(addr).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // At the cap: a clean 503 with Retry-After, not a hang.
    let r = tokio::time::timeout(Duration::from_secs(3), get(addr, "/status"))
        .await
        .expect("an answer, not a hang");
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.headers.get("retry-after").map(String::as_str), Some("1"));
    // The header-read timeout closes the slow sockets; service resumes.
    for mut s in lorises {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf))
            .await
            .expect("closed by the header-read timeout");
        assert!(n.is_ok() || n.is_err());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(addr, "/status").await.status, 200);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let limits = HttpLimits {
        header_read_timeout: Duration::from_millis(500),
        ..HttpLimits::default()
    };
    let (addr, _stop, _) = start(ServerConfig::default(), limits).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Kept alive, then idle: closed.
    let started = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest))
        .await
        .expect("the idle connection is closed")
        .ok();
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn shutdown_returns_within_the_grace_whatever_clients_hold_open() {
    let (addr, stop, task) = start(ServerConfig::default(), HttpLimits::default()).await;
    let _half = slow_loris(addr).await;
    let mut room = ws(addr, "room=r", None).await.unwrap();
    assert!(join(&mut room).await.contains("\"peers\""));
    // A request in flight on another connection: body announced, never sent.
    let mut body = TcpStream::connect(addr).await.unwrap();
    body.write_all(
        b"POST /whep/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 100\r\n\r\nv=0",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("serve returns within 2 s")
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(1500));
    // The listener is gone.
    assert!(TcpStream::connect(addr).await.is_err());
}

/// The status of a WHEP offer sent from `source` (a loopback address of its own).
async fn offer_from(source: &str, addr: SocketAddr) -> (u16, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let request = format!(
        "POST /whep/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: \
         application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, out)
}

#[tokio::test]
async fn one_address_with_never_connecting_offers_does_not_lock_out_another() {
    let config = ServerConfig {
        max_pending_per_address: 3,
        pending_deadline: Duration::from_millis(700),
        ..ServerConfig::default()
    };
    let (addr, _stop, _) = start(config, HttpLimits::default()).await;
    for _ in 0..3 {
        assert_eq!(offer_from("127.0.0.2", addr).await.0, 201);
    }
    let (status, text) = offer_from("127.0.0.2", addr).await;
    assert_eq!(status, 429, "{text}");
    assert!(
        text.contains("Retry-After") || text.contains("retry-after"),
        "{text}"
    );
    assert!(text.contains("have not connected"), "{text}");
    // Another address is still served.
    assert_eq!(offer_from("127.0.0.3", addr).await.0, 201);
    // Past the connect deadline, the first address may try again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(offer_from("127.0.0.2", addr).await.0, 201);
}

#[tokio::test]
async fn a_body_that_never_comes_is_408_and_others_are_served_meanwhile() {
    let limits = HttpLimits {
        request_timeout: Duration::from_millis(500),
        ..HttpLimits::default()
    };
    let (addr, _stop, _) = start(ServerConfig::default(), limits).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /whep/a HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 1000\r\n\r\nv=0",
    )
    .await
    .unwrap();
    // Meanwhile, a normal request is answered at once.
    let r = post_offer(addr, "/whep/a", None, OFFER).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let started = Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out))
        .await
        .expect("answered and closed")
        .ok();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(2));
}
