//! Impairment on our own UDP path (issue 15, item 3): `serve --impair-viewers` gives each
//! viewer its own seeded path and the same seed drops the same packets (by their place in
//! the arrival order) run after run, reported in `/status`; a viewer impaired with 10%
//! loss each way sees drops in its counters while its frames still decode (NACK); bad
//! specs are bad input.

mod common;

use common::http::get;
use common::{example, session_video, track_frame_numbers};

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use usermedia::client::view_whep;
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::peer::impair::ImpairSchedule;
use usermedia::peer::{PeerConfig, PeerFactory};
use usermedia::server::Publisher;
use usermedia_signaling::{router, Endpoint, ServerConfig};

fn config() -> PeerConfig {
    PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().unwrap()],
        ..PeerConfig::default()
    }
}

/// `usermedia serve` of the pattern (video only, 320×240) with `extra` flags; the child
/// (killed when dropped) and its address.
async fn spawn_serve(extra: &[&str]) -> (tokio::process::Child, SocketAddr) {
    common::spawn_serve_with(
        &example("builtin.json"),
        r#"{"video":{"width":320,"height":240}}"#,
        extra,
    )
    .await
}

/// Views `addr`'s stream for `seconds` with an unimpaired viewer of our own; the
/// `impairment` `/status` reports for that session then.
async fn impaired_view(addr: SocketAddr, seconds: u64) -> Value {
    let factory = PeerFactory::new(config());
    let url = format!("http://{addr}/whep/default");
    let session = view_whep(&factory, &url, None).await.unwrap();
    session_video(&session).await;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let status: Value = serde_json::from_str(&get(addr, "/status").await.body).unwrap();
    let location = session.http.location.clone();
    let peer = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| location.ends_with(p["session"].as_str().unwrap()))
        .unwrap_or_else(|| panic!("{location} in {status}"))
        .clone();
    let _ = session.end().await;
    peer["impairment"].clone()
}

/// The losses both lists hold (the shorter one's length): a run that lasted longer saw
/// more packets, never other drops.
fn common_prefix(a: &Value, b: &Value) -> (Vec<u64>, Vec<u64>) {
    let list = |v: &Value| -> Vec<u64> {
        v["first_losses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    };
    let (a, b) = (list(a), list(b));
    let n = a.len().min(b.len());
    (a[..n].to_vec(), b[..n].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_drops_the_same_packets_and_each_viewer_has_its_own() {
    let _one = common::exclusive().await;
    let spec = "loss=10%,seed=7";
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (_serve, addr) = spawn_serve(&["--impair-viewers", spec]).await;
        let first = impaired_view(addr, 3).await;
        let second = impaired_view(addr, 1).await;
        runs.push((first, second));
    }
    let (a, b) = (&runs[0].0, &runs[1].0);
    eprintln!("run 1: {a}\nrun 2: {b}");
    assert_eq!(a["peer_index"], 0);
    assert!(a["spec"].as_str().unwrap().starts_with("loss=10%"), "{a}");
    assert!(a["spec"].as_str().unwrap().ends_with("seed=7"), "{a}");
    for direction in ["outbound", "inbound"] {
        let (x, y) = (&a[direction], &b[direction]);
        assert_eq!(x["seed"], y["seed"], "{direction}");
        let (px, py) = common_prefix(x, y);
        assert_eq!(px, py, "{direction}: the same packets dropped");
        assert!(x["dropped_loss"].as_u64().unwrap() > 0, "{direction}: {x}");
        assert!(
            x["received"].as_u64().unwrap() > x["delivered"].as_u64().unwrap(),
            "{direction}: {x}"
        );
    }
    // Media went out: the outbound list is long enough to compare several decisions.
    assert!(
        common_prefix(&a["outbound"], &b["outbound"]).0.len() >= 5,
        "{a}"
    );
    // The second viewer of a server draws from seeds of its own.
    let other = &runs[0].1;
    assert_eq!(other["peer_index"], 1);
    assert_ne!(other["outbound"]["seed"], a["outbound"]["seed"]);
    let (p, q) = common_prefix(&a["outbound"], &other["outbound"]);
    assert!(p.is_empty() || p != q, "{a} vs {other}");
    assert_eq!(runs[1].1["outbound"]["seed"], other["outbound"]["seed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_with_ten_percent_loss_counts_drops_and_still_decodes() {
    let _one = common::exclusive().await;
    let devices = Arc::new(MediaDevices::builtin_virtual(PermissionPolicy::granted()));
    let stream = devices
        .get_user_media_json(r#"{"video": {"width": 320, "height": 240, "frameRate": 30}}"#)
        .unwrap();
    let publisher = Arc::new(Publisher::new(PeerFactory::new(config())));
    publisher
        .publish("default", stream.get_tracks().to_vec(), 500_000)
        .unwrap();
    let app = router(Arc::clone(&publisher), ServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // What `--impair loss=10%` gives a viewer's peer.
    let viewer = PeerFactory::new(PeerConfig {
        impair: Some(ImpairSchedule::from_arg("loss=10%,seed=3").unwrap()),
        ..config()
    });
    let url = format!("http://{addr}/whep/default");
    let session = view_whep(&viewer, &url, None).await.unwrap();
    let video = session_video(&session).await;
    let numbers = track_frame_numbers(&video, Duration::from_secs(3)).await;
    let distinct: HashSet<u32> = numbers.iter().copied().collect();
    let report = session.peer.impairment().expect("impaired");
    let status = publisher.status().await;
    let nacks: u32 = status
        .peers
        .iter()
        .flat_map(|p| p.stats.outbound.iter())
        .map(|o| o.nack_count)
        .sum();
    eprintln!(
        "decoded {} distinct frames in 3 s; NACKs {nacks}; {report:?}",
        distinct.len()
    );
    assert!(report.inbound.counters.dropped_loss > 0, "{report:?}");
    assert!(report.outbound.counters.dropped_loss > 0, "{report:?}");
    assert!(report.inbound.counters.delivered > 50, "{report:?}");
    assert!(nacks > 0, "the viewer asked for the lost packets again");
    // 90 frames were sent in the window; NACK repairs most losses.
    assert!(distinct.len() >= 45, "{} frames decoded", distinct.len());
    drop(stream);
}

#[test]
fn a_bad_spec_or_schedule_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let schedule = dir.path().join("s.json");
    std::fs::write(
        &schedule,
        r#"[{"at_s":5,"loss":"1%"},{"at_s":2,"loss":"2%"}]"#,
    )
    .unwrap();
    let bad_schedule = format!("@{}", schedule.display());
    for (args, expected) in [
        (
            vec![
                "publish",
                "--whip",
                "http://127.0.0.1:9/whip/x",
                "--impair",
                "loss=5",
            ],
            "--impair: impairment loss=5: a percentage, 0% to 100%",
        ),
        (
            vec![
                "bot",
                "--room",
                "ws://127.0.0.1:9/ws?room=r",
                "--impair",
                "@/nonexistent/s.json",
            ],
            "--impair: cannot read the impairment schedule /nonexistent/s.json",
        ),
        (
            vec![
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--impair-viewers",
                &bad_schedule,
            ],
            "is not after the previous entry's 5",
        ),
    ] {
        let out = common::usermedia(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// `usermedia bot` in `url` for `seconds` (the pattern and the tone), with `extra` flags;
/// its JSON lines once it left.
async fn run_bot(url: &str, seconds: &str, extra: &[&str]) -> Vec<Value> {
    let devices = example("builtin.json");
    let out = common::bot_in_room(url, seconds)
        .arg("--devices")
        .arg(&devices)
        .args([
            "--constraints",
            r#"{"video":{"width":320,"height":240},"audio":true}"#,
        ])
        .args(extra)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impaired_bot_reports_its_path_beside_what_it_decoded() {
    let _one = common::exclusive().await;
    let publisher = Arc::new(Publisher::new(PeerFactory::new(config())));
    let app = router(publisher, ServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = format!("ws://{addr}/ws?room=impaired");
    let impaired = run_bot(&url, "5", &["--impair", "loss=5%,delay=20ms,seed=2"]);
    let plain = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        run_bot(&url, "3.5", &[]).await
    };
    let (lines, plain_lines) = tokio::join!(impaired, plain);
    let left = lines
        .iter()
        .find(|l| l["event"] == "left")
        .expect("a summary");
    eprintln!("{left}");
    let impairment = left["impairment"].as_array().unwrap();
    assert_eq!(impairment.len(), 1, "{left}");
    let path = &impairment[0];
    assert!(
        path["peer"].as_str().is_some_and(|p| !p.is_empty()),
        "{path}"
    );
    for direction in ["outbound", "inbound"] {
        let d = &path[direction];
        assert!(d["received"].as_u64().unwrap() > 50, "{d}");
        assert!(d["delayed"].as_u64().unwrap() > 0, "{d}");
    }
    let video = left["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "video")
        .unwrap();
    assert!(
        video["stats"]["framesDecoded"].as_u64().unwrap() >= 30,
        "{video}"
    );
    // Its peer sends abs-capture-time: the delay includes the 20 ms added on our side.
    let delay = video["stats"]["captureDelayMs"].as_i64().unwrap();
    assert!((15..500).contains(&delay), "{video}");
    // A bot without --impair reports no impairment.
    let plain_left = plain_lines.iter().find(|l| l["event"] == "left").unwrap();
    assert!(plain_left.get("impairment").is_none(), "{plain_left}");
}
