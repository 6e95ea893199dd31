//! What a received audio track carried (pure): its length, its level, and the tone's
//! once-a-second marker — the instant its loudness jumps (devices/tone.rs: amplitude 0.8
//! for 20 ms, 0.25 otherwise), for the A/V offset.

use serde::Serialize;

use crate::devices::tone::{MARKER_AMPLITUDE, TONE_AMPLITUDE};

/// A sample this loud (fraction of full scale) is the marker: between the tone's level
/// and the marker's.
const MARKER_THRESHOLD: f64 = (TONE_AMPLITUDE + MARKER_AMPLITUDE) / 2.0;
/// A marker starts after at least this long (ms) without one.
const MARKER_QUIET_MS: u64 = 500;

/// Audio received so far.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AudioReport {
    /// Seconds of audio decoded.
    pub seconds: f64,
    /// RMS level over everything decoded, fraction of full scale (0–1).
    pub level: f64,
    /// Markers (loudness jumps) found.
    pub markers: u64,
}

/// Reads level and markers from decoded audio.
#[derive(Debug, Clone, Default)]
pub struct AudioAnalysis {
    /// Samples per channel decoded, and their rate (the last frame's).
    frames: u64,
    seconds: f64,
    sum_squares: f64,
    samples: u64,
    /// Samples per channel since the last loud sample (`None` before any sample).
    quiet: Option<u64>,
    markers: u64,
}

impl AudioAnalysis {
    pub fn new() -> Self {
        AudioAnalysis::default()
    }

    /// Takes one decoded frame: interleaved `samples` of `channels` at `sample_rate`,
    /// decoded at `decoded_ms` (wall clock). Returns the instants (wall-clock ms) at
    /// which markers start in it, taking a frame's samples to play from its decode time on.
    pub fn push(
        &mut self,
        samples: &[i16],
        channels: u16,
        sample_rate: u32,
        decoded_ms: u64,
    ) -> Vec<f64> {
        let channels = usize::from(channels.max(1));
        let rate = u64::from(sample_rate.max(1));
        let quiet_needed = MARKER_QUIET_MS * rate / 1000;
        let threshold = MARKER_THRESHOLD * 32768.0;
        let mut onsets = Vec::new();
        for (i, frame) in samples.chunks_exact(channels).enumerate() {
            let s = f64::from(frame[0]);
            for &c in frame {
                self.sum_squares += f64::from(c) * f64::from(c);
            }
            self.samples += frame.len() as u64;
            if s.abs() >= threshold {
                if self.quiet.is_some_and(|q| q >= quiet_needed) {
                    self.markers += 1;
                    onsets.push(decoded_ms as f64 + i as f64 * 1000.0 / rate as f64);
                }
                self.quiet = Some(0);
            } else {
                self.quiet = Some(self.quiet.map_or(quiet_needed, |q| q + 1));
            }
        }
        let n = (samples.len() / channels) as u64;
        self.frames += n;
        self.seconds += n as f64 / rate as f64;
        onsets
    }

    pub fn report(&self) -> AudioReport {
        let level = if self.samples == 0 {
            0.0
        } else {
            (self.sum_squares / self.samples as f64).sqrt() / 32768.0
        };
        AudioReport {
            seconds: (self.seconds * 1000.0).round() / 1000.0,
            level: (level * 1000.0).round() / 1000.0,
            markers: self.markers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::tone;

    #[test]
    fn the_tones_markers_are_found_to_the_sample() {
        let mut a = AudioAnalysis::new();
        let mut onsets = Vec::new();
        // Three seconds of the tone opened 300 ms into a second, in 20 ms frames decoded
        // at their start's wall-clock time.
        let start = tone::second_position(1_700_000_000_300, 48000);
        for k in 0..150u64 {
            let s = tone::render(48000, 2, start + k * 960, 960);
            onsets.extend(a.push(&s, 2, 48000, 1_700_000_000_300 + k * 20));
        }
        assert_eq!(onsets.len(), 3, "{onsets:?}");
        for (k, t) in onsets.iter().enumerate() {
            let second = 1_700_000_001_000.0 + k as f64 * 1000.0;
            assert!((t - second).abs() < 1.0, "{t} vs {second}");
        }
        let r = a.report();
        assert_eq!(r.seconds, 3.0);
        assert_eq!(r.markers, 3);
        // Mostly a 0.25 sine (RMS 0.177), a little louder in the markers.
        assert!((0.17..0.21).contains(&r.level), "{}", r.level);
    }
}
