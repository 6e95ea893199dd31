//! How a track gets (and gets again) the source of a local device without knowing what
//! devices are: the device layer hands the track a [`SourceOpener`].

use std::fmt::Debug;

use super::source::{Source, SourceError};
use crate::constraints::{DeviceModel, MediaTrackSettings};
use crate::error::MediaError;

/// Opens sources of one device: what a track started by getUserMedia holds so that
/// `applyConstraints` can re-select among the device's modes and reopen it.
pub trait SourceOpener: Send + Sync + Debug {
    /// The device as selection sees it: id, group, facing mode and modes.
    fn model(&self) -> &DeviceModel;

    /// The device's human-readable label.
    fn label(&self) -> &str;

    /// Opens a new source of the device at `settings`.
    fn open(&self, settings: &MediaTrackSettings) -> Result<Box<dyn Source>, SourceError>;
}

/// [`SourceOpener::open`], failing as getUserMedia and applyConstraints fail: a
/// `NotReadableError` naming the device and the problem (busy, missing file, bad file).
pub(crate) fn open_readable(
    opener: &dyn SourceOpener,
    settings: &MediaTrackSettings,
) -> Result<Box<dyn Source>, MediaError> {
    opener
        .open(settings)
        .map_err(|e| not_readable(opener.model(), &e))
}

/// The `NotReadableError` of a source failure on the device `model`.
pub(crate) fn not_readable(model: &DeviceModel, e: &SourceError) -> MediaError {
    MediaError::NotReadableError {
        message: format!("{} {:?}: {e}", model.kind().device_kind(), model.device_id),
    }
}
