//! The edge of device timelines: a device with events in its devices file is opened
//! through a [`ScriptedDevice`], whose sources ask the pure timeline (`timeline.rs`) for
//! the device's condition at the time since the devices were loaded around every frame:
//! they end as a broken or unplugged device does, and say when they are muted.

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

    /// The time since the devices were loaded.
    pub(super) fn elapsed(&self) -> Duration {
        self.epoch.elapsed()
    }

    pub(super) fn condition(&self, device: &str) -> DeviceCondition {
        self.timeline.condition(device, self.elapsed())
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

/// Why an unplugged device gives no media: `videoinput "back" unplugged (...)`.
fn unplugged(model: &DeviceModel, at: Duration) -> String {
    format!(
        "{} {:?} unplugged (devices-file event at {} s)",
        model.kind().device_kind(),
        model.device_id,
        at.as_secs_f64()
    )
}

/// The error a source of a device in `condition` gives instead of media, if any.
fn gone(model: &DeviceModel, condition: DeviceCondition) -> Option<String> {
    match condition {
        DeviceCondition::Failed { at } => Some(failure(model, at)),
        DeviceCondition::Unplugged { at } => Some(unplugged(model, at)),
        DeviceCondition::Working | DeviceCondition::Muted { .. } => None,
    }
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

    /// The device's source, failing from the start if the device has failed or is
    /// unplugged.
    fn open(&self, settings: &MediaTrackSettings) -> Result<Box<dyn Source>, SourceError> {
        let condition = self.clock.condition(self.device.device_id());
        if let Some(why) = gone(&self.device.model, condition) {
            return Err(SourceError::Open(why));
        }
        let inner = self.device.open(settings)?;
        Ok(Box::new(ScriptedSource {
            inner,
            device: Arc::clone(&self.device),
            clock: Arc::clone(&self.clock),
            muted: matches!(condition, DeviceCondition::Muted { .. }),
        }))
    }
}

/// A scripted device's source: the device's own, until the timeline says otherwise.
struct ScriptedSource {
    inner: Box<dyn Source>,
    device: Arc<DeviceDescriptor>,
    clock: Arc<ScriptClock>,
    /// Muted as of the last frame.
    muted: bool,
}

impl ScriptedSource {
    /// The device's condition now: an error if it is gone, else whether it is muted.
    fn check(&mut self) -> Result<(), SourceError> {
        let condition = self.clock.condition(self.device.device_id());
        if let Some(why) = gone(&self.device.model, condition) {
            return Err(SourceError::Ended(why));
        }
        self.muted = matches!(condition, DeviceCondition::Muted { .. });
        Ok(())
    }
}

impl Source for ScriptedSource {
    fn next_frame(&mut self) -> Result<MediaFrame, SourceError> {
        // Before waiting for the frame (a device gone gives none), and after it: the
        // frame is the device's as of when it was due.
        self.check()?;
        let frame = self.inner.next_frame()?;
        self.check()?;
        Ok(frame)
    }

    fn muted(&self) -> bool {
        self.muted
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

    /// The largest sample of the next audio frame, and whether its track was muted then.
    fn next_peak(rx: &crate::media::FrameReceiver) -> i16 {
        loop {
            if let crate::media::MediaFrame::Audio(a) = rx.recv().expect("a frame") {
                return a
                    .to_i16()
                    .iter()
                    .map(|s| s.saturating_abs())
                    .max()
                    .unwrap_or(0);
            }
        }
    }

    /// Whether the next video frame is all black (luma 16).
    fn next_is_black(rx: &crate::media::FrameReceiver) -> bool {
        loop {
            if let crate::media::MediaFrame::Video(f) = rx.recv().expect("a frame") {
                return f.y().iter().all(|&y| y == 16);
            }
        }
    }

    #[test]
    fn unplug_ends_at_its_time_mute_toggles_and_devicechange_fires() {
        use crate::media::TrackEvent;
        use DeviceAction::*;
        let camera = virtual_devices::pattern_camera();
        let mic = virtual_devices::tone_microphone();
        let (cam_id, mic_id) = (camera.device_id().to_owned(), mic.device_id().to_owned());
        let ev = |at: f64, device: &str, action| DeviceEvent {
            at: Duration::from_secs_f64(at),
            device: device.to_owned(),
            action,
        };
        let timeline = DeviceTimeline::try_new(vec![
            ev(3.0, &cam_id, Unplug),
            ev(3.6, &cam_id, Replug),
            ev(1.0, &mic_id, Mute),
            ev(2.0, &mic_id, Unmute),
            ev(0.5, &cam_id, Mute),
            ev(1.5, &cam_id, Unmute),
        ])
        .unwrap();
        let devices = MediaDevices::new(vec![camera, mic], PermissionPolicy::granted())
            .unwrap()
            .with_timeline(timeline);
        let loaded = Instant::now();
        let changes = devices.on_device_change();
        let stream = devices
            .get_user_media_json(r#"{"video": {"width": 160, "height": 120}, "audio": true}"#)
            .unwrap();
        let video = stream.get_video_tracks().remove(0);
        let audio = stream.get_audio_tracks().remove(0);
        let (video_events, audio_events) = (video.events(), audio.events());
        let (video_rx, audio_rx) = (video.subscribe(64), audio.subscribe(512));
        assert!(!video.muted() && !audio.muted());
        assert!(!next_is_black(&video_rx), "the pattern, not black");

        // The camera mutes at 0.5 s: `mute`, then black frames at the same pace.
        let e = video_events.recv_timeout(Duration::from_secs(5));
        let when = loaded.elapsed();
        assert_eq!(e, Some(TrackEvent::Mute));
        assert!(video.muted());
        assert!(
            when >= Duration::from_millis(500) && when < Duration::from_millis(600),
            "{when:?}"
        );
        while video_rx.try_recv().is_some() {}
        assert!(next_is_black(&video_rx), "a muted camera delivers black");
        // The microphone mutes at 1 s: silence.
        assert_eq!(
            audio_events.recv_timeout(Duration::from_secs(5)),
            Some(TrackEvent::Mute)
        );
        let when = loaded.elapsed();
        assert!(
            when >= Duration::from_secs(1) && when < Duration::from_millis(1100),
            "{when:?}"
        );
        assert!(audio.muted());
        while audio_rx.try_recv().is_some() {}
        assert_eq!(
            next_peak(&audio_rx),
            0,
            "a muted microphone delivers silence"
        );
        // Unmuted at 1.5 s and 2 s: media again.
        assert_eq!(
            video_events.recv_timeout(Duration::from_secs(5)),
            Some(TrackEvent::Unmute)
        );
        assert!(!video.muted());
        while video_rx.try_recv().is_some() {}
        assert!(!next_is_black(&video_rx), "the pattern again");
        assert_eq!(
            audio_events.recv_timeout(Duration::from_secs(5)),
            Some(TrackEvent::Unmute)
        );
        let when = loaded.elapsed();
        assert!(
            when >= Duration::from_secs(2) && when < Duration::from_millis(2100),
            "{when:?}"
        );
        assert!(!audio.muted());
        while audio_rx.try_recv().is_some() {}
        assert!(next_peak(&audio_rx) > 1000, "the tone again");

        // Unplugged at 3 s: the track ends within 0.1 s, with the reason; devicechange.
        let ended = video.wait_ended(Duration::from_secs(5)).expect("ended");
        let when = loaded.elapsed();
        assert!(
            when >= Duration::from_secs(3) && when < Duration::from_millis(3100),
            "ended {when:?} after loading"
        );
        let reason =
            format!("source ended: videoinput {cam_id:?} unplugged (devices-file event at 3 s)");
        assert_eq!(ended.reason, reason);
        assert_eq!(
            video_events.recv_timeout(Duration::from_secs(1)),
            Some(TrackEvent::Ended { reason })
        );
        let change = changes
            .recv_timeout(Duration::from_secs(1))
            .expect("devicechange");
        assert_eq!(
            (change.device_id.as_str(), change.action, change.at),
            (cam_id.as_str(), Unplug, Duration::from_secs(3))
        );
        // Gone from enumeration and selection; the microphone lives on.
        let listed: Vec<String> = devices
            .enumerate_devices()
            .into_iter()
            .map(|d| d.device_id)
            .collect();
        assert_eq!(listed, [mic_id]);
        assert_eq!(
            devices
                .get_user_media_json(r#"{"video": true}"#)
                .unwrap_err()
                .name(),
            "NotFoundError"
        );
        assert_eq!(audio.ready_state(), TrackState::Live);

        // Replugged at 3.6 s: devicechange, listed again, a new track runs (the old one
        // stays ended).
        let change = changes
            .recv_timeout(Duration::from_secs(5))
            .expect("devicechange");
        let when = loaded.elapsed();
        assert_eq!(
            (change.action, change.at),
            (Replug, Duration::from_millis(3600))
        );
        assert!(when < Duration::from_millis(3700), "{when:?}");
        assert_eq!(devices.enumerate_devices().len(), 2);
        let again = devices.get_user_media_json(r#"{"video": true}"#).unwrap();
        let camera = again.get_video_tracks().remove(0);
        assert!(camera
            .subscribe(4)
            .recv_timeout(Duration::from_secs(2))
            .unwrap()
            .is_some());
        assert_eq!(video.ready_state(), TrackState::Ended);
        camera.stop();
        audio.stop();
        assert!(
            changes.recv_timeout(Duration::from_millis(100)).is_none(),
            "no more changes"
        );
        // Subscribed after the last change: closed at once.
        let late = devices.on_device_change();
        let asked = Instant::now();
        assert!(late.recv_timeout(Duration::from_secs(5)).is_none());
        assert!(asked.elapsed() < Duration::from_secs(1));
    }
}
