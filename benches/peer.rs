//! Peer-connection numbers on loopback (a bench binary, numbers printed), through the
//! library's `usermedia::bench` — the same code as `usermedia bench first-frame` and
//! `usermedia bench fanout`:
//! 1. getUserMedia → first decoded frame at a second peer (640×480; target < 300 ms);
//! 2. a 1280×720@30, 2 Mbit/s H.264 track (the pattern with noise) sent to 1, 10 and 50
//!    viewers: CPU of the sending process per media second (target: 50 viewers under 60%
//!    of 2 cores = 1.2 CPU s/s) and its memory per viewer (target < 2 MiB). Viewers run in
//!    a child process (this binary in a receiver role) and count RTP without decoding; that
//!    process's CPU is printed beside the sender's, since on one box it competes for the
//!    same cores.
//!
//! `cargo bench --bench peer` (under `cargo test`: a quick smoke run).

use std::time::Duration;

use usermedia::bench::fanout::{self, FanoutConfig, FanoutReport};
use usermedia::bench::{clip, first_frame, loopback_factory, receivers};
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::encode::VideoCodec;

const ROLE: &str = "USERMEDIA_BENCH_ROLE";

async fn first_frames(runs: usize) {
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let constraints = r#"{"video": {"width": 640, "height": 480}}"#;
    let mut times = Vec::new();
    for _ in 0..runs {
        let run = first_frame::run_once(&devices, constraints, VideoCodec::H264, 1_000_000)
            .await
            .expect("first frame");
        times.push(run.get_user_media_ms);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "getUserMedia → first decoded frame at a second peer (640x480, loopback): median {:.0} ms, min {:.0}, max {:.0} ({runs} runs)",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}

async fn viewers(counts: &[usize], window: Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = clip::write_noisy_clip(dir.path(), 1280, 720, 30.0, 60).expect("clip");
    let devices =
        MediaDevices::from_devices_file(&file, PermissionPolicy::granted()).expect("devices");
    let stream = devices
        .get_user_media_json(r#"{"video": {"width": {"exact": 1280}, "height": {"exact": 720}, "frameRate": {"exact": 30}}}"#)
        .expect("getUserMedia");
    let track = &stream.get_video_tracks()[0];
    let exe = std::env::current_exe().expect("current exe");
    let mut rows: Vec<FanoutReport> = Vec::new();
    for &n in counts {
        let mut child = std::process::Command::new(&exe);
        child.env(ROLE, "receiver");
        let config = FanoutConfig {
            viewers: n,
            codec: VideoCodec::H264,
            bitrate: 2_000_000,
            warmup: Duration::from_secs(2),
            window,
        };
        let r = fanout::run(&config, track, child).await.expect("fanout");
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        println!(
            "{n:>3} viewers: sender CPU {:.3} s/s, viewers' process {:.3} s/s; RSS {:.1} MiB ({:.2} MiB per viewer), encoder {:.0} kbit/s, {:.0} kbit/s and {:.1} fps (lowest {:.1}) per viewer",
            r.publisher_cpu_per_media_s,
            r.receiver_cpu_per_media_s,
            mib(r.publisher_rss_bytes),
            mib(r.rss_per_viewer_bytes),
            r.encoder_kbps,
            r.kbps_per_viewer_median,
            r.fps_per_viewer_median,
            r.fps_per_viewer_min
        );
        rows.push(r);
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        if last.viewers > first.viewers {
            let extra = (last.viewers - first.viewers) as f64;
            let sender = (last.publisher_cpu_per_media_s - first.publisher_cpu_per_media_s) / extra;
            let receiving =
                (last.receiver_cpu_per_media_s - first.receiver_cpu_per_media_s) / extra;
            println!(
                "per additional viewer: sender {sender:.4} CPU s/s, viewers' process {receiving:.4}, both {:.4}",
                sender + receiving
            );
        }
    }
    track.stop();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if std::env::var(ROLE).as_deref() == Ok("receiver") {
        let factory = loopback_factory(false, 1000, 1_000_000);
        runtime
            .block_on(receivers::serve(
                std::io::BufReader::new(std::io::stdin()),
                std::io::stdout(),
                factory,
            ))
            .expect("receivers");
        return;
    }
    let benching = std::env::args().any(|a| a == "--bench");
    runtime.block_on(async {
        first_frames(if benching { 5 } else { 1 }).await;
        if benching {
            viewers(&[1, 10, 50], Duration::from_secs(5)).await;
        } else {
            viewers(&[1, 2], Duration::from_secs(1)).await;
        }
    });
}
