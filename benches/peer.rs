//! Peer-connection numbers on loopback (a bench binary, numbers printed):
//! 1. getUserMedia → first decoded frame at a second peer (target < 300 ms);
//! 2. a 1280×720@30, 2 Mbit/s H.264 track sent to 1, 10 and 50 viewers: CPU of the sending
//!    process (CPU s per s; target: 50 viewers under 60% of 2 cores = 1.2 CPU s/s) and its
//!    memory per peer connection (target < 2 MiB). Viewers run in a child process (this
//!    binary in a receiver role) and count RTP without decoding. The sender's CPU is the
//!    figure the target and the aiortc/GStreamer reference points in docs/performance.md ("Reference points") are about; the
//!    viewers' process CPU and the whole machine's are printed beside it, since on one box
//!    the receiving side (SRTP, ICE, RTCP for 50 connections) competes for the same cores.
//!
//! `cargo bench --bench peer` (under `cargo test`: a quick smoke run).

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::encode::pipeline::{CodecConfig, EncodedTrack};
use usermedia::peer::{BitrateBounds, PeerConfig, PeerFactory};

const ROLE: &str = "USERMEDIA_BENCH_ROLE";

/// CPU seconds (user + system) process `pid` has used, from /proc (100 ticks a second, as
/// `common::cpu_seconds` assumes).
fn process_cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(end) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[end + 2..].split(' ').collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The machine's (busy, total) CPU ticks over all cores, from /proc/stat's `cpu` line
/// (idle and iowait are not busy).
fn machine_ticks() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0.0, 0.0);
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

/// Cores of this machine.
fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

fn loopback(decode: bool, max_peers: usize) -> PeerFactory {
    PeerFactory::new(PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().expect("ip")],
        decode_remote: decode,
        max_peers,
        video_bitrate: BitrateBounds {
            min: 1_000_000,
            start: 2_000_000,
            max: 2_000_000,
        },
        ..PeerConfig::default()
    })
}

/// The viewer process: answers offers read from stdin (one JSON string a line) and keeps
/// the connections until stdin closes.
async fn receiver() {
    let factory = loopback(false, 1000);
    let mut peers = Vec::new();
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let offer: String = serde_json::from_str(&line).expect("offer JSON");
        let peer = factory.create().await.expect("peer");
        let answer = peer.answer(&offer).await.expect("answer");
        writeln!(stdout, "{}", serde_json::to_string(&answer).expect("json")).expect("stdout");
        stdout.flush().expect("flush");
        peers.push(peer);
    }
    for p in &peers {
        p.close().await;
    }
}

/// Bytes sent to all `peers` so far.
async fn bytes_sent(peers: &[usermedia::peer::Peer]) -> u64 {
    let mut total = 0;
    for p in peers {
        total += p
            .stats()
            .await
            .outbound
            .iter()
            .map(|o| o.bytes_sent)
            .sum::<u64>();
    }
    total
}

async fn first_frame_ms() -> f64 {
    let start = Instant::now();
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let stream = devices
        .get_user_media_json(r#"{"video": {"width": 640, "height": 480}}"#)
        .expect("getUserMedia");
    let video = EncodedTrack::start(
        &stream.get_video_tracks()[0],
        CodecConfig::H264 { bitrate: 1_000_000 },
    )
    .expect("encoder");
    let factory = loopback(true, 10);
    let a = factory.create().await.expect("peer a");
    let b = factory.create().await.expect("peer b");
    a.add_track(&video).await.expect("track");
    let offer = a.create_offer().await.expect("offer");
    let answer = b.answer(&offer).await.expect("answer");
    a.accept_answer(&answer).await.expect("accept");
    let remote = b
        .next_remote_track(Duration::from_secs(10))
        .await
        .expect("remote track");
    let rx = remote.subscribe(8);
    tokio::task::spawn_blocking(move || rx.recv().expect("first frame"))
        .await
        .expect("join");
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    a.close().await;
    b.close().await;
    ms
}

/// A 1280×720 Y4M of the pattern with ±8 of fresh noise per frame: content that fills a
/// 2 Mbit/s budget (the bare pattern compresses to ~240 kbit/s and would understate the
/// per-viewer cost).
fn detailed_clip(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("detailed.y4m");
    let file = std::fs::File::create(&path).expect("clip file");
    let mut w = usermedia::devices::media_file::Y4mWriter::new(
        std::io::BufWriter::new(file),
        1280,
        720,
        30.0,
    )
    .expect("y4m header");
    let mut state = 0x2545_f491u32;
    for n in 0..60u32 {
        let mut f = usermedia::devices::pattern::render(1280, 720, n, 0);
        for px in f.planes_mut().0.iter_mut() {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *px = px.saturating_add((state >> 28) as u8).saturating_sub(8);
        }
        w.write(&f).expect("frame");
    }
    w.finish().expect("flush");
    let devices = dir.join("devices.json");
    std::fs::write(
        &devices,
        r#"{"devices": [{"kind": "videoinput", "deviceId": "clip", "source": {"file": "detailed.y4m"},
            "modes": [{"width": 1280, "height": 720, "frameRate": 30}]}]}"#,
    )
    .expect("devices file");
    devices
}

async fn viewers(counts: &[usize], window: Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let devices =
        MediaDevices::from_devices_file(&detailed_clip(dir.path()), PermissionPolicy::granted())
            .expect("devices");
    let stream = devices
        .get_user_media_json(r#"{"video": {"width": {"exact": 1280}, "height": {"exact": 720}, "frameRate": {"exact": 30}}}"#)
        .expect("getUserMedia");
    let video = EncodedTrack::start(
        &stream.get_video_tracks()[0],
        CodecConfig::H264 { bitrate: 2_000_000 },
    )
    .expect("encoder");
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .env(ROLE, "receiver")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("receiver process");
    let mut to_child = child.stdin.take().expect("stdin");
    let mut from_child = BufReader::new(child.stdout.take().expect("stdout"));
    let factory = loopback(true, 1000);
    let mut peers = Vec::new();
    let mut rows = Vec::new();
    for &n in counts {
        while peers.len() < n {
            let peer = factory.create().await.expect("peer");
            peer.add_track(&video).await.expect("track");
            let offer = peer.create_offer().await.expect("offer");
            writeln!(to_child, "{}", serde_json::to_string(&offer).expect("json"))
                .expect("to child");
            let mut line = String::new();
            from_child.read_line(&mut line).expect("answer from child");
            let answer: String = serde_json::from_str(&line).expect("answer JSON");
            peer.accept_answer(&answer).await.expect("accept");
            peer.wait_connected(Duration::from_secs(10))
                .await
                .expect("connected");
            peers.push(peer);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (cpu0, bytes0, t0) = (cpu_seconds(), video.stats().bytes, Instant::now());
        let (child0, machine0) = (process_cpu_seconds(child.id()), machine_ticks());
        let sent0 = bytes_sent(&peers).await;
        tokio::time::sleep(window).await;
        let wall = t0.elapsed().as_secs_f64();
        let cpu = (cpu_seconds() - cpu0) / wall;
        let viewers_cpu = (process_cpu_seconds(child.id()) - child0) / wall;
        let machine1 = machine_ticks();
        // Busy share of all cores, as CPU seconds per second.
        let machine = if machine1.1 > machine0.1 {
            (machine1.0 - machine0.0) / (machine1.1 - machine0.1) * cores()
        } else {
            0.0
        };
        let sent = bytes_sent(&peers).await;
        let encoded_kbps = (video.stats().bytes - bytes0) as f64 * 8.0 / wall / 1000.0;
        let per_viewer_kbps = (sent - sent0) as f64 * 8.0 / wall / 1000.0 / n as f64;
        rows.push((n, cpu, rss_mib(), viewers_cpu, machine));
        let pct = |s: f64| s / cores() * 100.0;
        println!(
            "{n:>3} viewers: sender CPU {cpu:.3} s/s ({:.0}% of {} cores), viewers' process {viewers_cpu:.3} s/s ({:.0}%), machine {machine:.3} s/s ({:.0}%); RSS {:.1} MiB, encoder {encoded_kbps:.0} kbit/s, {per_viewer_kbps:.0} kbit/s sent per viewer",
            pct(cpu),
            cores(),
            pct(viewers_cpu),
            pct(machine),
            rss_mib()
        );
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        if last.0 > first.0 {
            let viewers = (last.0 - first.0) as f64;
            println!(
                "per additional viewer: sender {:.4} CPU s/s, viewers' process {:.4}, both {:.4}, machine {:.4}; {:.2} MiB",
                (last.1 - first.1) / viewers,
                (last.3 - first.3) / viewers,
                (last.1 + last.3 - first.1 - first.3) / viewers,
                (last.4 - first.4) / viewers,
                (last.2 - first.2) / viewers
            );
        }
    }
    drop(to_child);
    for p in &peers {
        p.close().await;
    }
    let _ = child.wait();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if std::env::var(ROLE).as_deref() == Ok("receiver") {
        runtime.block_on(receiver());
        return;
    }
    let benching = std::env::args().any(|a| a == "--bench");
    runtime.block_on(async {
        let runs = if benching { 5 } else { 1 };
        let mut times = Vec::new();
        for _ in 0..runs {
            times.push(first_frame_ms().await);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "getUserMedia → first decoded frame at a second peer (640x480, loopback): median {:.0} ms, min {:.0}, max {:.0} ({runs} runs)",
            times[times.len() / 2],
            times[0],
            times[times.len() - 1]
        );
        if benching {
            viewers(&[1, 10, 50], Duration::from_secs(5)).await;
        } else {
            viewers(&[1, 2], Duration::from_secs(1)).await;
        }
    });
}
