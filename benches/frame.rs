//! Per-frame costs of the pixel work: YUYV → I420, 1920×1080 → 1280×720 scaling, and
//! rendering the pattern at 1280×720.
//!
//! `cargo bench --bench frame`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use usermedia::devices::pattern;
use usermedia::frame::{Scaler, VideoFrame};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for (w, h) in [(1280u32, 720u32), (1920, 1080)] {
        let yuyv: Vec<u8> = (0..w as usize * h as usize * 2)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        group.bench_function(format!("yuyv_to_i420_{w}x{h}"), |b| {
            b.iter(|| VideoFrame::from_yuyv(black_box(&yuyv), w, h, w * 2))
        });
    }
    let nv12: Vec<u8> = (0..1920 * 1080 * 3 / 2).map(|i| (i % 251) as u8).collect();
    group.bench_function("nv12_to_i420_1920x1080", |b| {
        b.iter(|| VideoFrame::from_nv12(black_box(&nv12), 1920, 1080))
    });
    let full = pattern::render(1920, 1080, 7, 0);
    let mut scaler = Scaler::new();
    group.bench_function("scale_1920x1080_to_1280x720", |b| {
        b.iter(|| black_box(&full).crop_and_scale(1280, 720, &mut scaler))
    });
    group.bench_function("crop_and_scale_1920x1080_to_640x480", |b| {
        b.iter(|| black_box(&full).crop_and_scale(640, 480, &mut scaler))
    });
    let mut n = 0u32;
    group.bench_function("pattern_render_1280x720", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            pattern::render(1280, 720, black_box(n), 1_700_000_000_000)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
