//! A device as `MediaDevices` knows it: what selection needs (the model), plus its label
//! and where its frames or samples come from.

use std::path::PathBuf;

use serde::Serialize;

use crate::constraints::{DeviceModel, MediaKind};

/// Where a device's media comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// The moving test pattern with the machine-readable strip (virtual camera).
    Pattern,
    /// A sine tone with a marker beep every second (virtual microphone).
    Tone,
    /// A Y4M (video) or WAV (audio) file, looped.
    File(PathBuf),
    /// A V4L2 camera, by nokhwa's index.
    Camera { index: u32 },
    /// An ALSA capture device, by its PCM name.
    Microphone { pcm_id: String },
}

impl SourceSpec {
    /// Whether the source is one of our virtual ones (no hardware involved).
    pub fn is_virtual(&self) -> bool {
        matches!(
            self,
            SourceSpec::Pattern | SourceSpec::Tone | SourceSpec::File(_)
        )
    }
}

/// One capture device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceDescriptor {
    pub model: DeviceModel,
    pub label: String,
    pub source: SourceSpec,
}

impl DeviceDescriptor {
    pub fn kind(&self) -> MediaKind {
        self.model.kind()
    }

    pub fn device_id(&self) -> &str {
        &self.model.device_id
    }
}

/// `"videoinput"` / `"audioinput"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaDeviceKind {
    Videoinput,
    Audioinput,
}

impl MediaDeviceKind {
    /// `"videoinput"` / `"audioinput"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaDeviceKind::Videoinput => "videoinput",
            MediaDeviceKind::Audioinput => "audioinput",
        }
    }
}

impl std::fmt::Display for MediaDeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<MediaKind> for MediaDeviceKind {
    fn from(kind: MediaKind) -> Self {
        match kind {
            MediaKind::Video => MediaDeviceKind::Videoinput,
            MediaKind::Audio => MediaDeviceKind::Audioinput,
        }
    }
}

/// `MediaDeviceInfo`, as `enumerateDevices()` returns it. The label is empty until the
/// caller has been granted access to devices of that kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaDeviceInfo {
    pub device_id: String,
    pub kind: MediaDeviceKind,
    pub label: String,
    pub group_id: String,
}
