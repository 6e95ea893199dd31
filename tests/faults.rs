//! Faults with media flowing (issue 11), each driven from outside against the `serve`
//! binary on loopback: a viewer process killed with SIGKILL, a source that fails
//! mid-stream (a devices-file event), and the memory, threads and file descriptors a burst
//! of a few hundred sessions leaves behind once it has gone.

mod common;

use common::{example, spawn_serve_with};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use usermedia::peer::{PeerConfig, PeerFactory};
use usermedia::MediaKind;

/// What a process holds: resident memory, threads, open file descriptors.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    rss_kib: u64,
    threads: usize,
    fds: usize,
}

fn footprint(pid: u32) -> Footprint {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    Footprint {
        rss_kib: field("VmRSS:"),
        threads: field("Threads:") as usize,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count(),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A WHEP offer (video and audio, receive only) from a library peer on loopback.
async fn offer() -> String {
    let peer = PeerFactory::new(PeerConfig {
        ice_addrs: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        ..PeerConfig::default()
    })
    .create()
    .await
    .unwrap();
    peer.add_receiver(MediaKind::Video).await.unwrap();
    peer.add_receiver(MediaKind::Audio).await.unwrap();
    let sdp = peer.create_offer().await.unwrap();
    peer.close().await;
    sdp
}

/// One HTTP request from the local address `from` (any 127.x.y.z is loopback): the status
/// and the `Location` header.
async fn request_from(
    from: IpAddr,
    server: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Option<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = text.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("location")
            .then(|| v.trim().to_owned())
    });
    (status, location)
}

/// Sessions on the server now, from `/status`.
async fn sessions(addr: SocketAddr) -> usize {
    let status: serde_json::Value =
        serde_json::from_str(&common::http::get(addr, "/status").await.body).unwrap();
    status["peers"].as_array().map_or(0, Vec::len)
}

/// Opens `n` WHEP sessions on `addr` (never connected: the offer's peer is gone), at most
/// 8 per client address (the server's cap on pending sessions per address), 16 requests
/// at a time; their locations.
async fn open_sessions(addr: SocketAddr, offer: &str, n: usize) -> Vec<String> {
    let mut locations = Vec::with_capacity(n);
    for wave in (0..n).collect::<Vec<_>>().chunks(16) {
        let mut set = tokio::task::JoinSet::new();
        for &i in wave {
            let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1 + (i / 8) as u8));
            let offer = offer.to_owned();
            set.spawn(
                async move { request_from(from, addr, "POST", "/whep/default", &offer).await },
            );
        }
        while let Some(r) = set.join_next().await {
            let (status, location) = r.unwrap();
            assert_eq!(status, 201, "a session of the burst was refused");
            locations.push(location.expect("a Location"));
        }
    }
    locations
}

/// Ends every session at `locations` (DELETE) and waits until `/status` lists none.
async fn end_sessions(addr: SocketAddr, locations: Vec<String>) {
    for wave in locations.chunks(16) {
        let mut set = tokio::task::JoinSet::new();
        for location in wave {
            let location = location.clone();
            set.spawn(async move {
                request_from(
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    addr,
                    "DELETE",
                    &location,
                    "",
                )
                .await
            });
        }
        while let Some(r) = set.join_next().await {
            assert_eq!(r.unwrap().0, 200, "DELETE of a session of the burst");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while sessions(addr).await > 0 {
        assert!(Instant::now() < deadline, "sessions left after the burst");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The burst's size: a few hundred sessions at once.
const BURST: usize = 300;

/// How far above its baseline the server's resident size may stay once a burst has gone:
/// measured at about +4 MiB with the trim (and +90 MiB after one burst, +140 MiB after
/// two, without it).
const RSS_BOUND_MIB: f64 = 16.0;

/// Waits up to 10 s for the server's footprint to come back within the bounds of
/// `baseline` (resident size within [`RSS_BOUND_MIB`], threads and fds as they were); the
/// last one read.
async fn settled(pid: u32, baseline: Footprint) -> Footprint {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = footprint(pid);
        let back = mib(now.rss_kib) <= mib(baseline.rss_kib) + RSS_BOUND_MIB
            && now.threads <= baseline.threads
            && now.fds <= baseline.fds;
        if back || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_threads_and_fds_come_back_after_a_burst_of_sessions() {
    let builtin = example("builtin.json");
    let max = BURST.to_string();
    let (child, addr) = spawn_serve_with(
        &builtin,
        r#"{"video": {"width": 320, "height": 240}, "audio": true}"#,
        &["--max-viewers", &max],
    )
    .await;
    let pid = child.id().unwrap();
    let offer = offer().await;
    // Warm up: one session opened and ended, so the baseline holds what any session
    // touches once (the HTTP stack, the runtime's threads).
    let one = open_sessions(addr, &offer, 1).await;
    end_sessions(addr, one).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = footprint(pid);
    for round in 1..=2 {
        let started = Instant::now();
        let locations = open_sessions(addr, &offer, BURST).await;
        let peak = footprint(pid);
        let opened_in = started.elapsed();
        end_sessions(addr, locations).await;
        let ended = Instant::now();
        let after = settled(pid, baseline).await;
        eprintln!(
            "round {round}: {BURST} sessions in {opened_in:.1?}; RSS {:.1} → {:.1} → {:.1} MiB \
             ({:.1?} after the last ended), threads {} → {} → {}, fds {} → {} → {}",
            mib(baseline.rss_kib),
            mib(peak.rss_kib),
            mib(after.rss_kib),
            ended.elapsed(),
            baseline.threads,
            peak.threads,
            after.threads,
            baseline.fds,
            peak.fds,
            after.fds,
        );
        assert!(
            mib(peak.rss_kib) > mib(baseline.rss_kib) + 3.0 * RSS_BOUND_MIB,
            "the burst should have grown the heap well past the bound"
        );
        assert!(
            peak.fds >= baseline.fds + BURST,
            "each session holds a socket"
        );
        assert!(
            mib(after.rss_kib) <= mib(baseline.rss_kib) + RSS_BOUND_MIB,
            "round {round}: RSS stayed at {:.1} MiB after the burst, baseline {:.1} MiB",
            mib(after.rss_kib),
            mib(baseline.rss_kib)
        );
        assert_eq!(
            after.threads, baseline.threads,
            "round {round}: threads left"
        );
        assert_eq!(after.fds, baseline.fds, "round {round}: fds left open");
    }
    drop(child);
}
