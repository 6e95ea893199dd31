//! The capture → convert → encode pipeline at full speed, one codec and size at a time:
//! camera frames as a V4L2 camera delivers them (YUYV, the pattern with sensor-like noise,
//! prepared beforehand), converted to I420 and encoded with the settings the encoder
//! thread uses. Frames per second of the whole loop, and CPU (the process's, every
//! thread: VP8 encodes on two) per frame.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::clip::noisy_frame;
use super::process::ProcessUsage;
use super::BenchError;
use crate::encode::h264::{H264Config, H264Encoder};
use crate::encode::vp8::{Vp8Config, Vp8Encoder};
use crate::encode::{EncodeError, EncodedUnit, VideoCodec};
use crate::frame::VideoFrame;

/// One encoder, as a function of a frame.
type Encode = Box<dyn FnMut(&VideoFrame) -> Result<Option<EncodedUnit>, EncodeError>>;

/// Distinct camera frames prepared (played in a loop).
const FRAMES: u32 = 10;

/// One codec at one size.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineRow {
    pub codec: &'static str,
    pub width: u32,
    pub height: u32,
    pub frames: u64,
    /// Frames through the whole loop per wall-clock second.
    pub fps: f64,
    /// Process CPU per frame, ms.
    pub cpu_ms_per_frame: f64,
    /// Wall-clock time per frame of each step, ms.
    pub convert_ms_per_frame: f64,
    pub encode_ms_per_frame: f64,
    /// What the encoder produced, as kbit/s at `frame_rate`.
    pub kbps: f64,
}

/// The I420 `frame` packed as YUYV (4:2:2; each chroma row used for two rows), as a
/// camera delivers it. `frame`'s width must be even.
pub fn to_yuyv(frame: &VideoFrame) -> Vec<u8> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let cw = w.div_ceil(2);
    let (y, u, v) = (frame.y(), frame.u(), frame.v());
    let mut out = Vec::with_capacity(w * h * 2);
    for row in 0..h {
        let c = (row / 2) * cw;
        for x in (0..w & !1).step_by(2) {
            let i = row * w + x;
            out.extend_from_slice(&[y[i], u[c + x / 2], y[i + 1], v[c + x / 2]]);
        }
    }
    out
}

/// Runs `codec` at `width`×`height` for at least `duration` (and at least [`FRAMES`]
/// frames), frame timestamps at `frame_rate`, at `bitrate` bits per second. `width` must
/// be even.
pub fn run(
    codec: VideoCodec,
    width: u32,
    height: u32,
    frame_rate: f64,
    bitrate: u32,
    duration: Duration,
) -> Result<PipelineRow, BenchError> {
    let camera: Vec<Vec<u8>> = (0..FRAMES)
        .map(|n| to_yuyv(&noisy_frame(width, height, n)))
        .collect();
    let mut encode: Encode = match codec {
        VideoCodec::H264 => {
            let mut e = H264Encoder::new(H264Config::new(width, height, frame_rate, bitrate))?;
            Box::new(move |f| e.encode(f, false))
        }
        VideoCodec::Vp8 => {
            let mut e = Vp8Encoder::new(Vp8Config::new(width, height, frame_rate, bitrate))?;
            Box::new(move |f| e.encode(f, false))
        }
    };
    let (mut convert_s, mut encode_s, mut bytes, mut frames) = (0.0, 0.0, 0u64, 0u64);
    let cpu0 = ProcessUsage::of_self()?.cpu_seconds;
    let start = Instant::now();
    while start.elapsed() < duration || frames < u64::from(FRAMES) {
        let t0 = Instant::now();
        let raw = &camera[(frames % u64::from(FRAMES)) as usize];
        let frame = VideoFrame::from_yuyv(raw, width, height, width * 2)
            .map_err(BenchError::Frame)?
            .with_times(Duration::from_secs_f64(frames as f64 / frame_rate), 0);
        let t1 = Instant::now();
        if let Some(unit) = encode(&frame)? {
            bytes += unit.data.len() as u64;
        }
        let t2 = Instant::now();
        convert_s += (t1 - t0).as_secs_f64();
        encode_s += (t2 - t1).as_secs_f64();
        frames += 1;
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = ProcessUsage::of_self()?.cpu_seconds - cpu0;
    let n = frames as f64;
    let r = |v: f64| (v * 1000.0).round() / 1000.0;
    Ok(PipelineRow {
        codec: codec.as_str(),
        width,
        height,
        frames,
        fps: (n / wall * 10.0).round() / 10.0,
        cpu_ms_per_frame: r(cpu * 1000.0 / n),
        convert_ms_per_frame: r(convert_s * 1000.0 / n),
        encode_ms_per_frame: r(encode_s * 1000.0 / n),
        kbps: (bytes as f64 * 8.0 / 1000.0 / n * frame_rate).round(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_round_trips_the_luma() {
        let f = noisy_frame(64, 48, 3);
        let packed = to_yuyv(&f);
        assert_eq!(packed.len(), 64 * 48 * 2);
        let back = VideoFrame::from_yuyv(&packed, 64, 48, 128).unwrap();
        assert_eq!(back.y(), f.y());
    }

    #[test]
    fn a_short_run_encodes_every_frame() {
        for codec in VideoCodec::ALL {
            let row = run(codec, 160, 120, 30.0, 300_000, Duration::from_millis(50)).unwrap();
            assert!(row.frames >= u64::from(FRAMES), "{row:?}");
            assert!(row.kbps > 0.0 && row.fps > 0.0, "{row:?}");
        }
    }
}
