//! The encoder thread: takes a track's frames, encodes them with the codec it was started
//! with (H.264, VP8 or Opus, restarted when the track's format changes or the track is
//! replaced) and hands the units to the fan-out; and [`EncodedTrack::start`], which spawns
//! it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::encoded::{CodecConfig, EncodedTrack, Shared, Source};
use super::input::{shift, Fed, Input, InputFeed};
use crate::encode::h264::{H264Config, H264Encoder};
use crate::encode::opus::OpusEncoder;
use crate::encode::vp8::{Vp8Config, Vp8Encoder};
use crate::encode::{EncodeError, EncodedUnit, VideoCodec};
use crate::media::MediaFrame;
use crate::track::MediaStreamTrack;

impl EncodedTrack {
    /// Starts encoding `track` with `codec` (video: H.264 or VP8; audio: Opus) at the
    /// track's current settings; a size change on the track restarts the encoder at the new
    /// size.
    pub fn start(track: &MediaStreamTrack, codec: CodecConfig) -> Result<Self, EncodeError> {
        Self::start_tier(&Input::new(track), codec, 0, 0)
    }

    /// [`start`](Self::start) as tier `tier` of a ladder: `codec.bitrate()` is the tier's
    /// ceiling (the next higher rung; the top rung for tier 0), `floor` the lowest target
    /// votes may set (0.9 × the tier's own rung; 0 for the lowest tier).
    pub(super) fn start_tier(
        input: &Arc<Input>,
        codec: CodecConfig,
        tier: usize,
        floor: u32,
    ) -> Result<Self, EncodeError> {
        let track = input.track();
        if codec.kind() != track.kind() {
            return Err(EncodeError::Mismatch(format!(
                "{:?} cannot encode a {} track",
                codec,
                track.kind()
            )));
        }
        let settings = track.get_settings();
        let bitrate = codec.bitrate();
        let encoder = match codec.video_codec() {
            Some(video) => Encoder::Video {
                codec: video,
                encoder: None,
                bitrate,
                frame_rate: settings.frame_rate.unwrap_or(30.0),
            },
            None => Encoder::Audio {
                encoder: None,
                bitrate,
            },
        };
        let shared = Shared::new(
            track.kind(),
            codec,
            Source::Track(Arc::clone(input)),
            tier,
            floor,
        );
        let input = InputFeed::new(Arc::clone(input));
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name(format!("{} encoder", codec.name()))
            .spawn(move || run(input, weak, encoder))
            .map_err(EncodeError::Thread)?;
        Ok(EncodedTrack { shared })
    }
}

/// A running video encoder of either codec.
enum VideoEncoder {
    // Boxed: both encoders' state (openh264's, libvpx's configuration) is much larger
    // than Opus's handle.
    H264(Box<H264Encoder>),
    Vp8(Box<Vp8Encoder>),
}

impl VideoEncoder {
    fn new(
        codec: VideoCodec,
        f: &crate::frame::VideoFrame,
        rate: f64,
        bitrate: u32,
    ) -> Result<Self, EncodeError> {
        let (w, h) = (f.width(), f.height());
        Ok(match codec {
            VideoCodec::H264 => {
                let config = H264Config::new(w, h, rate, bitrate);
                VideoEncoder::H264(Box::new(H264Encoder::new(config)?))
            }
            VideoCodec::Vp8 => {
                let config = Vp8Config::new(w, h, rate, bitrate);
                VideoEncoder::Vp8(Box::new(Vp8Encoder::new(config)?))
            }
        })
    }

    fn size(&self) -> (u32, u32) {
        match self {
            VideoEncoder::H264(e) => (e.config().width, e.config().height),
            VideoEncoder::Vp8(e) => (e.config().width, e.config().height),
        }
    }

    fn set_bitrate(&mut self, bitrate: u32) -> Result<(), EncodeError> {
        match self {
            VideoEncoder::H264(e) => e.set_bitrate(bitrate),
            VideoEncoder::Vp8(e) => e.set_bitrate(bitrate),
        }
    }

    fn encode(
        &mut self,
        f: &crate::frame::VideoFrame,
        keyframe: bool,
    ) -> Result<Option<EncodedUnit>, EncodeError> {
        match self {
            VideoEncoder::H264(e) => e.encode(f, keyframe),
            VideoEncoder::Vp8(e) => e.encode(f, keyframe),
        }
    }
}

/// The codec an encoder thread runs, started at the first frame (whose format it takes).
enum Encoder {
    Video {
        codec: VideoCodec,
        encoder: Option<VideoEncoder>,
        bitrate: u32,
        frame_rate: f64,
    },
    Audio {
        encoder: Option<OpusEncoder>,
        bitrate: u32,
    },
}

impl Encoder {
    /// The track was replaced: the codec starts again at the next frame (a keyframe, at
    /// the new track's size), video at the new track's `frame_rate`.
    fn restart(&mut self, new_frame_rate: f64) {
        match self {
            Encoder::Video {
                encoder,
                frame_rate,
                ..
            } => {
                *encoder = None;
                *frame_rate = new_frame_rate;
            }
            Encoder::Audio { encoder, .. } => *encoder = None,
        }
    }

    fn encode(
        &mut self,
        frame: &MediaFrame,
        keyframe: bool,
        bitrate: u32,
    ) -> Result<Vec<EncodedUnit>, EncodeError> {
        match (self, frame) {
            (
                Encoder::Video {
                    codec,
                    encoder,
                    bitrate: current,
                    frame_rate,
                },
                MediaFrame::Video(f),
            ) => {
                let resized = encoder
                    .as_ref()
                    .is_some_and(|e| e.size() != (f.width(), f.height()));
                if encoder.is_none() || resized {
                    *encoder = Some(VideoEncoder::new(*codec, f, *frame_rate, bitrate)?);
                    *current = bitrate;
                }
                let Some(enc) = encoder.as_mut() else {
                    return Ok(Vec::new());
                };
                if bitrate != *current {
                    enc.set_bitrate(bitrate)?;
                    *current = bitrate;
                }
                Ok(enc.encode(f, keyframe)?.into_iter().collect())
            }
            (
                Encoder::Audio {
                    encoder,
                    bitrate: current,
                },
                MediaFrame::Audio(a),
            ) => {
                match encoder {
                    None => {
                        *encoder = Some(OpusEncoder::new(a.sample_rate, a.channels, bitrate)?);
                        *current = bitrate;
                    }
                    // The track was reconfigured (applyConstraints on its channel count or
                    // rate): a new encoder for the new format, as video restarts on a
                    // resize, with the packet timeline carried on.
                    Some(enc) if enc.input_format() != (a.sample_rate, a.channels) => {
                        let (rate, channels) = enc.input_format();
                        enc.reconfigure(a.sample_rate, a.channels)?;
                        tracing::info!(
                            "Opus encoder restarted: the track went from {rate} Hz × {channels} \
                             to {} Hz × {}",
                            a.sample_rate,
                            a.channels
                        );
                    }
                    Some(_) => {}
                }
                let Some(enc) = encoder.as_mut() else {
                    return Ok(Vec::new());
                };
                if bitrate != *current {
                    enc.set_bitrate(bitrate)?;
                    *current = bitrate;
                }
                enc.encode(a)
            }
            _ => Err(EncodeError::Mismatch("frame of the wrong kind".into())),
        }
    }
}

/// The encoder thread: encodes `input` until the track ends or the last handle is dropped,
/// then ends every sink (see [`Shared::end`]).
fn run(input: InputFeed, shared: Weak<Shared>, encoder: Encoder) {
    encode_loop(input, &shared, encoder);
    if let Some(shared) = shared.upgrade() {
        shared.end();
    }
}

fn encode_loop(mut input: InputFeed, shared: &Weak<Shared>, mut encoder: Encoder) {
    // Failures already logged.
    let mut logged: Vec<String> = Vec::new();
    loop {
        let frame = match input.recv_timeout(Duration::from_millis(250)) {
            Fed::Frame { frame, switched } => {
                if let Some(frame_rate) = switched {
                    encoder.restart(frame_rate);
                }
                frame
            }
            Fed::Idle => {
                if shared.strong_count() == 0 {
                    break;
                }
                continue;
            }
            Fed::Ended => break, // the track ended, unreplaced
        };
        let Some(shared) = shared.upgrade() else {
            break;
        };
        let c = &shared.counters;
        c.frames_in.fetch_add(1, Ordering::Relaxed);
        // Where this track's timestamps land (fixed at its first frame, encoded or not).
        let Some(offset) = input.offset(frame.timestamp(), Instant::now()) else {
            continue;
        };
        if shared.fanout.prune() == 0 {
            continue;
        }
        let force = shared.keyframe_due(Instant::now());
        if force {
            c.keyframes_forced.fetch_add(1, Ordering::Relaxed);
        }
        let bitrate = shared.target_bitrate();
        let units = match encoder.encode(&frame, force, bitrate) {
            Ok(u) => u,
            Err(e) => {
                // Once per distinct failure: a track the encoder cannot take fails on
                // every block (100 a second for audio).
                let message = e.to_string();
                if !logged.contains(&message) {
                    tracing::warn!("{} encoder: {message} (not repeated)", shared.codec.name());
                    if logged.len() < 8 {
                        logged.push(message);
                    }
                }
                continue;
            }
        };
        c.bitrate.store(u64::from(bitrate), Ordering::Relaxed);
        let now = Instant::now();
        for mut unit in units {
            unit.timestamp = shift(unit.timestamp, offset);
            input.placed(unit.timestamp, unit.duration, now);
            shared.fan_out(unit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::pattern::read_strip;
    use crate::devices::{MediaDevices, PermissionPolicy};
    use crate::encode::h264::H264Decoder;
    use crate::encode::pipeline::testing::camera;
    use crate::encode::pipeline::TrackEncoders;

    #[test]
    fn encodes_once_for_many_sinks_each_starting_on_a_keyframe() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let track = camera(&devices, r#"{"video": {"width": 640, "height": 480}}"#);
        let encoded = EncodedTrack::start(&track, CodecConfig::H264 { bitrate: 300_000 }).unwrap();
        let sinks: Vec<_> = (0..5).map(|_| encoded.subscribe(64)).collect();
        let firsts: Vec<EncodedUnit> = sinks
            .iter()
            .map(|sink| sink.recv_timeout(Duration::from_secs(2)).unwrap().unwrap())
            .collect();
        assert!(
            firsts.iter().all(|u| u.keyframe),
            "a sink starts on a keyframe"
        );
        std::thread::sleep(Duration::from_millis(1000));
        let stats = encoded.stats();
        assert!(
            stats.frames_encoded >= 28 && stats.frames_encoded <= 40,
            "encoded once: {stats:?}"
        );
        // Every sink decodes the same frames.
        for (sink, first) in sinks.iter().zip(firsts) {
            let mut dec = H264Decoder::new().unwrap();
            let mut last = None;
            let rest =
                std::iter::from_fn(|| sink.recv_timeout(Duration::from_millis(10)).ok().flatten());
            for unit in std::iter::once(first).chain(rest) {
                if let Some(frame) = dec.decode(&unit.data).unwrap() {
                    let n = read_strip(&frame).unwrap().frame_number;
                    if let Some(prev) = last {
                        assert_eq!(n, prev + 1);
                    }
                    last = Some(n);
                }
            }
            assert!(last.is_some());
        }
        // A late sink gets a keyframe at once, not at the next periodic one.
        let late = encoded.subscribe(64);
        let start = Instant::now();
        let first = late.recv_timeout(Duration::from_secs(1)).unwrap().unwrap();
        assert!(first.keyframe);
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn keyframe_requests_are_prompt_and_rate_limited() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let track = camera(&devices, r#"{"video": {"width": 320, "height": 240}}"#);
        let encoded = EncodedTrack::start(&track, CodecConfig::H264 { bitrate: 300_000 }).unwrap();
        let sink = encoded.subscribe(256);
        assert!(
            sink.recv_timeout(Duration::from_secs(2))
                .unwrap()
                .unwrap()
                .keyframe
        );
        std::thread::sleep(Duration::from_millis(300));
        while let Ok(Some(_)) = sink.recv_timeout(Duration::ZERO) {}
        let asked = Instant::now();
        encoded.request_keyframe();
        let key = loop {
            let u = sink.recv_timeout(Duration::from_secs(1)).unwrap().unwrap();
            if u.keyframe {
                break Instant::now();
            }
        };
        assert!(
            key - asked < Duration::from_millis(100),
            "{:?}",
            key - asked
        );
        // A burst of requests: at most one keyframe per 200 ms.
        let before = encoded.stats().keyframes;
        for _ in 0..30 {
            encoded.request_keyframe();
            std::thread::sleep(Duration::from_millis(20));
        }
        let forced = encoded.stats().keyframes - before;
        assert!(
            (2..=4).contains(&forced),
            "{forced} keyframes in 600 ms of requests"
        );
    }

    #[test]
    fn a_44100_hz_microphone_is_sent_as_opus_at_its_pitch() {
        let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
        std::fs::write(
            file.path(),
            r#"{"devices": [{"kind": "audioinput", "deviceId": "mic", "label": "44.1 kHz",
                "source": "tone", "modes": [{"sampleRate": 44100, "channelCount": 1,
                "sampleSize": 16, "latency": 0.01}]}]}"#,
        )
        .unwrap();
        let devices =
            MediaDevices::from_devices_file(file.path(), PermissionPolicy::granted()).unwrap();
        let stream = devices.get_user_media_json(r#"{"audio": true}"#).unwrap();
        let mic = &stream.get_audio_tracks()[0];
        assert_eq!(mic.get_settings().sample_rate, Some(44_100));
        let set = TrackEncoders::new(mic, 0, None);
        let opus = set.encoder(None).unwrap();
        let sink = opus.subscribe(256);
        let mut dec = crate::encode::opus::OpusDecoder::new(48_000, 1).unwrap();
        let mut samples = Vec::new();
        for _ in 0..75 {
            let unit = sink
                .recv_timeout(Duration::from_secs(2))
                .unwrap()
                .expect("Opus packets from a 44.1 kHz track");
            samples.extend(dec.decode(&unit.data, unit.timestamp).unwrap().to_i16());
        }
        let hz = crate::devices::tone::frequency(&samples[9600..], 48_000);
        assert!((436.0..=444.0).contains(&hz), "{hz} Hz");
    }

    #[test]
    fn audio_keeps_flowing_when_the_track_changes_its_channel_count() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let stream = devices
            .get_user_media_json(r#"{"audio": {"channelCount": 1}}"#)
            .unwrap();
        let tone = &stream.get_audio_tracks()[0];
        assert_eq!(tone.get_settings().channel_count, Some(1));
        let opus = TrackEncoders::new(tone, 0, None).encoder(None).unwrap();
        let sink = opus.subscribe(256);
        let mut timestamps = Vec::new();
        let mut next = || {
            let unit = sink
                .recv_timeout(Duration::from_secs(2))
                .unwrap()
                .expect("Opus packets keep coming");
            timestamps.push(unit.timestamp);
            unit
        };
        for _ in 0..10 {
            next();
        }
        tone.apply_constraints_json(r#"{"channelCount": 2}"#)
            .unwrap();
        assert_eq!(tone.get_settings().channel_count, Some(2));
        let mut dec = crate::encode::opus::OpusDecoder::new(48_000, 2).unwrap();
        let mut left: Vec<i16> = Vec::new();
        let mut stereo_packets = 0;
        for _ in 0..100 {
            let unit = next();
            // The TOC byte's stereo flag: packets of the new encoder.
            if unit.data[0] & 0x04 != 0 {
                stereo_packets += 1;
                let pcm = dec.decode(&unit.data, unit.timestamp).unwrap().to_i16();
                left.extend(pcm.iter().step_by(2).copied());
            }
        }
        assert!(stereo_packets >= 80, "{stereo_packets} stereo packets");
        let hz = crate::devices::tone::frequency(&left[9600..], 48_000);
        assert!((436.0..=444.0).contains(&hz), "{hz} Hz");
        // One timeline across the change: no packet overlaps the one before, none is far
        // behind it.
        for pair in timestamps.windows(2) {
            let step = pair[1].checked_sub(pair[0]).expect("no step back");
            assert!(
                (Duration::from_millis(20)..=Duration::from_millis(40)).contains(&step),
                "{step:?} between packets: {timestamps:?}"
            );
        }
    }

    #[test]
    fn no_sinks_no_encoding_and_audio_works() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let stream = devices
            .get_user_media_json(r#"{"video": true, "audio": true}"#)
            .unwrap();
        let video = EncodedTrack::start(
            &stream.get_video_tracks()[0],
            CodecConfig::H264 { bitrate: 300_000 },
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let s = video.stats();
        assert!(s.frames_in > 3 && s.frames_encoded == 0, "{s:?}");
        let audio = EncodedTrack::start(
            &stream.get_audio_tracks()[0],
            CodecConfig::Opus { bitrate: 32_000 },
        )
        .unwrap();
        let sink = audio.subscribe(64);
        let units: Vec<_> = (0..10)
            .map(|_| sink.recv_timeout(Duration::from_secs(1)).unwrap().unwrap())
            .collect();
        assert!(units
            .iter()
            .all(|u| u.duration == Duration::from_millis(20)));
        assert!(EncodedTrack::start(
            &stream.get_audio_tracks()[0],
            CodecConfig::H264 { bitrate: 1 }
        )
        .is_err());
    }
}
