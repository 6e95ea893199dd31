//! Real microphones through cpal (ALSA on Linux): enumeration with their native modes.
//!
//! ALSA always offers plugin devices (`null`, `default`, `pulse`, …). Only capture devices
//! backed by a sound card are listed: `null` delivers zeros with no pacing (it would
//! busy-spin a core) and the others are routes to the same cards. On a machine without a
//! sound card (CI) the result is empty. Cannot be exercised here beyond that.

use cpal::traits::{DeviceTrait, HostTrait};
use cpal::SampleFormat;

use super::descriptor::{DeviceDescriptor, SourceSpec};
use crate::constraints::{AudioMode, DeviceModel, DeviceModes, Flag};

/// Sample rates offered as native modes when a device reports a continuous range.
const COMMON_RATES: [u32; 6] = [8000, 16000, 32000, 44100, 48000, 96000];

/// Whether an ALSA PCM id is listed as a microphone: only `hw:` devices, the cards
/// themselves. `null` (zeros with no pacing: it would busy-spin a core), `default`,
/// `plughw:` (a duplicate of a `hw:` card through a converter) and the other plugins are not.
pub(crate) fn is_listed_pcm(pcm_id: &str) -> bool {
    pcm_id.starts_with("hw:")
}

/// Sample formats we can open, in order of preference for a given sample size. Each is
/// opened as itself and converted: to i16 for formats of 16 bits or fewer, to f32 above
/// (which holds 24-bit samples exactly). DSD and 64-bit integers are not offered.
const OPENABLE: [SampleFormat; 10] = [
    SampleFormat::I16,
    SampleFormat::I24,
    SampleFormat::I32,
    SampleFormat::F32,
    SampleFormat::U16,
    SampleFormat::I8,
    SampleFormat::U8,
    SampleFormat::U24,
    SampleFormat::U32,
    SampleFormat::F64,
];

/// One supported capture configuration range as cpal reports it:
/// (format, channels, min rate, max rate).
pub(crate) type ConfigRange = (SampleFormat, u16, u32, u32);

/// The sample format to open for `rate` Hz, `channels` and `bits` (the track's
/// sampleSize), preferring integer formats; `None` when the device has no such mode.
pub(crate) fn pick_format(
    ranges: &[ConfigRange],
    rate: u32,
    channels: u16,
    bits: u32,
) -> Option<SampleFormat> {
    OPENABLE.into_iter().find(|&format| {
        format.bits_per_sample() == bits
            && ranges
                .iter()
                .any(|&(f, c, lo, hi)| f == format && c == channels && (lo..=hi).contains(&rate))
    })
}

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
        if !is_listed_pcm(&pcm_id) {
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
            // Advertise only what `MicrophoneSource::open` can open as itself.
            if !OPENABLE.contains(&range.sample_format()) {
                continue;
            }
            let sample_size = range.sample_format().bits_per_sample();
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

/// What the device thread hands over: a callback's samples, or a stream error.
type Block = Result<crate::frame::AudioSamples, cpal::Error>;

/// Why a microphone could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum MicrophoneError {
    /// The host's devices could not be listed.
    #[error(transparent)]
    Devices(cpal::Error),
    #[error("device not found (unplugged?)")]
    NotFound,
    #[error("cannot query the device: {0}")]
    Query(#[source] cpal::Error),
    #[error("no {bits}-bit {channels}-channel mode at {sample_rate} Hz (device changed?)")]
    NoMode {
        bits: u32,
        channels: u16,
        sample_rate: u32,
    },
    #[error("sample format {0} is not supported")]
    SampleFormat(SampleFormat),
    #[error("busy or unsupported configuration: {0}")]
    Build(#[source] cpal::Error),
    #[error(transparent)]
    Play(cpal::Error),
}

/// At most this much audio waits in the pending buffer; older samples are dropped (the
/// consumer is behind) so memory stays bounded whatever the callback delivers.
const MAX_PENDING: std::time::Duration = std::time::Duration::from_secs(1);

/// An ALSA capture device opened at the track's rate, channel count and sample size (in
/// that sample format, converted to i16 — or to f32 above 16 bits). cpal's stream is not
/// `Send` and calls back on its own thread, so a dedicated thread owns the stream and
/// hands blocks over a bounded channel (blocks are dropped, not queued, if nobody reads).
/// Dropping the source closes the stream before it returns (bounded by
/// [`DEVICE_CLOSE_LIMIT`](crate::media::DEVICE_CLOSE_LIMIT)).
pub struct MicrophoneSource {
    pcm_id: String,
    blocks: std::sync::mpsc::Receiver<Block>,
    /// Dropping it tells the device thread to close the stream.
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    sample_rate: u32,
    device_channels: u16,
    channels: u16,
    pending: Option<crate::frame::AudioSamples>,
    /// Hundredths of a sample carried from block to block (rates not a multiple of 100).
    remainder: u32,
    position: u64,
    /// No block has arrived since opening yet (the stream may still be starting).
    first_block: bool,
}

impl MicrophoneSource {
    pub fn open(
        pcm_id: &str,
        settings: &crate::constraints::MediaTrackSettings,
    ) -> Result<Self, crate::media::SourceError> {
        use crate::media::{
            audio_settings, join_device_thread, wait_until_open, SourceError, DEVICE_CLOSE_LIMIT,
            DEVICE_OPEN_LIMIT,
        };
        use std::sync::mpsc;
        let (sample_rate, channels) = audio_settings(settings)?;
        let bits = settings.sample_size.unwrap_or(16);
        let (block_tx, blocks) = mpsc::sync_channel::<Block>(64);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), MicrophoneError>>();
        let (stop, stop_rx) = mpsc::channel::<()>();
        let id = pcm_id.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("mic {id}"))
            .spawn(move || {
                let stream = match build_stream(&id, sample_rate, channels, bits, block_tx) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                // Until the source is dropped (the sender goes away).
                let _ = stop_rx.recv();
                drop(stream);
            })
            .map_err(|e| SourceError::cannot_open(format!("microphone {pcm_id}"), e))?;
        let what = format!("microphone {pcm_id}");
        match wait_until_open(&ready_rx, DEVICE_OPEN_LIMIT, &what) {
            Ok(()) => Ok(MicrophoneSource {
                pcm_id: pcm_id.to_owned(),
                blocks,
                stop: Some(stop),
                thread: Some(thread),
                sample_rate,
                device_channels: channels,
                channels,
                pending: None,
                remainder: 0,
                position: 0,
                first_block: true,
            }),
            Err(failed) => {
                // Dropping `stop` tells a thread still in the driver's open to close the
                // stream as soon as open returns.
                drop(stop);
                if failed.hung {
                    tracing::warn!(
                        "{what}: the driver is still opening the device; \
                         leaving its thread to close it when open returns"
                    );
                } else {
                    join_device_thread(thread, DEVICE_CLOSE_LIMIT, &what);
                }
                Err(failed.error)
            }
        }
    }
}

fn build_stream(
    pcm_id: &str,
    sample_rate: u32,
    channels: u16,
    bits: u32,
    blocks: std::sync::mpsc::SyncSender<Block>,
) -> Result<cpal::Stream, MicrophoneError> {
    use cpal::traits::StreamTrait;
    let host = cpal::default_host();
    let device = host
        .input_devices()
        .map_err(MicrophoneError::Devices)?
        .find(|d| d.id().map(|id| id.id() == pcm_id).unwrap_or(false))
        .ok_or(MicrophoneError::NotFound)?;
    let ranges: Vec<ConfigRange> = device
        .supported_input_configs()
        .map_err(MicrophoneError::Query)?
        .map(|r| {
            (
                r.sample_format(),
                r.channels(),
                r.min_sample_rate(),
                r.max_sample_rate(),
            )
        })
        .collect();
    let format =
        pick_format(&ranges, sample_rate, channels, bits).ok_or(MicrophoneError::NoMode {
            bits,
            channels,
            sample_rate,
        })?;
    let config = cpal::StreamConfig {
        channels,
        sample_rate,
        buffer_size: cpal::BufferSize::Default,
    };
    let stream = match format {
        SampleFormat::I8 => typed::<i8>(&device, &config, blocks),
        SampleFormat::I16 => typed::<i16>(&device, &config, blocks),
        SampleFormat::I24 => typed::<cpal::I24>(&device, &config, blocks),
        SampleFormat::I32 => typed::<i32>(&device, &config, blocks),
        SampleFormat::U8 => typed::<u8>(&device, &config, blocks),
        SampleFormat::U16 => typed::<u16>(&device, &config, blocks),
        SampleFormat::U24 => typed::<cpal::U24>(&device, &config, blocks),
        SampleFormat::U32 => typed::<u32>(&device, &config, blocks),
        SampleFormat::F32 => typed::<f32>(&device, &config, blocks),
        SampleFormat::F64 => typed::<f64>(&device, &config, blocks),
        other => return Err(MicrophoneError::SampleFormat(other)),
    }
    .map_err(MicrophoneError::Build)?;
    stream.play().map_err(MicrophoneError::Play)?;
    Ok(stream)
}

/// Samples of any cpal format as we deliver them: i16 up to 16 bits, f32 above.
pub(crate) fn convert_samples<T>(data: &[T]) -> crate::frame::AudioSamples
where
    T: cpal::SizedSample,
    i16: cpal::FromSample<T>,
    f32: cpal::FromSample<T>,
{
    use crate::frame::AudioSamples;
    if T::FORMAT.bits_per_sample() <= 16 {
        AudioSamples::I16(data.iter().map(|&x| x.to_sample::<i16>()).collect())
    } else {
        AudioSamples::F32(data.iter().map(|&x| x.to_sample::<f32>()).collect())
    }
}

fn typed<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    blocks: std::sync::mpsc::SyncSender<Block>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: cpal::SizedSample,
    i16: cpal::FromSample<T>,
    f32: cpal::FromSample<T>,
{
    let errors = blocks.clone();
    let on_error = move |e: cpal::Error| {
        let _ = errors.try_send(Err(e));
    };
    device.build_input_stream(
        *config,
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            // Full channel: the consumer is behind; drop rather than block the callback.
            let _ = blocks.try_send(Ok(convert_samples(data)));
        },
        on_error,
        None,
    )
}

impl crate::media::Source for MicrophoneSource {
    fn next_frame(&mut self) -> Result<crate::media::MediaFrame, crate::media::SourceError> {
        use crate::frame::AudioFrame;
        use crate::media::{recv_from_device, stall_limit, wall_clock_ms, MediaFrame, SourceError};
        let what = format!("microphone {}", self.pcm_id);
        let dc = self.device_channels as usize;
        let frames = super::tone::block_frames(self.sample_rate, &mut self.remainder);
        let want = frames * dc;
        let cap = (self.sample_rate as f64 * MAX_PENDING.as_secs_f64()) as usize * dc;
        while self.pending.as_ref().map_or(0, |p| p.len()) < want {
            // A stream error, a closed thread or a silent device ends the track.
            let limit = stall_limit(None, self.first_block);
            let samples = recv_from_device(&self.blocks, limit, &what)?
                .map_err(|e| SourceError::lost(what.as_str(), e))?;
            self.first_block = false;
            let pending = self.pending.get_or_insert_with(|| samples.empty_like());
            pending.append(samples);
            let len = pending.len();
            if len > cap {
                // Keep whole sample frames: drop a multiple of the channel count.
                let excess = (len - cap).div_ceil(dc) * dc;
                pending.split_front(excess);
                self.position += (excess / dc) as u64;
                tracing::debug!("{what}: {excess} samples dropped (consumer behind)");
            }
        }
        let samples = match self.pending.as_mut() {
            Some(p) => p.split_front(want),
            None => return Err(SourceError::Ended(format!("{what}: no data"))),
        };
        let timestamp =
            std::time::Duration::from_secs_f64(self.position as f64 / self.sample_rate as f64);
        self.position += frames as u64;
        let frame = AudioFrame {
            sample_rate: self.sample_rate,
            channels: self.device_channels,
            samples,
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
    ) -> Result<(), crate::media::SourceError> {
        use crate::media::{audio_settings, SourceError};
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
    /// Closes the stream and waits (bounded) for it, so the device lease, released after
    /// this, never claims a free device that is still open.
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            crate::media::join_device_thread(
                thread,
                crate::media::DEVICE_CLOSE_LIMIT,
                &format!("microphone {}", self.pcm_id),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::AudioSamples;

    #[test]
    fn only_sound_cards_are_listed() {
        assert!(!is_listed_pcm("null"));
        assert!(!is_listed_pcm("default"));
        assert!(!is_listed_pcm("plughw:0,0"));
        assert!(!is_listed_pcm("sysdefault:CARD=PCH"));
        assert!(is_listed_pcm("hw:0,0"));
        assert!(is_listed_pcm("hw:CARD=PCH,DEV=0"));
    }

    #[test]
    fn the_format_opened_is_the_modes_own() {
        let ranges = [
            (SampleFormat::I16, 2, 8000, 48000),
            (SampleFormat::I24, 2, 44100, 96000),
            (SampleFormat::F32, 2, 8000, 48000),
            (SampleFormat::I32, 1, 48000, 48000),
        ];
        assert_eq!(pick_format(&ranges, 48000, 2, 16), Some(SampleFormat::I16));
        assert_eq!(pick_format(&ranges, 96000, 2, 24), Some(SampleFormat::I24));
        assert_eq!(pick_format(&ranges, 48000, 2, 32), Some(SampleFormat::F32));
        assert_eq!(pick_format(&ranges, 48000, 1, 32), Some(SampleFormat::I32));
        // No such mode: nothing rather than some other format.
        assert_eq!(pick_format(&ranges, 96000, 2, 16), None);
        assert_eq!(pick_format(&ranges, 48000, 1, 16), None);
    }

    #[test]
    fn samples_convert_by_width() {
        assert_eq!(
            convert_samples(&[0.5f32, -1.0]),
            AudioSamples::F32(vec![0.5, -1.0])
        );
        assert_eq!(
            convert_samples(&[i16::MIN, 0, 100]),
            AudioSamples::I16(vec![i16::MIN, 0, 100])
        );
        assert_eq!(
            convert_samples(&[0u8, 128]),
            AudioSamples::I16(vec![i16::MIN, 0])
        );
        let AudioSamples::F32(wide) = convert_samples(&[i32::MAX, 0, i32::MIN]) else {
            panic!("32-bit integers convert to f32")
        };
        assert!((wide[0] - 1.0).abs() < 1e-6 && wide[1] == 0.0 && wide[2] == -1.0);
        let AudioSamples::F32(i24) = convert_samples(&[cpal::I24::new(1 << 22).unwrap()]) else {
            panic!("24-bit integers convert to f32")
        };
        assert!((i24[0] - 0.5).abs() < 1e-6, "{i24:?}");
    }
}
