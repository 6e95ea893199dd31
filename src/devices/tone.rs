//! The `tone` virtual microphone: a 440 Hz sine with a marker every second, in 10 ms
//! blocks paced in real time.
//!
//! The marker is the first 20 ms of every second played louder (amplitude 0.8 instead of
//! 0.25) at the same, phase-continuous frequency, so a receiver can find second boundaries
//! by level (continuity, latency, A/V offset) while the pitch — and the zero-crossing
//! count — stays exactly 440 Hz. The seconds are the wall clock's: the source starts its
//! sample count at the place in the current UNIX second where it opens, so its markers
//! start when the pattern's marker block lights.

use std::f64::consts::TAU;
use std::sync::Arc;
use std::time::Duration;

use crate::constraints::MediaTrackSettings;
use crate::frame::{AudioFrame, AudioSamples};
use crate::media::{audio_settings, wall_clock_ms, MediaFrame, Pacer, Source, SourceError};

/// The tone's frequency.
pub const TONE_HZ: f64 = 440.0;
/// Normal amplitude (fraction of full scale).
pub const TONE_AMPLITUDE: f64 = 0.25;
/// Amplitude during the marker.
pub const MARKER_AMPLITUDE: f64 = 0.8;
/// Marker length at the start of every second.
pub const MARKER: Duration = Duration::from_millis(20);
/// Audio block length.
pub const BLOCK: Duration = Duration::from_millis(10);

/// Samples per channel in the next 10 ms block at `sample_rate`. Rates that are not a
/// multiple of 100 (22050, 11025) do not divide into whole 10 ms blocks: the fraction, in
/// hundredths of a sample, is carried in `remainder` from block to block, so every second
/// of blocks holds exactly `sample_rate` samples (22050 Hz: 220 or 221 a block).
pub fn block_frames(sample_rate: u32, remainder: &mut u32) -> usize {
    let blocks_per_second = (1000 / BLOCK.as_millis()) as u32;
    let total = sample_rate + *remainder;
    *remainder = total % blocks_per_second;
    (total / blocks_per_second) as usize
}

/// The frequency of a tone in `mono` samples at `sample_rate`, from its zero crossings:
/// how a receiver checks that the tone survived encoding, sending and decoding (what
/// [`read_strip`](super::pattern::read_strip) is for the pattern).
pub fn frequency(mono: &[i16], sample_rate: u32) -> f64 {
    let crossings = mono.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f64 / 2.0 / (mono.len().max(1) as f64 / f64::from(sample_rate))
}

/// Interleaved `samples` of `channels` channels: the first channel, for [`frequency`].
pub fn first_channel(samples: &[i16], channels: u16) -> Vec<i16> {
    samples
        .chunks_exact(usize::from(channels.max(1)))
        .map(|c| c[0])
        .collect()
}

/// The sample index that plays at wall-clock `now_ms` (ms since the UNIX epoch) when sample
/// 0 played at the start of its second: where a tone opening then starts its count.
pub fn second_position(now_ms: u64, sample_rate: u32) -> u64 {
    (now_ms % 1000) * u64::from(sample_rate) / 1000
}

/// Renders `frames` samples per channel of the tone starting at absolute sample `start`.
pub fn render(sample_rate: u32, channels: u16, start: u64, frames: usize) -> Vec<i16> {
    let marker_len = (sample_rate as f64 * MARKER.as_secs_f64()) as u64;
    let mut out = Vec::with_capacity(frames * channels as usize);
    for i in 0..frames as u64 {
        let n = start + i;
        let amplitude = if (n % sample_rate as u64) < marker_len {
            MARKER_AMPLITUDE
        } else {
            TONE_AMPLITUDE
        };
        // The phase from the sample index modulo one second keeps precision for days.
        let t = (n % sample_rate as u64) as f64 / sample_rate as f64;
        let s = (amplitude * (TAU * TONE_HZ * t).sin() * i16::MAX as f64) as i16;
        for _ in 0..channels {
            out.push(s);
        }
    }
    out
}

/// The tone microphone at the track's sample rate and channel count: a 440 Hz sine whose
/// first 20 ms of every second are louder (the marker: same pitch, amplitude 0.8 instead
/// of 0.25 — not a separate beep), in 10 ms blocks paced in real time.
pub struct ToneSource {
    sample_rate: u32,
    channels: u16,
    /// Counted from a wall-clock second: sample `k·sample_rate` plays at a second's start.
    next_sample: u64,
    /// See [`block_frames`].
    remainder: u32,
    pacer: Pacer,
}

impl ToneSource {
    pub fn open(settings: &MediaTrackSettings) -> Result<Self, SourceError> {
        let (sample_rate, channels) = audio_settings(settings)?;
        Ok(ToneSource {
            sample_rate,
            channels,
            next_sample: second_position(wall_clock_ms(), sample_rate),
            remainder: 0,
            pacer: Pacer::new(BLOCK),
        })
    }
}

impl Source for ToneSource {
    fn next_frame(&mut self) -> Result<MediaFrame, SourceError> {
        let timestamp = self.pacer.wait();
        let frames = block_frames(self.sample_rate, &mut self.remainder);
        let samples = render(self.sample_rate, self.channels, self.next_sample, frames);
        self.next_sample += frames as u64;
        Ok(MediaFrame::Audio(Arc::new(AudioFrame {
            sample_rate: self.sample_rate,
            channels: self.channels,
            samples: AudioSamples::I16(samples),
            timestamp,
            capture_time_ms: wall_clock_ms(),
        })))
    }

    fn reconfigure(&mut self, settings: &MediaTrackSettings) -> Result<(), SourceError> {
        let (sample_rate, channels) = audio_settings(settings)?;
        if sample_rate != self.sample_rate {
            // Keep the position in time, not in samples.
            self.next_sample = self.next_sample * sample_rate as u64 / self.sample_rate as u64;
            self.remainder = 0;
        }
        self.sample_rate = sample_rate;
        self.channels = channels;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_second_has_880_crossings_and_one_marker() {
        let s = render(48000, 1, 0, 48000);
        // One second: the crossings are twice the frequency.
        let c = (frequency(&s, 48000) * 2.0).round() as usize;
        assert!((878..=881).contains(&c), "{c}");
        let loud = s.iter().filter(|&&x| x.unsigned_abs() > 16000).count();
        // Samples above half scale occur only in the 20 ms marker.
        assert!(loud > 300 && loud < 960, "{loud}");
        assert!(s[960..].iter().all(|&x| x.unsigned_abs() <= 8192));
    }

    #[test]
    fn the_count_starts_at_the_place_in_the_wall_clock_second() {
        assert_eq!(second_position(1_700_000_000_000, 48000), 0);
        assert_eq!(second_position(1_700_000_000_250, 48000), 12000);
        assert_eq!(second_position(1_700_000_000_999, 22050), 22027);
        // Opening 250 ms into a second, the marker starts 750 ms of samples later.
        let s = render(48000, 1, 12000, 48000);
        let loud = s.iter().position(|&x| x.unsigned_abs() > 16000).unwrap();
        assert!((36000..36020).contains(&loud), "{loud}");
    }

    #[test]
    fn block_sizes_carry_the_fraction() {
        let mut r = 0;
        let sizes: Vec<usize> = (0..100).map(|_| block_frames(22050, &mut r)).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 22050);
        assert!(sizes.iter().all(|&n| n == 220 || n == 221), "{sizes:?}");
        let mut r = 0;
        assert_eq!(
            (0..100).map(|_| block_frames(11025, &mut r)).sum::<usize>(),
            11025
        );
        let mut r = 0;
        assert!((0..100).all(|_| block_frames(48000, &mut r) == 480));
    }

    #[test]
    fn a_22050_hz_tone_delivers_22050_samples_per_second_of_timestamps() {
        let settings = MediaTrackSettings {
            sample_rate: Some(22050),
            channel_count: Some(1),
            ..Default::default()
        };
        let mut src = ToneSource::open(&settings).unwrap();
        let blocks: Vec<Arc<AudioFrame>> = (0..50)
            .map(|_| match src.next_frame().unwrap() {
                MediaFrame::Audio(a) => a,
                MediaFrame::Video(_) => panic!("video from a tone"),
            })
            .collect();
        // Samples against the timestamps they span (not the wall clock). A pair of blocks
        // further apart than one block means the pacer skipped ahead under load; such
        // pairs are left out, the rest must hold exactly 220.5 samples per 10 ms (±0.1%:
        // the old whole-block truncation gave 22000/s).
        let (mut samples, mut span) = (0usize, Duration::ZERO);
        for pair in blocks.windows(2) {
            let dt = pair[1].timestamp - pair[0].timestamp;
            if dt == BLOCK {
                samples += pair[0].frames();
                span += dt;
            }
        }
        assert!(span >= BLOCK * 35, "too many skipped slots: {span:?}");
        let rate = samples as f64 / span.as_secs_f64();
        assert!((rate - 22050.0).abs() <= 22.05, "{rate} samples/s");
        assert_eq!(blocks.iter().map(|b| b.frames()).sum::<usize>(), 11025);
    }

    #[test]
    fn blocks_are_continuous_and_channels_duplicate() {
        let whole = render(48000, 1, 0, 960);
        let mut parts = render(48000, 1, 0, 480);
        parts.extend(render(48000, 1, 480, 480));
        assert_eq!(whole, parts);
        let stereo = render(48000, 2, 0, 10);
        for pair in stereo.chunks_exact(2) {
            assert_eq!(pair[0], pair[1]);
        }
    }
}
