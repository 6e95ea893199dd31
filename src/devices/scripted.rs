//! The edge of device timelines: a device with events in its devices file is opened
//! through a [`ScriptedDevice`], whose sources ask the pure timeline (`timeline.rs`) for
//! the device's condition at the time since the devices were loaded before every frame,
//! and fail as a broken device does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::descriptor::DeviceDescriptor;
use super::timeline::{DeviceCondition, DeviceTimeline};
use crate::constraints::{DeviceModel, MediaTrackSettings};
use crate::media::{MediaFrame, Source, SourceError, SourceOpener};

/// A timeline and the instant its time counts from (the devices were loaded).
#[derive(Debug)]
pub(super) struct ScriptClock {
    timeline: DeviceTimeline,
    epoch: Instant,
}

impl ScriptClock {
    /// `timeline`, its time counting from now.
    pub(super) fn start(timeline: DeviceTimeline) -> Self {
        ScriptClock {
            timeline,
            epoch: Instant::now(),
        }
    }

    pub(super) fn timeline(&self) -> &DeviceTimeline {
        &self.timeline
    }

    fn condition(&self, device: &str) -> DeviceCondition {
        self.timeline.condition(device, self.epoch.elapsed())
    }
}

/// Why a failed device gives no media: `NotReadableError: videoinput "back" failed (...)`.
fn failure(model: &DeviceModel, at: Duration) -> String {
    format!(
        "NotReadableError: {} {:?} failed (devices-file event at {} s)",
        model.kind().device_kind(),
        model.device_id,
        at.as_secs_f64()
    )
}

/// A device whose devices file scripts events for it.
#[derive(Debug)]
pub(super) struct ScriptedDevice {
    device: Arc<DeviceDescriptor>,
    clock: Arc<ScriptClock>,
}

impl ScriptedDevice {
    pub(super) fn new(device: Arc<DeviceDescriptor>, clock: Arc<ScriptClock>) -> Self {
        ScriptedDevice { device, clock }
    }
}

impl SourceOpener for ScriptedDevice {
    fn model(&self) -> &DeviceModel {
        &self.device.model
    }

    fn label(&self) -> &str {
        &self.device.label
    }

    /// The device's source, failing from the start if the device has failed already.
    fn open(&self, settings: &MediaTrackSettings) -> Result<Box<dyn Source>, SourceError> {
        if let DeviceCondition::Failed { at } = self.clock.condition(self.device.device_id()) {
            return Err(SourceError::Open(failure(&self.device.model, at)));
        }
        let inner = self.device.open(settings)?;
        Ok(Box::new(ScriptedSource {
            inner,
            device: Arc::clone(&self.device),
            clock: Arc::clone(&self.clock),
        }))
    }
}

/// A scripted device's source: the device's own, until the timeline says otherwise.
struct ScriptedSource {
    inner: Box<dyn Source>,
    device: Arc<DeviceDescriptor>,
    clock: Arc<ScriptClock>,
}

impl Source for ScriptedSource {
    fn next_frame(&mut self) -> Result<MediaFrame, SourceError> {
        match self.clock.condition(self.device.device_id()) {
            DeviceCondition::Working => self.inner.next_frame(),
            DeviceCondition::Failed { at } => {
                Err(SourceError::Ended(failure(&self.device.model, at)))
            }
        }
    }

    fn reconfigure(&mut self, settings: &MediaTrackSettings) -> Result<(), SourceError> {
        self.inner.reconfigure(settings)
    }

    fn continue_after(&mut self, last: &MediaFrame) {
        self.inner.continue_after(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::timeline::{DeviceAction, DeviceEvent};
    use crate::devices::{virtual_devices, MediaDevices, PermissionPolicy};
    use crate::error::MediaError;
    use crate::track::TrackState;

    #[test]
    fn a_failing_device_ends_its_track_with_the_reason_and_cannot_reopen() {
        let camera = virtual_devices::pattern_camera();
        let id = camera.device_id().to_owned();
        let timeline = DeviceTimeline::new(vec![DeviceEvent {
            at: Duration::from_millis(300),
            device: id.clone(),
            action: DeviceAction::Fail,
        }]);
        let devices = MediaDevices::new(
            vec![camera, virtual_devices::tone_microphone()],
            PermissionPolicy::granted(),
        )
        .unwrap()
        .with_timeline(timeline);
        let loaded = Instant::now();
        let stream = devices
            .get_user_media_json(r#"{"video": {"width": 160, "height": 120}, "audio": true}"#)
            .unwrap();
        let video = stream.get_video_tracks().remove(0);
        let audio = stream.get_audio_tracks().remove(0);
        let ended = video.wait_ended(Duration::from_secs(5)).expect("ended");
        let when = loaded.elapsed();
        assert!(
            when >= Duration::from_millis(300) && when < Duration::from_millis(1300),
            "ended {when:?} after loading"
        );
        assert_eq!(
            ended.reason,
            format!(
                "source ended: NotReadableError: videoinput {id:?} failed (devices-file event at 0.3 s)"
            )
        );
        assert_eq!(video.ready_state(), TrackState::Ended);
        assert_eq!(
            audio.ready_state(),
            TrackState::Live,
            "the other device lives on"
        );
        match devices.get_user_media_json(r#"{"video": true}"#) {
            Err(MediaError::NotReadableError { message }) => {
                assert!(message.contains("failed (devices-file event"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        audio.stop();
    }
}
