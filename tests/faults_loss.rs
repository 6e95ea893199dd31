//! Faults with media flowing (issue 11, item 13): a lossy UDP relay between the library's
//! server (the pattern camera, 640×480 at 30 fps, H.264) and a WHEP viewer of our own.
//! The offer's and the answer's candidates are rewritten so that each side sends only to
//! the relay; the relay applies the impairment model (`usermedia::peer::impair`) to what
//! crosses, 5% loss, 30 ± 30 ms delay and 1% reordering each way, fixed seeds. NACK
//! (retransmission on the same SSRC: webrtc-rs 0.21 negotiates no RTX) must keep ≥ 90% of
//! the frames sent decodable, with no freeze longer than 1 s. Then the relay drops every
//! retransmission for a while: losses are repaired by PLI and keyframes. The relay reads the (clear) SRTP headers to see retransmissions.

mod common;

use common::http::post_offer;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use usermedia::devices::pattern::read_strip;
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::media::{wall_clock_ms, QualityAnalyzer, QualityReport, StripFrame};
use usermedia::peer::impair::{ImpairCounters, ImpairSpec, Impairment};
use usermedia::peer::{PeerConfig, PeerFactory, RemoteTrack};
use usermedia::server::Publisher;
use usermedia::{MediaFrame, MediaKind};
use usermedia_signaling::{router, Endpoint, ServerConfig};

/// Server → viewer (media) and viewer → server (feedback).
const DOWN: &str = "loss=5%,delay=30ms,jitter=30ms,reorder=1%,seed=11";
const UP: &str = "loss=5%,delay=30ms,jitter=30ms,reorder=1%,seed=12";
/// How long frames are measured under the impairment.
const RUN: Duration = Duration::from_secs(10);
/// Then how long retransmissions are blocked (losses left to PLI and keyframes).
const NO_NACK: Duration = Duration::from_secs(3);

fn config() -> PeerConfig {
    PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().unwrap()],
        ..PeerConfig::default()
    }
}

/// The library's server publishing the pattern camera (video only) as `default`.
async fn server() -> (SocketAddr, Arc<Publisher>) {
    let devices = Arc::new(MediaDevices::builtin_virtual(PermissionPolicy::granted()));
    let stream = devices
        .get_user_media_json(r#"{"video": {"width": 640, "height": 480, "frameRate": 30}}"#)
        .unwrap();
    let publisher = Arc::new(Publisher::new(PeerFactory::new(config())));
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

/// The UDP candidates' addresses of an SDP (each once: webrtc-rs lists RTP and RTCP
/// components on one muxed port), and the SDP with each of them replaced by
/// `to` (other candidates left out), so the other side sends only there.
fn rewrite_candidates(sdp: &str, to: SocketAddr) -> (Vec<SocketAddr>, String) {
    let mut found = Vec::new();
    let mut out = String::new();
    for line in sdp.split_inclusive('\n') {
        let Some(candidate) = line.trim_end().strip_prefix("a=candidate:") else {
            out.push_str(line);
            continue;
        };
        let mut fields: Vec<String> = candidate.split(' ').map(str::to_owned).collect();
        if fields.len() < 8 || !fields[2].eq_ignore_ascii_case("udp") {
            continue;
        }
        let addr: SocketAddr = format!("{}:{}", fields[4], fields[5]).parse().unwrap();
        if !found.contains(&addr) {
            found.push(addr);
        }
        fields[4] = to.ip().to_string();
        fields[5] = to.port().to_string();
        out.push_str(&format!("a=candidate:{}\r\n", fields.join(" ")));
    }
    (found, out)
}

/// An RTP packet's (payload type, SSRC, sequence number); `None` for anything else
/// (STUN, DTLS, RTCP). SRTP leaves the header in the clear.
fn rtp_header(p: &[u8]) -> Option<(u8, u32, u16)> {
    let pt = p.get(1)? & 0x7f;
    if p.len() < 12 || !(128..192).contains(&p[0]) || (64..96).contains(&pt) {
        return None;
    }
    let seq = u16::from_be_bytes([p[2], p[3]]);
    let ssrc = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
    Some((pt, ssrc, seq))
}

/// What the relay saw of the server's video RTP.
#[derive(Debug, Default)]
struct Seen {
    /// Each (SSRC, sequence number) that reached the relay, and that it let through.
    arrived: HashSet<(u32, u16)>,
    passed: HashSet<(u32, u16)>,
    /// Packets that reached the relay again (a retransmission: same SSRC and number).
    again: u64,
    down: ImpairCounters,
    up: ImpairCounters,
    /// Retransmissions are dropped (NACK cannot repair anything), and how many were.
    block_retransmissions: bool,
    blocked: u64,
}

/// The relay: `for_server` is the viewer as the server sees it, `for_viewer` the server as
/// the viewer sees it.
struct Relay {
    for_server: UdpSocket,
    for_viewer: UdpSocket,
}

impl Relay {
    async fn bind() -> Relay {
        Relay {
            for_server: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            for_viewer: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    /// Runs it between `server` and `viewer` (their real addresses), `video_pt` being the
    /// negotiated video payload type.
    fn run(self, server: SocketAddr, viewer: SocketAddr, video_pt: u8) -> Arc<Mutex<Seen>> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let report = Arc::clone(&seen);
        tokio::spawn(async move {
            let mut down = Impairment::new(DOWN.parse::<ImpairSpec>().unwrap());
            let mut up = Impairment::new(UP.parse::<ImpairSpec>().unwrap());
            let (mut from_server, mut from_viewer) = (vec![0u8; 2048], vec![0u8; 2048]);
            loop {
                let wake = [down.poll_timeout(), up.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                let sleep = async {
                    match wake {
                        Some(t) => tokio::time::sleep_until(t.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = self.for_server.recv_from(&mut from_server) => {
                        let Ok((n, from)) = r else { return };
                        if from == server {
                            let p = from_server[..n].to_vec();
                            if let Some((_, ssrc, seq)) = rtp_header(&p).filter(|h| h.0 == video_pt) {
                                let mut s = seen.lock().unwrap();
                                if !s.arrived.insert((ssrc, seq)) {
                                    s.again += 1;
                                    if s.block_retransmissions {
                                        s.blocked += 1;
                                        continue;
                                    }
                                }
                            }
                            down.push(p, Instant::now());
                        }
                    }
                    r = self.for_viewer.recv_from(&mut from_viewer) => {
                        let Ok((n, from)) = r else { return };
                        if from == viewer {
                            up.push(from_viewer[..n].to_vec(), Instant::now());
                        }
                    }
                    _ = sleep => {}
                }
                let now = Instant::now();
                while let Some(p) = down.poll_output(now) {
                    if let Some((_, ssrc, seq)) = rtp_header(&p).filter(|h| h.0 == video_pt) {
                        seen.lock().unwrap().passed.insert((ssrc, seq));
                    }
                    let _ = self.for_viewer.send_to(&p, viewer).await;
                }
                while let Some(p) = up.poll_output(now) {
                    let _ = self.for_server.send_to(&p, server).await;
                }
                let mut s = seen.lock().unwrap();
                (s.down, s.up) = (down.counters(), up.counters());
            }
        });
        report
    }
}

/// The negotiated payload type of the answer's H.264.
fn h264_payload_type(sdp: &str) -> u8 {
    sdp.lines()
        .find_map(|l| {
            let rest = l.strip_prefix("a=rtpmap:")?;
            let (pt, codec) = rest.split_once(' ')?;
            codec.starts_with("H264/").then(|| pt.parse().unwrap())
        })
        .expect("H.264 in the answer")
}

/// The strip of every frame `video` decodes until `until`, with when it was decoded, and
/// how many frames had no readable strip.
fn collect(
    video: &RemoteTrack,
    until: Instant,
) -> tokio::task::JoinHandle<(Vec<(Instant, StripFrame)>, u64)> {
    let rx = video.subscribe(64);
    tokio::task::spawn_blocking(move || {
        let (mut frames, mut unreadable) = (Vec::new(), 0);
        while Instant::now() < until {
            if let Ok(Some(MediaFrame::Video(f))) = rx.recv_timeout(Duration::from_millis(100)) {
                match read_strip(&f) {
                    Some(s) => frames.push((
                        Instant::now(),
                        StripFrame {
                            number: s.frame_number,
                            capture_ms: s.capture_time_ms,
                            decoded_ms: wall_clock_ms(),
                        },
                    )),
                    None => unreadable += 1,
                }
            }
        }
        (frames, unreadable)
    })
}

/// The quality of the frames decoded before `end`, reported at `end`.
fn quality(frames: &[(Instant, StripFrame)], end: Instant) -> QualityReport {
    let mut analyzer = QualityAnalyzer::new();
    for (_, f) in frames.iter().filter(|(t, _)| *t < end) {
        analyzer.push(*f);
    }
    let late = Instant::now().saturating_duration_since(end).as_millis() as u64;
    analyzer.report(wall_clock_ms() - late)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_and_pli_keep_video_decodable_through_a_lossy_relay() {
    let started = Instant::now();
    let (addr, publisher) = server().await;
    let relay = Relay::bind().await;
    let (for_server, for_viewer) = (
        relay.for_server.local_addr().unwrap(),
        relay.for_viewer.local_addr().unwrap(),
    );

    let viewer = PeerFactory::new(config()).create().await.unwrap();
    viewer.add_receiver(MediaKind::Video).await.unwrap();
    let offer = viewer.create_offer().await.unwrap();
    let (viewer_addrs, offer) = rewrite_candidates(&offer, for_server);
    let r = post_offer(addr, "/whep/default", None, offer.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (server_addrs, answer) = rewrite_candidates(&r.body, for_viewer);
    assert_eq!(
        (viewer_addrs.len(), server_addrs.len()),
        (1, 1),
        "one host address each"
    );

    // Loss recovery is negotiated: generic NACK and PLI on the video codec (no RTX).
    let pt = h264_payload_type(&answer);
    for fb in ["nack", "nack pli"] {
        let line = format!("a=rtcp-fb:{pt} {fb}");
        assert!(
            answer.lines().any(|l| l.trim_end() == line),
            "{line} missing:\n{answer}"
        );
    }
    assert!(
        !answer.contains("rtx/90000"),
        "RTX negotiated: the relay counts retransmissions by SSRC and sequence number; update it"
    );

    let seen = relay.run(server_addrs[0], viewer_addrs[0], pt);
    viewer.accept_answer(&answer).await.unwrap();
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
    // The media really crossed the relay (the viewer's selected pair is its address).
    let pair = viewer
        .stats()
        .await
        .selected_candidate_pair
        .expect("a pair");
    assert_eq!(pair.remote.address, for_viewer.to_string());

    // Phase 1: RUN under the impairment. Phase 2: NO_NACK more with every retransmission
    // dropped by the relay, so a loss can only be repaired by a keyframe (PLI).
    let t0 = Instant::now();
    let phase2 = t0 + RUN;
    let end = phase2 + NO_NACK;
    let frames = collect(&video, end);
    tokio::time::sleep_until(phase2.into()).await;
    let server_video = || async {
        publisher
            .status()
            .await
            .peers
            .iter()
            .flat_map(|p| &p.stats.outbound)
            .find(|o| o.kind == "video")
            .expect("the server's video stream")
            .clone()
    };
    let before = server_video().await;
    let plis_before = video.stats().plis_sent;
    let (down, up, never, again, arrived) = {
        let mut s = seen.lock().unwrap();
        s.block_retransmissions = true;
        let never = s.arrived.difference(&s.passed).count();
        (s.down, s.up, never, s.again, s.arrived.len())
    };
    let (frames, unreadable) = frames.await.unwrap();
    let after = server_video().await;
    let plis_after = video.stats().plis_sent;
    let (blocked, lost2) = {
        let s = seen.lock().unwrap();
        (s.blocked, s.down.dropped_loss - down.dropped_loss)
    };

    let q = quality(&frames, phase2);
    let decoded = q.span - q.frames_skipped;
    let share = decoded as f64 / q.span as f64;
    let down_loss = down.dropped_loss as f64 / down.received as f64;
    let q2 = {
        let mut a = QualityAnalyzer::new();
        for (_, f) in frames.iter().filter(|(t, _)| *t >= phase2) {
            a.push(*f);
        }
        a.report(wall_clock_ms())
    };
    eprintln!(
        "lossy relay, {DOWN} down, {UP} up, {} s: {decoded}/{} frames decoded ({:.1}%), \
         {unreadable} unreadable, {} skipped, {} freezes (longest {} ms), latency {:?}; \
         down {down:?} ({:.2}% lost); up {up:?}; video RTP: {arrived} packets, {again} \
         retransmitted, {never} never delivered; server: {} NACKs, {} PLIs, {} keyframes. \
         Then {} s without retransmissions ({lost2} lost, {blocked} retransmissions \
         dropped): {}/{} frames decoded, longest freeze {} ms, viewer PLIs {plis_before} -> \
         {plis_after}, server PLIs {} -> {}, keyframes {} -> {}; total {:.1} s",
        RUN.as_secs(),
        q.span,
        share * 100.0,
        q.frames_skipped,
        q.freezes.count,
        q.freezes.longest_ms,
        q.latency_ms,
        down_loss * 100.0,
        before.nack_count,
        before.pli_count,
        before.key_frames_sent,
        NO_NACK.as_secs(),
        q2.span - q2.frames_skipped,
        q2.span,
        q2.freezes.longest_ms,
        before.pli_count,
        after.pli_count,
        before.key_frames_sent,
        after.key_frames_sent,
        started.elapsed().as_secs_f64(),
    );

    // The impairment really happened: about 5% of what the server sent was dropped, and
    // packets were reordered, both ways.
    assert!(down.received >= 300, "{down:?}");
    assert!((0.03..0.08).contains(&down_loss), "down loss {down_loss}");
    assert!(down.reordered > 0 && up.dropped_loss > 0, "{down:?} {up:?}");
    // ... and was repaired: the viewer asked for retransmissions and the server resent.
    assert!(before.nack_count > 0, "no NACK reached the server");
    assert!(again > 0, "no retransmission crossed the relay");
    // The frames: ≥ 90% of those sent (by frame-number span) decoded, no freeze over 1 s.
    assert!(q.span >= 250, "{q:?}");
    assert!(share >= 0.9, "{q:?}");
    assert!(q.freezes.longest_ms <= 1000, "{q:?}");
    // Without retransmissions, losses are repaired by keyframes: the viewer asked for
    // pictures, the server heard and sent keyframes, and video recovered from each loss.
    // A freeze there is the 500 ms a frame with a hole is waited for, the PLI's round trip
    // and, for a second loss within a second, the viewer's keyframe budget (one a second):
    // under 2 s.
    assert!(
        lost2 > 0 && blocked > 0,
        "phase 2 lost nothing ({lost2}, {blocked})"
    );
    assert!(plis_after > plis_before, "the viewer sent no PLI");
    assert!(
        after.pli_count > before.pli_count,
        "no PLI reached the server"
    );
    assert!(after.key_frames_sent > before.key_frames_sent);
    assert!(q2.freezes.longest_ms <= 2000, "{q2:?}");
    viewer.close().await;
    publisher.close_all().await;
}
