//! Real microphones through cpal (ALSA on Linux): enumeration with their native modes.
//!
//! ALSA always offers plugin devices (`null`, `default`, `pulse`, …). Only capture devices
//! backed by a sound card are listed: `null` delivers zeros with no pacing (it would
//! busy-spin a core) and the others are routes to the same cards. On a machine without a
//! sound card (CI) the result is empty. Cannot be exercised here beyond that.

use cpal::traits::{DeviceTrait, HostTrait};

use super::descriptor::{DeviceDescriptor, SourceSpec};
use crate::constraints::{AudioMode, DeviceModel, DeviceModes, Flag};

/// Sample rates offered as native modes when a device reports a continuous range.
const COMMON_RATES: [u32; 6] = [8000, 16000, 32000, 44100, 48000, 96000];

/// Every sound-card capture device cpal finds, with its modes.
pub fn enumerate() -> Vec<DeviceDescriptor> {
    let host = cpal::default_host();
    let devices = match host.input_devices() {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("microphone enumeration failed: {e}");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for device in devices {
        let Ok(id) = device.id() else { continue };
        let pcm_id = id.id().to_string();
        // `hw:` devices are the cards themselves; `plughw:` duplicates them, plugins route.
        if !pcm_id.starts_with("hw:") {
            continue;
        }
        let label = device
            .description()
            .map(|d| d.name().to_string())
            .unwrap_or_else(|_| pcm_id.clone());
        let configs = match device.supported_input_configs() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("microphone {pcm_id} could not be queried: {e}");
                continue;
            }
        };
        let mut modes: Vec<AudioMode> = Vec::new();
        for range in configs {
            let sample_size = (range.sample_format().sample_size() * 8) as u32;
            for rate in COMMON_RATES {
                if rate < range.min_sample_rate() || rate > range.max_sample_rate() {
                    continue;
                }
                let mode = AudioMode {
                    sample_rate: rate,
                    channel_count: range.channels() as u32,
                    sample_size,
                    latency: 0.01,
                };
                if !modes.contains(&mode) {
                    modes.push(mode);
                }
            }
        }
        if modes.is_empty() {
            continue;
        }
        let device_id = format!("alsa-{}", pcm_id.trim_start_matches("hw:"));
        out.push(DeviceDescriptor {
            model: DeviceModel {
                group_id: device_id.clone(),
                device_id,
                facing_mode: None,
                modes: DeviceModes::Audio {
                    modes,
                    // Raw ALSA capture does no processing.
                    echo_cancellation: vec![Flag::Off],
                    auto_gain_control: vec![false],
                    noise_suppression: vec![false],
                },
            },
            label,
            source: SourceSpec::Microphone { pcm_id },
        });
    }
    out
}
