//! Device timelines against the `serve` binary on loopback (issue 15): a devices file
//! mutes the camera (its viewer keeps its session and sees black, then the pattern again),
//! unplugs it (the viewer's session ends; new viewers get 503 with Retry-After, not 404)
//! and replugs it (the stream is published again and a new viewer decodes frames).

mod common;

use common::{session_video, spawn_serve_with, temp_file};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use usermedia::client::{view_whep, RemoteSession};
use usermedia::devices::pattern::read_strip;
use usermedia::peer::{PeerConfig, PeerFactory, PeerState, RemoteTrack};
use usermedia::{MediaFrame, MediaKind};

/// The script, in seconds after `serve` loaded its devices file.
const MUTE_S: f64 = 4.0;
const UNMUTE_S: f64 = 5.0;
const UNPLUG_S: f64 = 6.0;
const REPLUG_S: f64 = 8.0;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Peers of this test process: on loopback, noticing a gone server in seconds.
fn client_factory() -> PeerFactory {
    PeerFactory::new(PeerConfig {
        ice_addrs: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        ice_disconnected_timeout: Duration::from_secs(2),
        ice_failed_timeout: Duration::from_secs(1),
        ..PeerConfig::default()
    })
}

/// A WHEP viewer of `url`, retried while the server refuses (503: no media yet, or the
/// device unplugged) for up to `patience`.
async fn viewer(url: &str, patience: Duration) -> RemoteSession {
    let deadline = Instant::now() + patience;
    loop {
        match view_whep(&client_factory(), url, None).await {
            Ok(session) => return session,
            Err(e) if Instant::now() < deadline => {
                eprintln!("viewer of {url}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("viewer of {url}: {e}"),
        }
    }
}

/// A WHEP offer (video and audio, receive only) from a library peer on loopback.
async fn offer() -> String {
    let peer = client_factory().create().await.unwrap();
    peer.add_receiver(MediaKind::Video).await.unwrap();
    peer.add_receiver(MediaKind::Audio).await.unwrap();
    let sdp = peer.create_offer().await.unwrap();
    peer.close().await;
    sdp
}

/// The viewer sessions of stream `stream` that `/status` lists.
async fn viewers_of(addr: SocketAddr, stream: &str) -> usize {
    let status: serde_json::Value =
        serde_json::from_str(&common::http::get(addr, "/status").await.body).unwrap();
    status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"] == "viewer" && p["stream"] == stream)
        .count()
}

/// For `window`: (frames decoded, of which black — mean luma under 24 — and of which
/// carrying the pattern's strip).
async fn black_and_pattern(video: &RemoteTrack, window: Duration) -> (usize, usize, usize) {
    let rx = video.subscribe(64);
    tokio::task::spawn_blocking(move || {
        let end = Instant::now() + window;
        let (mut frames, mut black, mut pattern) = (0, 0, 0);
        while Instant::now() < end {
            if let Ok(Some(MediaFrame::Video(f))) = rx.recv_timeout(Duration::from_millis(100)) {
                frames += 1;
                let y = f.y();
                let mean = y.iter().map(|&v| u64::from(v)).sum::<u64>() / y.len().max(1) as u64;
                if mean < 24 {
                    black += 1;
                } else if read_strip(&f).is_some() {
                    pattern += 1;
                }
            }
        }
        (frames, black, pattern)
    })
    .await
    .unwrap()
}

/// Sleeps until `at` after `started`.
async fn until(started: Instant, at: Duration) {
    tokio::time::sleep_until((started + at).into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_goes_black_unplug_ends_viewers_and_replug_publishes_again() {
    let devices = temp_file(
        &format!(
            r#"{{ "devices": [
              {{ "kind": "videoinput", "deviceId": "back", "source": "pattern",
                 "modes": [ {{"width": 320, "height": 240, "frameRate": 30}} ] }},
              {{ "kind": "audioinput", "deviceId": "mic", "source": "tone",
                 "modes": [ {{"sampleRate": 48000, "channelCount": 1}} ] }} ],
              "events": [ {{"at_s": {MUTE_S}, "device": "back", "do": "mute"}},
                          {{"at_s": {UNMUTE_S}, "device": "back", "do": "unmute"}},
                          {{"at_s": {UNPLUG_S}, "device": "back", "do": "unplug"}},
                          {{"at_s": {REPLUG_S}, "device": "back", "do": "replug"}} ] }}"#
        ),
        ".json",
    );
    let started = Instant::now();
    let (_serve, addr) =
        spawn_serve_with(devices.path(), r#"{"video": true, "audio": true}"#, &[]).await;
    let url = format!("http://{addr}/whep/default");

    let first = viewer(&url, Duration::from_secs(10)).await;
    let video = session_video(&first).await;
    let (frames, black, pattern) = black_and_pattern(&video, Duration::from_millis(500)).await;
    eprintln!("viewing {:.1?} after serve started", started.elapsed());
    assert!(
        started.elapsed() < secs(MUTE_S),
        "the test was too slow to view the stream before the script began"
    );
    assert!(
        pattern > 5 && black == 0,
        "before the mute: {frames} frames, {pattern} of the pattern, {black} black"
    );

    // Muted from 4 s to 5 s: the session stays, the frames are black.
    until(started, secs(MUTE_S + 0.3)).await;
    let (frames, black, pattern) = black_and_pattern(&video, Duration::from_millis(500)).await;
    assert!(
        black > 5 && pattern == 0,
        "muted: {frames} frames, {black} black, {pattern} of the pattern"
    );
    assert_eq!(
        viewers_of(addr, "default").await,
        1,
        "a mute keeps the session"
    );
    until(started, secs(UNMUTE_S + 0.3)).await;
    let (frames, black, pattern) = black_and_pattern(&video, Duration::from_millis(500)).await;
    assert!(
        pattern > 5,
        "unmuted: {frames} frames, {pattern} of the pattern, {black} black"
    );

    // Unplugged at 6 s: the viewer's session ends.
    while viewers_of(addr, "default").await > 0 {
        assert!(
            started.elapsed() < secs(UNPLUG_S + 3.0),
            "the unplugged camera's viewer still has its session"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ended_after = started.elapsed();
    assert!(
        ended_after >= secs(UNPLUG_S),
        "ended {ended_after:?}, before the unplug"
    );
    // Until the replug, a new viewer is told to retry: 503 with Retry-After, not 404.
    let refused = common::http::post_offer(addr, "/whep/default", None, offer().await).await;
    assert!(
        started.elapsed() < secs(REPLUG_S),
        "the test was too slow to ask while unplugged"
    );
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.headers.contains_key("retry-after"),
        "{:?}",
        refused.headers
    );

    // ... and the first viewer's peer is told: its connection closes or fails.
    while !matches!(first.peer.state(), PeerState::Failed | PeerState::Closed) {
        assert!(
            started.elapsed() < secs(UNPLUG_S + 8.0),
            "the viewer is still {:?}",
            first.peer.state()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Replugged at 8 s: published again; a viewer who retries decodes the pattern.
    let second = viewer(&url, Duration::from_secs(10)).await;
    let admitted = started.elapsed();
    assert!(
        admitted >= secs(REPLUG_S),
        "admitted {admitted:?}, before the replug"
    );
    let video = session_video(&second).await;
    let (frames, _, pattern) = black_and_pattern(&video, Duration::from_secs(1)).await;
    assert!(
        pattern >= 15,
        "after the replug: {frames} frames, {pattern} of the pattern in 1 s"
    );
    eprintln!(
        "unplugged viewer's session ended {ended_after:.1?}, new viewer admitted {admitted:.1?} after serve started"
    );
    second.end().await.unwrap();
    first.peer.close().await;
}
