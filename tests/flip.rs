//! Switching cameras mid-call over real UDP on loopback: `replace_track` on a published
//! track's encoders (every viewer follows) and on one peer's sender (only that peer), and
//! `POST /streams/{name}/flip` through the HTTP API. A receiving peer of ours keeps
//! decoding across the switch with no gap over 500 ms, on one SSRC, sees the new camera's
//! size, and its remote track never reports a facingMode.

mod common;

use common::exclusive;
use common::http::{http, post_offer};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::encode::pipeline::TrackEncoders;
use usermedia::encode::VideoCodec;
use usermedia::peer::{Peer, PeerConfig, PeerFactory, RemoteTrack};
use usermedia::server::Publisher;
use usermedia::{MediaFrame, MediaKind, MediaStreamTrack};
use usermedia_signaling::{router, ServerConfig, StreamToken};

/// A phone: a front camera at 640×480 facing the user, a back camera at 320×240 facing
/// the environment, a microphone.
const PHONE: &str = r#"{"devices": [
  {"kind": "videoinput", "deviceId": "front", "groupId": "phone", "label": "Front camera",
   "facingMode": "user", "source": "pattern",
   "modes": [{"width": 640, "height": 480, "frameRate": 30}]},
  {"kind": "videoinput", "deviceId": "back", "groupId": "phone", "label": "Back camera",
   "facingMode": "environment", "source": "pattern",
   "modes": [{"width": 320, "height": 240, "frameRate": 30}]},
  {"kind": "audioinput", "deviceId": "mic", "groupId": "phone", "label": "Microphone",
   "source": "tone",
   "modes": [{"sampleRate": 48000, "channelCount": 1, "sampleSize": 16, "latency": 0.01}]}
]}"#;

const FRONT: (u32, u32) = (640, 480);
const BACK: (u32, u32) = (320, 240);

fn phone() -> Arc<MediaDevices> {
    let file = common::temp_file(PHONE, ".json");
    Arc::new(MediaDevices::from_devices_file(file.path(), PermissionPolicy::granted()).unwrap())
}

fn camera(devices: &MediaDevices, id: &str) -> MediaStreamTrack {
    devices
        .get_user_media_json(&format!(
            r#"{{"video": {{"deviceId": {{"exact": "{id}"}}}}}}"#
        ))
        .unwrap()
        .get_video_tracks()
        .remove(0)
}

fn loopback() -> PeerFactory {
    PeerFactory::new(PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().unwrap()],
        ..PeerConfig::default()
    })
}

/// `a` sends `encoders` to a new peer `b`: both connected, `b`'s remote video.
async fn send_to_new_peer(
    factory: &PeerFactory,
    encoders: &TrackEncoders,
) -> (Peer, Peer, RemoteTrack) {
    let (a, b) = (
        factory.create().await.unwrap(),
        factory.create().await.unwrap(),
    );
    a.add_track(encoders).await.unwrap();
    let offer = a.create_offer().await.unwrap();
    let answer = b.answer(&offer).await.unwrap();
    a.accept_answer(&answer).await.unwrap();
    a.wait_connected(Duration::from_secs(10)).await.unwrap();
    let video = b
        .next_remote_track(Duration::from_secs(10))
        .await
        .expect("the remote video");
    (a, b, video)
}

/// A decoded frame as it reached the receiver.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    at: Instant,
    size: (u32, u32),
    timestamp: Duration,
}

/// Records the frames `video` decodes over the next `window`.
fn watch(video: &RemoteTrack, window: Duration) -> tokio::task::JoinHandle<Vec<Arrival>> {
    let rx = video.subscribe(64);
    tokio::task::spawn_blocking(move || {
        let end = Instant::now() + window;
        let mut frames = Vec::new();
        while Instant::now() < end {
            if let Ok(Some(MediaFrame::Video(f))) = rx.recv_timeout(Duration::from_millis(100)) {
                frames.push(Arrival {
                    at: Instant::now(),
                    size: (f.width(), f.height()),
                    timestamp: f.timestamp,
                });
            }
        }
        frames
    })
}

/// The receiver decoded `from`-sized frames, then (one switch) `to`-sized ones, with no
/// gap over 500 ms between arrivals and one timeline (RTP timestamps running on).
fn assert_one_switch(frames: &[Arrival], from: (u32, u32), to: (u32, u32)) {
    let sizes: Vec<(u32, u32)> = frames.iter().map(|f| f.size).collect();
    let switch = sizes
        .iter()
        .position(|s| *s == to)
        .unwrap_or_else(|| panic!("never saw {to:?}: {sizes:?}"));
    assert!(switch >= 10, "too few frames before the switch: {sizes:?}");
    assert!(
        sizes[..switch].iter().all(|s| *s == from) && sizes[switch..].iter().all(|s| *s == to),
        "one switch from {from:?} to {to:?}: {sizes:?}"
    );
    assert!(
        frames.len() - switch >= 20,
        "{} frames after the switch",
        frames.len() - switch
    );
    let gap = frames
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .max()
        .unwrap_or_default();
    assert!(
        gap < Duration::from_millis(500),
        "a {gap:?} gap in decoded frames"
    );
    for w in frames.windows(2) {
        let step = w[1].timestamp.checked_sub(w[0].timestamp);
        assert!(
            step.is_some_and(|s| s > Duration::ZERO && s < Duration::from_millis(500)),
            "the timeline jumped from {:?} to {:?}",
            w[0].timestamp,
            w[1].timestamp
        );
    }
}

/// The receiver's remote video: live, of the new size, no facingMode; one inbound video
/// stream (one SSRC, no new track) with hardly any loss.
async fn assert_same_remote_track(b: &Peer, video: &RemoteTrack, size: (u32, u32)) {
    assert!(!video.ended());
    let settings = video.get_settings();
    assert_eq!(
        (settings.width, settings.height),
        (Some(size.0), Some(size.1))
    );
    assert!(settings.facing_mode.is_none());
    let json = serde_json::to_value(&settings).unwrap();
    assert!(json.get("facingMode").is_none(), "{json}");
    // (A WHEP viewer's audio may still be announced: only a new video track would count.)
    while let Some(t) = b.next_remote_track(Duration::from_millis(200)).await {
        assert_ne!(
            t.kind(),
            MediaKind::Video,
            "no new remote video track: the switch needs no renegotiation"
        );
    }
    let stats = b.stats().await;
    let inbound: Vec<_> = stats.inbound.iter().filter(|i| i.kind == "video").collect();
    assert_eq!(inbound.len(), 1, "one SSRC: {stats:?}");
    assert!(
        inbound[0].packets_lost <= 5,
        "sequence numbers ran on: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_follows_the_published_track_to_the_other_camera() {
    let _serial = exclusive().await;
    let devices = phone();
    let front = camera(&devices, "front");
    let encoders = TrackEncoders::new(&front, 1_000_000, Some(VideoCodec::H264));
    let (a, b, video) = send_to_new_peer(&loopback(), &encoders).await;
    let frames = watch(&video, Duration::from_millis(3500));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let back = camera(&devices, "back");
    encoders.replace_track(&back).unwrap();
    front.stop();
    assert_eq!(
        encoders.track().map(|t| t.id().to_owned()),
        Some(back.id().to_owned())
    );
    assert_one_switch(&frames.await.unwrap(), FRONT, BACK);
    assert_same_remote_track(&b, &video, BACK).await;
    let sent = a.stats().await;
    let outbound: Vec<_> = sent.outbound.iter().filter(|o| o.kind == "video").collect();
    assert_eq!(outbound.len(), 1, "{sent:?}");
    assert_eq!(
        b.stats()
            .await
            .inbound
            .iter()
            .find(|i| i.kind == "video")
            .map(|i| i.ssrc),
        Some(outbound[0].ssrc)
    );
    // A track of another kind, or an ended one, is refused and nothing changes.
    let mic = devices
        .get_user_media_json(r#"{"audio": true}"#)
        .unwrap()
        .get_audio_tracks()
        .remove(0);
    assert!(encoders.replace_track(&mic).is_err());
    assert!(encoders.replace_track(&front).is_err(), "an ended track");
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_one_senders_track_changes_only_that_peer() {
    let _serial = exclusive().await;
    let devices = phone();
    let front = camera(&devices, "front");
    let shared = TrackEncoders::new(&front, 1_000_000, Some(VideoCodec::Vp8));
    let factory = loopback();
    let (a1, b1, flipped) = send_to_new_peer(&factory, &shared).await;
    let (a2, b2, kept) = send_to_new_peer(&factory, &shared).await;
    let senders = a1.get_senders();
    assert_eq!(senders.len(), 1);
    assert_eq!(senders[0].kind(), MediaKind::Video);
    assert_eq!(
        senders[0].track().map(|t| t.id().to_owned()),
        Some(front.id().to_owned())
    );
    let (flipped_frames, kept_frames) = (
        watch(&flipped, Duration::from_millis(3000)),
        watch(&kept, Duration::from_millis(3000)),
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let back = camera(&devices, "back");
    // Refused, and nothing changes: another kind; a codec this peer did not negotiate.
    let mic = devices
        .get_user_media_json(r#"{"audio": true}"#)
        .unwrap()
        .get_audio_tracks()
        .remove(0);
    let err = senders[0]
        .replace_track(TrackEncoders::new(&mic, 0, None))
        .unwrap_err();
    assert!(err.to_string().contains("audio"), "{err}");
    let h264 = TrackEncoders::new(&back, 1_000_000, Some(VideoCodec::H264));
    let err = senders[0].replace_track(&h264).unwrap_err();
    assert!(err.to_string().contains("vp8"), "{err}");
    senders[0]
        .replace_track(TrackEncoders::new(&back, 1_000_000, Some(VideoCodec::Vp8)))
        .unwrap();
    assert_eq!(
        senders[0].track().map(|t| t.id().to_owned()),
        Some(back.id().to_owned())
    );
    assert_one_switch(&flipped_frames.await.unwrap(), FRONT, BACK);
    let kept_frames = kept_frames.await.unwrap();
    assert!(kept_frames.len() > 60 && kept_frames.iter().all(|f| f.size == FRONT));
    assert_same_remote_track(&b1, &flipped, BACK).await;
    for peer in [&a1, &b1, &a2, &b2] {
        peer.close().await;
    }
}

/// `serve`'s routes over `devices`, `constraints` captured and published as `default`,
/// with an all-streams token `all` and a token `cam` for `default`.
async fn server(devices: Arc<MediaDevices>, constraints: &str) -> (SocketAddr, Arc<Publisher>) {
    let stream = devices.get_user_media_json(constraints).unwrap();
    let publisher = Arc::new(Publisher::new(loopback()).with_devices(Arc::clone(&devices)));
    publisher
        .publish("default", stream.get_tracks().to_vec(), 1_000_000)
        .unwrap();
    let config = ServerConfig {
        token: Some("all".into()),
        stream_tokens: vec![StreamToken {
            stream: "default".into(),
            token: "cam".into(),
        }],
        ..ServerConfig::default()
    };
    let app = router(Arc::clone(&publisher), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _keep = stream;
        axum::serve(listener, app).await.unwrap();
    });
    (addr, publisher)
}

async fn flip(addr: SocketAddr, stream: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    let r = http(
        addr,
        "POST",
        &format!("/streams/{stream}/flip"),
        &headers,
        "",
    )
    .await;
    (r.status, r.body)
}

/// The first stream in `/status`, asked with the operator's (all-streams) token: the
/// server has tokens, so `/status` is the operator's (issue 11).
async fn stream_status(addr: SocketAddr) -> Value {
    let r = common::http::authorized(addr, "GET", "/status", &[], Some("all"), "").await;
    let status: Value = serde_json::from_str(&r.body).unwrap();
    status["streams"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flip_endpoint_switches_a_served_stream_for_its_viewers() {
    let _serial = exclusive().await;
    let (addr, _publisher) = server(
        phone(),
        r#"{"video": {"facingMode": "user"}, "audio": true}"#,
    )
    .await;
    let status = stream_status(addr).await;
    assert_eq!(status["device"]["deviceId"], "front", "{status}");
    assert_eq!(status["device"]["facingMode"], "user", "{status}");
    assert_eq!(status["canFlip"], true, "{status}");

    // A WHEP viewer (no token needed to view).
    let viewer = loopback().create().await.unwrap();
    viewer.add_receiver(MediaKind::Video).await.unwrap();
    viewer.add_receiver(MediaKind::Audio).await.unwrap();
    let offer = viewer.create_offer().await.unwrap();
    let r = post_offer(addr, "/whep/default", None, offer.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    viewer.accept_answer(&r.body).await.unwrap();
    viewer
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    let video = loop {
        let t = viewer
            .next_remote_track(Duration::from_secs(10))
            .await
            .expect("a track");
        if t.kind() == MediaKind::Video {
            break t;
        }
    };
    let frames = watch(&video, Duration::from_millis(3500));
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // Authorized as publishing is.
    assert_eq!(flip(addr, "default", None).await.0, 401);
    assert_eq!(flip(addr, "default", Some("wrong")).await.0, 401);
    assert_eq!(flip(addr, "other", Some("cam")).await.0, 403);
    let (status, body) = flip(addr, "nope", Some("all")).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = flip(addr, "default", Some("cam")).await;
    assert_eq!(status, 200, "{body}");
    let camera: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        camera,
        serde_json::json!({"deviceId": "back", "label": "Back camera",
            "facingMode": "environment", "width": 320, "height": 240})
    );
    assert_one_switch(&frames.await.unwrap(), FRONT, BACK);
    assert_same_remote_track(&viewer, &video, BACK).await;
    let status = stream_status(addr).await;
    assert_eq!(status["device"]["deviceId"], "back", "{status}");
    assert_eq!(status["canFlip"], true);

    // And back, with the all-streams token.
    let (status, body) = flip(addr, "default", Some("all")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""deviceId":"front""#), "{body}");
    viewer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_one_camera_cannot_flip() {
    let _serial = exclusive().await;
    let devices = Arc::new(MediaDevices::builtin_virtual(PermissionPolicy::granted()));
    let (addr, _publisher) = server(devices, r#"{"video": true}"#).await;
    let status = stream_status(addr).await;
    assert_eq!(status["canFlip"], false, "{status}");
    assert_eq!(status["device"]["deviceId"], "virtual-pattern", "{status}");
    let (status, body) = flip(addr, "default", Some("cam")).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("cannot flip") && body.contains("Virtual camera (pattern)"),
        "{body}"
    );
    assert_eq!(
        stream_status(addr).await["device"]["deviceId"],
        "virtual-pattern"
    );
}
