//! `serve`'s HTTP side on loopback: WHEP viewed by a Rust peer end to end, and every error
//! status with the exact bad input.

mod common;

use common::http::{delete, get, http, patch_fragment, post_offer};
use common::{exclusive, frame_numbers, track_frame_numbers};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use usermedia::devices::pattern::read_strip;
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::encode::VideoCodec;
use usermedia::peer::{Peer, PeerConfig, PeerFactory, RemoteTrack};
use usermedia::server::Publisher;
use usermedia::{MediaFrame, MediaKind};
use usermedia_signaling::{router, ServerConfig};

fn factory(max: usize) -> PeerFactory {
    PeerFactory::new(PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().unwrap()],
        max_peers: max,
        ..PeerConfig::default()
    })
}

/// A server publishing the pattern camera and the tone as `default`.
async fn server(config: ServerConfig, max_viewers: usize) -> (SocketAddr, Arc<Publisher>) {
    server_sending(config, max_viewers, None).await
}

/// [`server`] sending video only in `video_codec` (`None`: what each viewer offers first).
async fn server_sending(
    config: ServerConfig,
    max_viewers: usize,
    video_codec: Option<VideoCodec>,
) -> (SocketAddr, Arc<Publisher>) {
    let devices = Arc::new(MediaDevices::builtin_virtual(PermissionPolicy::granted()));
    let stream = devices
        .get_user_media_json(r#"{"video": {"width": 640, "height": 480}, "audio": true}"#)
        .unwrap();
    let publisher = Arc::new(
        Publisher::new(factory(max_viewers))
            .with_devices(Arc::clone(&devices))
            .with_video_codec(video_codec),
    );
    publisher
        .publish("default", stream.get_tracks().to_vec(), 1_000_000)
        .unwrap();
    let app = router(Arc::clone(&publisher), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _keep = stream;
        axum::serve(listener, app).await.unwrap();
    });
    (addr, publisher)
}

/// A viewer's recvonly offer.
async fn viewer() -> (Peer, String) {
    let peer = factory(10).create().await.unwrap();
    peer.add_receiver(MediaKind::Video).await.unwrap();
    peer.add_receiver(MediaKind::Audio).await.unwrap();
    let offer = peer.create_offer().await.unwrap();
    (peer, offer)
}

/// The strip frame numbers of `video`'s frames decoded in the next `window`; every frame
/// must carry the strip.
async fn strip_numbers(video: RemoteTrack, window: Duration) -> Vec<u32> {
    tokio::task::spawn_blocking(move || {
        let rx = video.subscribe(64);
        let mut numbers = Vec::new();
        let end = Instant::now() + window;
        while Instant::now() < end {
            if let Ok(Some(MediaFrame::Video(f))) = rx.recv_timeout(Duration::from_millis(200)) {
                numbers.push(read_strip(&f).expect("strip").frame_number);
            }
        }
        numbers
    })
    .await
    .unwrap()
}

/// `GET /status`, parsed.
async fn server_status(addr: SocketAddr) -> serde_json::Value {
    serde_json::from_str(&get(addr, "/status").await.body).unwrap()
}

/// `GET /status` with the operator's token (a server with tokens: issue 11), parsed.
async fn server_status_as(addr: SocketAddr, token: &str) -> serde_json::Value {
    let r = common::http::authorized(addr, "GET", "/status", &[], Some(token), "").await;
    serde_json::from_str(&r.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_round_trip_decodes_frames_and_delete_frees_the_session() {
    let _serial = exclusive().await;
    let (addr, publisher) = server(ServerConfig::default(), 10).await;
    let (peer, offer) = viewer().await;
    let r = post_offer(addr, "/whep/default", None, offer.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("application/sdp")
    );
    let location = r.headers.get("location").cloned().expect("Location");
    assert!(location.starts_with("/whep/default/"), "{location}");
    assert!(r.headers.contains_key("etag"));
    assert_eq!(
        r.headers
            .get("access-control-allow-origin")
            .map(String::as_str),
        Some("*")
    );
    peer.accept_answer(&r.body).await.unwrap();
    peer.wait_connected(Duration::from_secs(10)).await.unwrap();
    let mut video = None;
    for _ in 0..2 {
        let t = peer
            .next_remote_track(Duration::from_secs(10))
            .await
            .expect("remote track");
        if t.kind() == MediaKind::Video {
            video = Some(t);
        }
    }
    let video = video.expect("a video track");
    let frames = strip_numbers(video, Duration::from_secs(2)).await;
    assert!(frames.len() >= 50, "decoded {} frames in 2 s", frames.len());

    let status = server_status(addr).await;
    assert_eq!(status["streams"][0]["viewers"], 1, "{status}");
    assert_eq!(
        status["peers"][0]["stats"]["state"], "connected",
        "{status}"
    );
    assert!(
        status["devicesInUse"].as_array().unwrap().len() == 2,
        "{status}"
    );

    assert_eq!(delete(addr, &location, None).await.status, 200);
    assert_eq!(publisher.session_count(), 0);
    assert_eq!(
        delete(addr, &location, None).await.status,
        404,
        "DELETE twice"
    );
    peer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_status_for_its_bad_input() {
    let _serial = exclusive().await;
    let config = ServerConfig {
        token: Some("s3cret".into()),
        token_for_viewing: false,
        ..ServerConfig::default()
    };
    let (addr, publisher) = server(config, 1).await;
    let (_peer, offer) = viewer().await;
    let offer = offer.as_bytes();

    let big = vec![b'a'; 70 * 1024];
    assert_eq!(
        post_offer(addr, "/whep/default", None, &big).await.status,
        413,
        "oversized body"
    );
    let r = http(
        addr,
        "POST",
        "/whep/default",
        &[("Content-Type", "text/plain")],
        offer,
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.body);
    let r = post_offer(addr, "/whep/default", None, b"this is not sdp").await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("malformed SDP") && r.body.contains("line 1"),
        "{}",
        r.body
    );
    assert_eq!(
        post_offer(addr, "/whep/nope", None, offer).await.status,
        404,
        "unknown stream"
    );
    // Publishing needs the token.
    let r = post_offer(addr, "/whip/default", None, offer).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.headers.get("www-authenticate").map(String::as_str),
        Some("Bearer")
    );
    let r = post_offer(addr, "/whip/default", Some("wrong"), offer).await;
    assert_eq!(r.status, 401);
    let r = post_offer(addr, "/whip/default", Some("s3cret"), offer).await;
    assert_eq!(r.status, 409, "the stream is already published: {}", r.body);
    // Trickle and sessions.
    let r = http(
        addr,
        "PATCH",
        "/whep/default/none",
        &[("Content-Type", "text/plain")],
        b"a=x",
    )
    .await;
    assert_eq!(r.status, 415);
    assert_eq!(
        patch_fragment(addr, "/whep/default/none", None, "a=mid:0\r\n")
            .await
            .status,
        404
    );
    assert_eq!(
        patch_fragment(
            addr,
            "/whep/default/none",
            Some("*"),
            "a=ice-ufrag:x\r\na=ice-pwd:yyyyyyyyyyyyyyyyyyyyyy\r\n"
        )
        .await
        .status,
        404,
        "an ICE restart of an unknown session"
    );
    assert_eq!(delete(addr, "/whep/default/none", None).await.status, 404);
    let r = http(addr, "OPTIONS", "/whep/default", &[], b"").await;
    assert_eq!(r.status, 204);
    assert!(r
        .headers
        .get("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));
    // At capacity (one viewer): 503 with Retry-After, and the first viewer is unaffected.
    let first = post_offer(addr, "/whep/default", None, offer).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let (_second, offer2) = viewer().await;
    let r = post_offer(addr, "/whep/default", None, offer2.as_bytes()).await;
    assert_eq!(r.status, 503);
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(publisher.session_count(), 1);
    // The viewer page.
    let r = get(addr, "/").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("RTCPeerConnection") && r.body.contains("/whep/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewing_can_require_the_token() {
    let _serial = exclusive().await;
    let config = ServerConfig {
        token: Some("t".into()),
        token_for_viewing: true,
        ..ServerConfig::default()
    };
    let (addr, _publisher) = server(config, 5).await;
    let (peer, offer) = viewer().await;
    assert_eq!(
        post_offer(addr, "/whep/default", None, offer.as_bytes())
            .await
            .status,
        401
    );
    let r = post_offer(addr, "/whep/default", Some("t"), offer.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let location = r.headers.get("location").cloned().unwrap();
    assert_eq!(
        delete(addr, &location, None).await.status,
        401,
        "ending needs the token too"
    );
    assert_eq!(delete(addr, &location, Some("t")).await.status, 200);
    peer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_ingest_is_relayed_to_whep_viewers() {
    let _serial = exclusive().await;
    let config = ServerConfig {
        token: Some("pub".into()),
        ..ServerConfig::default()
    };
    let (addr, publisher) = server(config, 10).await;
    // A publisher: our own pattern camera, sent through WHIP.
    let encoded = camera_encoder((640, 480));
    let sender = factory(10).create().await.unwrap();
    sender.add_track(&encoded).await.unwrap();
    let offer = sender.create_offer().await.unwrap();
    let r = post_offer(addr, "/whip/relay", Some("pub"), offer.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let location = r.headers.get("location").cloned().unwrap();
    assert!(location.starts_with("/whip/relay/"));
    sender.accept_answer(&r.body).await.unwrap();
    sender
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    // A second publisher of the same stream is refused.
    let (_other, offer2) = viewer().await;
    assert_eq!(
        post_offer(addr, "/whip/relay", Some("pub"), offer2.as_bytes())
            .await
            .status,
        409
    );

    // A viewer of the relayed stream (503 + Retry-After until its media has arrived).
    let (peer, offer) = viewer().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = post_offer(addr, "/whep/relay", None, offer.as_bytes()).await;
        if r.status != 503 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(r.status, 201, "{}", r.body);
    peer.accept_answer(&r.body).await.unwrap();
    peer.wait_connected(Duration::from_secs(10)).await.unwrap();
    let video = peer
        .next_remote_track(Duration::from_secs(10))
        .await
        .expect("relayed track");
    assert_eq!(video.kind(), MediaKind::Video);
    let numbers = track_frame_numbers(&video, Duration::from_secs(2)).await;
    assert!(
        numbers.len() >= 30,
        "relayed frames decoded: {}",
        numbers.len()
    );
    assert!(
        numbers.windows(2).all(|w| w[1] > w[0]),
        "the publisher's frames, in order"
    );

    let status = server_status_as(addr, "pub").await;
    let relay = status["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "relay")
        .cloned()
        .unwrap();
    assert_eq!(relay["ingested"], true);
    assert_eq!(relay["viewers"], 1);
    // What arrives from the publisher, per track, with its receive-side counters.
    let received = relay["received"].as_array().unwrap();
    let video = received.iter().find(|r| r["kind"] == "video").unwrap();
    assert!(
        video["mimeType"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("video/H264"),
        "{video}"
    );
    assert!(
        video["stats"]["framesDecoded"].as_u64().unwrap() >= 30,
        "{video}"
    );
    assert!(
        video["stats"]["bytesReceived"].as_u64().unwrap() > 10_000,
        "{video}"
    );
    // Ending the publisher's session leaves the stream vacant: viewers are told to retry
    // (503 + Retry-After) until a new publisher arrives.
    assert_eq!(delete(addr, &location, Some("pub")).await.status, 200);
    let r = post_offer(addr, "/whep/relay", None, offer.as_bytes()).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));
    peer.close().await;
    sender.close().await;
    let _ = publisher;
}

/// Views `url` with the library's WHEP client, retrying while the stream has no media yet.
async fn view(url: &str) -> usermedia::client::RemoteSession {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match usermedia::client::view_whep(&factory(10), url, None).await {
            Ok(s) => return s,
            // 404 until the publisher has posted, 503 until its media arrives.
            Err(usermedia::client::SessionError::Http(
                usermedia_signaling::ClientError::Status {
                    status: 404 | 503, ..
                },
            )) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("view {url}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_whip_and_whep_clients() {
    use usermedia::client::{publish_whip, view_whep, SessionError};
    use usermedia::encode::pipeline::{CodecConfig, EncodedTrack};
    use usermedia_signaling::ClientError;
    let _serial = exclusive().await;
    let config = ServerConfig {
        token: Some("pub".into()),
        ..ServerConfig::default()
    };
    let (addr, _publisher) = server(config, 10).await;
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let camera = devices
        .get_user_media_json(r#"{"video": {"width": 640, "height": 480}}"#)
        .unwrap()
        .get_video_tracks()
        .remove(0);
    let encoded = EncodedTrack::start(&camera, CodecConfig::H264 { bitrate: 1_000_000 }).unwrap();
    let whip = format!("http://{addr}/whip/cam");

    // Errors carry the status and the server's message.
    match publish_whip(
        &factory(10),
        &whip,
        Some("nope"),
        std::slice::from_ref(&encoded),
    )
    .await
    {
        Err(SessionError::Http(ClientError::Status {
            status: 401,
            message,
            ..
        })) => assert!(message.contains("token"), "{message}"),
        other => panic!("expected 401, got {:?}", other.err()),
    }
    match view_whep(&factory(10), &format!("http://{addr}/whep/absent"), None).await {
        Err(SessionError::Http(ClientError::Status { status: 404, .. })) => {}
        other => panic!("expected 404, got {:?}", other.err()),
    }
    match view_whep(&factory(10), "ftp://example.invalid/whep/x", None).await {
        Err(SessionError::Http(ClientError::BadUrl(..))) => {}
        other => panic!("expected BadUrl, got {:?}", other.err()),
    }

    let publication = publish_whip(&factory(10), &whip, Some("pub"), &[encoded])
        .await
        .unwrap();
    assert!(publication
        .http
        .location
        .starts_with(&format!("http://{addr}/whip/cam/")));
    publication
        .peer
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    let viewing = view(&format!("http://{addr}/whep/cam")).await;
    let n = frame_numbers(&viewing, Duration::from_secs(2)).await.len();
    assert!(n >= 30, "decoded {n} relayed frames in 2 s");
    viewing.end().await.unwrap();
    publication.end().await.unwrap();
    match view_whep(&factory(10), &format!("http://{addr}/whep/cam"), None).await {
        // Vacant: retry until a new publisher arrives.
        Err(SessionError::Http(ClientError::Status { status: 503, .. })) => {}
        other => panic!("the stream's publisher left; got {:?}", other.err()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publish_command_feeds_a_viewer() {
    let _serial = exclusive().await;
    let config = ServerConfig {
        token: Some("pub".into()),
        ..ServerConfig::default()
    };
    let (addr, _publisher) = server(config, 10).await;
    let builtin = common::example("builtin.json");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_usermedia"))
        .args([
            "publish",
            "--whip",
            &format!("http://{addr}/whip/cli"),
            "--token",
            "pub",
            "--devices",
            builtin.to_str().unwrap(),
            "--constraints",
            r#"{"video": {"width": 640, "height": 480}}"#,
            "--ice-addr",
            "127.0.0.1",
            "--seconds",
            "5",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let viewing = view(&format!("http://{addr}/whep/cli")).await;
    let n = frame_numbers(&viewing, Duration::from_secs(2)).await.len();
    assert!(n >= 30, "decoded {n} frames from the publish command");
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    let printed: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert!(
        printed["stats"]["framesSent"].as_u64().unwrap() > 100,
        "{printed}"
    );
    // It ended its session on the way out: the stream is vacant (retry later).
    let r = post_offer(addr, "/whep/cli", None, viewer().await.1.as_bytes()).await;
    assert_eq!(r.status, 503);
    viewing.peer.close().await;
}

fn camera_encoder(size: (u32, u32)) -> usermedia::encode::pipeline::EncodedTrack {
    use usermedia::encode::pipeline::{CodecConfig, EncodedTrack};
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let camera = devices
        .get_user_media_json(&format!(
            r#"{{"video": {{"width": {{"exact": {}}}, "height": {{"exact": {}}}}}}}"#,
            size.0, size.1
        ))
        .unwrap()
        .get_video_tracks()
        .remove(0);
    EncodedTrack::start(&camera, CodecConfig::H264 { bitrate: 800_000 }).unwrap()
}

/// The size of the first few decoded frames of the next remote video track.
async fn received_size(bot: &mut usermedia::client::CallBot) -> (u32, u32, usize) {
    let track = bot
        .next_remote_track(Duration::from_secs(15))
        .await
        .expect("a remote track");
    tokio::task::spawn_blocking(move || {
        let rx = track.subscribe(32);
        let mut n = 0;
        let mut size = (0, 0);
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            if let Ok(Some(MediaFrame::Video(f))) = rx.recv_timeout(Duration::from_millis(200)) {
                size = (f.width(), f.height());
                n += 1;
            }
        }
        (size.0, size.1, n)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bots_in_a_room_exchange_media_both_ways() {
    use usermedia::client::join_room;
    let _serial = exclusive().await;
    let (addr, _publisher) = server(ServerConfig::default(), 10).await;
    let url = format!("ws://{addr}/ws?room=r1");
    let mut a = join_room(&url, factory(10), vec![camera_encoder((640, 480)).into()])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut b = join_room(&url, factory(10), vec![camera_encoder((320, 240)).into()])
        .await
        .unwrap();
    let (from_b, from_a) = tokio::join!(received_size(&mut a), received_size(&mut b));
    assert_eq!((from_b.0, from_b.1), (320, 240), "A sees B");
    assert_eq!((from_a.0, from_a.1), (640, 480), "B sees A");
    assert!(from_b.2 >= 20 && from_a.2 >= 20, "{from_b:?} {from_a:?}");
    a.leave();
    b.leave();
}

/// The next JSON message on a room socket.
async fn next<S>(s: &mut S) -> serde_json::Value
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    match tokio::time::timeout(Duration::from_secs(5), s.next()).await {
        Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
            serde_json::from_str(&t).unwrap()
        }
        other => panic!("no message: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_protocol_reports_bad_input() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let _serial = exclusive().await;
    let (addr, _publisher) = server(ServerConfig::default(), 10).await;
    let url = format!("ws://{addr}/ws?room=proto");
    let (mut one, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    one.send(Message::text("not json")).await.unwrap();
    assert_eq!(next(&mut one).await["type"], "error");
    one.send(Message::text(r#"{"type":"join"}"#)).await.unwrap();
    let peers = next(&mut one).await;
    assert_eq!(peers["type"], "peers");
    assert_eq!(peers["peers"], serde_json::json!([]));
    let me = peers["you"].as_str().unwrap().to_owned();
    one.send(Message::text(r#"{"type":"offer","sdp":"v=0"}"#))
        .await
        .unwrap();
    assert!(next(&mut one).await["message"]
        .as_str()
        .unwrap()
        .contains("\"to\""));
    one.send(Message::text(
        r#"{"type":"offer","to":"nobody","sdp":"v=0"}"#,
    ))
    .await
    .unwrap();
    assert!(next(&mut one).await["message"]
        .as_str()
        .unwrap()
        .contains("nobody"));
    // A second participant: the first hears of it, then of its leaving.
    let (mut two, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    two.send(Message::text(r#"{"type":"join"}"#)).await.unwrap();
    let seen = next(&mut two).await;
    assert_eq!(seen["peers"], serde_json::json!([me]));
    assert_eq!(next(&mut one).await["type"], "join");
    two.send(Message::text(r#"{"type":"leave"}"#))
        .await
        .unwrap();
    assert_eq!(next(&mut one).await["type"], "leave");
    // The call page is served.
    let r = get(addr, "/call").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("/ws?room="));
}

/// A viewer's recvonly offer naming its video codecs, most preferred first.
async fn viewer_of(codecs: &[VideoCodec]) -> (Peer, String) {
    let peer = factory(10).create().await.unwrap();
    peer.add_video_receiver(codecs).await.unwrap();
    peer.add_receiver(MediaKind::Audio).await.unwrap();
    let offer = peer.create_offer().await.unwrap();
    assert_eq!(usermedia::peer::video_codecs(&offer), codecs, "{offer}");
    (peer, offer)
}

/// Posts a viewer's offer; returns the answer's video codecs and the codec of the video
/// that arrives, after checking it decodes to the pattern.
async fn watch_codec(addr: SocketAddr, peer: &Peer, offer: &str) -> (Vec<VideoCodec>, VideoCodec) {
    let r = post_offer(addr, "/whep/default", None, offer.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let listed = usermedia::peer::video_codecs(&r.body);
    peer.accept_answer(&r.body).await.unwrap();
    peer.wait_connected(Duration::from_secs(10)).await.unwrap();
    let video = loop {
        let t = peer
            .next_remote_track(Duration::from_secs(10))
            .await
            .expect("remote track");
        if t.kind() == MediaKind::Video {
            break t;
        }
    };
    let codec = video.video_codec().expect("a video codec");
    let numbers = strip_numbers(video, Duration::from_millis(1500)).await;
    assert!(numbers.len() >= 30, "{codec}: decoded {numbers:?}");
    (listed, codec)
}

/// The video encoders `/status` reports for the stream: (codec, sinks) in start order.
async fn video_encoders(addr: SocketAddr) -> Vec<(String, u64)> {
    let status = server_status(addr).await;
    let tracks = status["streams"][0]["tracks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let video = tracks
        .iter()
        .find(|t| t["kind"] == "video")
        .unwrap_or_else(|| panic!("no video track: {status}"));
    video["encoders"]
        .as_array()
        .unwrap_or_else(|| panic!("no encoders: {status}"))
        .iter()
        .map(|e| {
            (
                e["codec"].as_str().unwrap_or_default().to_owned(),
                e["sinks"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_viewers_get_the_first_codec_of_their_offer() {
    let _serial = exclusive().await;
    let (addr, _publisher) = server(ServerConfig::default(), 10).await;
    assert!(
        video_encoders(addr).await.is_empty(),
        "no encoder before a viewer"
    );
    // A browser without H.264 (Debian's Firefox) offers VP8 only.
    let (vp8_only, offer) = viewer_of(&[VideoCodec::Vp8]).await;
    let (listed, got) = watch_codec(addr, &vp8_only, &offer).await;
    assert_eq!((listed, got), (vec![VideoCodec::Vp8], VideoCodec::Vp8));
    // Both, in the viewer's order: the first wins, and our answer lists it first.
    let (both, offer) = viewer_of(&[VideoCodec::Vp8, VideoCodec::H264]).await;
    let (listed, got) = watch_codec(addr, &both, &offer).await;
    assert_eq!(got, VideoCodec::Vp8);
    assert_eq!(listed[0], VideoCodec::Vp8, "{listed:?}");
    let (h264_first, offer) = viewer_of(&[VideoCodec::H264, VideoCodec::Vp8]).await;
    let (listed, got) = watch_codec(addr, &h264_first, &offer).await;
    assert_eq!(got, VideoCodec::H264);
    assert_eq!(listed[0], VideoCodec::H264, "{listed:?}");
    for p in [vp8_only, both, h264_first] {
        p.close().await;
    }

    // A server limited to H.264 refuses a VP8-only offer, naming both sides' codecs.
    let (addr, _publisher) =
        server_sending(ServerConfig::default(), 10, Some(VideoCodec::H264)).await;
    let (peer, offer) = viewer_of(&[VideoCodec::Vp8]).await;
    let r = post_offer(addr, "/whep/default", None, offer.as_bytes()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("vp8") && r.body.contains("h264"),
        "{}",
        r.body
    );
    let (listed, got) = {
        let (peer, offer) = viewer_of(&[VideoCodec::Vp8, VideoCodec::H264]).await;
        let out = watch_codec(addr, &peer, &offer).await;
        peer.close().await;
        out
    };
    assert_eq!((listed, got), (vec![VideoCodec::H264], VideoCodec::H264));
    peer.close().await;
}

/// Encode once per (track, codec): viewers of one codec share its encoder, a viewer of
/// another codec starts a second one, and no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_encoder_per_codec_in_use() {
    let _serial = exclusive().await;
    let (addr, _publisher) = server(ServerConfig::default(), 10).await;
    let mut viewers = Vec::new();
    for _ in 0..2 {
        let (peer, offer) = viewer_of(&[VideoCodec::Vp8]).await;
        assert_eq!(watch_codec(addr, &peer, &offer).await.1, VideoCodec::Vp8);
        viewers.push(peer);
    }
    assert_eq!(video_encoders(addr).await, [("vp8".to_owned(), 2)]);
    let (peer, offer) = viewer_of(&[VideoCodec::H264]).await;
    assert_eq!(watch_codec(addr, &peer, &offer).await.1, VideoCodec::H264);
    viewers.push(peer);
    assert_eq!(
        video_encoders(addr).await,
        [("vp8".to_owned(), 2), ("h264".to_owned(), 1)]
    );
    // Each is listed with its bitrate tier: viewers starting at a 1 Mbit/s estimate are on
    // the top rung of the 1 Mbit/s ladder.
    let status = server_status(addr).await;
    let video = status["streams"][0]["tracks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["kind"] == "video"))
        .cloned()
        .unwrap_or_default();
    for e in video["encoders"].as_array().into_iter().flatten() {
        assert_eq!(e["tier"], 0, "{e}");
        assert_eq!(e["maxBitrate"], 1_000_000, "{e}");
        assert!(e["bitrate"].as_u64().unwrap_or(0) > 0, "{e}");
    }
    for p in viewers {
        p.close().await;
    }
}

/// The encoders `/status` reports for stream `name`'s track of `kind`: (codec, passthrough,
/// sinks, framesEncoded) in start order.
async fn stream_encoders(
    addr: SocketAddr,
    name: &str,
    kind: &str,
) -> Vec<(String, bool, u64, u64)> {
    let status = server_status(addr).await;
    let stream = status["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no stream {name}: {status}"));
    let track = stream["tracks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["kind"] == kind).cloned())
        .unwrap_or_else(|| panic!("no {kind} track: {status}"));
    track["encoders"]
        .as_array()
        .unwrap_or_else(|| panic!("no encoders: {status}"))
        .iter()
        .map(|e| {
            (
                e["codec"].as_str().unwrap_or_default().to_owned(),
                e["passthrough"].as_bool().unwrap_or_default(),
                e["sinks"].as_u64().unwrap_or_default(),
                e["framesEncoded"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// Connects a viewer of `codecs` to `/whep/{stream}` (retrying while its media has not
/// arrived) and returns its video track.
async fn view_relay(addr: SocketAddr, stream: &str, codecs: &[VideoCodec]) -> (Peer, RemoteTrack) {
    let (peer, offer) = viewer_of(codecs).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = post_offer(addr, &format!("/whep/{stream}"), None, offer.as_bytes()).await;
        if r.status != 503 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(r.status, 201, "{}", r.body);
    peer.accept_answer(&r.body).await.unwrap();
    peer.wait_connected(Duration::from_secs(10)).await.unwrap();
    let video = loop {
        let t = peer
            .next_remote_track(Duration::from_secs(10))
            .await
            .expect("remote track");
        if t.kind() == MediaKind::Video {
            break t;
        }
    };
    (peer, video)
}

/// An H.264 WHIP publisher's units reach its H.264 viewers as they came (a passthrough:
/// nothing decoded or encoded for them), a VP8-only viewer gets it transcoded beside, and a
/// viewer joining mid-stream gets a keyframe at once through a PLI to the publisher (its
/// own keyframes are 5 s apart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_ingest_is_forwarded_to_its_codec_and_transcoded_for_others() {
    use usermedia::encode::pipeline::{CodecConfig, EncodedTrack};
    let _serial = exclusive().await;
    let (addr, _publisher) = server(ServerConfig::default(), 10).await;
    let video = camera_encoder((640, 480));
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let tone = devices
        .get_user_media_json(r#"{"audio": true}"#)
        .unwrap()
        .get_audio_tracks()
        .remove(0);
    let audio = EncodedTrack::start(&tone, CodecConfig::Opus { bitrate: 32_000 }).unwrap();
    let sender = factory(10).create().await.unwrap();
    sender.add_track(&video).await.unwrap();
    sender.add_track(&audio).await.unwrap();
    let offer = sender.create_offer().await.unwrap();
    let r = post_offer(addr, "/whip/fwd", None, offer.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    sender.accept_answer(&r.body).await.unwrap();
    sender
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();

    // An H.264 viewer: the publisher's frames, in order, through the passthrough only.
    let (h264_viewer, track) = view_relay(addr, "fwd", &[VideoCodec::H264]).await;
    assert_eq!(track.video_codec(), Some(VideoCodec::H264));
    let numbers = track_frame_numbers(&track, Duration::from_secs(2)).await;
    assert!(numbers.len() >= 30, "forwarded frames decoded: {numbers:?}");
    assert!(
        numbers.windows(2).all(|w| w[1] > w[0]),
        "the publisher's frames, in order: {numbers:?}"
    );
    let encoders = stream_encoders(addr, "fwd", "video").await;
    assert_eq!(
        encoders.len(),
        1,
        "no transcoder for an H.264 viewer: {encoders:?}"
    );
    let (codec, passthrough, sinks, forwarded) = encoders[0].clone();
    assert_eq!((codec.as_str(), passthrough, sinks), ("h264", true, 1));
    assert!(
        forwarded >= 30,
        "the passthrough carried the frames: {forwarded}"
    );
    let audio_encoders = stream_encoders(addr, "fwd", "audio").await;
    assert!(
        matches!(audio_encoders.as_slice(), [(c, true, _, _)] if c == "opus"),
        "Opus is forwarded too: {audio_encoders:?}"
    );
    let requests = sender.stats().await.keyframe_requests_received;
    assert!(
        requests >= 1,
        "a new viewer's keyframe comes from the publisher"
    );

    // A VP8-only viewer of the H.264 stream: transcoded, beside the passthrough.
    let (vp8_viewer, track) = view_relay(addr, "fwd", &[VideoCodec::Vp8]).await;
    assert_eq!(track.video_codec(), Some(VideoCodec::Vp8));
    let numbers = strip_numbers(track, Duration::from_millis(1500)).await;
    assert!(
        numbers.len() >= 20,
        "transcoded frames decoded: {numbers:?}"
    );
    let encoders = stream_encoders(addr, "fwd", "video").await;
    assert!(
        matches!(encoders.as_slice(),
            [(h, true, 1, _), (v, false, 1, n)] if h == "h264" && v == "vp8" && *n > 0),
        "{encoders:?}"
    );

    // A viewer joining mid-stream decodes within a second: a PLI reached the publisher.
    let before = sender.stats().await.keyframe_requests_received;
    let joined = Instant::now();
    let (late_viewer, track) = view_relay(addr, "fwd", &[VideoCodec::H264]).await;
    let rx = track.subscribe(64);
    let first = tokio::task::spawn_blocking(move || {
        matches!(
            rx.recv_timeout(Duration::from_secs(3)),
            Ok(Some(MediaFrame::Video(_)))
        )
    })
    .await
    .unwrap();
    let waited = joined.elapsed();
    assert!(first, "the late viewer decoded nothing");
    assert!(
        waited < Duration::from_millis(1500),
        "first frame {waited:?} after joining (connecting included)"
    );
    assert!(sender.stats().await.keyframe_requests_received > before);
    for p in [h264_viewer, vp8_viewer, late_viewer] {
        p.close().await;
    }
    sender.close().await;
}

/// The serve command with its default bitrates: a fresh viewer on loopback lands on the top
/// tier's encoder (congestion control starts at the top rung), not on a second encoder of
/// a lower tier that it would leave again seconds later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_command_starts_a_viewer_on_the_top_tier() {
    let _serial = exclusive().await;
    let (mut child, addr) =
        common::spawn_serve(r#"{"video": {"width": 640, "height": 480}}"#).await;
    let viewing = view(&format!("http://{addr}/whep/default")).await;
    let n = frame_numbers(&viewing, Duration::from_secs(2)).await.len();
    assert!(n >= 20, "decoded {n} frames");
    let status = server_status(addr).await;
    let video = status["streams"][0]["tracks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["kind"] == "video"))
        .cloned()
        .unwrap_or_else(|| panic!("no video track: {status}"));
    let encoders = video["encoders"].as_array().cloned().unwrap_or_default();
    assert_eq!(encoders.len(), 1, "one encoder: {video}");
    assert_eq!(encoders[0]["tier"], 0, "the top tier: {video}");
    assert_eq!(encoders[0]["sinks"], 1, "{video}");
    viewing.peer.close().await;
    child.kill().await.unwrap();
}

/// --min-video-bitrate above --video-bitrate, or a tier above it, is refused before
/// anything is captured, naming the flag.
#[test]
fn serve_refuses_contradictory_bitrate_flags() {
    for extra in [
        ["--min-video-bitrate", "2000000"],
        ["--video-tiers", "3000000,500000"],
    ] {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--video-bitrate",
            "1000000",
        ];
        args.extend(extra);
        let out = common::usermedia(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(extra[0]), "{args:?}: {stderr}");
    }
}
