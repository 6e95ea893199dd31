//! usermedia: `navigator.mediaDevices.getUserMedia()` for machines without a browser.
//!
//! Constraints ([`constraints`]) are parsed and validated as browsers do, devices
//! ([`devices`]) are selected by the spec's fitness distance, and the result is a
//! [`MediaStream`] of [`MediaStreamTrack`]s with settings, capabilities and
//! `applyConstraints`.

pub mod analysis;
pub mod bench;
pub mod client;
pub mod constraints;
pub mod devices;
pub mod encode;
pub mod error;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod media;
pub mod peer;
pub mod record;
pub mod server;
mod sync;
pub mod track;

pub use constraints::{
    MediaKind, MediaStreamConstraints, MediaTrackCapabilities, MediaTrackConstraints,
    MediaTrackSettings, SupportedConstraints,
};
pub use devices::{MediaDeviceInfo, MediaDevices, Permission, PermissionPolicy};
pub use error::MediaError;
pub use frame::{AudioFrame, VideoFrame};
pub use media::{FrameReceiver, MediaFrame, TrackEvent, TrackEventReceiver};
pub use track::{MediaStream, MediaStreamTrack, TrackState};
