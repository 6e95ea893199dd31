//! What selection needs to know about a device: its ids, facing mode and native modes.
//! Labels and sources are the `devices` module's business; this stays pure data.

use serde::{Deserialize, Serialize};

use super::property::MediaKind;
use super::value::Flag;

/// The direction a camera faces (the spec's `VideoFacingModeEnum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FacingMode {
    User,
    Environment,
    Left,
    Right,
}

impl FacingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FacingMode::User => "user",
            FacingMode::Environment => "environment",
            FacingMode::Left => "left",
            FacingMode::Right => "right",
        }
    }
}

/// How a track's frames relate to the device's native mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResizeMode {
    /// Exactly a native mode of the device.
    #[serde(rename = "none")]
    None,
    /// Cropped, scaled and/or frame-decimated from a native mode.
    #[serde(rename = "crop-and-scale")]
    CropAndScale,
}

impl ResizeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ResizeMode::None => "none",
            ResizeMode::CropAndScale => "crop-and-scale",
        }
    }
}

/// A native video mode of a camera.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoMode {
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
}

/// A native audio mode of a microphone.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioMode {
    pub sample_rate: u32,
    pub channel_count: u32,
    pub sample_size: u32,
    /// Seconds.
    pub latency: f64,
}

/// The modes a device can run in, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceModes {
    Video(Vec<VideoMode>),
    Audio {
        modes: Vec<AudioMode>,
        /// Supported values of echoCancellation (a device without processing: `[Off]`).
        echo_cancellation: Vec<Flag>,
        auto_gain_control: Vec<bool>,
        noise_suppression: Vec<bool>,
    },
}

/// One device as selection sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceModel {
    pub device_id: String,
    pub group_id: String,
    /// `None` for a camera that does not know where it faces (and for every microphone).
    pub facing_mode: Option<FacingMode>,
    pub modes: DeviceModes,
}

impl DeviceModel {
    /// The kind of track this device produces.
    pub fn kind(&self) -> MediaKind {
        match self.modes {
            DeviceModes::Video(_) => MediaKind::Video,
            DeviceModes::Audio { .. } => MediaKind::Audio,
        }
    }
}

#[cfg(test)]
impl DeviceModel {
    /// A camera for unit tests: group `{id}-group`, modes as (width, height, fps).
    pub(crate) fn test_camera(
        id: &str,
        facing_mode: Option<FacingMode>,
        modes: &[(u32, u32, f64)],
    ) -> DeviceModel {
        DeviceModel {
            device_id: id.into(),
            group_id: format!("{id}-group"),
            facing_mode,
            modes: DeviceModes::Video(
                modes
                    .iter()
                    .map(|&(width, height, frame_rate)| VideoMode {
                        width,
                        height,
                        frame_rate,
                    })
                    .collect(),
            ),
        }
    }
}
