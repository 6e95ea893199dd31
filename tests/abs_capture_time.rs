//! abs-capture-time (issue 15, item 5): our sender writes each frame's capture time in the
//! extension, our receiver reads it back — a decoded frame's strip (drawn at capture) and
//! the capture time its unit carries agree to the millisecond — and reports the delay
//! from capture to receive.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use usermedia::client::view_whep;
use usermedia::devices::pattern::read_strip;
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::media::wall_clock_ms;
use usermedia::peer::{PeerConfig, PeerFactory};
use usermedia::server::Publisher;
use usermedia::MediaFrame;
use usermedia_signaling::{router, ServerConfig};

fn config() -> PeerConfig {
    PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().unwrap()],
        ..PeerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capture_time_crosses_in_the_extension() {
    let devices = Arc::new(MediaDevices::builtin_virtual(PermissionPolicy::granted()));
    let stream = devices
        .get_user_media_json(r#"{"video": {"width": 320, "height": 240}, "audio": true}"#)
        .unwrap();
    let publisher = Arc::new(Publisher::new(PeerFactory::new(config())));
    publisher
        .publish("default", stream.get_tracks().to_vec(), 500_000)
        .unwrap();
    let app = router(Arc::clone(&publisher), ServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let factory = PeerFactory::new(config());
    let url = format!("http://{addr}/whep/default");
    let session = view_whep(&factory, &url, None).await.unwrap();
    session
        .peer
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    let mut tracks = Vec::new();
    for _ in 0..2 {
        tracks.push(
            session
                .peer
                .next_remote_track(Duration::from_secs(10))
                .await
                .unwrap(),
        );
    }
    tracks.sort_by_key(|t| t.kind() == usermedia::MediaKind::Audio);
    let (video, audio) = (tracks[0].clone(), tracks[1].clone());
    // The capture time each unit carries, by the wall clock's low 32 bits (as the strip).
    let units = video.subscribe_encoded(256);
    let frames = video.subscribe(64);
    let (carried, strips) = tokio::task::spawn_blocking(move || {
        let end = Instant::now() + Duration::from_secs(2);
        let mut strips = Vec::new();
        while Instant::now() < end {
            if let Ok(Some(MediaFrame::Video(f))) = frames.recv_timeout(Duration::from_millis(50)) {
                strips.extend(read_strip(&f).map(|s| s.capture_time_ms));
            }
        }
        let mut carried = HashMap::new();
        while let Ok(unit) = units.try_recv() {
            carried.insert(unit.capture_time_ms as u32, unit.capture_time_ms);
        }
        (carried, strips)
    })
    .await
    .unwrap();
    // How far each frame's strip is from the nearest capture time a unit carried.
    let nearest = |s: u32| {
        carried
            .keys()
            .map(|&c| (c.wrapping_sub(s) as i32).unsigned_abs())
            .min()
            .unwrap_or(u32::MAX)
    };
    let off: Vec<u32> = strips.iter().map(|&s| nearest(s)).collect();
    let matched = off.iter().filter(|&&d| d == 0).count();
    eprintln!(
        "{} frames decoded, {matched} with their strip's capture time in a unit ({off:?}); stats {:?}",
        strips.len(),
        video.stats()
    );
    assert!(strips.len() >= 30, "{} frames", strips.len());
    // Frames decoded before the units' subscription started have no unit here.
    assert!(matched + 3 >= strips.len(), "{matched} of {}", strips.len());
    let stats = video.stats();
    let delay = stats.capture_delay_ms.expect("the delay is known");
    assert!((0..200).contains(&delay), "capture to receive {delay} ms");
    let newest = stats.abs_capture_time_ms.unwrap();
    assert!(wall_clock_ms() - newest < 1_000);
    // Audio carries it too.
    let a = audio.stats();
    assert!(a.abs_capture_time_ms.is_some(), "{a:?}");
    assert!((0..200).contains(&a.capture_delay_ms.unwrap()), "{a:?}");
    drop(stream);
}
