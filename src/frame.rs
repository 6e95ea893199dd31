//! Raw media: [`VideoFrame`] (I420) and [`AudioFrame`] (interleaved PCM), conversions from
//! what cameras deliver (YUYV, NV12, MJPEG, RGB), crop-and-scale, and frame-rate
//! decimation.
//!
//! Pixel work uses well-kept crates: `yuv` for packed/RGB → I420, `fast_image_resize`
//! (plane by plane) for scaling, `zune-jpeg` for MJPEG. NV12 → I420 is a plain
//! de-interleave of the chroma plane, written here because it is four lines.

use std::sync::Arc;
use std::time::Duration;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

/// Why raw media could not be converted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FrameError {
    #[error("{format} frame of {width}x{height} needs {expected} bytes, got {got}")]
    WrongSize {
        format: &'static str,
        width: u32,
        height: u32,
        expected: usize,
        got: usize,
    },
    #[error("invalid frame size {width}x{height}")]
    InvalidDimensions { width: u32, height: u32 },
    #[error("MJPEG frame: {0}")]
    Jpeg(String),
    /// A pixel library refused the job; `what` names the step.
    #[error("conversion failed ({what}): {source}")]
    Convert {
        what: &'static str,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
}

impl FrameError {
    /// A pixel library's error at step `what`.
    fn convert<E>(what: &'static str) -> impl FnOnce(E) -> FrameError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |e| FrameError::Convert {
            what,
            source: Arc::new(e),
        }
    }
}

/// Luma of black and the neutral chroma value in limited-range video.
pub const BLACK_Y: u8 = 16;
pub const NEUTRAL_CHROMA: u8 = 128;

/// A video frame in I420: the Y plane (width × height), then U and V, each
/// ⌈width/2⌉ × ⌈height/2⌉, tightly packed.
#[derive(Clone, PartialEq, Eq)]
pub struct VideoFrame {
    width: u32,
    height: u32,
    data: Vec<u8>,
    /// Position on the track's timeline: time since the track started (monotonic).
    pub timestamp: Duration,
    /// Wall-clock capture time in milliseconds since the UNIX epoch.
    pub capture_time_ms: u64,
}

impl std::fmt::Debug for VideoFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoFrame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("timestamp", &self.timestamp)
            .field("capture_time_ms", &self.capture_time_ms)
            .finish_non_exhaustive()
    }
}

/// The size of a chroma plane for a frame of `width` × `height`.
pub fn chroma_size(width: u32, height: u32) -> (u32, u32) {
    (width.div_ceil(2), height.div_ceil(2))
}

/// Bytes in an I420 frame of `width` × `height`.
pub fn i420_len(width: u32, height: u32) -> usize {
    let (cw, ch) = chroma_size(width, height);
    width as usize * height as usize + 2 * cw as usize * ch as usize
}

fn check_dimensions(width: u32, height: u32) -> Result<(), FrameError> {
    if width == 0 || height == 0 || width > 16384 || height > 16384 {
        Err(FrameError::InvalidDimensions { width, height })
    } else {
        Ok(())
    }
}

fn check_len(
    format: &'static str,
    width: u32,
    height: u32,
    expected: usize,
    got: usize,
) -> Result<(), FrameError> {
    if got < expected {
        Err(FrameError::WrongSize {
            format,
            width,
            height,
            expected,
            got,
        })
    } else {
        Ok(())
    }
}

impl VideoFrame {
    /// A frame from I420 bytes; fails when the buffer does not match the size.
    pub fn from_i420(width: u32, height: u32, data: Vec<u8>) -> Result<Self, FrameError> {
        check_dimensions(width, height)?;
        let expected = i420_len(width, height);
        if data.len() != expected {
            return Err(FrameError::WrongSize {
                format: "I420",
                width,
                height,
                expected,
                got: data.len(),
            });
        }
        Ok(VideoFrame {
            width,
            height,
            data,
            timestamp: Duration::ZERO,
            capture_time_ms: 0,
        })
    }

    /// A black frame (Y 16, chroma 128).
    pub fn black(width: u32, height: u32) -> Self {
        let y = width as usize * height as usize;
        let mut data = vec![NEUTRAL_CHROMA; i420_len(width, height)];
        data[..y].fill(BLACK_Y);
        VideoFrame {
            width,
            height,
            data,
            timestamp: Duration::ZERO,
            capture_time_ms: 0,
        }
    }

    /// The same frame with the given timestamps.
    pub fn with_times(mut self, timestamp: Duration, capture_time_ms: u64) -> Self {
        self.timestamp = timestamp;
        self.capture_time_ms = capture_time_ms;
        self
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// All three planes, back to back.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    fn plane_ranges(&self) -> (usize, usize) {
        let y = self.width as usize * self.height as usize;
        let (cw, ch) = chroma_size(self.width, self.height);
        (y, y + cw as usize * ch as usize)
    }

    pub fn y(&self) -> &[u8] {
        &self.data[..self.plane_ranges().0]
    }

    pub fn u(&self) -> &[u8] {
        let (a, b) = self.plane_ranges();
        &self.data[a..b]
    }

    pub fn v(&self) -> &[u8] {
        &self.data[self.plane_ranges().1..]
    }

    /// Mutable Y, U and V planes.
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let (a, b) = self.plane_ranges();
        let (y, rest) = self.data.split_at_mut(a);
        let (u, v) = rest.split_at_mut(b - a);
        (y, u, v)
    }

    /// The frame as the `yuv` crate's writable planar image.
    fn planar_mut(&mut self) -> yuv::YuvPlanarImageMut<'_, u8> {
        let (width, height) = (self.width, self.height);
        let (cw, _) = chroma_size(width, height);
        let (y, u, v) = self.planes_mut();
        yuv::YuvPlanarImageMut {
            y_plane: yuv::BufferStoreMut::Borrowed(y),
            y_stride: width,
            u_plane: yuv::BufferStoreMut::Borrowed(u),
            u_stride: cw,
            v_plane: yuv::BufferStoreMut::Borrowed(v),
            v_stride: cw,
            width,
            height,
        }
    }

    /// Converts packed YUYV (4:2:2) to I420. `stride` is bytes per row (≥ 2 × width).
    pub fn from_yuyv(src: &[u8], width: u32, height: u32, stride: u32) -> Result<Self, FrameError> {
        check_dimensions(width, height)?;
        if !width.is_multiple_of(2) || stride < width * 2 {
            return Err(FrameError::InvalidDimensions { width, height });
        }
        check_len(
            "YUYV",
            width,
            height,
            stride as usize * height as usize,
            src.len(),
        )?;
        let mut frame = VideoFrame::black(width, height);
        let mut planar = frame.planar_mut();
        let packed = yuv::YuvPackedImage {
            yuy: &src[..stride as usize * height as usize],
            yuy_stride: stride,
            width,
            height,
        };
        yuv::yuyv422_to_yuv420(&mut planar, &packed)
            .map_err(FrameError::convert("YUYV to I420"))?;
        Ok(frame)
    }

    /// Converts NV12 (Y plane, then interleaved UV at half resolution) to I420.
    pub fn from_nv12(src: &[u8], width: u32, height: u32) -> Result<Self, FrameError> {
        check_dimensions(width, height)?;
        let (cw, ch) = chroma_size(width, height);
        let y_len = width as usize * height as usize;
        let uv_len = 2 * cw as usize * ch as usize;
        check_len("NV12", width, height, y_len + uv_len, src.len())?;
        let mut frame = VideoFrame::black(width, height);
        let (y, u, v) = frame.planes_mut();
        y.copy_from_slice(&src[..y_len]);
        for (i, pair) in src[y_len..y_len + uv_len].chunks_exact(2).enumerate() {
            u[i] = pair[0];
            v[i] = pair[1];
        }
        Ok(frame)
    }

    /// Converts packed RGB (3 bytes a pixel, BT.601 limited range) to I420.
    pub fn from_rgb24(src: &[u8], width: u32, height: u32) -> Result<Self, FrameError> {
        check_dimensions(width, height)?;
        let stride = width * 3;
        check_len(
            "RGB",
            width,
            height,
            stride as usize * height as usize,
            src.len(),
        )?;
        let mut frame = VideoFrame::black(width, height);
        let mut planar = frame.planar_mut();
        yuv::rgb_to_yuv420(
            &mut planar,
            src,
            stride,
            yuv::YuvRange::Limited,
            yuv::YuvStandardMatrix::Bt601,
            yuv::YuvConversionMode::Balanced,
        )
        .map_err(FrameError::convert("RGB to I420"))?;
        Ok(frame)
    }

    /// Decodes one MJPEG frame (a JPEG image) to I420.
    pub fn from_mjpeg(jpeg: &[u8]) -> Result<Self, FrameError> {
        use zune_jpeg::zune_core::colorspace::ColorSpace;
        use zune_jpeg::zune_core::options::DecoderOptions;
        let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(jpeg, options);
        let rgb = decoder
            .decode()
            .map_err(|e| FrameError::Jpeg(format!("{e:?}")))?;
        let info = decoder
            .info()
            .ok_or_else(|| FrameError::Jpeg("no image header".into()))?;
        VideoFrame::from_rgb24(&rgb, info.width as u32, info.height as u32)
    }

    /// [`crop_and_scale`](Self::crop_and_scale) that consumes the frame, so a frame that
    /// already has the size is passed through without copying its pixels (the common case
    /// of a camera opened at exactly the track's mode).
    pub fn fit(
        self,
        width: u32,
        height: u32,
        scaler: &mut Scaler,
    ) -> Result<VideoFrame, FrameError> {
        check_dimensions(width, height)?;
        if (width, height) == (self.width, self.height) {
            return Ok(self);
        }
        self.crop_and_scale(width, height, scaler)
    }

    /// This frame cropped around its centre to the aspect ratio of `width` × `height`,
    /// then scaled to exactly that size (bilinear). Returns a copy when the size already
    /// matches (use [`fit`](Self::fit) to avoid it). Timestamps are kept.
    pub fn crop_and_scale(
        &self,
        width: u32,
        height: u32,
        scaler: &mut Scaler,
    ) -> Result<VideoFrame, FrameError> {
        check_dimensions(width, height)?;
        if (width, height) == (self.width, self.height) {
            return Ok(self.clone());
        }
        // The largest centred source rectangle with the target's aspect ratio.
        let (sw, sh) = (self.width as f64, self.height as f64);
        let target_aspect = width as f64 / height as f64;
        let (crop_w, crop_h) = if sw / sh > target_aspect {
            (sh * target_aspect, sh)
        } else {
            (sw, sw / target_aspect)
        };
        let (left, top) = ((sw - crop_w) / 2.0, (sh - crop_h) / 2.0);
        let mut out =
            VideoFrame::black(width, height).with_times(self.timestamp, self.capture_time_ms);
        let (cw, ch) = chroma_size(width, height);
        let (scw, sch) = chroma_size(self.width, self.height);
        let (dy, du, dv) = out.planes_mut();
        let planes = [
            (self.y(), self.width, self.height, dy, width, height, 1.0),
            (self.u(), scw, sch, du, cw, ch, 0.5),
            (self.v(), scw, sch, dv, cw, ch, 0.5),
        ];
        for (src, src_w, src_h, dst, dst_w, dst_h, factor) in planes {
            let src_img = ImageRef::new(src_w, src_h, src, PixelType::U8)
                .map_err(FrameError::convert("scale source plane"))?;
            let mut dst_img = Image::from_slice_u8(dst_w, dst_h, dst, PixelType::U8)
                .map_err(FrameError::convert("scale target plane"))?;
            let options = ResizeOptions::new()
                .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
                .crop(
                    left * factor,
                    top * factor,
                    crop_w * factor,
                    crop_h * factor,
                );
            scaler
                .resizer
                .resize(&src_img, &mut dst_img, &options)
                .map_err(FrameError::convert("scale"))?;
        }
        Ok(out)
    }
}

/// Reusable scaling state (the resizer keeps buffers between frames).
#[derive(Default)]
pub struct Scaler {
    resizer: Resizer,
}

impl Scaler {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Turns a device's native frames into a track's settings — frame-rate decimation, then
/// crop-and-scale — so cameras and file sources share one code path from "native frames"
/// to "the selected width, height and frame rate".
pub struct ModeAdapter {
    width: u32,
    height: u32,
    frame_rate: f64,
    decimator: FrameRateDecimator,
    scaler: Scaler,
}

impl ModeAdapter {
    /// An adapter to `width` × `height` at (at most) `frame_rate`.
    pub fn new(width: u32, height: u32, frame_rate: f64) -> Self {
        ModeAdapter {
            width,
            height,
            frame_rate,
            decimator: FrameRateDecimator::new(frame_rate),
            scaler: Scaler::new(),
        }
    }

    /// Changes the target from the next frame on (the cadence restarts there).
    pub fn set_target(&mut self, width: u32, height: u32, frame_rate: f64) {
        self.width = width;
        self.height = height;
        if frame_rate != self.frame_rate {
            self.frame_rate = frame_rate;
            self.decimator = FrameRateDecimator::new(frame_rate);
        }
    }

    /// The target (width, height, frame rate).
    pub fn target(&self) -> (u32, u32, f64) {
        (self.width, self.height, self.frame_rate)
    }

    /// Whether the native frame at `timestamp` is kept; asked before converting it, so a
    /// dropped frame costs no pixel work.
    pub fn keep(&mut self, timestamp: Duration) -> bool {
        self.decimator.accept(timestamp)
    }

    /// A kept native frame at the target size (passed through when it already is).
    pub fn fit(&mut self, frame: VideoFrame) -> Result<VideoFrame, FrameError> {
        frame.fit(self.width, self.height, &mut self.scaler)
    }
}

/// Drops frames to bring a source rate down to a target rate, keeping an even cadence:
/// a frame passes when its timestamp reaches the next slot, and slots advance by the
/// target interval (so 30 → 15 fps passes every other frame, 30 → 20 two of three).
#[derive(Debug, Clone)]
pub struct FrameRateDecimator {
    interval: Duration,
    next_slot: Option<Duration>,
}

impl FrameRateDecimator {
    pub fn new(target_fps: f64) -> Self {
        FrameRateDecimator {
            interval: Duration::from_secs_f64(1.0 / target_fps.max(0.001)),
            next_slot: None,
        }
    }

    /// Whether the frame at `timestamp` should be kept.
    pub fn accept(&mut self, timestamp: Duration) -> bool {
        // Half a millisecond of slack absorbs jitter in capture timestamps.
        let slack = Duration::from_micros(500);
        match self.next_slot {
            None => {
                self.next_slot = Some(timestamp + self.interval);
                true
            }
            Some(slot) if timestamp + slack >= slot => {
                let mut next = slot + self.interval;
                // After a long gap, restart the cadence rather than bursting.
                if next + slack < timestamp {
                    next = timestamp + self.interval;
                }
                self.next_slot = Some(next);
                true
            }
            Some(_) => false,
        }
    }
}

/// Interleaved PCM samples.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioSamples {
    I16(Vec<i16>),
    F32(Vec<f32>),
}

impl AudioSamples {
    /// Samples (all channels).
    pub fn len(&self) -> usize {
        match self {
            AudioSamples::I16(s) => s.len(),
            AudioSamples::F32(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// No samples, of the same type.
    pub fn empty_like(&self) -> AudioSamples {
        match self {
            AudioSamples::I16(_) => AudioSamples::I16(Vec::new()),
            AudioSamples::F32(_) => AudioSamples::F32(Vec::new()),
        }
    }

    /// Appends `other`, converted to this type if it differs.
    pub fn append(&mut self, other: AudioSamples) {
        match (self, other) {
            (AudioSamples::I16(a), AudioSamples::I16(b)) => a.extend(b),
            (AudioSamples::F32(a), AudioSamples::F32(b)) => a.extend(b),
            (AudioSamples::I16(a), AudioSamples::F32(b)) => a.extend(
                b.iter()
                    .map(|&x| (x.clamp(-1.0, 1.0) * i16::MAX as f32) as i16),
            ),
            (AudioSamples::F32(a), AudioSamples::I16(b)) => {
                a.extend(b.iter().map(|&x| x as f32 / 32768.0))
            }
        }
    }

    /// Removes and returns the first `n` samples (all of them if fewer).
    pub fn split_front(&mut self, n: usize) -> AudioSamples {
        match self {
            AudioSamples::I16(s) => AudioSamples::I16(s.drain(..n.min(s.len())).collect()),
            AudioSamples::F32(s) => AudioSamples::F32(s.drain(..n.min(s.len())).collect()),
        }
    }
}

/// A block of audio: interleaved samples of `channels` channels at `sample_rate`.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFrame {
    pub sample_rate: u32,
    pub channels: u16,
    pub samples: AudioSamples,
    /// Position on the track's timeline (monotonic).
    pub timestamp: Duration,
    /// Wall-clock capture time in milliseconds since the UNIX epoch.
    pub capture_time_ms: u64,
}

impl AudioFrame {
    /// Samples per channel.
    pub fn frames(&self) -> usize {
        let n = match &self.samples {
            AudioSamples::I16(s) => s.len(),
            AudioSamples::F32(s) => s.len(),
        };
        n / self.channels.max(1) as usize
    }

    /// The duration this block covers.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.frames() as f64 / self.sample_rate.max(1) as f64)
    }

    /// The samples as i16 (f32 is clamped to [-1, 1] and scaled).
    pub fn to_i16(&self) -> Vec<i16> {
        match &self.samples {
            AudioSamples::I16(s) => s.clone(),
            AudioSamples::F32(s) => s
                .iter()
                .map(|&x| (x.clamp(-1.0, 1.0) * i16::MAX as f32) as i16)
                .collect(),
        }
    }

    /// Silence of the same shape and times.
    pub fn silenced(&self) -> AudioFrame {
        let samples = match &self.samples {
            AudioSamples::I16(s) => AudioSamples::I16(vec![0; s.len()]),
            AudioSamples::F32(s) => AudioSamples::F32(vec![0.0; s.len()]),
        };
        AudioFrame {
            samples,
            ..self.clone()
        }
    }

    /// The same audio with `channels` channels, as i16: mono is duplicated, extra
    /// channels are averaged down.
    pub fn with_channels(&self, channels: u16) -> AudioFrame {
        let src = self.to_i16();
        let from = self.channels.max(1) as usize;
        let to = channels.max(1) as usize;
        let mut out = Vec::with_capacity(self.frames() * to);
        for frame in src.chunks_exact(from) {
            if from == to {
                out.extend_from_slice(frame);
            } else {
                let mean = (frame.iter().map(|&s| s as i32).sum::<i32>() / from as i32) as i16;
                out.extend(std::iter::repeat_n(mean, to));
            }
        }
        AudioFrame {
            sample_rate: self.sample_rate,
            channels: to as u16,
            samples: AudioSamples::I16(out),
            timestamp: self.timestamp,
            capture_time_ms: self.capture_time_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_frame_layout() {
        let f = VideoFrame::black(5, 3);
        assert_eq!(f.data().len(), 15 + 2 * 3 * 2);
        assert!(f.y().iter().all(|&b| b == BLACK_Y));
        assert!(f.u().iter().chain(f.v()).all(|&b| b == NEUTRAL_CHROMA));
        assert!(VideoFrame::from_i420(5, 3, vec![0; 10]).is_err());
    }

    #[test]
    fn yuyv_to_i420_keeps_luma_and_averages_nothing_away() {
        // 4×2 YUYV: Y values 10..17, U 100, V 200.
        let mut src = Vec::new();
        for i in 0..4u8 {
            src.extend_from_slice(&[10 + 2 * i, 100, 11 + 2 * i, 200]);
        }
        let f = VideoFrame::from_yuyv(&src, 4, 2, 8).unwrap();
        assert_eq!(f.y(), &[10, 11, 12, 13, 14, 15, 16, 17]);
        assert!(f.u().iter().all(|&u| u == 100), "{:?}", f.u());
        assert!(f.v().iter().all(|&v| v == 200), "{:?}", f.v());
        assert!(matches!(
            VideoFrame::from_yuyv(&src[..10], 4, 2, 8),
            Err(FrameError::WrongSize { .. })
        ));
    }

    #[test]
    fn nv12_to_i420_deinterleaves() {
        let mut src = vec![50u8; 4 * 2];
        src.extend_from_slice(&[1, 2, 3, 4]);
        let f = VideoFrame::from_nv12(&src, 4, 2).unwrap();
        assert_eq!(f.u(), &[1, 3]);
        assert_eq!(f.v(), &[2, 4]);
        assert!(VideoFrame::from_nv12(&src[..9], 4, 2).is_err());
    }

    #[test]
    fn rgb_to_i420_limited_range() {
        let white = vec![255u8; 4 * 4 * 3];
        let f = VideoFrame::from_rgb24(&white, 4, 4).unwrap();
        assert!(
            f.y().iter().all(|&y| (233..=236).contains(&y)),
            "{:?}",
            f.y()
        );
        let black = vec![0u8; 4 * 4 * 3];
        let f = VideoFrame::from_rgb24(&black, 4, 4).unwrap();
        assert!(f.y().iter().all(|&y| (15..=17).contains(&y)), "{:?}", f.y());
        assert!(f.u().iter().all(|&u| (127..=129).contains(&u)));
    }

    #[test]
    fn mjpeg_decodes_and_garbage_is_an_error() {
        let (w, h) = (32u16, 16u16);
        let mut rgb = Vec::new();
        for _ in 0..h {
            for x in 0..w {
                let v = if x < w / 2 { 20 } else { 230 };
                rgb.extend_from_slice(&[v, v, v]);
            }
        }
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 95)
            .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        let f = VideoFrame::from_mjpeg(&jpeg).unwrap();
        assert_eq!((f.width(), f.height()), (32, 16));
        let left = f.y()[8 * 32 + 4];
        let right = f.y()[8 * 32 + 28];
        assert!(left < 60 && right > 180, "{left} {right}");
        assert!(matches!(
            VideoFrame::from_mjpeg(b"not a jpeg"),
            Err(FrameError::Jpeg(_))
        ));
    }

    #[test]
    fn crop_and_scale_sizes_and_content() {
        // Left half dark, right half bright.
        let (w, h) = (64u32, 48u32);
        let mut f = VideoFrame::black(w, h);
        {
            let (y, _, _) = f.planes_mut();
            for row in 0..h as usize {
                for x in w as usize / 2..w as usize {
                    y[row * w as usize + x] = 200;
                }
            }
        }
        let mut scaler = Scaler::new();
        let small = f.crop_and_scale(32, 24, &mut scaler).unwrap();
        assert_eq!((small.width(), small.height()), (32, 24));
        assert_eq!(small.data().len(), i420_len(32, 24));
        assert!(small.y()[12 * 32 + 2] < 30 && small.y()[12 * 32 + 30] > 180);
        // A 16:9 crop of a 4:3 frame keeps the centre rows.
        let wide = f.crop_and_scale(32, 18, &mut scaler).unwrap();
        assert_eq!((wide.width(), wide.height()), (32, 18));
        // Odd sizes work too.
        let odd = f.crop_and_scale(33, 17, &mut scaler).unwrap();
        assert_eq!(odd.data().len(), i420_len(33, 17));
        assert!(f.crop_and_scale(0, 10, &mut scaler).is_err());
    }

    #[test]
    fn decimation_keeps_an_even_cadence() {
        let step = Duration::from_nanos(1_000_000_000 / 30);
        let kept = |target: f64| {
            let mut d = FrameRateDecimator::new(target);
            (0..300).filter(|i| d.accept(step * *i)).count()
        };
        assert_eq!(kept(30.0), 300);
        assert_eq!(kept(15.0), 150);
        let k = kept(20.0);
        assert!((199..=201).contains(&k), "{k}");
        let k = kept(7.5);
        assert!((74..=76).contains(&k), "{k}");
    }

    #[test]
    fn audio_channels_and_silence() {
        let f = AudioFrame {
            sample_rate: 48000,
            channels: 1,
            samples: AudioSamples::I16(vec![100, -100, 300]),
            timestamp: Duration::ZERO,
            capture_time_ms: 0,
        };
        let stereo = f.with_channels(2);
        assert_eq!(
            stereo.samples,
            AudioSamples::I16(vec![100, 100, -100, -100, 300, 300])
        );
        assert_eq!(stereo.with_channels(1).samples, f.samples);
        assert_eq!(f.silenced().samples, AudioSamples::I16(vec![0, 0, 0]));
        assert_eq!(stereo.frames(), 3);
        let float = AudioFrame {
            samples: AudioSamples::F32(vec![1.0, -2.0]),
            ..f
        };
        assert_eq!(float.to_i16(), vec![i16::MAX, -i16::MAX]);
    }
}
