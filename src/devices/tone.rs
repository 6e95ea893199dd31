//! The `tone` virtual microphone: a 440 Hz sine with a marker every second, in 10 ms
//! blocks paced in real time.
//!
//! The marker is the first 20 ms of every second played louder (amplitude 0.8 instead of
//! 0.25) at the same, phase-continuous frequency, so a receiver can find second boundaries
//! by level (continuity, latency) while the pitch — and the zero-crossing count — stays
//! exactly 440 Hz.

use std::f64::consts::TAU;
use std::sync::Arc;
use std::time::Duration;

use super::source::{audio_settings, wall_clock_ms, MediaFrame, Pacer, Source, SourceError};
use crate::constraints::MediaTrackSettings;
use crate::frame::{AudioFrame, AudioSamples};

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

/// The tone microphone at the track's sample rate and channel count.
pub struct ToneSource {
    sample_rate: u32,
    channels: u16,
    next_sample: u64,
    pacer: Pacer,
}

impl ToneSource {
    pub fn open(settings: &MediaTrackSettings) -> Result<Self, SourceError> {
        let (sample_rate, channels) = audio_settings(settings)?;
        Ok(ToneSource {
            sample_rate,
            channels,
            next_sample: 0,
            pacer: Pacer::new(BLOCK),
        })
    }
}

impl Source for ToneSource {
    fn next_frame(&mut self) -> Result<MediaFrame, SourceError> {
        let timestamp = self.pacer.wait();
        let frames = (self.sample_rate as u64 * BLOCK.as_millis() as u64 / 1000) as usize;
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
        }
        self.sample_rate = sample_rate;
        self.channels = channels;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zero_crossings(samples: &[i16]) -> usize {
        samples
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count()
    }

    #[test]
    fn one_second_has_880_crossings_and_one_marker() {
        let s = render(48000, 1, 0, 48000);
        let c = zero_crossings(&s);
        assert!((878..=881).contains(&c), "{c}");
        let loud = s.iter().filter(|&&x| x.unsigned_abs() > 16000).count();
        // Samples above half scale occur only in the 20 ms marker.
        assert!(loud > 300 && loud < 960, "{loud}");
        assert!(s[960..].iter().all(|&x| x.unsigned_abs() <= 8192));
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
