//! Captured RTP of our own sender, the depacketizer's test input: reading the fixtures and
//! (an ignored test) regenerating them.
//!
//! The files under `tests/fixtures/rtp/` are what our sender puts on the wire: the test
//! pattern at 320x180, 30 fps, with a block of noise (so frames span several packets),
//! encoded by openh264 (`h264.rtp`) and by libvpx
//! (`vp8.rtp`) with a keyframe forced at frame [`FORCED_KEYFRAME`], and a 440 Hz tone,
//! mono, encoded by libopus (`opus.rtp`). Each unit is packetized as the sender does it
//! (`local.rs`): the negotiated codec's payloader from the rtc crate, [`MTU`], the RTP
//! timestamp from `RtpClock`. Sequence numbers and timestamps start just before they
//! wrap, so the fixtures cross both wraps. `manifest.json` says what was sent: each unit's
//! RTP timestamp, keyframe flag, size, duration and packet count as the encoder produced
//! it (and its NAL unit types for H.264).
//!
//! A `.rtp` file is the packets in send order, each as its length (big-endian u16) and the
//! marshalled packet (RTP header and payload).
//!
//! Regenerate them (after a change of codec settings, payloader or packetizer) with
//! `cargo test --lib peer::remote::fixtures -- --ignored` and commit the files.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use rtc::rtp::packetizer::{new_packetizer, Packetizer};
use rtc::shared::marshal::{Marshal, Unmarshal};
use serde::{Deserialize, Serialize};

use super::super::local::{rtp_codec, RtpClock, MTU};
use crate::encode::{EncodedUnit, VideoCodec};

/// The frame (of [`FRAMES`]) whose keyframe the video fixtures force.
const FORCED_KEYFRAME: u32 = 24;
/// Video frames encoded: 2 s at 30 fps (a lost packet's frame is given up half a second
/// later, so the tests lose one well before the end).
const FRAMES: u32 = 60;
/// Opus: 10 ms blocks of tone encoded (1 s).
const AUDIO_BLOCKS: u64 = 100;
const SSRC: u32 = 0x5eed_0001;

/// What was sent, per stream (`h264`, `vp8`, `opus`).
type Manifest = BTreeMap<String, Stream>;

/// One captured stream.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Stream {
    /// The `.rtp` file, beside the manifest.
    pub file: String,
    pub mime_type: String,
    pub clock_rate: u32,
    /// Every unit sent, in order.
    pub units: Vec<SentUnit>,
}

/// One encoded unit as the encoder produced it and the sender sent it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SentUnit {
    pub rtp_timestamp: u32,
    pub keyframe: bool,
    /// Its size out of the encoder.
    pub bytes: usize,
    pub duration_us: u64,
    /// RTP packets it was sent in.
    pub packets: usize,
    /// H.264: its NAL unit types, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nal_types: Vec<u8>,
}

fn directory() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rtp")
}

/// The packets of stream `name` (`h264`, `vp8`, `opus`) and what was sent.
pub(super) fn load(name: &str) -> (Vec<rtc::rtp::Packet>, Stream) {
    let dir = directory();
    let manifest = std::fs::read(dir.join("manifest.json")).expect("the fixture manifest");
    let mut manifest: Manifest = serde_json::from_slice(&manifest).expect("a valid manifest");
    let stream = manifest.remove(name).expect("the stream in the manifest");
    let mut raw = Bytes::from(std::fs::read(dir.join(&stream.file)).expect("the fixture"));
    let mut packets = Vec::new();
    while raw.remaining() >= 2 {
        let len = usize::from(raw.get_u16());
        let mut packet = raw.split_to(len);
        packets.push(rtc::rtp::Packet::unmarshal(&mut packet).expect("an RTP packet"));
    }
    assert!(!raw.has_remaining(), "a truncated fixture");
    (packets, stream)
}

/// Packetizes `units` as the sender does; returns the packets and the stream's record.
fn packetize(
    codec: Option<VideoCodec>,
    units: &[EncodedUnit],
    first_sequence: u16,
    first_timestamp: u32,
    file: &str,
) -> (Vec<rtc::rtp::Packet>, Stream) {
    let rtp = rtp_codec(codec);
    let payload_type = match codec {
        Some(c) => super::super::setup::video_codec_parameters(c).payload_type,
        None => super::super::setup::OPUS_PAYLOAD_TYPE,
    };
    let mut packetizer = new_packetizer(
        Instant::now(),
        MTU,
        payload_type,
        SSRC,
        rtp.payloader().expect("a payloader"),
        Box::new(rtc::rtp::sequence::new_fixed_sequencer(first_sequence)),
        rtp.clock_rate,
    );
    let mut clock = RtpClock::new(rtp.clock_rate, first_timestamp);
    let (mut all, mut sent) = (Vec::new(), Vec::new());
    for unit in units {
        let rtp_timestamp = clock.timestamp(unit.timestamp);
        let mut packets = packetizer
            .packetize(Instant::now(), &unit.data, 0)
            .expect("packetized");
        for packet in &mut packets {
            packet.header.timestamp = rtp_timestamp;
        }
        sent.push(SentUnit {
            rtp_timestamp,
            keyframe: unit.keyframe,
            bytes: unit.data.len(),
            duration_us: unit.duration.as_micros() as u64,
            packets: packets.len(),
            nal_types: match codec {
                Some(VideoCodec::H264) => crate::encode::h264::nal_types(&unit.data),
                _ => Vec::new(),
            },
        });
        all.extend(packets);
    }
    let stream = Stream {
        file: file.to_owned(),
        mime_type: rtp.mime_type.clone(),
        clock_rate: rtp.clock_rate,
        units: sent,
    };
    (all, stream)
}

/// One frame in (and whether to force a keyframe), its unit out.
type Encode = dyn FnMut(&crate::frame::VideoFrame, bool) -> Option<EncodedUnit>;

/// The pattern encoded with `codec`, keyframes where the encoder puts them and at
/// [`FORCED_KEYFRAME`].
fn video_units(codec: VideoCodec) -> Vec<EncodedUnit> {
    use crate::encode::h264::{H264Config, H264Encoder};
    use crate::encode::vp8::{Vp8Config, Vp8Encoder};
    let (width, height, fps, bitrate) = (320, 180, 30.0, 300_000);
    let mut encode: Box<Encode> = match codec {
        VideoCodec::H264 => {
            let mut e =
                H264Encoder::new(H264Config::new(width, height, fps, bitrate)).expect("openh264");
            Box::new(move |f, k| e.encode(f, k).expect("encoded"))
        }
        VideoCodec::Vp8 => {
            let mut e =
                Vp8Encoder::new(Vp8Config::new(width, height, fps, bitrate)).expect("libvpx");
            Box::new(move |f, k| e.encode(f, k).expect("encoded"))
        }
    };
    (0..FRAMES)
        .filter_map(|n| {
            let at = Duration::from_nanos(u64::from(n) * 1_000_000_000 / 30);
            let mut frame = crate::devices::pattern::render(width, height, n, 0);
            textured(&mut frame, n);
            encode(&frame.with_times(at, 0), n == FORCED_KEYFRAME)
        })
        .collect()
}

/// Paints a block of noise over the pattern, moving 2 pixels a frame: the pattern alone
/// compresses so well that every frame would fit one packet; with it keyframes span
/// several packets and deltas (motion) stay small.
fn textured(frame: &mut crate::frame::VideoFrame, n: u32) {
    let width = frame.width() as usize;
    let (luma, _, _) = frame.planes_mut();
    for row in 50..130 {
        for x in 100..220 {
            // A fixed pseudo-random value per texture position (a 32-bit integer hash).
            let mut h = ((row as u32) << 16 | (x as u32 + 2 * n)).wrapping_mul(0x9e37_79b9);
            h ^= h >> 15;
            h = h.wrapping_mul(0x85eb_ca6b);
            h ^= h >> 13;
            luma[row * width + x] = 32 + (h >> 25) as u8;
        }
    }
}

/// A second of a 440 Hz tone, mono, in Opus packets.
fn opus_units() -> Vec<EncodedUnit> {
    use crate::frame::{AudioFrame, AudioSamples};
    let mut encoder = crate::encode::opus::OpusEncoder::new(48_000, 1, 32_000).expect("libopus");
    let mut units = Vec::new();
    for block in 0..AUDIO_BLOCKS {
        let start = block * 480;
        let frame = AudioFrame {
            sample_rate: 48_000,
            channels: 1,
            samples: AudioSamples::I16(crate::devices::tone::render(48_000, 1, start, 480)),
            timestamp: Duration::from_millis(block * 10),
            capture_time_ms: 0,
        };
        units.extend(encoder.encode(&frame).expect("encoded"));
    }
    units
}

/// Writes the fixtures and the manifest (see the module's comment).
#[test]
#[ignore = "regenerates tests/fixtures/rtp; run on purpose and commit the files"]
fn regenerate_rtp_fixtures() {
    let dir = directory();
    std::fs::create_dir_all(&dir).expect("the fixture directory");
    let write = |packets: &[rtc::rtp::Packet], file: &str| {
        let mut out = Vec::new();
        for packet in packets {
            let raw = packet.marshal().expect("marshalled");
            out.extend_from_slice(&u16::try_from(raw.len()).expect("short").to_be_bytes());
            out.extend_from_slice(&raw);
        }
        std::fs::write(dir.join(file), out).expect("written");
    };
    // Sequence numbers wrap a few packets in; timestamps half a second in.
    let (h264_packets, h264) = packetize(
        Some(VideoCodec::H264),
        &video_units(VideoCodec::H264),
        65_530,
        u32::MAX - 45_000,
        "h264.rtp",
    );
    let (vp8_packets, vp8) = packetize(
        Some(VideoCodec::Vp8),
        &video_units(VideoCodec::Vp8),
        65_530,
        u32::MAX - 45_000,
        "vp8.rtp",
    );
    let (opus_packets, opus) =
        packetize(None, &opus_units(), 65_530, u32::MAX - 24_000, "opus.rtp");
    write(&h264_packets, &h264.file);
    write(&vp8_packets, &vp8.file);
    write(&opus_packets, &opus.file);
    let manifest: Manifest = [("h264", h264), ("vp8", vp8), ("opus", opus)]
        .into_iter()
        .map(|(name, stream)| (name.to_owned(), stream))
        .collect();
    let json = serde_json::to_string_pretty(&manifest).expect("serialized");
    std::fs::write(dir.join("manifest.json"), json + "\n").expect("written");
}
