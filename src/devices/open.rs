//! Opening a device's source: the [`SourceOpener`] the device layer hands each track it
//! starts, dispatching on where the device's media comes from.

use super::descriptor::{DeviceDescriptor, SourceSpec};
use super::{media_file, pattern, tone};
use crate::constraints::{DeviceModel, MediaKind, MediaTrackSettings};
use crate::media::{Source, SourceError, SourceOpener};

impl SourceOpener for DeviceDescriptor {
    fn model(&self) -> &DeviceModel {
        &self.model
    }

    fn label(&self) -> &str {
        &self.label
    }

    /// Opens the source of this device at `settings`: the pattern, the tone, a file, or
    /// the camera or microphone itself.
    fn open(&self, settings: &MediaTrackSettings) -> Result<Box<dyn Source>, SourceError> {
        match (&self.source, self.kind()) {
            (SourceSpec::Pattern, _) => {
                pattern::PatternSource::open(settings).map(|s| Box::new(s) as _)
            }
            (SourceSpec::Tone, _) => tone::ToneSource::open(settings).map(|s| Box::new(s) as _),
            (SourceSpec::File(path), MediaKind::Video) => {
                media_file::Y4mSource::open(path, settings).map(|s| Box::new(s) as _)
            }
            (SourceSpec::File(path), MediaKind::Audio) => {
                media_file::WavSource::open(path, settings).map(|s| Box::new(s) as _)
            }
            #[cfg(feature = "hardware")]
            (SourceSpec::Camera { index }, _) => match &self.model.modes {
                crate::constraints::DeviceModes::Video(modes) => {
                    super::camera::CameraSource::open(*index, modes, settings)
                        .map(|s| Box::new(s) as _)
                }
                _ => Err(SourceError::Open("not a camera".into())),
            },
            #[cfg(feature = "hardware")]
            (SourceSpec::Microphone { pcm_id }, _) => {
                super::microphone::MicrophoneSource::open(pcm_id, settings)
                    .map(|s| Box::new(s) as _)
            }
            #[cfg(not(feature = "hardware"))]
            (SourceSpec::Camera { .. } | SourceSpec::Microphone { .. }, _) => Err(
                SourceError::Open("built without the `hardware` feature".into()),
            ),
        }
    }
}
