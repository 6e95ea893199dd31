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

/// An ALSA capture device. cpal's stream is not `Send` and calls back on its own thread,
/// so a dedicated thread owns the stream and hands 10 ms blocks over a bounded channel
/// (blocks are dropped, not queued, if nobody reads).
pub struct MicrophoneSource {
    blocks: std::sync::mpsc::Receiver<Result<Vec<i16>, String>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sample_rate: u32,
    device_channels: u16,
    channels: u16,
    pending: Vec<i16>,
    position: u64,
}

impl MicrophoneSource {
    pub fn open(
        pcm_id: &str,
        settings: &crate::constraints::MediaTrackSettings,
    ) -> Result<Self, super::source::SourceError> {
        use super::source::{audio_settings, SourceError};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{mpsc, Arc};
        let (sample_rate, channels) = audio_settings(settings)?;
        let (block_tx, blocks) = mpsc::sync_channel::<Result<Vec<i16>, String>>(64);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let id = pcm_id.to_owned();
        std::thread::Builder::new()
            .name(format!("mic {id}"))
            .spawn(move || {
                let stream = match build_stream(&id, sample_rate, channels, block_tx) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                while !thread_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                drop(stream);
            })
            .map_err(|e| SourceError::Open(format!("microphone {pcm_id}: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(MicrophoneSource {
                blocks,
                stop,
                sample_rate,
                device_channels: channels,
                channels,
                pending: Vec::new(),
                position: 0,
            }),
            Ok(Err(e)) => Err(SourceError::Open(format!("microphone {pcm_id}: {e}"))),
            Err(_) => Err(SourceError::Open(format!(
                "microphone {pcm_id}: capture thread failed"
            ))),
        }
    }
}

fn build_stream(
    pcm_id: &str,
    sample_rate: u32,
    channels: u16,
    blocks: std::sync::mpsc::SyncSender<Result<Vec<i16>, String>>,
) -> Result<cpal::Stream, String> {
    use cpal::traits::StreamTrait;
    let host = cpal::default_host();
    let device = host
        .input_devices()
        .map_err(|e| e.to_string())?
        .find(|d| d.id().map(|id| id.id() == pcm_id).unwrap_or(false))
        .ok_or_else(|| "device not found (unplugged?)".to_string())?;
    let config = cpal::StreamConfig {
        channels,
        sample_rate,
        buffer_size: cpal::BufferSize::Default,
    };
    let errors = blocks.clone();
    let on_error = move |e: cpal::Error| {
        let _ = errors.try_send(Err(e.to_string()));
    };
    let stream = device
        .build_input_stream(
            config,
            move |data: &[i16], _: &cpal::InputCallbackInfo| {
                // Full channel: the consumer is behind; drop rather than block the callback.
                let _ = blocks.try_send(Ok(data.to_vec()));
            },
            on_error,
            None,
        )
        .map_err(|e| format!("busy or unsupported configuration: {e}"))?;
    stream.play().map_err(|e| e.to_string())?;
    Ok(stream)
}

impl super::source::Source for MicrophoneSource {
    fn next_frame(&mut self) -> Result<super::source::MediaFrame, super::source::SourceError> {
        use super::source::{wall_clock_ms, MediaFrame, SourceError};
        use crate::frame::{AudioFrame, AudioSamples};
        let want = (self.sample_rate / 100) as usize * self.device_channels as usize;
        while self.pending.len() < want {
            match self.blocks.recv() {
                Ok(Ok(samples)) => self.pending.extend_from_slice(&samples),
                Ok(Err(e)) => return Err(SourceError::Ended(format!("microphone: {e}"))),
                Err(_) => return Err(SourceError::Ended("microphone stream closed".into())),
            }
        }
        let block: Vec<i16> = self.pending.drain(..want).collect();
        let frames = want / self.device_channels as usize;
        let timestamp =
            std::time::Duration::from_secs_f64(self.position as f64 / self.sample_rate as f64);
        self.position += frames as u64;
        let frame = AudioFrame {
            sample_rate: self.sample_rate,
            channels: self.device_channels,
            samples: AudioSamples::I16(block),
            timestamp,
            capture_time_ms: wall_clock_ms(),
        };
        let frame = if self.channels == self.device_channels {
            frame
        } else {
            frame.with_channels(self.channels)
        };
        Ok(MediaFrame::Audio(std::sync::Arc::new(frame)))
    }

    fn reconfigure(
        &mut self,
        settings: &crate::constraints::MediaTrackSettings,
    ) -> Result<(), super::source::SourceError> {
        use super::source::{audio_settings, SourceError};
        let (sample_rate, channels) = audio_settings(settings)?;
        if sample_rate != self.sample_rate {
            return Err(SourceError::Unsupported(
                "the sample rate of an open microphone cannot change".into(),
            ));
        }
        self.channels = channels;
        Ok(())
    }
}

impl Drop for MicrophoneSource {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
