//! Hardening of the media side (issue 11), attacked from outside on loopback: a viewer
//! that pushes media or offers too many m-sections, a flood of ICE candidates, a publisher
//! that disappears, a viewer that storms PLIs — each refused while a well-behaved client
//! beside it is still served.

mod common;

use common::http::{delete, post_offer};
use common::{exclusive, track_frame_numbers};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::encode::pipeline::{CodecConfig, EncodedTrack};
use usermedia::peer::{Feedback, Peer, PeerConfig, PeerFactory, PeerState, RemoteTrack};
use usermedia::server::Publisher;
use usermedia::MediaKind;
use usermedia_signaling::{router, ServerConfig};

fn config(decode: bool) -> PeerConfig {
    PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().unwrap()],
        // A peer that goes away is noticed in seconds.
        ice_disconnected_timeout: Duration::from_secs(1),
        ice_failed_timeout: Duration::from_secs(2),
        decode_remote: decode,
        ..PeerConfig::default()
    }
}

async fn peer(decode: bool) -> Peer {
    PeerFactory::new(config(decode)).create().await.unwrap()
}

/// A server publishing the pattern camera and the tone as `default`, open to WHIP.
async fn server() -> (SocketAddr, Arc<Publisher>) {
    let devices = Arc::new(MediaDevices::builtin_virtual(PermissionPolicy::granted()));
    let stream = devices
        .get_user_media_json(r#"{"video": {"width": 640, "height": 480}, "audio": true}"#)
        .unwrap();
    let publisher = Arc::new(Publisher::new(PeerFactory::new(config(true))));
    publisher
        .publish("default", stream.get_tracks().to_vec(), 1_000_000)
        .unwrap();
    let app = router(Arc::clone(&publisher), ServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _keep = stream;
        axum::serve(listener, app).await.unwrap();
    });
    (addr, publisher)
}

fn camera_encoder() -> EncodedTrack {
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let camera = devices
        .get_user_media_json(r#"{"video": {"width": 320, "height": 240}}"#)
        .unwrap()
        .get_video_tracks()
        .remove(0);
    EncodedTrack::start(&camera, CodecConfig::H264 { bitrate: 500_000 }).unwrap()
}

/// The direction attributes of an SDP's media sections, in order.
fn directions(sdp: &str) -> Vec<String> {
    sdp.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| ["a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"].contains(l))
        .map(|l| l[2..].to_owned())
        .collect()
}

/// Threads of this process decoding a remote track.
fn decoder_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end().ends_with(" decoder"))
        .count()
}

/// A well-behaved viewer of `path`: recvonly, decoding; retried while the stream has no
/// media yet (503).
async fn good_viewer(addr: SocketAddr, path: &str) -> (Peer, RemoteTrack) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let viewer = peer(true).await;
        viewer.add_receiver(MediaKind::Video).await.unwrap();
        viewer.add_receiver(MediaKind::Audio).await.unwrap();
        let offer = viewer.create_offer().await.unwrap();
        let r = post_offer(addr, path, None, offer.as_bytes()).await;
        if r.status == 503 && Instant::now() < deadline {
            viewer.close().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert_eq!(r.status, 201, "{}", r.body);
        viewer.accept_answer(&r.body).await.unwrap();
        viewer
            .wait_connected(Duration::from_secs(10))
            .await
            .unwrap();
        let video = loop {
            let track = viewer
                .next_remote_track(Duration::from_secs(10))
                .await
                .expect("a track");
            if track.kind() == MediaKind::Video {
                break track;
            }
        };
        return (viewer, video);
    }
}

async fn served(video: &RemoteTrack) {
    let n = track_frame_numbers(video, Duration::from_secs(1))
        .await
        .len();
    assert!(n >= 15, "the well-behaved viewer decoded {n} frames in 1 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_cannot_push_media_nor_offer_too_many_sections() {
    let _serial = exclusive().await;
    let (addr, _publisher) = server().await;
    let (good, video) = good_viewer(addr, "/whep/default").await;
    served(&video).await;
    let baseline = decoder_threads();

    // Five video m-sections: refused, naming the limit.
    let greedy = peer(false).await;
    for _ in 0..5 {
        greedy.add_receiver(MediaKind::Video).await.unwrap();
    }
    let offer = greedy.create_offer().await.unwrap();
    let r = post_offer(addr, "/whep/default", None, offer.as_bytes()).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("5 video m-sections") && r.body.contains("at most 4"),
        "{}",
        r.body
    );
    greedy.close().await;

    // A viewer whose offer sends two cameras and audio (sendrecv): answered send-only or
    // inactive, and nothing it sends is decoded.
    let camera = camera_encoder();
    let pusher = peer(false).await;
    pusher.add_track(&camera).await.unwrap();
    pusher.add_track(&camera).await.unwrap();
    pusher.add_receiver(MediaKind::Audio).await.unwrap();
    let offer = pusher.create_offer().await.unwrap();
    assert!(
        directions(&offer).iter().any(|d| d == "sendrecv"),
        "{offer}"
    );
    let r = post_offer(addr, "/whep/default", None, offer.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let answer_directions = directions(&r.body);
    assert_eq!(answer_directions.len(), 3, "{}", r.body);
    assert!(
        answer_directions
            .iter()
            .all(|d| d == "sendonly" || d == "inactive"),
        "a WHEP answer never receives: {answer_directions:?}"
    );
    // The same sections offered send-only or inactive, which webrtc-rs alone answers
    // recvonly (found by fuzzing): answered inactive.
    for direction in ["a=sendonly", "a=inactive"] {
        let one_way = offer.replace("a=sendrecv", direction);
        let r = post_offer(addr, "/whep/default", None, one_way.as_bytes()).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let answered = directions(&r.body);
        assert_eq!(answered.len(), 3, "{}", r.body);
        assert!(
            answered.iter().all(|d| d == "sendonly" || d == "inactive")
                && answered.iter().filter(|d| *d == "inactive").count() >= 2,
            "{direction}: {answered:?}"
        );
        let location = &r.headers["location"];
        assert_eq!(delete(addr, location, None).await.status, 200);
    }
    pusher.accept_answer(&r.body).await.unwrap();
    pusher
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    // It is served what it may receive (the stream's audio and video, in whichever order
    // their first packets come)...
    let mut track = pusher
        .next_remote_track(Duration::from_secs(10))
        .await
        .expect("the stream's first track");
    if track.kind() != MediaKind::Video {
        track = pusher
            .next_remote_track(Duration::from_secs(10))
            .await
            .expect("the stream's video");
    }
    assert_eq!(track.kind(), MediaKind::Video);
    // ...while it sends for two seconds, and no decoder starts for what it sends.
    served(&video).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        decoder_threads(),
        baseline,
        "no decoder for a viewer's media"
    );
    let stats = pusher.stats().await;
    assert!(stats.frames_sent > 0, "it did try to send: {stats:?}");
    served(&video).await;
    pusher.close().await;
    good.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_candidates_are_capped_per_session() {
    let _serial = exclusive().await;
    let offerer = peer(true).await;
    offerer.add_receiver(MediaKind::Video).await.unwrap();
    let offer = offerer.create_offer().await.unwrap();
    let in_offer = offer.matches("a=candidate:").count();
    assert!(in_offer >= 1);
    let camera = camera_encoder();
    let answerer = peer(true).await;
    let answer = answerer.answer_with(&offer, [&camera]).await.unwrap();
    // 40 trickled candidates, each naming a loopback port nobody listens on.
    let fragment: String = (0..40)
        .map(|n| {
            format!(
                "a=candidate:{n} 1 udp {} 127.0.0.1 {} typ host\r\n",
                2_000_000_000 - n,
                40_000 + n
            )
        })
        .collect();
    let fragment = format!("a=mid:0\r\n{fragment}");
    let added = answerer.add_candidates(&fragment).await.unwrap();
    assert_eq!(added, usermedia::peer::MAX_REMOTE_CANDIDATES - in_offer);
    assert_eq!(answerer.add_candidates(&fragment).await.unwrap(), 0, "full");
    // The real candidates still connect, and media flows.
    offerer.accept_answer(&answer).await.unwrap();
    offerer
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    let video = offerer
        .next_remote_track(Duration::from_secs(10))
        .await
        .expect("video");
    let n = track_frame_numbers(&video, Duration::from_secs(1))
        .await
        .len();
    assert!(n >= 15, "{n} frames");
    offerer.close().await;
    answerer.close().await;
}

/// Publishes our camera to `addr` as `name` over WHIP; the answer never sends.
async fn whip_publisher(addr: SocketAddr, name: &str, camera: &EncodedTrack) -> Peer {
    let publisher = peer(false).await;
    publisher.add_track(camera).await.unwrap();
    let offer = publisher.create_offer().await.unwrap();
    let r = post_offer(addr, &format!("/whip/{name}"), None, offer.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let d = directions(&r.body);
    assert!(
        !d.is_empty() && d.iter().all(|d| d == "recvonly" || d == "inactive"),
        "a WHIP answer never sends: {d:?}"
    );
    publisher.accept_answer(&r.body).await.unwrap();
    publisher
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    publisher
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_gone_releases_its_viewers_who_retry_until_the_next_one() {
    let _serial = exclusive().await;
    let (addr, server_side) = server().await;
    let camera = camera_encoder();
    let first = whip_publisher(addr, "relay", &camera).await;
    let (viewer, video) = good_viewer(addr, "/whep/relay").await;
    served(&video).await;
    // A viewer of the captured stream beside it is not touched.
    let (bystander, bystander_video) = good_viewer(addr, "/whep/default").await;
    assert_eq!(server_side.session_count(), 3);

    // The publisher disappears (no DELETE).
    first.close().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while (server_side.session_count() > 1 || viewer.state() == PeerState::Connected)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        server_side.session_count(),
        1,
        "publisher and viewer released"
    );
    assert_ne!(viewer.state(), PeerState::Connected, "the viewer was told");
    viewer.close().await;
    served(&bystander_video).await;

    // Coming back: 503 + Retry-After until a new publisher arrives, then media.
    let comer = peer(false).await;
    comer.add_receiver(MediaKind::Video).await.unwrap();
    let offer = comer.create_offer().await.unwrap();
    let r = post_offer(addr, "/whep/relay", None, offer.as_bytes()).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
    comer.close().await;
    let second = whip_publisher(addr, "relay", &camera).await;
    let (again, video) = good_viewer(addr, "/whep/relay").await;
    served(&video).await;
    again.close().await;
    second.close().await;
    bystander.close().await;
}

/// Peer stats of each viewer session on `/status`, by session id.
async fn viewer_stats(addr: SocketAddr) -> Vec<serde_json::Value> {
    let status: serde_json::Value =
        serde_json::from_str(&common::http::get(addr, "/status").await.body).unwrap();
    status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"] == "viewer")
        .map(|p| p["stats"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_viewers_pli_storm_cannot_force_a_keyframe_more_than_once_a_second() {
    let _serial = exclusive().await;
    let (addr, _publisher) = server().await;
    let (calm, calm_video) = good_viewer(addr, "/whep/default").await;
    let (storm, storm_video) = good_viewer(addr, "/whep/default").await;
    served(&calm_video).await;
    let before = calm_video.stats().key_frames_decoded;
    // A PLI every 20 ms for 3 s.
    let end = Instant::now() + Duration::from_secs(3);
    let calm_frames = tokio::spawn({
        let video = calm_video.clone();
        async move {
            track_frame_numbers(&video, Duration::from_secs(3))
                .await
                .len()
        }
    });
    while Instant::now() < end {
        storm_video.send_feedback(Feedback::Pli).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let keyframes = calm_video.stats().key_frames_decoded - before;
    assert!(
        keyframes <= 5,
        "{keyframes} keyframes in 3 s of one viewer's PLI storm (at most one a second)"
    );
    assert!(
        calm_frames.await.unwrap() >= 45,
        "the calm viewer kept decoding"
    );
    // Counted per viewer on /status.
    let throttled: Vec<u64> = viewer_stats(addr)
        .await
        .iter()
        .map(|s| s["keyframeRequestsThrottled"].as_u64().unwrap())
        .collect();
    assert_eq!(throttled.len(), 2);
    assert!(throttled.iter().any(|&n| n >= 50), "{throttled:?}");
    assert!(
        throttled.contains(&0),
        "the calm viewer held nothing: {throttled:?}"
    );
    // The calm viewer's own request is still served at once.
    let before = calm_video.stats().key_frames_decoded;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let quiet = calm_video.stats().key_frames_decoded;
    calm_video.send_feedback(Feedback::Pli).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        calm_video.stats().key_frames_decoded > quiet,
        "its PLI answered within 500 ms (before {before}, quiet {quiet})"
    );
    storm.close().await;
    calm.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_picture_over_the_decode_limit_is_refused_without_decoding_or_a_pli_storm() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use usermedia::encode::vp8::{Vp8Config, Vp8Encoder};
    use usermedia::encode::EncodedUnit;
    let _serial = exclusive().await;
    // A hostile sender: VP8 units of our own making, sent as they are.
    let requests = Arc::new(AtomicUsize::new(0));
    let (track, feeder) = EncodedTrack::passthrough(CodecConfig::Vp8 { bitrate: 500_000 }, {
        let requests = Arc::clone(&requests);
        move || {
            requests.fetch_add(1, Ordering::Relaxed);
        }
    });
    let sender = peer(false).await;
    sender.add_track(&track).await.unwrap();
    let receiver = peer(true).await;
    let offer = sender.create_offer().await.unwrap();
    let answer = receiver.answer(&offer).await.unwrap();
    sender.accept_answer(&answer).await.unwrap();
    receiver
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    let unit = |n: u32, data: Vec<u8>, keyframe: bool| EncodedUnit {
        data: data.into(),
        keyframe,
        timestamp: Duration::from_millis(33) * n,
        duration: Duration::from_millis(33),
        capture_time_ms: 0,
    };
    // Keyframes declaring 16383×16383 (hundreds of MB a picture), deltas between them.
    let mut huge = vec![0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0xff, 0x3f, 0xff, 0x3f];
    huge.extend(std::iter::repeat_n(0x55, 2000));
    let mut n = 0;
    let mut remote = None;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let key = n % 10 == 0;
        let data = if key {
            huge.clone()
        } else {
            vec![0x51, 0, 0, 7, 7, 7]
        };
        feeder.push(unit(n, data, key));
        n += 1;
        if remote.is_none() {
            remote = receiver.next_remote_track(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(33)).await;
    }
    let remote = remote.expect("the remote track");
    let stats = remote.stats();
    assert!(stats.units_refused >= 30, "{stats:?}");
    assert_eq!(
        (stats.frames_decoded, stats.decode_errors),
        (0, 0),
        "never handed to the decoder: {stats:?}"
    );
    assert!(stats.plis_sent <= 2, "no PLI storm: {stats:?}");
    // The sender turns well-behaved: a real 320×240 stream is decoded at once.
    let mut encoder = Vp8Encoder::new(Vp8Config::new(320, 240, 30.0, 300_000)).unwrap();
    let frames = tokio::spawn({
        let remote = remote.clone();
        async move {
            track_frame_numbers(&remote, Duration::from_secs(2))
                .await
                .len()
        }
    });
    for i in 0..60u32 {
        let frame = usermedia::devices::pattern::render(320, 240, i, 0);
        if let Some(mut u) = encoder.encode(&frame, i == 0).unwrap() {
            u.timestamp = Duration::from_millis(33) * (n + i);
            feeder.push(u);
        }
        tokio::time::sleep(Duration::from_millis(33)).await;
    }
    assert!(frames.await.unwrap() >= 20, "{:?}", remote.stats());
    assert_eq!(remote.get_settings().width, Some(320));
    sender.close().await;
    receiver.close().await;
}
