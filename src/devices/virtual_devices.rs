//! The built-in virtual devices, used when no devices file is given and the machine has
//! no real device at all (docs/ARCHITECTURE.md, "The built-in virtual devices").

use super::descriptor::{DeviceDescriptor, SourceSpec};
use crate::constraints::{AudioMode, DeviceModel, DeviceModes, Flag, VideoMode};

/// The group both built-in devices belong to.
pub const VIRTUAL_GROUP: &str = "virtual";

/// `virtual-pattern`: the moving pattern, native 320×240 … 1920×1080 at 30 fps.
pub fn pattern_camera() -> DeviceDescriptor {
    let modes = [(320, 240), (640, 480), (1280, 720), (1920, 1080)]
        .into_iter()
        .map(|(width, height)| VideoMode {
            width,
            height,
            frame_rate: 30.0,
        })
        .collect();
    DeviceDescriptor {
        model: DeviceModel {
            device_id: "virtual-pattern".into(),
            group_id: VIRTUAL_GROUP.into(),
            facing_mode: None,
            modes: DeviceModes::Video(modes),
        },
        label: "Virtual camera (pattern)".into(),
        source: SourceSpec::Pattern,
    }
}

/// `virtual-tone`: the tone, 48 kHz, mono or stereo, 16-bit, 10 ms latency.
pub fn tone_microphone() -> DeviceDescriptor {
    let modes = [1, 2]
        .into_iter()
        .map(|channel_count| AudioMode {
            sample_rate: 48000,
            channel_count,
            sample_size: 16,
            latency: 0.01,
        })
        .collect();
    DeviceDescriptor {
        model: DeviceModel {
            device_id: "virtual-tone".into(),
            group_id: VIRTUAL_GROUP.into(),
            facing_mode: None,
            modes: DeviceModes::Audio {
                modes,
                echo_cancellation: vec![Flag::Off],
                auto_gain_control: vec![false],
                noise_suppression: vec![false],
            },
        },
        label: "Virtual microphone (tone)".into(),
        source: SourceSpec::Tone,
    }
}

/// The devices `MediaDevices::system` offers, given what the machine has: its real cameras
/// then its real microphones, in that order; only when there is no real device at all, the
/// built-in virtual set instead. docs/ARCHITECTURE.md: "Real devices, when present, come first and the
/// virtual set is not added" — a machine with a camera and no microphone has no
/// microphone (an audio request is a `NotFoundError`, as in a browser), rather than a
/// tone standing in for one silently. Pure, so the mixed cases are testable without
/// hardware.
pub fn system_devices(
    cameras: Vec<DeviceDescriptor>,
    microphones: Vec<DeviceDescriptor>,
) -> Vec<DeviceDescriptor> {
    if cameras.is_empty() && microphones.is_empty() {
        return vec![pattern_camera(), tone_microphone()];
    }
    let mut devices = cameras;
    devices.extend(microphones);
    devices
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real_camera(index: u32) -> DeviceDescriptor {
        let mut d = pattern_camera();
        d.model.device_id = format!("video{index}");
        d.model.group_id = format!("video{index}");
        d.label = format!("Camera {index}");
        d.source = SourceSpec::Camera { index };
        d
    }

    fn real_microphone(card: u32) -> DeviceDescriptor {
        let mut d = tone_microphone();
        d.model.device_id = format!("alsa-{card}");
        d.model.group_id = format!("alsa-{card}");
        d.label = format!("Card {card}");
        d.source = SourceSpec::Microphone {
            pcm_id: format!("hw:{card},0"),
        };
        d
    }

    fn ids(devices: &[DeviceDescriptor]) -> Vec<&str> {
        devices.iter().map(|d| d.device_id()).collect()
    }

    #[test]
    fn no_real_device_gives_the_builtin_set() {
        let devices = system_devices(Vec::new(), Vec::new());
        assert_eq!(ids(&devices), ["virtual-pattern", "virtual-tone"]);
        assert!(devices.iter().all(|d| d.source.is_virtual()));
    }

    #[test]
    fn a_camera_only_machine_gets_no_virtual_microphone() {
        let devices = system_devices(vec![real_camera(0)], Vec::new());
        assert_eq!(ids(&devices), ["video0"]);
    }

    #[test]
    fn a_microphone_only_machine_gets_no_virtual_camera() {
        let devices = system_devices(Vec::new(), vec![real_microphone(1)]);
        assert_eq!(ids(&devices), ["alsa-1"]);
    }

    #[test]
    fn real_devices_come_first_cameras_then_microphones() {
        let devices = system_devices(
            vec![real_camera(0), real_camera(2)],
            vec![real_microphone(0), real_microphone(1)],
        );
        assert_eq!(ids(&devices), ["video0", "video2", "alsa-0", "alsa-1"]);
        assert!(devices.iter().all(|d| !d.source.is_virtual()));
    }
}
