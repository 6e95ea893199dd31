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

/// Why a camera could not be opened or stopped delivering.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// The driver could not open the device.
    #[error(transparent)]
    Open(nokhwa::NokhwaError),
    /// The device opened but its stream would not start.
    #[error("busy or failed to start: {0}")]
    Start(#[source] nokhwa::NokhwaError),
    /// The driver opened a mode that cannot give the track's settings (see
    /// [`check_opened_mode`]).
    #[error("{0}")]
    Mode(String),
    /// Reading a frame failed: the device is gone.
    #[error(transparent)]
    Read(nokhwa::NokhwaError),
}

/// One raw frame as the camera delivered it.
struct RawFrame {
    data: Vec<u8>,
    width: u32,
    height: u32,
    format: nokhwa::utils::FrameFormat,
    at: std::time::Duration,
}

/// Checks the mode the driver actually opened (`Closest` may differ from the `requested`
/// native mode) against the track's `target` (width, height, frame rate). A mode that still
/// covers the target is fine — frames are cropped/scaled and decimated from it, with a
/// warning; one that is smaller or slower cannot give the selected settings.
pub(crate) fn check_opened_mode(
    requested: &VideoMode,
    opened: &VideoMode,
    target: (u32, u32, f64),
) -> Result<(), String> {
    let (width, height, fps) = target;
    // Drivers report integer rates: 29.97 opens as 30, 30 may report 29.
    let fps_ok = opened.frame_rate + 1.0 >= fps;
    let what = format!(
        "asked for {}x{}@{}, the driver opened {}x{}@{}",
        requested.width,
        requested.height,
        requested.frame_rate,
        opened.width,
        opened.height,
        opened.frame_rate
    );
    if opened.width < width || opened.height < height || !fps_ok {
        return Err(format!("{what}, which cannot give {width}x{height}@{fps}"));
    }
    if opened != requested {
        tracing::warn!("camera: {what}; adapting from it");
    }
    Ok(())
}

/// A V4L2 camera opened at the smallest native mode that covers the track's settings.
/// nokhwa's camera is not `Send`, so a device thread owns it and hands raw frames over a
/// two-frame channel (dropping, not queueing, when the consumer is behind); frames are
/// converted to I420, decimated to the track's frame rate and cropped/scaled to its size
/// here (the [`ModeAdapter`](crate::frame::ModeAdapter) shared with file sources). The
/// device's own rate paces the source. Dropping the source closes the device before it
/// returns (bounded by [`DEVICE_CLOSE_LIMIT`](crate::media::DEVICE_CLOSE_LIMIT)), so the
/// device can be reopened at once in another mode.
pub struct CameraSource {
    index: u32,
    frames: std::sync::mpsc::Receiver<Result<RawFrame, CameraError>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The mode the driver actually opened.
    native: VideoMode,
    /// The rate the device delivers raw frames at (before decimation), which sets how long
    /// a silence means a stalled device; `None` if unknown.
    device_rate: Option<f64>,
    /// No frame has arrived since opening yet (the device may still be settling).
    first_frame: bool,
    adapter: crate::frame::ModeAdapter,
}

impl CameraSource {
    pub fn open(
        index: u32,
        modes: &[VideoMode],
        settings: &crate::constraints::MediaTrackSettings,
    ) -> Result<Self, crate::media::SourceError> {
        use crate::media::{
            join_device_thread, video_settings, wait_until_open, SourceError, DEVICE_CLOSE_LIMIT,
            DEVICE_OPEN_LIMIT,
        };
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{mpsc, Arc};
        let (width, height, fps) = video_settings(settings)?;
        let requested = *modes
            .iter()
            .filter(|m| m.width >= width && m.height >= height && m.frame_rate >= fps)
            .min_by_key(|m| (m.width as u64 * m.height as u64, m.frame_rate as u64))
            .ok_or_else(|| {
                SourceError::Unsupported(format!("no native mode covers {width}x{height}@{fps}"))
            })?;
        let (frame_tx, frames) = mpsc::sync_channel(2);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<VideoMode, CameraError>>();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("camera video{index}"))
            .spawn(move || {
                let (mut camera, opened) = match open_camera(index, &requested) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                if let Err(e) = check_opened_mode(&requested, &opened, (width, height, fps)) {
                    let _ = camera.stop_stream();
                    let _ = ready_tx.send(Err(CameraError::Mode(e)));
                    return;
                }
                let _ = ready_tx.send(Ok(opened));
                let start = std::time::Instant::now();
                while !thread_stop.load(Ordering::Relaxed) {
                    let raw = camera.frame().map_err(CameraError::Read).map(|b| {
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
                if let Err(e) = camera.stop_stream() {
                    tracing::warn!("camera video{index}: closing: {e}");
                }
                // `camera` drops here: the V4L2 device is closed before the thread ends.
            })
            .map_err(|e| SourceError::cannot_open(format!("camera /dev/video{index}"), e))?;
        let what = format!("camera /dev/video{index}");
        match wait_until_open(&ready_rx, DEVICE_OPEN_LIMIT, &what) {
            Ok(native) => Ok(CameraSource {
                index,
                frames,
                stop,
                thread: Some(thread),
                // The driver reports whole frames per second (a 0.5 fps mode may read 0
                // or 1): the slower of the two paces the stall limit.
                device_rate: [native.frame_rate, requested.frame_rate]
                    .into_iter()
                    .filter(|r| r.is_finite() && *r > 0.0)
                    .reduce(f64::min),
                first_frame: true,
                native,
                adapter: crate::frame::ModeAdapter::new(width, height, fps),
            }),
            Err(failed) => {
                // A thread still in the driver's open stops as soon as open returns.
                stop.store(true, Ordering::Relaxed);
                if failed.hung {
                    tracing::warn!(
                        "{what}: the driver is still opening the device; \
                         leaving its thread to close it when open returns"
                    );
                } else {
                    join_device_thread(thread, DEVICE_CLOSE_LIMIT, &what);
                }
                Err(failed.error)
            }
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

/// Opens camera `index` near `mode` and starts streaming (on the device thread). Returns
/// the camera and the mode the driver actually opened.
fn open_camera(index: u32, mode: &VideoMode) -> Result<(nokhwa::Camera, VideoMode), CameraError> {
    use nokhwa::pixel_format::RgbFormat;
    use nokhwa::utils::{
        CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
    };
    let format = CameraFormat::new(
        Resolution::new(mode.width, mode.height),
        FrameFormat::YUYV,
        mode.frame_rate.round() as u32,
    );
    // `Closest` lets the driver pick the pixel format it has at this size (often MJPEG
    // only); the opened mode is checked by the caller.
    let requested = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(format));
    let mut camera =
        nokhwa::Camera::new(CameraIndex::Index(index), requested).map_err(CameraError::Open)?;
    camera.open_stream().map_err(CameraError::Start)?;
    let opened = camera.camera_format();
    let opened = VideoMode {
        width: opened.width(),
        height: opened.height(),
        frame_rate: opened.frame_rate() as f64,
    };
    Ok((camera, opened))
}

impl crate::media::Source for CameraSource {
    fn next_frame(&mut self) -> Result<crate::media::MediaFrame, crate::media::SourceError> {
        use crate::media::{recv_from_device, stall_limit, wall_clock_ms, MediaFrame, SourceError};
        let what = format!("camera /dev/video{}", self.index);
        loop {
            // A read error, a closed channel or a silent device means it went away.
            let limit = stall_limit(self.device_rate, self.first_frame);
            let raw = recv_from_device(&self.frames, limit, &what)?;
            self.first_frame = false;
            let raw = match raw {
                Ok(raw) => raw,
                Err(e) => return Err(SourceError::lost(what.as_str(), e)),
            };
            if !self.adapter.keep(raw.at) {
                continue;
            }
            let frame = match Self::convert(&raw) {
                Ok(f) => f,
                Err(e) => {
                    // One corrupt frame (a torn MJPEG) is dropped, not fatal.
                    tracing::warn!("{what}: frame dropped: {e}");
                    continue;
                }
            };
            let frame = self
                .adapter
                .fit(frame)
                .map_err(|e| SourceError::lost(what.as_str(), e))?
                .with_times(raw.at, wall_clock_ms());
            return Ok(MediaFrame::Video(std::sync::Arc::new(frame)));
        }
    }

    fn reconfigure(
        &mut self,
        settings: &crate::constraints::MediaTrackSettings,
    ) -> Result<(), crate::media::SourceError> {
        use crate::media::{video_settings, SourceError};
        let (width, height, fps) = video_settings(settings)?;
        let n = &self.native;
        if width > n.width || height > n.height || fps > n.frame_rate {
            // Another native mode needs the device reopened; the track layer does that.
            return Err(SourceError::Unsupported(format!(
                "{width}x{height}@{fps} exceeds the open mode {}x{}@{}",
                n.width, n.height, n.frame_rate
            )));
        }
        self.adapter.set_target(width, height, fps);
        Ok(())
    }
}

impl Drop for CameraSource {
    /// Stops the device thread and waits (bounded) until it has closed the device, so the
    /// device lease, released after this, never claims a free device that is still open.
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            crate::media::join_device_thread(
                thread,
                crate::media::DEVICE_CLOSE_LIMIT,
                &format!("camera /dev/video{}", self.index),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(width: u32, height: u32, frame_rate: f64) -> VideoMode {
        VideoMode {
            width,
            height,
            frame_rate,
        }
    }

    #[test]
    fn an_opened_mode_must_cover_the_target() {
        let asked = mode(1280, 720, 30.0);
        // Exactly what was asked, or a bigger/faster mode: adapted from.
        assert!(check_opened_mode(&asked, &asked, (1280, 720, 30.0)).is_ok());
        assert!(check_opened_mode(&asked, &mode(1920, 1080, 30.0), (1280, 720, 30.0)).is_ok());
        assert!(check_opened_mode(&asked, &mode(1280, 720, 60.0), (640, 360, 15.0)).is_ok());
        // A driver's integer rate for 29.97.
        assert!(check_opened_mode(&asked, &mode(1280, 720, 29.0), (1280, 720, 29.97)).is_ok());
        // Smaller or slower than the track needs: an error naming both modes.
        let err = check_opened_mode(&asked, &mode(640, 480, 30.0), (1280, 720, 30.0)).unwrap_err();
        assert!(
            err.contains("1280x720@30") && err.contains("640x480@30"),
            "{err}"
        );
        assert!(check_opened_mode(&asked, &mode(1280, 720, 15.0), (1280, 720, 30.0)).is_err());
    }
}
