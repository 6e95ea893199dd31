//! CPU cost of a live pattern camera at 1280×720@30 with one consumer, over 10 s of real
//! time: the process's user+system CPU time (from /proc/self/stat) as a share of one core.
//! The issue's target: under 5%.
//!
//! `cargo bench --bench pattern_cpu` (under `cargo test` it runs for 1 s as a smoke test)

mod common;

use common::*;
use std::time::{Duration, Instant};

use usermedia::devices::{MediaDevices, PermissionPolicy};

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let seconds = if benching { 10.0 } else { 1.0 };
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let stream = devices
        .get_user_media_json(r#"{"video": {"width": {"exact": 1280}, "height": {"exact": 720}, "frameRate": {"exact": 30}}}"#)
        .expect("getUserMedia");
    let track = &stream.get_video_tracks()[0];
    let rx = track.subscribe(8);
    // Warm up, then measure a steady window.
    for _ in 0..5 {
        rx.recv().expect("frame");
    }
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let mut frames = 0u64;
    while start.elapsed() < Duration::from_secs_f64(seconds) {
        if rx
            .recv_timeout(Duration::from_millis(100))
            .expect("live")
            .is_some()
        {
            frames += 1;
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "pattern 1280x720@30, one consumer: {frames} frames in {wall:.1} s ({:.1} fps), CPU {cpu:.2} s = {:.1}% of one core",
        frames as f64 / wall,
        100.0 * cpu / wall
    );
    assert!(frames as f64 >= 29.0 * wall, "the source fell behind");
}
