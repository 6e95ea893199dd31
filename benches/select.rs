//! SelectSettings over 10 cameras × 50 native modes (the issue's target: under 50 µs).
//!
//! `cargo bench --bench select`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use usermedia::constraints::{
    select_settings, DeviceModel, DeviceModes, FacingMode, MediaKind, MediaStreamConstraints,
    VideoMode,
};

/// 10 cameras, each with 50 distinct modes: 25 sizes from 160×120 up to 3840×2160 at two
/// frame rates; alternating facing modes.
fn devices() -> Vec<DeviceModel> {
    (0..10)
        .map(|d| {
            let modes = (0..50)
                .map(|m| {
                    let step = (m / 2) as u32;
                    VideoMode {
                        width: 160 + step * 153,
                        height: 120 + step * 85,
                        frame_rate: if m % 2 == 0 { 30.0 } else { 60.0 },
                    }
                })
                .collect();
            DeviceModel {
                device_id: format!("camera-{d}"),
                group_id: format!("group-{}", d / 2),
                facing_mode: Some(if d % 2 == 0 {
                    FacingMode::User
                } else {
                    FacingMode::Environment
                }),
                modes: DeviceModes::Video(modes),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let devices = devices();
    let refs: Vec<&DeviceModel> = devices.iter().collect();
    let cases = [
        ("unconstrained", r#"{"video": true}"#),
        (
            "ideal_and_ranges",
            r#"{"video": {"width": {"min": 640, "ideal": 1280}, "height": {"ideal": 720},
                "frameRate": {"max": 60, "ideal": 30}, "facingMode": "environment"}}"#,
        ),
        (
            "with_two_advanced_sets",
            r#"{"video": {"width": {"min": 640, "ideal": 1280}, "height": {"ideal": 720},
                "frameRate": {"ideal": 30}, "facingMode": "user",
                "advanced": [{"width": 1920, "height": 1080}, {"aspectRatio": 1.5}]}}"#,
        ),
        (
            "device_id_exact",
            r#"{"video": {"deviceId": {"exact": "camera-7"}, "width": 1000}}"#,
        ),
    ];
    let mut group = c.benchmark_group("select_10_devices_x_50_modes");
    for (name, json) in cases {
        let (constraints, _) = MediaStreamConstraints::from_json_str(json).expect("valid JSON");
        let video = constraints.video.expect("video requested");
        group.bench_function(name, |b| {
            b.iter(|| select_settings(MediaKind::Video, black_box(&video), black_box(&refs)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
