//! The built-in virtual devices, used when no devices file is given and the machine has
//! no real device of a kind (DESIGN.md, "The built-in virtual set").

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
