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
