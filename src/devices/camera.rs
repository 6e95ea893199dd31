//! Real cameras through nokhwa (V4L2 on Linux): enumeration with their native modes.
//!
//! Cannot be exercised on machines without a camera (CI has none): with no `/dev/video*`
//! nokhwa's query returns an empty list, which is what the tests see.

use super::descriptor::{DeviceDescriptor, SourceSpec};
use crate::constraints::{DeviceModel, DeviceModes, VideoMode};

/// Every camera nokhwa finds, with the distinct (width, height, frame rate) modes it
/// offers across pixel formats. A camera that cannot be queried (busy, gone) is left out
/// with a warning rather than failing enumeration of the others.
pub fn enumerate() -> Vec<DeviceDescriptor> {
    use nokhwa::pixel_format::RgbFormat;
    use nokhwa::utils::{ApiBackend, RequestedFormat, RequestedFormatType};

    let infos = match nokhwa::query(ApiBackend::Video4Linux) {
        Ok(infos) => infos,
        Err(e) => {
            tracing::warn!("camera enumeration failed: {e}");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for info in infos {
        let index = match info.index().as_index() {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!("camera {:?}: no numeric index: {e}", info.human_name());
                continue;
            }
        };
        let requested = RequestedFormat::new::<RgbFormat>(RequestedFormatType::None);
        let formats = nokhwa::Camera::new(info.index().clone(), requested)
            .and_then(|mut cam| cam.compatible_camera_formats());
        let formats = match formats {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("camera {:?} could not be queried: {e}", info.human_name());
                continue;
            }
        };
        let mut modes: Vec<VideoMode> = Vec::new();
        for f in formats {
            let mode = VideoMode {
                width: f.width(),
                height: f.height(),
                frame_rate: f.frame_rate() as f64,
            };
            if mode.width > 0 && mode.height > 0 && mode.frame_rate > 0.0 && !modes.contains(&mode)
            {
                modes.push(mode);
            }
        }
        if modes.is_empty() {
            tracing::warn!("camera {:?} reports no usable modes", info.human_name());
            continue;
        }
        modes.sort_by(|a, b| {
            (a.width * a.height)
                .cmp(&(b.width * b.height))
                .then(a.frame_rate.total_cmp(&b.frame_rate))
        });
        let device_id = format!("video{index}");
        out.push(DeviceDescriptor {
            model: DeviceModel {
                group_id: device_id.clone(),
                device_id,
                // V4L2 does not say which way a webcam faces.
                facing_mode: None,
                modes: DeviceModes::Video(modes),
            },
            label: info.human_name(),
            source: SourceSpec::Camera { index },
        });
    }
    out
}

/// One raw frame as the camera delivered it.
struct RawFrame {
    data: Vec<u8>,
    width: u32,
    height: u32,
    format: nokhwa::utils::FrameFormat,
    at: std::time::Duration,
}

/// A V4L2 camera opened at the smallest native mode that covers the track's settings.
/// nokhwa's camera is not `Send`, so a device thread owns it and hands raw frames over a
/// two-frame channel (dropping, not queueing, when the consumer is behind); frames are
/// converted to I420, cropped/scaled to the track's size and decimated to its frame rate
/// here. The device's own rate paces the source.
pub struct CameraSource {
    frames: std::sync::mpsc::Receiver<Result<RawFrame, String>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    native: VideoMode,
    width: u32,
    height: u32,
    decimator: crate::frame::FrameRateDecimator,
    scaler: crate::frame::Scaler,
}

impl CameraSource {
    pub fn open(
        index: u32,
        modes: &[VideoMode],
        settings: &crate::constraints::MediaTrackSettings,
    ) -> Result<Self, super::source::SourceError> {
        use super::source::{video_settings, SourceError};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{mpsc, Arc};
        let (width, height, fps) = video_settings(settings)?;
        let native = *modes
            .iter()
            .filter(|m| m.width >= width && m.height >= height && m.frame_rate >= fps)
            .min_by_key(|m| (m.width as u64 * m.height as u64, m.frame_rate as u64))
            .ok_or_else(|| {
                SourceError::Unsupported(format!("no native mode covers {width}x{height}@{fps}"))
            })?;
        let (frame_tx, frames) = mpsc::sync_channel(2);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name(format!("camera video{index}"))
            .spawn(move || {
                let mut camera = match open_camera(index, &native) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let start = std::time::Instant::now();
                while !thread_stop.load(Ordering::Relaxed) {
                    let raw = camera.frame().map_err(|e| e.to_string()).map(|b| {
                        let res = b.resolution();
                        RawFrame {
                            data: b.buffer().to_vec(),
                            width: res.width(),
                            height: res.height(),
                            format: b.source_frame_format(),
                            at: start.elapsed(),
                        }
                    });
                    let failed = raw.is_err();
                    match frame_tx.try_send(raw) {
                        Err(mpsc::TrySendError::Disconnected(_)) => break,
                        _ if failed => break,
                        _ => {}
                    }
                }
                let _ = camera.stop_stream();
            })
            .map_err(|e| SourceError::Open(format!("camera /dev/video{index}: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(CameraSource {
                frames,
                stop,
                native,
                width,
                height,
                decimator: crate::frame::FrameRateDecimator::new(fps),
                scaler: crate::frame::Scaler::new(),
            }),
            Ok(Err(e)) => Err(SourceError::Open(format!("camera /dev/video{index}: {e}"))),
            Err(_) => Err(SourceError::Open(format!(
                "camera /dev/video{index}: capture thread failed"
            ))),
        }
    }

    fn convert(raw: &RawFrame) -> Result<crate::frame::VideoFrame, crate::frame::FrameError> {
        use crate::frame::VideoFrame;
        use nokhwa::utils::FrameFormat;
        let (w, h, data) = (raw.width, raw.height, raw.data.as_slice());
        match raw.format {
            FrameFormat::YUYV => VideoFrame::from_yuyv(data, w, h, w * 2),
            FrameFormat::NV12 => VideoFrame::from_nv12(data, w, h),
            FrameFormat::MJPEG => VideoFrame::from_mjpeg(data),
            FrameFormat::RAWRGB => VideoFrame::from_rgb24(data, w, h),
            FrameFormat::RAWBGR => {
                let rgb: Vec<u8> = data
                    .chunks_exact(3)
                    .flat_map(|p| [p[2], p[1], p[0]])
                    .collect();
                VideoFrame::from_rgb24(&rgb, w, h)
            }
            FrameFormat::GRAY => {
                let mut f = VideoFrame::black(w, h);
                let y = f.planes_mut().0;
                let n = y.len().min(data.len());
                y[..n].copy_from_slice(&data[..n]);
                Ok(f)
            }
        }
    }
}

/// Opens camera `index` near `mode` and starts streaming (on the device thread).
fn open_camera(index: u32, mode: &VideoMode) -> Result<nokhwa::Camera, String> {
    use nokhwa::pixel_format::RgbFormat;
    use nokhwa::utils::{
        CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
    };
    let format = CameraFormat::new(
        Resolution::new(mode.width, mode.height),
        FrameFormat::YUYV,
        mode.frame_rate.round() as u32,
    );
    let requested = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(format));
    let mut camera =
        nokhwa::Camera::new(CameraIndex::Index(index), requested).map_err(|e| e.to_string())?;
    camera
        .open_stream()
        .map_err(|e| format!("busy or failed to start: {e}"))?;
    Ok(camera)
}

impl super::source::Source for CameraSource {
    fn next_frame(&mut self) -> Result<super::source::MediaFrame, super::source::SourceError> {
        use super::source::{wall_clock_ms, MediaFrame, SourceError};
        loop {
            // A read error or a closed channel means the device went away (unplugged).
            let raw = match self.frames.recv() {
                Ok(Ok(raw)) => raw,
                Ok(Err(e)) => return Err(SourceError::Ended(format!("camera: {e}"))),
                Err(_) => return Err(SourceError::Ended("camera thread stopped".into())),
            };
            if !self.decimator.accept(raw.at) {
                continue;
            }
            let frame = match Self::convert(&raw) {
                Ok(f) => f,
                Err(e) => {
                    // One corrupt frame (a torn MJPEG) is dropped, not fatal.
                    tracing::warn!("camera frame dropped: {e}");
                    continue;
                }
            };
            let frame = frame
                .crop_and_scale(self.width, self.height, &mut self.scaler)
                .map_err(|e| SourceError::Ended(e.to_string()))?
                .with_times(raw.at, wall_clock_ms());
            return Ok(MediaFrame::Video(std::sync::Arc::new(frame)));
        }
    }

    fn reconfigure(
        &mut self,
        settings: &crate::constraints::MediaTrackSettings,
    ) -> Result<(), super::source::SourceError> {
        use super::source::{video_settings, SourceError};
        let (width, height, fps) = video_settings(settings)?;
        let n = &self.native;
        if width > n.width || height > n.height || fps > n.frame_rate {
            // Another native mode needs the device reopened; the track layer does that.
            return Err(SourceError::Unsupported(format!(
                "{width}x{height}@{fps} exceeds the open mode {}x{}@{}",
                n.width, n.height, n.frame_rate
            )));
        }
        self.width = width;
        self.height = height;
        self.decimator = crate::frame::FrameRateDecimator::new(fps);
        Ok(())
    }
}

impl Drop for CameraSource {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
