//! Peer connections over real UDP on loopback: our tracks encoded (H.264, Opus), sent
//! through webrtc-rs, received by a second peer in this process, depacketized and decoded.

mod common;

use std::time::{Duration, Instant};

use common::{example, exclusive};
use usermedia::devices::pattern::read_strip;
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::encode::pipeline::{CodecConfig, EncodedTrack, TrackEncoders};
use usermedia::encode::VideoCodec;
use usermedia::peer::{Feedback, Peer, PeerConfig, PeerFactory, RemoteTrack};
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
    let _serial = exclusive().await;
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
    let AvCall {
        a,
        b,
        remote_video,
        remote_audio,
        ..
    } = av_call(&stream, 1_000_000, 48_000).await;

    let numbers = strip_numbers(&remote_video, (640, 480), Duration::from_secs(3)).await;
    assert_three_smooth_seconds(&numbers);

    // The remote track is a MediaStreamTrack of kind remote.
    let track = remote_video.track();
    assert!(track.is_remote() && !camera.is_remote());
    assert_eq!(track.kind(), MediaKind::Video);
    assert_eq!(track.ready_state(), usermedia::TrackState::Live);
    assert_eq!(track.get_settings(), remote_video.get_settings());
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
    let hz = usermedia::devices::tone::frequency(&samples[4800..], 48_000);
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

/// The camera and microphone of `stream` encoded (H.264, Opus) and sent from `a` to `b`.
struct AvCall {
    a: Peer,
    b: Peer,
    /// The encoders, kept alive for the call.
    _encoders: (EncodedTrack, EncodedTrack),
    remote_video: RemoteTrack,
    remote_audio: RemoteTrack,
}

async fn av_call(stream: &usermedia::MediaStream, video_bps: u32, audio_bps: u32) -> AvCall {
    let video = EncodedTrack::start(
        &stream.get_video_tracks()[0],
        CodecConfig::H264 { bitrate: video_bps },
    )
    .unwrap();
    let audio = EncodedTrack::start(
        &stream.get_audio_tracks()[0],
        CodecConfig::Opus { bitrate: audio_bps },
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
    let remotes = remote_tracks(&b, 2).await;
    let of_kind = |kind| {
        remotes
            .iter()
            .find(|r| r.kind() == kind)
            .expect("a remote track of each kind")
            .clone()
    };
    AvCall {
        remote_video: of_kind(MediaKind::Video),
        remote_audio: of_kind(MediaKind::Audio),
        a,
        b,
        _encoders: (video, audio),
    }
}

/// A sender of one 320×240 pattern track and `n` viewers connected to it.
async fn broadcast(
    n: usize,
    sender_factory: &PeerFactory,
    viewer_factory: &PeerFactory,
    video: &EncodedTrack,
) -> Vec<(Peer, Peer, RemoteTrack)> {
    let mut pairs = Vec::new();
    for _ in 0..n {
        let (a, b) = (
            sender_factory.create().await.unwrap(),
            viewer_factory.create().await.unwrap(),
        );
        a.add_track(video).await.unwrap();
        connect(&a, &b).await;
        let remote = remote_tracks(&b, 1).await.remove(0);
        pairs.push((a, b, remote));
    }
    pairs
}

fn pattern_track(devices: &MediaDevices, size: (u32, u32)) -> usermedia::MediaStreamTrack {
    devices
        .get_user_media_json(&format!(
            r#"{{"video": {{"width": {{"exact": {}}}, "height": {{"exact": {}}}}}}}"#,
            size.0, size.1
        ))
        .unwrap()
        .get_video_tracks()
        .remove(0)
}

/// Open sockets of this process.
fn sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Threads of this process (encoders, decoders, capture workers, the runtime's).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// Tasks alive on the test's tokio runtime.
fn tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// A count once it has stopped changing. Peers closed by the test before this one
/// release their sockets, tasks and threads asynchronously, so a single reading taken
/// at once can include some that vanish a moment later.
async fn settled(count: impl Fn() -> usize) -> usize {
    let mut last = count();
    let mut unchanged = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = count();
        unchanged = if now == last { unchanged + 1 } else { 0 };
        last = now;
        if unchanged == 3 {
            break;
        }
    }
    last
}

/// Waits (up to 5 s) for `count` to come back to at most `baseline`; the last reading.
async fn back_to(baseline: usize, count: impl Fn() -> usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = count();
        if now <= baseline || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pli_brings_a_keyframe_within_100_ms() {
    let _serial = exclusive().await;
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let camera = pattern_track(&devices, (640, 480));
    let video = EncodedTrack::start(&camera, CodecConfig::H264 { bitrate: 800_000 }).unwrap();
    let factory = loopback();
    let pairs = broadcast(1, &factory, &factory, &video).await;
    let remote = &pairs[0].2;
    // Let the start-up keyframes pass.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for _ in 0..3 {
        let (encoded, decoded) = (video.stats().keyframes, remote.stats().key_frames_decoded);
        let asked = Instant::now();
        remote.request_keyframe();
        let mut at_encoder = None;
        let at_receiver = loop {
            if at_encoder.is_none() && video.stats().keyframes > encoded {
                at_encoder = Some(asked.elapsed());
            }
            if remote.stats().key_frames_decoded > decoded {
                break asked.elapsed();
            }
            assert!(
                asked.elapsed() < Duration::from_secs(1),
                "no keyframe after a PLI"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let at_encoder = at_encoder.unwrap_or(at_receiver);
        assert!(
            at_encoder < Duration::from_millis(100),
            "keyframe encoded {at_encoder:?} after the PLI"
        );
        assert!(
            at_receiver < Duration::from_millis(200),
            "keyframe decoded {at_receiver:?} after the PLI"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(remote.stats().plis_sent >= 3);
    assert!(video.stats().keyframes_forced >= 4, "{:?}", video.stats());
    let stats = pairs[0].0.stats().await;
    assert!(stats.keyframe_requests_received >= 3, "{stats:?}");
    assert!(stats.keyframes_sent >= 4, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_are_per_track_and_count_the_feedback_received() {
    let _serial = exclusive().await;
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let stream = devices
        .get_user_media_json(r#"{"video": {"width": 320, "height": 240}, "audio": true}"#)
        .unwrap();
    let AvCall {
        a,
        b,
        remote_video,
        remote_audio,
        ..
    } = av_call(&stream, 300_000, 64_000).await;
    let first = a.stats().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Feedback a browser would send: NACKs, a FIR, a PLI.
    let before = a.stats().await;
    let measured_from = Instant::now();
    let video_out = |s: &usermedia::peer::PeerStats| {
        s.outbound
            .iter()
            .find(|o| o.kind == "video")
            .cloned()
            .unwrap()
    };
    let decoded = remote_video.stats().key_frames_decoded;
    for _ in 0..3 {
        remote_video
            .send_feedback(Feedback::Nack(vec![1, 2, 5]))
            .await
            .unwrap();
    }
    remote_video.send_feedback(Feedback::Fir).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    remote_video.send_feedback(Feedback::Pli).await.unwrap();
    let asked = Instant::now();
    while remote_video.stats().key_frames_decoded < decoded + 1 {
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "no keyframe after a FIR"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = a.stats().await;
    let window = measured_from.elapsed().as_secs_f64();
    let (v0, v1) = (video_out(&before), video_out(&after));
    assert_eq!(v1.nack_count - v0.nack_count, 3, "{v1:?}");
    assert_eq!(v1.fir_count - v0.fir_count, 1, "{v1:?}");
    assert!(v1.pli_count > v0.pli_count, "{v1:?}");
    assert!(v1.key_frames_sent >= v0.key_frames_sent + 2, "{v1:?}");

    // Per track: the codec, what each sender sent, its measured bitrate.
    assert_eq!(after.outbound.len(), 2, "{after:?}");
    assert!(v1.mime_type.eq_ignore_ascii_case("video/H264"), "{v1:?}");
    let a1 = after.outbound.iter().find(|o| o.kind == "audio").unwrap();
    assert!(a1.mime_type.eq_ignore_ascii_case("audio/opus"), "{a1:?}");
    // 2.3 s of 30 fps video and 20 ms audio packets, give or take a loaded machine.
    assert!((40..=80).contains(&v1.frames_sent), "{v1:?}");
    assert!((80..=130).contains(&a1.frames_sent), "{a1:?}");
    assert_eq!(after.frames_sent, v1.frames_sent + a1.frames_sent);
    assert!(first.outbound.iter().all(|o| o.bitrate.is_none()));
    let video_rate = v1.bitrate.expect("a measured video bitrate");
    let audio_rate = a1.bitrate.expect("a measured audio bitrate");
    // The bitrate is the bytes sent since the previous call over that time.
    let a0 = before.outbound.iter().find(|o| o.kind == "audio").unwrap();
    let expected_video = (v1.bytes_sent - v0.bytes_sent) as f64 * 8.0 / window;
    let expected_audio = (a1.bytes_sent - a0.bytes_sent) as f64 * 8.0 / window;
    assert!(
        (video_rate / expected_video - 1.0).abs() < 0.1 && video_rate > 50_000.0,
        "{video_rate} vs {expected_video}: {v1:?}"
    );
    assert!(
        (audio_rate / expected_audio - 1.0).abs() < 0.1 && audio_rate > 10_000.0,
        "{audio_rate} vs {expected_audio}: {a1:?}"
    );
    assert!(v1.target_bitrate > 0.0 && a1.target_bitrate == 0.0);

    // The connection's layers.
    assert_eq!(after.state, usermedia::peer::PeerState::Connected);
    assert_eq!(after.ice_state, usermedia::peer::IceState::Connected);
    assert_eq!(after.dtls_state, usermedia::peer::DtlsState::Connected);
    let rtt = after.rtt_ms.expect("an RTT once connected");
    assert!((0.0..100.0).contains(&rtt), "loopback RTT {rtt} ms");

    // The receiving side counts what arrived, and learns the tone's channel count.
    let received = remote_video.stats();
    assert!(received.bytes_received > 20_000, "{received:?}");
    let channels = stream.get_audio_tracks()[0].get_settings().channel_count;
    assert_eq!(remote_audio.get_settings().channel_count, channels);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_viewers_share_one_encoder_and_ten_leave_cleanly() {
    let _serial = exclusive().await;
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let camera = pattern_track(&devices, (320, 240));
    let video = EncodedTrack::start(&camera, CodecConfig::H264 { bitrate: 300_000 }).unwrap();
    let (senders, viewers) = (loopback(), loopback());
    let sockets_before = settled(sockets).await;
    let threads_before = settled(threads).await;
    let tasks_before = settled(tasks).await;
    let mut pairs = broadcast(20, &senders, &viewers, &video).await;
    assert_eq!((senders.live(), viewers.live()), (20, 20));
    let start_stats = video.stats();
    let start_decoded: Vec<u64> = pairs.iter().map(|p| p.2.stats().frames_decoded).collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = video.stats();
    let encoded = stats.frames_encoded - start_stats.frames_encoded;
    // One encoder: ~60 frames in 2 s, not 20 × 60.
    assert!(
        (50..=70).contains(&encoded),
        "encoded {encoded} frames for 20 viewers: {stats:?}"
    );
    assert_eq!(stats.sinks, 20);
    for (i, (_, _, remote)) in pairs.iter().enumerate() {
        let decoded = remote.stats().frames_decoded - start_decoded[i];
        assert!(decoded >= 40, "viewer {i} decoded {decoded} frames in 2 s");
    }
    let sockets_with_20 = sockets();
    assert!(
        sockets_with_20 >= sockets_before + 40,
        "{sockets_before} → {sockets_with_20}"
    );

    // Ten leave: their connections close and everything they held goes.
    for (a, b, _) in pairs.drain(..10) {
        a.close().await;
        b.close().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((senders.live(), viewers.live()), (10, 10));
    assert_eq!(
        video.stats().sinks,
        10,
        "the encoder stopped feeding the closed peers"
    );
    let sockets_with_10 = sockets();
    assert!(
        sockets_with_10 + 20 <= sockets_with_20,
        "sockets {sockets_with_20} → {sockets_with_10}"
    );
    let before: Vec<u64> = pairs.iter().map(|p| p.2.stats().frames_decoded).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (i, (_, _, remote)) in pairs.iter().enumerate() {
        assert!(
            remote.stats().frames_decoded - before[i] >= 20,
            "remaining viewer {i} stalled"
        );
    }
    for (a, b, _) in pairs {
        a.close().await;
        b.close().await;
    }
    // All gone: every socket, task and thread the 40 peers had (decoders, readers,
    // senders, webrtc-rs drivers) ends; only the encoder, made before, is left.
    assert_eq!((senders.live(), viewers.live()), (0, 0));
    let sockets_after = back_to(sockets_before, sockets).await;
    assert!(
        sockets_after <= sockets_before,
        "sockets {sockets_before} → {sockets_after} after every peer closed"
    );
    let threads_after = back_to(threads_before, threads).await;
    assert!(
        threads_after <= threads_before,
        "threads {threads_before} → {threads_after} after every peer closed"
    );
    let tasks_after = back_to(tasks_before, tasks).await;
    assert!(
        tasks_after <= tasks_before,
        "tokio tasks {tasks_before} → {tasks_after} after every peer closed"
    );
    assert_eq!(video.stats().sinks, 0);
}

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// webrtc-rs 0.21 has an upstream report of a reference cycle (connection ↔
/// transceivers) keeping closed connections alive. A live peer pair costs about 2 MiB
/// here, so 40 leaked pairs would add 80 MiB; measured growth: 0.4 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_peers_give_their_memory_back() {
    let _serial = exclusive().await;
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let camera = pattern_track(&devices, (320, 240));
    let video = EncodedTrack::start(&camera, CodecConfig::H264 { bitrate: 300_000 }).unwrap();
    let factory = loopback();
    let cycle = |n: usize| {
        let (factory, video) = (factory.clone(), video.clone());
        async move {
            for _ in 0..n {
                let mut pairs = broadcast(1, &factory, &factory, &video).await;
                let (a, b, remote) = pairs.remove(0);
                let arrived = Instant::now();
                while remote.stats().frames_decoded < 3 {
                    assert!(arrived.elapsed() < Duration::from_secs(5), "no frames");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                a.close().await;
                b.close().await;
            }
        }
    };
    // Warm up: the allocator's arenas, the runtime's workers, lazily built statics.
    cycle(10).await;
    let before = settled(|| rss_kib() as usize).await;
    cycle(40).await;
    let after = settled(|| rss_kib() as usize).await;
    assert_eq!(factory.live(), 0);
    let growth_mib = after.saturating_sub(before) as f64 / 1024.0;
    eprintln!("RSS after 10 cycles {before} KiB, after 40 more {after} KiB");
    assert!(
        growth_mib < 10.0,
        "40 connect/close cycles grew RSS by {growth_mib:.1} MiB ({before} → {after} KiB)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_peer_is_dropped_and_the_others_keep_receiving() {
    let _serial = exclusive().await;
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let camera = pattern_track(&devices, (320, 240));
    let video = EncodedTrack::start(&camera, CodecConfig::H264 { bitrate: 300_000 }).unwrap();
    let senders = PeerFactory::new(PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().unwrap()],
        ice_disconnected_timeout: Duration::from_secs(1),
        ice_failed_timeout: Duration::from_secs(2),
        ..PeerConfig::default()
    });
    let viewers = loopback();
    let mut pairs = broadcast(2, &senders, &viewers, &video).await;

    // A third viewer runs on a runtime of its own, which is then torn down without
    // closing anything: its sockets vanish mid-stream, no goodbye.
    let doomed_sender = senders.create().await.unwrap();
    doomed_sender.add_track(&video).await.unwrap();
    let offer = doomed_sender.create_offer().await.unwrap();
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
    let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
    let viewer_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let peer = rt.block_on(async {
            let factory = loopback();
            let peer = factory.create().await.unwrap();
            let answer = peer.answer(&offer).await.unwrap();
            answer_tx.send(answer).unwrap();
            peer.wait_connected(Duration::from_secs(10)).await.unwrap();
            let _ = peer.next_remote_track(Duration::from_secs(5)).await;
            peer
        });
        kill_rx.recv().unwrap();
        std::mem::forget(peer); // no close, no Drop: as if the process died
        rt.shutdown_background();
    });
    doomed_sender
        .accept_answer(&answer_rx.await.unwrap())
        .await
        .unwrap();
    doomed_sender
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    // Its sender joins the encoder once it sees the connection up.
    let joined = Instant::now();
    while video.stats().sinks < 3 {
        assert!(
            joined.elapsed() < Duration::from_secs(2),
            "{:?}",
            video.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    kill_tx.send(()).unwrap();
    viewer_thread.join().unwrap();
    let gone = Instant::now();
    let mut state = doomed_sender.watch_state();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !matches!(
            *state.borrow_and_update(),
            usermedia::peer::PeerState::Failed
        ) {
            state.changed().await.unwrap();
        }
    })
    .await
    .expect("the vanished peer is detected");
    let detected = gone.elapsed();
    assert!(
        detected <= Duration::from_secs(5),
        "detected after {detected:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(senders.live(), 2, "the failed peer gave back its slot");
    // Its owner still holds it, yet the failure alone stopped feeding it.
    assert_eq!(video.stats().sinks, 2, "the encoder no longer feeds it");
    drop(doomed_sender);
    // The others never noticed.
    let before: Vec<u64> = pairs.iter().map(|p| p.2.stats().frames_decoded).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (i, (_, _, remote)) in pairs.iter().enumerate() {
        assert!(
            remote.stats().frames_decoded - before[i] >= 20,
            "viewer {i} stalled"
        );
    }
    for (a, b, _) in pairs.drain(..) {
        a.close().await;
        b.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_limit_is_enforced() {
    let _serial = exclusive().await;
    let factory = PeerFactory::new(PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().unwrap()],
        max_peers: 2,
        ..PeerConfig::default()
    });
    let a = factory.create().await.unwrap();
    let _b = factory.create().await.unwrap();
    match factory.create().await {
        Err(usermedia::peer::PeerError::TooManyPeers(2)) => {}
        other => panic!("expected TooManyPeers, got {:?}", other.map(|_| ())),
    }
    a.close().await;
    assert_eq!(factory.live(), 1);
    assert!(factory.create().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_encoder_follows_the_bandwidth_estimate() {
    let _serial = exclusive().await;
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let camera = pattern_track(&devices, (640, 480));
    let video = EncodedTrack::start(&camera, CodecConfig::H264 { bitrate: 2_500_000 }).unwrap();
    let bounds = usermedia::peer::BitrateBounds {
        min: 150_000,
        start: 400_000,
        max: 2_500_000,
    };
    let factory = PeerFactory::new(PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().unwrap()],
        video_bitrate: bounds,
        ..PeerConfig::default()
    });
    let pairs = broadcast(1, &factory, &loopback(), &video).await;
    let sender = &pairs[0].0;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let estimate = sender.bandwidth_estimate();
    assert!(
        (bounds.min as f64..=bounds.max as f64).contains(&estimate),
        "estimate {estimate} outside the bounds"
    );
    let bitrate = video.stats().bitrate;
    assert!(
        bitrate < 2_500_000,
        "the encoder kept its configured 2.5 Mbit/s: {:?}",
        video.stats()
    );
    assert!(bitrate >= bounds.min, "{bitrate}");
    // The last vote is at most one second old.
    assert!(
        (bitrate as f64 - estimate).abs() <= estimate * 0.5 + 100_000.0,
        "{bitrate} vs {estimate}"
    );
    for (a, b, _) in pairs {
        a.close().await;
        b.close().await;
    }
}

/// Frame numbers decoded from `track` for `window` after its first frame, each frame's size
/// checked.
async fn strip_numbers(track: &RemoteTrack, size: (u32, u32), window: Duration) -> Vec<u32> {
    let t = track.clone();
    tokio::task::spawn_blocking(move || {
        let rx = t.subscribe(256);
        let mut frames = vec![rx.recv().expect("a first decoded frame")];
        let end = Instant::now() + window;
        while Instant::now() < end {
            if let Ok(Some(f)) = rx.recv_timeout(Duration::from_millis(100)) {
                frames.push(f);
            }
        }
        frames
            .iter()
            .map(|f| match f {
                MediaFrame::Video(v) => {
                    assert_eq!((v.width(), v.height()), size);
                    read_strip(v).expect("strip readable").frame_number
                }
                MediaFrame::Audio(_) => panic!("audio on the video track"),
            })
            .collect()
    })
    .await
    .unwrap()
}

/// Frame numbers from 3 s of decoding ([`strip_numbers`]): close to 30 a second, and
/// consecutive but for a few.
fn assert_three_smooth_seconds(numbers: &[u32]) {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_arrives_decoded_at_the_other_peer() {
    let _serial = exclusive().await;
    let devices =
        MediaDevices::from_devices_file(&example("phone.json"), PermissionPolicy::granted())
            .unwrap();
    let stream = devices
        .get_user_media_json(
            r#"{"video": {"deviceId": {"exact": "front"}, "width": 640, "height": 480}}"#,
        )
        .unwrap();
    let camera = &stream.get_video_tracks()[0];
    assert!(camera.get_settings().facing_mode.is_some());
    let video = EncodedTrack::start(camera, CodecConfig::Vp8 { bitrate: 1_000_000 }).unwrap();
    let factory = loopback();
    let (a, b) = (
        factory.create().await.unwrap(),
        factory.create().await.unwrap(),
    );
    a.add_track(&video).await.unwrap();
    let offer = a.create_offer().await.unwrap();
    assert_eq!(
        usermedia::peer::video_codecs(&offer),
        [VideoCodec::Vp8],
        "a VP8 encoder offers VP8 only"
    );
    let answer = b.answer(&offer).await.unwrap();
    a.accept_answer(&answer).await.unwrap();
    a.wait_connected(Duration::from_secs(10)).await.unwrap();
    let remote = remote_tracks(&b, 1).await.remove(0);
    assert_eq!(remote.video_codec(), Some(VideoCodec::Vp8));

    let numbers = strip_numbers(&remote, (640, 480), Duration::from_secs(3)).await;
    assert_three_smooth_seconds(&numbers);
    let s = remote.get_settings();
    assert_eq!((s.width, s.height), (Some(640), Some(480)));
    assert!(s.facing_mode.is_none());
    let json = serde_json::to_value(&s).unwrap();
    assert!(json.get("facingMode").is_none(), "{json}");
    let stats = remote.stats();
    assert!(stats.key_frames_decoded >= 1, "{stats:?}");
    assert_eq!(stats.decode_errors, 0, "{stats:?}");
    // A PLI reaches the VP8 encoder as it does the H.264 one.
    let before = video.stats().keyframes_forced;
    remote.request_keyframe();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        video.stats().keyframes_forced > before,
        "{:?}",
        video.stats()
    );
    a.close().await;
    b.close().await;
}

/// Our offer lists both codecs, H.264 first; the answer's first codec is what we send, and
/// only that codec's encoder starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offerer_sends_the_codec_the_answer_lists_first() {
    let _serial = exclusive().await;
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let camera = pattern_track(&devices, (320, 240));
    let factory = loopback();
    for (reorder, expect) in [(false, VideoCodec::H264), (true, VideoCodec::Vp8)] {
        let encoders = TrackEncoders::new(&camera, 500_000, None);
        let (a, b) = (
            factory.create().await.unwrap(),
            factory.create().await.unwrap(),
        );
        a.add_track(&encoders).await.unwrap();
        let offer = a.create_offer().await.unwrap();
        assert_eq!(
            usermedia::peer::video_codecs(&offer),
            [VideoCodec::H264, VideoCodec::Vp8]
        );
        let mut answer = b.answer(&offer).await.unwrap();
        assert_eq!(
            usermedia::peer::video_codecs(&answer),
            [VideoCodec::H264, VideoCodec::Vp8],
            "webrtc-rs answers in the offer's order"
        );
        if reorder {
            // An answerer preferring VP8 (as a browser without H.264 does) lists it first.
            let (h264, vp8) = (
                usermedia::peer::H264_PAYLOAD_TYPE,
                usermedia::peer::VP8_PAYLOAD_TYPE,
            );
            answer = answer
                .split("\r\n")
                .map(|l| match l.strip_prefix("m=video ") {
                    Some(_) => l.replace(&format!(" {h264} {vp8}"), &format!(" {vp8} {h264}")),
                    None => l.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("\r\n");
            assert_eq!(usermedia::peer::video_codecs(&answer)[0], VideoCodec::Vp8);
        }
        a.accept_answer(&answer).await.unwrap();
        a.wait_connected(Duration::from_secs(10)).await.unwrap();
        let remote = remote_tracks(&b, 1).await.remove(0);
        assert_eq!(remote.video_codec(), Some(expect));
        let numbers = strip_numbers(&remote, (320, 240), Duration::from_secs(1)).await;
        assert!(numbers.len() >= 20, "{expect}: {numbers:?}");
        let running: Vec<_> = encoders
            .running()
            .iter()
            .map(|e| e.codec().video_codec())
            .collect();
        assert_eq!(
            running,
            [Some(expect)],
            "one encoder, the negotiated codec's"
        );
        a.close().await;
        b.close().await;
    }
}
