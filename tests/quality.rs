//! The receive analysis beyond `usermedia view`: `usermedia publish --whip` of the pattern
//! and the tone into a server, whose `/status` shows each ingested track's `quality` (read
//! from the strip) and whose viewers' remote tracks report the same analysis through
//! `RemoteTrack::quality()`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::exclusive;
use common::http::get;
use serde_json::Value;
use usermedia::analysis::{CountSource, MediaReport};
use usermedia::peer::{PeerConfig, PeerFactory};
use usermedia::server::Publisher;
use usermedia::MediaKind;
use usermedia_signaling::{router, ServerConfig};

fn factory() -> PeerFactory {
    PeerFactory::new(PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().unwrap()],
        ..PeerConfig::default()
    })
}

/// A server with nothing published (a WHIP target), on loopback.
async fn server() -> SocketAddr {
    let publisher = Arc::new(Publisher::new(factory()));
    let app = router(publisher, ServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// The stream's `received` entry of `kind` in `/status`, once it has one.
async fn received(addr: SocketAddr, stream: &str, kind: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: Value = serde_json::from_str(&get(addr, "/status").await.body).unwrap();
        let found = status["streams"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == stream))
            .and_then(|s| s["received"].as_array())
            .and_then(|r| r.iter().find(|r| r["kind"] == kind))
            .cloned();
        match found {
            Some(r) => return r,
            None if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            None => panic!("no received {kind} in /status: {status}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingested_tracks_and_remote_tracks_report_what_their_frames_carried() {
    let _serial = exclusive().await;
    let addr = server().await;
    let builtin = common::example("builtin.json");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_usermedia"))
        .args(["publish", "--whip", &format!("http://{addr}/whip/q")])
        .args(["--devices", builtin.to_str().unwrap()])
        .args([
            "--constraints",
            r#"{"video": {"width": 320, "height": 240}, "audio": true}"#,
        ])
        .args(["--ice-addr", "127.0.0.1", "--seconds", "8"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The library's viewer of the ingested stream, at the same time.
    let viewing = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match usermedia::client::view_whep(&factory(), &format!("http://{addr}/whep/q"), None)
                .await
            {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(e) => panic!("viewing: {e}"),
            }
        }
    };
    let video = common::session_video(&viewing).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // /status: the ingested video, read from the strip.
    let quality = &received(addr, "q", "video").await["quality"];
    eprintln!("/status received video quality: {quality}");
    assert_eq!(quality["kind"], "video", "{quality}");
    assert_eq!(quality["source"], "strip", "{quality}");
    assert!(quality["frames"].as_u64().unwrap() >= 60, "{quality}");
    assert_eq!(
        (quality["width"].as_u64(), quality["height"].as_u64()),
        (Some(320), Some(240))
    );
    let fps = quality["fps"].as_f64().unwrap();
    assert!((25.0..=35.0).contains(&fps), "{quality}");
    assert_eq!(quality["frames_skipped"], 0, "{quality}");
    assert_eq!(quality["frames_reordered"], 0, "{quality}");
    let p50 = quality["latency_ms"]["p50"].as_u64().unwrap();
    assert!(p50 < 100, "{quality}");
    assert!(quality["freezes"]["count"].is_u64(), "{quality}");
    let audio = &received(addr, "q", "audio").await["quality"];
    eprintln!("/status received audio quality: {audio}");
    assert!(audio["seconds"].as_f64().unwrap() > 2.0, "{audio}");
    assert!(audio["level"].as_f64().unwrap() > 0.1, "{audio}");

    // The library: the viewer's remote track, relayed from the publisher, strip intact.
    let report = video.quality();
    eprintln!(
        "RemoteTrack::quality(): {}",
        serde_json::to_string(&report).unwrap()
    );
    assert_eq!(report.kind, MediaKind::Video);
    assert_eq!(report.id, video.id());
    let MediaReport::Video(v) = report.media else {
        panic!("a video report: {report:?}")
    };
    assert_eq!(v.source, CountSource::Strip);
    assert!(v.frames >= 60, "{v:?}");
    assert_eq!(v.frames_with_strip, Some(v.frames), "{v:?}");
    assert_eq!(v.frames_skipped, Some(0), "{v:?}");
    assert_eq!((v.width, v.height), (Some(320), Some(240)));
    let latency = v.latency_ms.expect("latency from the strip");
    assert!(latency.p50 < 150, "{latency:?}");
    assert!(
        u64::from(latency.p50) + 20 >= p50,
        "a relay adds to the publisher's latency: {latency:?} vs {p50}"
    );

    viewing.peer.close().await;
    let _ = child.kill().await;
}
