//! WAV audio files, read through `hound` and decoded whole at open, played in a loop in
//! 10 ms blocks at the file's own rate (the track's: no resampling).

use std::path::Path;
use std::sync::Arc;

use super::open_error;
use crate::constraints::MediaTrackSettings;
use crate::devices::tone::{block_frames, BLOCK};
use crate::frame::{AudioFrame, AudioSamples};
use crate::media::{audio_settings, wall_clock_ms, MediaFrame, Pacer, Source, SourceError};

/// A WAV file, decoded entirely at open.
#[derive(Debug, Clone, PartialEq)]
pub struct WavData {
    pub sample_rate: u32,
    pub channels: u16,
    /// Interleaved, converted to 16 bits.
    pub samples: Vec<i16>,
}

/// Reads and checks a whole WAV file (PCM 8/16/24/32-bit or float).
pub fn read_wav(path: &Path) -> Result<WavData, SourceError> {
    let mut reader =
        hound::WavReader::open(path).map_err(|e| open_error(path, WavError::from(e)))?;
    let spec = reader.spec();
    let samples: Vec<i16> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader
            .samples::<f32>()
            .map(|s| s.map(|x| (x.clamp(-1.0, 1.0) * i16::MAX as f32) as i16))
            .collect::<Result<_, _>>(),
        (hound::SampleFormat::Int, bits @ 1..=16) => reader
            .samples::<i16>()
            .map(|s| s.map(|x| x << (16 - bits)))
            .collect::<Result<_, _>>(),
        (hound::SampleFormat::Int, bits @ 17..=32) => reader
            .samples::<i32>()
            .map(|s| s.map(|x| (x >> (bits - 16)) as i16))
            .collect::<Result<_, _>>(),
        (format, bits) => return Err(open_error(path, WavError::SampleFormat { format, bits })),
    }
    .map_err(|e| open_error(path, WavError::from(e)))?;
    if samples.is_empty() {
        return Err(open_error(path, WavError::NoSamples));
    }
    Ok(WavData {
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        samples,
    })
}

/// Why a WAV file cannot be played: unreadable, not WAV, or not a layout we support.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("truncated: the data ends before the header says it does")]
    Truncated(#[source] hound::Error),
    #[error("not a valid WAV file: {message}")]
    Invalid {
        message: &'static str,
        #[source]
        source: hound::Error,
    },
    /// Any other error from the WAV reader (unreadable file, unsupported encoding).
    #[error(transparent)]
    Read(hound::Error),
    #[error("unsupported sample format {format:?} with {bits} bits")]
    SampleFormat {
        format: hound::SampleFormat,
        bits: u16,
    },
    #[error("no samples")]
    NoSamples,
    #[error("the file is {file} Hz but the track needs {track} Hz (no resampling)")]
    SampleRate { file: u32, track: u32 },
}

impl From<hound::Error> for WavError {
    fn from(e: hound::Error) -> Self {
        match e {
            // hound reports a short read as `Other` with this text.
            hound::Error::IoError(ref io)
                if io.kind() == std::io::ErrorKind::UnexpectedEof
                    || io.to_string().contains("enough bytes") =>
            {
                WavError::Truncated(e)
            }
            hound::Error::FormatError(message) => WavError::Invalid { message, source: e },
            other => WavError::Read(other),
        }
    }
}

/// A WAV file played in a loop in 10 ms blocks, at its own sample rate (which must be the
/// track's: no resampling) and the track's channel count.
pub struct WavSource {
    data: WavData,
    channels: u16,
    /// Position in frames (samples per channel).
    position: usize,
    /// Hundredths of a sample carried between blocks (see [`block_frames`]).
    remainder: u32,
    pacer: Pacer,
}

impl WavSource {
    pub fn open(path: &Path, settings: &MediaTrackSettings) -> Result<Self, SourceError> {
        let (sample_rate, channels) = audio_settings(settings)?;
        let data = read_wav(path)?;
        if data.sample_rate != sample_rate {
            return Err(open_error(
                path,
                WavError::SampleRate {
                    file: data.sample_rate,
                    track: sample_rate,
                },
            ));
        }
        Ok(WavSource {
            data,
            channels,
            position: 0,
            remainder: 0,
            pacer: Pacer::new(BLOCK),
        })
    }
}

impl Source for WavSource {
    fn next_frame(&mut self) -> Result<MediaFrame, SourceError> {
        let timestamp = self.pacer.wait();
        let file_channels = self.data.channels as usize;
        let total = self.data.samples.len() / file_channels;
        let frames = block_frames(self.data.sample_rate, &mut self.remainder);
        let mut block = Vec::with_capacity(frames * file_channels);
        for i in 0..frames {
            let at = (self.position + i) % total * file_channels;
            block.extend_from_slice(&self.data.samples[at..at + file_channels]);
        }
        self.position = (self.position + frames) % total;
        let frame = AudioFrame {
            sample_rate: self.data.sample_rate,
            channels: self.data.channels,
            samples: AudioSamples::I16(block),
            timestamp,
            capture_time_ms: wall_clock_ms(),
        };
        let frame = if self.channels == self.data.channels {
            frame
        } else {
            frame.with_channels(self.channels)
        };
        Ok(MediaFrame::Audio(Arc::new(frame)))
    }

    fn reconfigure(&mut self, settings: &MediaTrackSettings) -> Result<(), SourceError> {
        let (sample_rate, channels) = audio_settings(settings)?;
        if sample_rate != self.data.sample_rate {
            return Err(SourceError::Unsupported(format!(
                "the file is {} Hz; cannot switch to {sample_rate} Hz",
                self.data.sample_rate
            )));
        }
        self.channels = channels;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_wav(rate: u32, channels: u16, samples: &[i16]) -> tempfile::NamedTempFile {
        let f = tempfile::Builder::new().suffix(".wav").tempfile().unwrap();
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(f.path(), spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        f
    }

    #[test]
    fn wav_loops_and_converts_channels() {
        let samples: Vec<i16> = (0..700).collect();
        let f = write_wav(48000, 1, &samples);
        let mut src = WavSource::open(
            f.path(),
            &MediaTrackSettings {
                sample_rate: Some(48000),
                channel_count: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        let MediaFrame::Audio(a) = src.next_frame().unwrap() else {
            panic!()
        };
        let MediaFrame::Audio(b) = src.next_frame().unwrap() else {
            panic!()
        };
        assert_eq!((a.channels, a.frames()), (2, 480));
        let (a, b) = (a.to_i16(), b.to_i16());
        assert_eq!(&a[..4], &[0, 0, 1, 1]);
        // The second block wraps around the 700-sample file: 480..700 then 0..260.
        assert_eq!(b[0], 480);
        assert_eq!(b[2 * 220], 0);
    }

    #[test]
    fn bad_wav_files_are_clear_errors() {
        let f = write_wav(44100, 1, &[1, 2, 3]);
        let err = WavSource::open(
            f.path(),
            &MediaTrackSettings {
                sample_rate: Some(48000),
                channel_count: Some(1),
                ..Default::default()
            },
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("44100 Hz"), "{err}");
        let mut garbage = tempfile::Builder::new().suffix(".wav").tempfile().unwrap();
        garbage.write_all(b"this is not a wav file at all").unwrap();
        let err = read_wav(garbage.path()).unwrap_err().to_string();
        assert!(err.contains(&garbage.path().display().to_string()), "{err}");
        // Truncated: cut a valid file in the middle of its data.
        let f = write_wav(48000, 1, &vec![7; 1000]);
        let bytes = std::fs::read(f.path()).unwrap();
        let mut cut = tempfile::Builder::new().suffix(".wav").tempfile().unwrap();
        cut.write_all(&bytes[..bytes.len() - 500]).unwrap();
        let err = read_wav(cut.path()).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        let empty = write_wav(48000, 1, &[]);
        assert!(read_wav(empty.path())
            .unwrap_err()
            .to_string()
            .contains("no samples"));
    }
}
