//! Peer connections over real UDP on loopback: our tracks encoded (H.264, Opus), sent
//! through webrtc-rs, received by a second peer in this process, depacketized and decoded.

mod common;

use std::time::{Duration, Instant};

use common::example;
use usermedia::devices::pattern::read_strip;
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::encode::pipeline::{CodecConfig, EncodedTrack};
use usermedia::peer::{Peer, PeerConfig, PeerFactory, RemoteTrack};
use usermedia::{MediaFrame, MediaKind};

fn loopback() -> PeerFactory {
    PeerFactory::new(PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().unwrap()],
        ..PeerConfig::default()
    })
}

/// Offer from `a`, answer from `b`, both connected.
async fn connect(a: &Peer, b: &Peer) {
    let offer = a.create_offer().await.expect("offer");
    let answer = b.answer(&offer).await.expect("answer");
    a.accept_answer(&answer).await.expect("accept answer");
    a.wait_connected(Duration::from_secs(10))
        .await
        .expect("a connected");
    b.wait_connected(Duration::from_secs(10))
        .await
        .expect("b connected");
}

async fn remote_tracks(peer: &Peer, n: usize) -> Vec<RemoteTrack> {
    let mut tracks = Vec::new();
    for _ in 0..n {
        tracks.push(
            peer.next_remote_track(Duration::from_secs(10))
                .await
                .expect("a remote track"),
        );
    }
    tracks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_and_tone_arrive_decoded_at_the_other_peer() {
    let devices =
        MediaDevices::from_devices_file(&example("phone.json"), PermissionPolicy::granted())
            .unwrap();
    // The front camera faces the user; that must not cross the connection.
    let stream = devices
        .get_user_media_json(r#"{"video": {"deviceId": {"exact": "front"}, "width": 640, "height": 480}, "audio": true}"#)
        .unwrap();
    let camera = &stream.get_video_tracks()[0];
    assert_eq!(
        camera.get_settings().facing_mode.map(|f| f.as_str()),
        Some("user")
    );
    let video = EncodedTrack::start(camera, CodecConfig::H264 { bitrate: 1_000_000 }).unwrap();
    let audio = EncodedTrack::start(
        &stream.get_audio_tracks()[0],
        CodecConfig::Opus { bitrate: 48_000 },
    )
    .unwrap();

    let factory = loopback();
    let (a, b) = (
        factory.create().await.unwrap(),
        factory.create().await.unwrap(),
    );
    a.add_track(&video).await.unwrap();
    a.add_track(&audio).await.unwrap();
    connect(&a, &b).await;
    let tracks = remote_tracks(&b, 2).await;
    let remote_video = tracks
        .iter()
        .find(|t| t.kind() == MediaKind::Video)
        .expect("video")
        .clone();
    let remote_audio = tracks
        .iter()
        .find(|t| t.kind() == MediaKind::Audio)
        .expect("audio")
        .clone();

    let rv = remote_video.clone();
    let frames = tokio::task::spawn_blocking(move || {
        let rx = rv.subscribe(256);
        let first = rx.recv().expect("a first decoded frame");
        let end = Instant::now() + Duration::from_secs(3);
        let mut frames = vec![first];
        while Instant::now() < end {
            if let Ok(Some(f)) = rx.recv_timeout(Duration::from_millis(100)) {
                frames.push(f);
            }
        }
        frames
    })
    .await
    .unwrap();
    let numbers: Vec<u32> = frames
        .iter()
        .map(|f| match f {
            MediaFrame::Video(v) => {
                assert_eq!((v.width(), v.height()), (640, 480));
                read_strip(v)
                    .expect("strip readable after H.264")
                    .frame_number
            }
            MediaFrame::Audio(_) => panic!("audio on the video track"),
        })
        .collect();
    assert!(
        numbers.len() >= 85,
        "decoded {} frames in 3 s",
        numbers.len()
    );
    let consecutive = numbers.windows(2).filter(|w| w[1] == w[0] + 1).count();
    assert!(
        consecutive + 5 >= numbers.len(),
        "counters mostly consecutive: {numbers:?}"
    );

    // Settings measured on the receiving side, and never facingMode.
    let s = remote_video.get_settings();
    assert_eq!((s.width, s.height), (Some(640), Some(480)));
    let fps = s.frame_rate.expect("measured frame rate");
    assert!((27.0..=33.0).contains(&fps), "{fps} fps");
    assert!(s.facing_mode.is_none());
    let json = serde_json::to_value(&s).unwrap();
    assert!(json.get("facingMode").is_none(), "{json}");
    assert!(serde_json::to_value(remote_video.get_capabilities())
        .unwrap()
        .get("facingMode")
        .is_none());
    let err = remote_video
        .apply_constraints(
            usermedia::MediaTrackConstraints::from_json_str(
                r#"{"facingMode": {"exact": "user"}}"#,
                MediaKind::Video,
            )
            .unwrap()
            .0,
        )
        .unwrap_err();
    assert_eq!(err.constraint(), Some("facingMode"));

    // Audio: the tone, decoded.
    let ra = remote_audio.clone();
    let samples = tokio::task::spawn_blocking(move || {
        let rx = ra.subscribe(256);
        let mut samples: Vec<i16> = Vec::new();
        while samples.len() < 48_000 {
            match rx.recv_timeout(Duration::from_secs(2)) {
                Ok(Some(MediaFrame::Audio(a))) => {
                    samples.extend(a.to_i16().chunks_exact(a.channels as usize).map(|c| c[0]))
                }
                other => panic!("audio stopped: {:?}", other.map(|_| ())),
            }
        }
        samples
    })
    .await
    .unwrap();
    let s = &samples[4800..];
    let crossings = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    let hz = crossings as f64 / 2.0 / (s.len() as f64 / 48_000.0);
    assert!((430.0..=450.0).contains(&hz), "{hz} Hz");

    let stats = a.stats().await;
    assert!(
        stats
            .outbound
            .iter()
            .any(|o| o.kind == "video" && o.bytes_sent > 10_000),
        "{stats:?}"
    );
    let stats = b.stats().await;
    assert!(
        stats
            .inbound
            .iter()
            .any(|i| i.kind == "audio" && i.packets_received > 50),
        "{stats:?}"
    );
    a.close().await;
    b.close().await;
}
