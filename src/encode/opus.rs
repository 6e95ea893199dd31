//! Opus through libopus: 20 ms packets from our 10 ms (or any size) audio blocks, and the
//! decoder back to [`AudioFrame`]s.

use std::time::Duration;

use bytes::Bytes;
use opus::{Application, Channels};

use super::{EncodeError, EncodedUnit};
use crate::frame::{AudioFrame, AudioSamples};

/// Opus packet duration.
pub const FRAME: Duration = Duration::from_millis(20);
/// Largest packet we produce (libopus's recommended maximum).
const MAX_PACKET: usize = 4000;

fn channels(n: u16) -> Result<Channels, EncodeError> {
    match n {
        1 => Ok(Channels::Mono),
        2 => Ok(Channels::Stereo),
        n => Err(EncodeError::Mismatch(format!(
            "Opus takes 1 or 2 channels, not {n}"
        ))),
    }
}

fn check_rate(rate: u32) -> Result<(), EncodeError> {
    if [8000, 12000, 16000, 24000, 48000].contains(&rate) {
        Ok(())
    } else {
        Err(EncodeError::Mismatch(format!(
            "Opus takes 8, 12, 16, 24 or 48 kHz, not {rate} Hz"
        )))
    }
}

/// Encodes audio blocks into 20 ms Opus packets.
pub struct OpusEncoder {
    encoder: opus::Encoder,
    sample_rate: u32,
    channels: u16,
    /// Samples waiting for a full 20 ms (interleaved).
    pending: Vec<i16>,
    /// Timeline position of the first pending sample.
    pending_start: Duration,
    pending_capture_ms: u64,
    bitrate: u32,
}

impl OpusEncoder {
    pub fn new(sample_rate: u32, channel_count: u16, bitrate: u32) -> Result<Self, EncodeError> {
        check_rate(sample_rate)?;
        let mut encoder =
            opus::Encoder::new(sample_rate, channels(channel_count)?, Application::Audio)
                .map_err(|e| EncodeError::Codec(format!("opus encoder: {e}")))?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(bitrate as i32))
            .map_err(|e| EncodeError::Codec(format!("opus bitrate: {e}")))?;
        Ok(OpusEncoder {
            encoder,
            sample_rate,
            channels: channel_count,
            pending: Vec::new(),
            pending_start: Duration::ZERO,
            pending_capture_ms: 0,
            bitrate,
        })
    }

    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), EncodeError> {
        self.encoder
            .set_bitrate(opus::Bitrate::Bits(bitrate.clamp(6000, 510_000) as i32))
            .map_err(|e| EncodeError::Codec(format!("opus bitrate: {e}")))?;
        self.bitrate = bitrate;
        Ok(())
    }

    pub fn bitrate(&self) -> u32 {
        self.bitrate
    }

    /// Adds a block; returns the packets it completed (usually zero or one).
    pub fn encode(&mut self, block: &AudioFrame) -> Result<Vec<EncodedUnit>, EncodeError> {
        if block.sample_rate != self.sample_rate || block.channels != self.channels {
            return Err(EncodeError::Mismatch(format!(
                "block is {} Hz × {}, the encoder {} Hz × {}",
                block.sample_rate, block.channels, self.sample_rate, self.channels
            )));
        }
        if self.pending.is_empty() {
            self.pending_start = block.timestamp;
            self.pending_capture_ms = block.capture_time_ms;
        }
        self.pending.extend(block.to_i16());
        let per_packet = (self.sample_rate as u64 * FRAME.as_millis() as u64 / 1000) as usize
            * self.channels as usize;
        let mut out = Vec::new();
        while self.pending.len() >= per_packet {
            let data = self
                .encoder
                .encode_vec(&self.pending[..per_packet], MAX_PACKET)
                .map_err(|e| EncodeError::Codec(format!("opus encode: {e}")))?;
            out.push(EncodedUnit {
                data: Bytes::from(data),
                keyframe: true,
                timestamp: self.pending_start,
                duration: FRAME,
                capture_time_ms: self.pending_capture_ms,
            });
            self.pending.drain(..per_packet);
            self.pending_start += FRAME;
            self.pending_capture_ms += FRAME.as_millis() as u64;
        }
        Ok(out)
    }
}

/// Decodes Opus packets to 16-bit audio.
pub struct OpusDecoder {
    decoder: opus::Decoder,
    sample_rate: u32,
    channels: u16,
    buffer: Vec<i16>,
}

impl OpusDecoder {
    pub fn new(sample_rate: u32, channel_count: u16) -> Result<Self, EncodeError> {
        check_rate(sample_rate)?;
        let decoder = opus::Decoder::new(sample_rate, channels(channel_count)?)
            .map_err(|e| EncodeError::Codec(format!("opus decoder: {e}")))?;
        Ok(OpusDecoder {
            decoder,
            sample_rate,
            channels: channel_count,
            // 120 ms, the longest Opus packet.
            buffer: vec![0; sample_rate as usize * 120 / 1000 * channel_count as usize],
        })
    }

    /// Decodes one packet (an empty one conceals a lost packet).
    pub fn decode(
        &mut self,
        packet: &[u8],
        timestamp: Duration,
    ) -> Result<AudioFrame, EncodeError> {
        let frames = self
            .decoder
            .decode(packet, &mut self.buffer, false)
            .map_err(|e| EncodeError::Codec(format!("opus decode: {e}")))?;
        Ok(AudioFrame {
            sample_rate: self.sample_rate,
            channels: self.channels,
            samples: AudioSamples::I16(self.buffer[..frames * self.channels as usize].to_vec()),
            timestamp,
            capture_time_ms: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::tone;

    fn block(start: u64, channels: u16) -> AudioFrame {
        AudioFrame {
            sample_rate: 48000,
            channels,
            samples: AudioSamples::I16(tone::render(48000, channels, start, 480)),
            timestamp: Duration::from_micros(start * 1_000_000 / 48000),
            capture_time_ms: 0,
        }
    }

    #[test]
    fn tone_round_trip_keeps_its_frequency() {
        for channels in [1u16, 2] {
            let mut enc = OpusEncoder::new(48000, channels, 64_000).unwrap();
            let mut dec = OpusDecoder::new(48000, channels).unwrap();
            let mut out = Vec::new();
            let mut packets = 0;
            for i in 0..200u64 {
                for unit in enc.encode(&block(i * 480, channels)).unwrap() {
                    packets += 1;
                    assert_eq!(unit.duration, FRAME);
                    let a = dec.decode(&unit.data, unit.timestamp).unwrap();
                    assert_eq!(a.frames(), 960);
                    out.extend(a.to_i16().chunks_exact(channels as usize).map(|c| c[0]));
                }
            }
            assert_eq!(packets, 100, "20 ms packets from 10 ms blocks");
            // Skip the codec's start-up.
            let s = &out[4800..];
            let crossings = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
            let hz = crossings as f64 / 2.0 / (s.len() as f64 / 48000.0);
            assert!((437.0..=443.0).contains(&hz), "{channels} ch: {hz} Hz");
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(OpusEncoder::new(44100, 1, 32000).is_err());
        assert!(OpusEncoder::new(48000, 3, 32000).is_err());
        let mut enc = OpusEncoder::new(48000, 1, 32000).unwrap();
        assert!(enc.encode(&block(0, 2)).is_err());
        // A corrupt packet must not panic (libopus may conceal or reject it).
        let mut dec = OpusDecoder::new(48000, 1).unwrap();
        let _ = dec.decode(&[0xff; 3], Duration::ZERO);
    }
}
