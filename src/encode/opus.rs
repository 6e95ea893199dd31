//! Opus through libopus: 20 ms packets from our 10 ms (or any size) audio blocks, and the
//! decoder back to [`AudioFrame`]s.

use std::time::Duration;

use bytes::Bytes;
use opus::{Application, Channels};

/// The packet loss Opus plans its in-band FEC for (percent).
const EXPECTED_LOSS_PERCENT: i32 = 5;

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

/// Half the length of the resampler's filter, in input samples at or below 48 kHz (more
/// for downsampling, whose filter is wider): 16 gives about 70 dB of stop band with the
/// Blackman window, far below what Opus keeps at speech and music bitrates.
const HALF_TAPS: usize = 16;
/// Filter phases precomputed between two input samples: the nearest one is used, an error
/// of at most 1/1024 sample (inaudible; it would need >50 kHz content to matter).
const PHASES: usize = 512;

/// Turns any input into what Opus takes: more than two channels mixed down to stereo,
/// rates Opus lacks (44.1, 32, 96 kHz ...) resampled to 48 kHz.
///
/// Downmix: channel 0 is left, 1 right, every further channel (a centre, surrounds, LFE:
/// no layout is known) goes into both at half gain, and the sum is scaled so a full-scale
/// signal on every channel stays within range. Resampling: windowed-sinc (Blackman),
/// streaming across blocks, cut off at 0.95 of the lower Nyquist so nothing folds back.
/// Done in-crate: no resampling crate is vendored here, and the job is ~100 lines.
pub struct AudioConverter {
    in_rate: u32,
    in_channels: u16,
    out_channels: u16,
    /// Input samples per output sample.
    step: f64,
    /// `PHASES + 1` rows of `2 * half` taps: row p is the filter at offset p/PHASES.
    table: Vec<f32>,
    half: usize,
    /// Pending input per output channel (already mixed down), oldest first.
    history: Vec<Vec<f32>>,
    /// Position of the next output sample in `history` (input sample units).
    position: f64,
}

impl AudioConverter {
    /// A converter from `in_rate` Hz × `in_channels` to 48 kHz (or `in_rate` when Opus
    /// takes it) × min(`in_channels`, 2).
    pub fn new(in_rate: u32, in_channels: u16) -> Result<Self, EncodeError> {
        if in_rate == 0 || in_channels == 0 {
            return Err(EncodeError::Mismatch(format!(
                "no audio at {in_rate} Hz × {in_channels} channels"
            )));
        }
        let out_rate = if check_rate(in_rate).is_ok() {
            in_rate
        } else {
            48_000
        };
        let step = in_rate as f64 / out_rate as f64;
        // Downsampling widens the filter to keep the cut-off below the output's Nyquist.
        let cutoff = 0.95 * (1.0 / step).min(1.0);
        let half = (HALF_TAPS as f64 / cutoff).ceil() as usize;
        let mut table = Vec::with_capacity((PHASES + 1) * 2 * half);
        for p in 0..=PHASES {
            let frac = p as f64 / PHASES as f64;
            for k in 0..2 * half {
                // Tap k weighs input sample (base - half + 1 + k) for an output at base + frac.
                let x = k as f64 - (half as f64 - 1.0) - frac;
                let sinc = if x.abs() < 1e-9 {
                    1.0
                } else {
                    (std::f64::consts::PI * cutoff * x).sin() / (std::f64::consts::PI * cutoff * x)
                };
                let w = x / half as f64; // -1..1 across the window
                let blackman = if w.abs() >= 1.0 {
                    0.0
                } else {
                    let a = std::f64::consts::PI * (w + 1.0);
                    0.42 - 0.5 * a.cos() + 0.08 * (2.0 * a).cos()
                };
                table.push((cutoff * sinc * blackman) as f32);
            }
        }
        let out_channels = in_channels.min(2);
        Ok(AudioConverter {
            in_rate,
            in_channels,
            out_channels,
            step,
            table,
            half,
            // Leading silence: the first output sample lines up with the first input one.
            history: vec![vec![0.0; half - 1]; out_channels as usize],
            position: (half - 1) as f64,
        })
    }

    /// Whether the input needs no conversion at all.
    pub fn is_identity(&self) -> bool {
        self.step == 1.0 && self.in_channels == self.out_channels
    }

    /// The output rate.
    pub fn out_rate(&self) -> u32 {
        (self.in_rate as f64 / self.step).round() as u32
    }

    pub fn out_channels(&self) -> u16 {
        self.out_channels
    }

    /// Converts one block; the result may be a few samples shorter or longer than the
    /// block's duration (the filter's delay, the rates' ratio), never lost.
    pub fn convert(&mut self, block: &AudioFrame) -> Result<AudioFrame, EncodeError> {
        if block.sample_rate != self.in_rate || block.channels != self.in_channels {
            return Err(EncodeError::Mismatch(format!(
                "block is {} Hz × {}, the converter takes {} Hz × {}",
                block.sample_rate, block.channels, self.in_rate, self.in_channels
            )));
        }
        let input = block.to_i16();
        let n = self.in_channels as usize;
        let extra = n.saturating_sub(2);
        let scale = 1.0 / (1.0 + 0.5 * extra as f32);
        for frame in input.chunks_exact(n) {
            let rest: f32 = frame[2.min(n)..].iter().map(|&s| s as f32).sum::<f32>() * 0.5;
            if self.out_channels == 1 {
                self.history[0].push(frame[0] as f32);
            } else {
                self.history[0].push((frame[0] as f32 + rest) * scale);
                self.history[1].push((frame[1] as f32 + rest) * scale);
            }
        }
        let mut out = Vec::new();
        let len = self.history[0].len();
        let taps = 2 * self.half;
        loop {
            let base = self.position.floor() as usize;
            if base + self.half >= len {
                break;
            }
            let phase = ((self.position - base as f64) * PHASES as f64).round() as usize;
            let row = &self.table[phase * taps..(phase + 1) * taps];
            let start = base + 1 - self.half;
            for ch in &self.history {
                let acc: f32 = ch[start..start + taps]
                    .iter()
                    .zip(row)
                    .map(|(x, h)| x * h)
                    .sum();
                out.push(acc.round().clamp(i16::MIN as f32, i16::MAX as f32) as i16);
            }
            self.position += self.step;
        }
        // Keep only what later outputs still need.
        let keep_from = (self.position.floor() as usize + 1).saturating_sub(self.half);
        for ch in &mut self.history {
            ch.drain(..keep_from.min(ch.len()));
        }
        self.position -= keep_from as f64;
        Ok(AudioFrame {
            sample_rate: self.out_rate(),
            channels: self.out_channels,
            samples: AudioSamples::I16(out),
            timestamp: block.timestamp,
            capture_time_ms: block.capture_time_ms,
        })
    }
}

/// Encodes audio blocks into 20 ms Opus packets.
pub struct OpusEncoder {
    encoder: opus::Encoder,
    /// Set when the input needs downmixing or resampling first.
    converter: Option<AudioConverter>,
    /// The input's rate and channels (what blocks must have).
    in_rate: u32,
    in_channels: u16,
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
    /// An encoder for blocks of `sample_rate` Hz × `channel_count`: rates Opus lacks are
    /// resampled to 48 kHz and more than two channels mixed down to stereo first (see
    /// [`AudioConverter`]).
    pub fn new(sample_rate: u32, channel_count: u16, bitrate: u32) -> Result<Self, EncodeError> {
        let converter = AudioConverter::new(sample_rate, channel_count)?;
        let (in_rate, in_channels) = (sample_rate, channel_count);
        let (sample_rate, channel_count) = (converter.out_rate(), converter.out_channels());
        let converter = (!converter.is_identity()).then_some(converter);
        if converter.is_some() {
            tracing::info!(
                "audio at {in_rate} Hz × {in_channels} is converted to {sample_rate} Hz × {channel_count} for Opus"
            );
        }
        let mut encoder =
            opus::Encoder::new(sample_rate, channels(channel_count)?, Application::Audio).map_err(
                |source| EncodeError::Opus {
                    what: "encoder",
                    source,
                },
            )?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(bitrate as i32))
            .map_err(|source| EncodeError::Opus {
                what: "bitrate",
                source,
            })?;
        // Our SDP says useinbandfec=1: a browser receiving us recovers a lost packet from
        // the next one. Opus adds the redundancy only when it expects loss.
        encoder
            .set_inband_fec(true)
            .and_then(|()| encoder.set_packet_loss_perc(EXPECTED_LOSS_PERCENT))
            .map_err(|source| EncodeError::Opus {
                what: "in-band FEC",
                source,
            })?;
        Ok(OpusEncoder {
            encoder,
            converter,
            in_rate,
            in_channels,
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
            .map_err(|source| EncodeError::Opus {
                what: "bitrate",
                source,
            })?;
        self.bitrate = bitrate;
        Ok(())
    }

    pub fn bitrate(&self) -> u32 {
        self.bitrate
    }

    /// The sample rate and channel count blocks must have.
    pub fn input_format(&self) -> (u32, u16) {
        (self.in_rate, self.in_channels)
    }

    /// Takes blocks of `sample_rate` Hz × `channel_count` from now on (the track was
    /// reconfigured: `applyConstraints` changed its channel count or rate): a new libopus
    /// encoder and converter at the same bitrate. The packet timeline carries on: while
    /// the Opus rate stays, the samples waiting for a full packet are kept (remixed to the
    /// new channel count), so the next packet starts exactly where the last one ended; at
    /// a new Opus rate they are dropped (under 20 ms: a short gap that the receiver
    /// conceals, never an overlap). On error nothing changes.
    pub fn reconfigure(&mut self, sample_rate: u32, channel_count: u16) -> Result<(), EncodeError> {
        let mut next = OpusEncoder::new(sample_rate, channel_count, self.bitrate)?;
        if !self.pending.is_empty() && next.sample_rate == self.sample_rate {
            next.pending = remix(&self.pending, self.channels, next.channels);
            next.pending_start = self.pending_start;
            next.pending_capture_ms = self.pending_capture_ms;
        }
        *self = next;
        Ok(())
    }

    /// Adds a block; returns the packets it completed (usually zero or one).
    pub fn encode(&mut self, block: &AudioFrame) -> Result<Vec<EncodedUnit>, EncodeError> {
        if block.sample_rate != self.in_rate || block.channels != self.in_channels {
            return Err(EncodeError::Mismatch(format!(
                "block is {} Hz × {}, the encoder {} Hz × {}",
                block.sample_rate, block.channels, self.in_rate, self.in_channels
            )));
        }
        let converted;
        let block = match &mut self.converter {
            Some(c) => {
                converted = c.convert(block)?;
                &converted
            }
            None => block,
        };
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
                .map_err(|source| EncodeError::Opus {
                    what: "encode",
                    source,
                })?;
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

/// Interleaved 16-bit samples from `from` channels to `to` (1 or 2 each): mono is copied
/// to both sides, stereo averaged to mono.
fn remix(samples: &[i16], from: u16, to: u16) -> Vec<i16> {
    match (from, to) {
        (1, 2) => samples.iter().flat_map(|&s| [s, s]).collect(),
        (2, 1) => samples
            .chunks_exact(2)
            .map(|p| ((i32::from(p[0]) + i32::from(p[1])) / 2) as i16)
            .collect(),
        _ => samples.to_vec(),
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
        let decoder =
            opus::Decoder::new(sample_rate, channels(channel_count)?).map_err(|source| {
                EncodeError::Opus {
                    what: "decoder",
                    source,
                }
            })?;
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
            .map_err(|source| EncodeError::Opus {
                what: "decode",
                source,
            })?;
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
    fn in_band_fec_is_on_as_the_sdp_says() {
        let mut enc = OpusEncoder::new(48000, 1, 32_000).unwrap();
        assert!(enc.encoder.get_inband_fec().unwrap());
        assert_eq!(
            enc.encoder.get_packet_loss_perc().unwrap(),
            EXPECTED_LOSS_PERCENT
        );
        assert!(crate::peer::opus_codec()
            .sdp_fmtp_line
            .contains("useinbandfec=1"));
    }

    #[test]
    fn reconfiguring_keeps_the_packet_timeline() {
        let mut enc = OpusEncoder::new(48000, 1, 64_000).unwrap();
        assert!(enc.encode(&block(0, 1)).unwrap().is_empty(), "10 ms waits");
        enc.reconfigure(48000, 2).unwrap();
        assert_eq!(enc.input_format(), (48000, 2));
        assert_eq!(enc.bitrate(), 64_000);
        assert!(
            enc.encode(&block(0, 1)).is_err(),
            "mono blocks no longer fit"
        );
        // The waiting mono 10 ms and this stereo 10 ms make the next packet, at 0 ms.
        let packets = enc.encode(&block(480, 2)).unwrap();
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].timestamp, Duration::ZERO);
        assert_ne!(packets[0].data[0] & 0x04, 0, "a stereo packet");
        let packets = enc.encode(&block(960, 2)).unwrap();
        let packets = [packets, enc.encode(&block(1440, 2)).unwrap()].concat();
        assert_eq!(packets[0].timestamp, Duration::from_millis(20));
        // A new Opus rate drops what waits: no overlap.
        assert!(enc.encode(&block(1920, 2)).unwrap().is_empty());
        enc.reconfigure(16000, 2).unwrap();
        assert!(enc.pending.is_empty());
        assert_eq!(remix(&[1, 3, -4, 2], 2, 1), [2, -1]);
        assert_eq!(remix(&[5, -6], 1, 2), [5, 5, -6, -6]);
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
            let hz = tone::frequency(&out[4800..], 48000);
            assert!((437.0..=443.0).contains(&hz), "{channels} ch: {hz} Hz");
        }
    }

    /// Zero-crossing frequency of the first channel of interleaved `samples` at `rate`.
    fn frequency(samples: &[i16], channels: usize, rate: f64) -> f64 {
        tone::frequency(&tone::first_channel(samples, channels as u16), rate as u32)
    }

    #[test]
    fn other_rates_and_channel_counts_are_converted_and_keep_their_pitch() {
        for (rate, channels) in [(44_100u32, 1u16), (44_100, 2), (32_000, 1), (96_000, 6)] {
            let mut enc = OpusEncoder::new(rate, channels, 64_000).unwrap();
            let out_channels = channels.min(2);
            let mut dec = OpusDecoder::new(48000, out_channels).unwrap();
            let per_block = rate as usize / 100;
            let mut out = Vec::new();
            for i in 0..200u64 {
                let start = i * per_block as u64;
                let block = AudioFrame {
                    sample_rate: rate,
                    channels,
                    samples: AudioSamples::I16(tone::render(rate, channels, start, per_block)),
                    timestamp: Duration::from_millis(10 * i),
                    capture_time_ms: 0,
                };
                for unit in enc.encode(&block).unwrap() {
                    let a = dec.decode(&unit.data, unit.timestamp).unwrap();
                    assert_eq!((a.sample_rate, a.frames()), (48000, 960));
                    out.extend(a.to_i16());
                }
            }
            // 2 s of input: 99 or 100 packets (the filter holds back a few samples).
            let packets = out.len() / 960 / out_channels as usize;
            assert!(
                (98..=100).contains(&packets),
                "{rate} Hz × {channels}: {packets}"
            );
            let skip = 4800 * out_channels as usize;
            let hz = frequency(&out[skip..], out_channels as usize, 48000.0);
            assert!(
                (437.0..=443.0).contains(&hz),
                "{rate} Hz × {channels}: {hz} Hz"
            );
        }
    }

    #[test]
    fn the_converter_resamples_a_sine_cleanly() {
        let mut c = AudioConverter::new(44_100, 1).unwrap();
        let mut out = Vec::new();
        for i in 0..100u64 {
            let block = AudioFrame {
                sample_rate: 44_100,
                channels: 1,
                samples: AudioSamples::I16(tone::render(44_100, 1, i * 441, 441)),
                timestamp: Duration::ZERO,
                capture_time_ms: 0,
            };
            let a = c.convert(&block).unwrap();
            assert_eq!(a.sample_rate, 48_000);
            out.extend(a.to_i16());
        }
        // 1 s in, 1 s out (less the few samples the filter waits for).
        assert!((47_950..=48_000).contains(&out.len()), "{}", out.len());
        // Compare with the ideal 48 kHz tone (the converter adds no delay: output sample j
        // is the input's value at j / 48000 s), past the filter's start-up.
        let ideal = tone::render(48_000, 1, 0, 48_000);
        let err = out[2000..40_000]
            .iter()
            .zip(&ideal[2000..40_000])
            .map(|(a, b)| (*a as i32 - *b as i32).abs())
            .max()
            .unwrap();
        assert!(err < 200, "max error {err} of amplitude ~8200");
        // Mixing six channels down to two stays in range.
        let mut six = AudioConverter::new(48_000, 6).unwrap();
        let loud = AudioFrame {
            sample_rate: 48_000,
            channels: 6,
            samples: AudioSamples::I16(vec![i16::MAX; 480 * 6]),
            timestamp: Duration::ZERO,
            capture_time_ms: 0,
        };
        let a = six.convert(&loud).unwrap();
        assert_eq!((a.channels, a.sample_rate), (2, 48_000));
        assert!(a.to_i16().iter().all(|&s| s >= 0));
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(OpusEncoder::new(0, 1, 32000).is_err());
        assert!(OpusEncoder::new(48000, 0, 32000).is_err());
        let mut enc = OpusEncoder::new(48000, 1, 32000).unwrap();
        assert!(enc.encode(&block(0, 2)).is_err());
        // A corrupt packet must not panic (libopus may conceal or reject it).
        let mut dec = OpusDecoder::new(48000, 1).unwrap();
        let _ = dec.decode(&[0xff; 3], Duration::ZERO);
    }
}
