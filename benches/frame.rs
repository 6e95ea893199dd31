//! Per-frame costs of the pixel work: YUYV → I420, 1920×1080 → 1280×720 scaling, and
//! rendering the pattern at 1280×720; and of the video codecs: H.264 and VP8 encoding and
//! decoding one 1280×720 frame at 2 Mbit/s.
//!
//! `cargo bench --bench frame` (`cargo bench --bench frame -- codec` for the codecs only)

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use usermedia::devices::pattern;
use usermedia::encode::h264::{H264Config, H264Decoder, H264Encoder};
use usermedia::encode::vp8::{Vp8Config, Vp8Decoder, Vp8Encoder};
use usermedia::encode::{EncodeError, EncodedUnit};
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
    // Where the time of a 1080p → 720p scale goes: the Y plane alone (2/3 of the pixels)
    // into a preallocated buffer, with each filter, and the output frame's allocation.
    scale_parts(&mut group, &full);
    let mut n = 0u32;
    group.bench_function("pattern_render_1280x720", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            pattern::render(1280, 720, black_box(n), 1_700_000_000_000)
        })
    });
    group.finish();
}

fn scale_parts(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    full: &VideoFrame,
) {
    use fast_image_resize::images::{Image, ImageRef};
    use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let mut resizer = Resizer::new();
    eprintln!(
        "fast_image_resize CPU extensions: {:?}",
        resizer.cpu_extensions()
    );
    let src = ImageRef::new(1920, 1080, full.y(), PixelType::U8).expect("source view");
    let mut dst = Image::new(1280, 720, PixelType::U8);
    for (name, alg) in [
        ("bilinear", ResizeAlg::Convolution(FilterType::Bilinear)),
        ("box", ResizeAlg::Convolution(FilterType::Box)),
        ("nearest", ResizeAlg::Nearest),
    ] {
        let options = ResizeOptions::new().resize_alg(alg);
        group.bench_function(
            format!("scale_y_plane_only_{name}_1920x1080_to_1280x720"),
            |b| {
                b.iter(|| {
                    resizer
                        .resize(black_box(&src), &mut dst, &options)
                        .expect("resize")
                })
            },
        );
    }
    group.bench_function("allocate_black_1280x720", |b| {
        b.iter(|| VideoFrame::black(black_box(1280), 720))
    });
}

/// One second of the pattern at 1280×720 with ±8 of luma noise per frame: detail that
/// fills a 2 Mbit/s budget, as a camera's sensor noise does (the bare pattern compresses to
/// a fraction of it and would understate the cost).
fn noisy_second() -> Vec<VideoFrame> {
    (0..30u32)
        .map(|n| {
            let mut f = pattern::render(1280, 720, n, 0);
            let mut state = 0x9e37_79b9u32.wrapping_mul(n + 1);
            for px in f.planes_mut().0.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *px = px.saturating_add((state >> 28) as u8).saturating_sub(8);
            }
            f
        })
        .collect()
}

/// Encode and decode cost per 1280×720 frame of both codecs, as the pipeline runs them
/// (realtime settings, a keyframe every 5 s, 30 fps timestamps).
fn codecs(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(6));
    let mut frames = noisy_second();
    type Encode = Box<dyn FnMut(&VideoFrame) -> Result<Option<EncodedUnit>, EncodeError>>;
    type Decode = Box<dyn FnMut(&[u8]) -> Result<Option<VideoFrame>, EncodeError>>;
    type Codec = (&'static str, fn() -> Encode, fn() -> Decode);
    let codecs: [Codec; 2] = [
        (
            "h264",
            || {
                let mut e = H264Encoder::new(H264Config::new(1280, 720, 30.0, 2_000_000))
                    .expect("H.264 encoder");
                Box::new(move |f| e.encode(f, false))
            },
            || {
                let mut d = H264Decoder::new().expect("H.264 decoder");
                Box::new(move |data| d.decode(data))
            },
        ),
        (
            "vp8",
            || {
                let mut e = Vp8Encoder::new(Vp8Config::new(1280, 720, 30.0, 2_000_000))
                    .expect("VP8 encoder");
                Box::new(move |f| e.encode(f, false))
            },
            || {
                let mut d = Vp8Decoder::new().expect("VP8 decoder");
                Box::new(move |data| d.decode(data))
            },
        ),
    ];
    for (name, new_encoder, new_decoder) in codecs {
        let mut encode = new_encoder();
        let mut n = 0u64;
        group.bench_function(format!("{name}_encode_1280x720_2mbps"), |b| {
            b.iter(|| {
                let frame = &mut frames[(n % 30) as usize];
                frame.timestamp = Duration::from_millis(n * 33);
                n += 1;
                encode(black_box(frame)).expect("encode")
            })
        });
        // Ten seconds of units (keyframes included), decoded in order, round and round.
        let mut encode = new_encoder();
        let units: Vec<EncodedUnit> = (0..300u64)
            .filter_map(|i| {
                let frame = &mut frames[(i % 30) as usize];
                frame.timestamp = Duration::from_millis(i * 33);
                encode(frame).expect("encode")
            })
            .collect();
        let mut decode = new_decoder();
        let mut i = 0;
        group.bench_function(format!("{name}_decode_1280x720_2mbps"), |b| {
            b.iter(|| {
                let unit = &units[i % units.len()];
                i += 1;
                decode(black_box(&unit.data)).expect("decode")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, codecs);
criterion_main!(benches);
