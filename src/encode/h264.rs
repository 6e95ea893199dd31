//! H.264 through openh264: a constrained-baseline encoder for WebRTC
//! (`profile-level-id=42e01f`, `packetization-mode=1`, SPS/PPS before every IDR) and the
//! matching decoder, both on our [`VideoFrame`].

use std::time::Duration;

use bytes::Bytes;
use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level,
    Profile, RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::{YUVSlices, YUVSource};
use openh264::OpenH264API;

use super::{EncodeError, EncodedUnit};
use crate::frame::{i420_len, VideoFrame};

/// The `profile-level-id` we produce: constrained baseline, level 3.1.
pub const PROFILE_LEVEL_ID: &str = "42e01f";

/// Settings of an H.264 encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct H264Config {
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    /// Target bitrate in bits per second.
    pub bitrate: u32,
    /// A periodic keyframe every this many seconds (besides those requested).
    pub keyframe_interval: Duration,
}

impl H264Config {
    pub fn new(width: u32, height: u32, frame_rate: f64, bitrate: u32) -> Self {
        H264Config {
            width,
            height,
            frame_rate,
            bitrate,
            keyframe_interval: Duration::from_secs(5),
        }
    }
}

/// Encodes I420 frames to H.264 Annex-B access units, one per frame.
pub struct H264Encoder {
    encoder: Encoder,
    config: H264Config,
    /// openh264 initialises on the first frame; options can be set only after that.
    started: bool,
    /// Even-sized copy of odd-sized frames (H.264 macroblocks want even dimensions).
    padded: Vec<u8>,
}

fn even(v: u32) -> u32 {
    v + (v & 1)
}

impl H264Encoder {
    pub fn new(config: H264Config) -> Result<Self, EncodeError> {
        Ok(H264Encoder {
            encoder: Self::build(&config)?,
            config,
            started: false,
            padded: Vec::new(),
        })
    }

    fn build(config: &H264Config) -> Result<Encoder, EncodeError> {
        let period = (config.frame_rate * config.keyframe_interval.as_secs_f64()).round() as u32;
        let cfg = EncoderConfig::new()
            .bitrate(BitRate::from_bps(config.bitrate))
            .max_frame_rate(FrameRate::from_hz(config.frame_rate as f32))
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            // No frame skipping (GStreamer's openh264enc default too): with it, openh264
            // dropped 1.5–4 of 30 frames a second of a detailed 720p picture at 1.3 Mbit/s
            // to hold its buffer (`usermedia bench fanout`: 26–28.5 fps at the viewers);
            // without it the quantizer rises instead and every frame is sent.
            .skip_frames(false)
            .profile(Profile::Baseline)
            .level(Level::Level_3_1)
            .complexity(Complexity::Low)
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .intra_frame_period(IntraFramePeriod::from_num_frames(period.max(1)))
            .num_threads(1);
        Encoder::with_api_config(OpenH264API::from_source(), cfg).map_err(|source| {
            EncodeError::OpenH264 {
                what: "encoder",
                source,
            }
        })
    }

    pub fn config(&self) -> &H264Config {
        &self.config
    }

    /// Changes the target bitrate of the running encoder (no keyframe needed).
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), EncodeError> {
        if !self.started {
            self.config.bitrate = bitrate;
            self.encoder = Self::build(&self.config)?;
            return Ok(());
        }
        // openh264 caps the target at the max bitrate fixed at start: raise the caps
        // before the target, and lower them after it.
        use openh264_sys2::{
            ENCODER_OPTION_BITRATE as TARGET, ENCODER_OPTION_MAX_BITRATE as MAX,
            SPATIAL_LAYER_0 as LAYER0, SPATIAL_LAYER_ALL as ALL,
        };
        let steps: [(i32, i32); 3] = if bitrate > self.config.bitrate {
            [(MAX, ALL), (MAX, LAYER0), (TARGET, ALL)]
        } else {
            [(TARGET, ALL), (MAX, LAYER0), (MAX, ALL)]
        };
        for (option, layer) in steps {
            self.set_option(option, layer, bitrate)?;
        }
        self.config.bitrate = bitrate;
        Ok(())
    }

    fn set_option(&mut self, option: i32, layer: i32, bitrate: u32) -> Result<(), EncodeError> {
        let mut info = openh264_sys2::TagBitrateInfo {
            iLayer: layer,
            iBitrate: bitrate.min(i32::MAX as u32) as i32,
        };
        // SAFETY: the encoder is initialised (a frame has been encoded) and `info` is a
        // valid SBitrateInfo that outlives the call: what the bitrate options read.
        let rc = unsafe {
            self.encoder.raw_api().set_option(
                option,
                (&mut info as *mut openh264_sys2::TagBitrateInfo).cast(),
            )
        };
        if rc != 0 {
            return Err(EncodeError::OpenH264Option {
                bitrate,
                option,
                layer,
                status: rc,
            });
        }
        Ok(())
    }

    /// Encodes one frame; `keyframe` forces an IDR (with SPS and PPS). Returns `None` when
    /// the encoder produced nothing for this frame.
    pub fn encode(
        &mut self,
        frame: &VideoFrame,
        keyframe: bool,
    ) -> Result<Option<EncodedUnit>, EncodeError> {
        if (frame.width(), frame.height()) != (self.config.width, self.config.height) {
            return Err(EncodeError::Mismatch(format!(
                "frame is {}x{}, the encoder {}x{}",
                frame.width(),
                frame.height(),
                self.config.width,
                self.config.height
            )));
        }
        if keyframe {
            self.encoder.force_intra_frame();
        }
        self.started = true;
        let (w, h) = (even(frame.width()), even(frame.height()));
        let (bitstream_type, data) = if (w, h) == (frame.width(), frame.height()) {
            let src = I420Source(frame);
            let bs = self
                .encoder
                .encode(&src)
                .map_err(|source| EncodeError::OpenH264 {
                    what: "encode",
                    source,
                })?;
            (bs.frame_type(), bs.to_vec())
        } else {
            pad_to_even(frame, &mut self.padded);
            let (cw, ch) = (w as usize / 2, h as usize / 2);
            let y_len = w as usize * h as usize;
            let (y, rest) = self.padded.split_at(y_len);
            let (u, v) = rest.split_at(cw * ch);
            let src = YUVSlices::new((y, u, v), (w as usize, h as usize), (w as usize, cw, cw));
            let bs = self
                .encoder
                .encode(&src)
                .map_err(|source| EncodeError::OpenH264 {
                    what: "encode",
                    source,
                })?;
            (bs.frame_type(), bs.to_vec())
        };
        if data.is_empty() || matches!(bitstream_type, FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        Ok(Some(EncodedUnit {
            data: Bytes::from(data),
            keyframe: matches!(bitstream_type, FrameType::IDR | FrameType::I),
            timestamp: frame.timestamp,
            duration: Duration::from_secs_f64(1.0 / self.config.frame_rate.max(1.0)),
            capture_time_ms: frame.capture_time_ms,
        }))
    }
}

/// Copies an odd-sized frame into an even-sized buffer, repeating the last column/row.
fn pad_to_even(frame: &VideoFrame, out: &mut Vec<u8>) {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (ew, eh) = (even(w as u32) as usize, even(h as u32) as usize);
    out.clear();
    out.resize(ew * eh + 2 * (ew / 2) * (eh / 2), 0);
    let (y_out, rest) = out.split_at_mut(ew * eh);
    let (u_out, v_out) = rest.split_at_mut((ew / 2) * (eh / 2));
    let copy = |src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize| {
        for row in 0..dh {
            let s = &src[row.min(sh - 1) * sw..][..sw];
            let d = &mut dst[row * dw..][..dw];
            d[..sw.min(dw)].copy_from_slice(&s[..sw.min(dw)]);
            if dw > sw {
                d[sw..].fill(s[sw - 1]);
            }
        }
    };
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    copy(frame.y(), w, h, y_out, ew, eh);
    copy(frame.u(), cw, ch, u_out, ew / 2, eh / 2);
    copy(frame.v(), cw, ch, v_out, ew / 2, eh / 2);
}

/// Our I420 frame as openh264's input (even dimensions, tightly packed planes).
struct I420Source<'a>(&'a VideoFrame);

impl YUVSource for I420Source<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width() as usize, self.0.height() as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let w = self.0.width() as usize;
        (w, w / 2, w / 2)
    }

    fn y(&self) -> &[u8] {
        self.0.y()
    }

    fn u(&self) -> &[u8] {
        self.0.u()
    }

    fn v(&self) -> &[u8] {
        self.0.v()
    }
}

/// Decodes H.264 Annex-B access units to I420 frames.
pub struct H264Decoder {
    decoder: Decoder,
}

impl H264Decoder {
    pub fn new() -> Result<Self, EncodeError> {
        let decoder = Decoder::new().map_err(|source| EncodeError::OpenH264 {
            what: "decoder",
            source,
        })?;
        Ok(H264Decoder { decoder })
    }

    /// Decodes one access unit. `Ok(None)` when it completes no picture (e.g. parameter
    /// sets only); `Err` for a corrupt unit (the decoder recovers at the next keyframe).
    pub fn decode(&mut self, annex_b: &[u8]) -> Result<Option<VideoFrame>, EncodeError> {
        let Some(yuv) = self
            .decoder
            .decode(annex_b)
            .map_err(|source| EncodeError::OpenH264 {
                what: "decode",
                source,
            })?
        else {
            return Ok(None);
        };
        let (w, h) = yuv.dimensions();
        let (sy, su, sv) = yuv.strides();
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut data = Vec::with_capacity(i420_len(w as u32, h as u32));
        for (plane, stride, pw, ph) in [
            (yuv.y(), sy, w, h),
            (yuv.u(), su, cw, ch),
            (yuv.v(), sv, cw, ch),
        ] {
            for row in 0..ph {
                let start = row * stride;
                match plane.get(start..start + pw) {
                    Some(r) => data.extend_from_slice(r),
                    None => {
                        return Err(EncodeError::Codec(
                            "decoded plane shorter than its size".into(),
                        ))
                    }
                }
            }
        }
        VideoFrame::from_i420(w as u32, h as u32, data)
            .map(Some)
            .map_err(EncodeError::from)
    }
}

/// Whether an Annex-B access unit holds an IDR slice (NAL type 5): a keyframe. Walks the
/// units without collecting them (the decoder asks this of every access unit).
pub fn is_keyframe(annex_b: &[u8]) -> bool {
    super::annex_b::nal_types(annex_b).any(|t| t == 5)
}

/// The NAL unit types in an Annex-B access unit, in order (for tests and diagnostics).
pub fn nal_types(annex_b: &[u8]) -> Vec<u8> {
    super::annex_b::nal_types(annex_b).collect()
}

#[cfg(test)]
mod tests {
    // An SSE2 routine of openh264's x86 assembly (codec/common/x86/satd_sad.asm); the C
    // build has no such symbol, so a build that silently dropped the assembly fails to
    // link this test (see build.rs).
    #[cfg(target_arch = "x86_64")]
    extern "C" {
        /// The sum of absolute differences of two 16×16 blocks.
        fn WelsSampleSad16x16_sse2(a: *const u8, a_stride: i32, b: *const u8, b_stride: i32)
            -> i32;
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn openh264_was_built_with_its_assembly() {
        // The routine loads with movdqa: 16-byte aligned blocks.
        #[repr(C, align(16))]
        struct Block([u8; 256]);
        let a = Block([10; 256]);
        let mut b = Block([10; 256]);
        b.0[0] = 13;
        b.0[255] = 2;
        // SAFETY: two aligned 16×16 blocks with a stride of 16, alive for the call; the
        // routine only reads them (SSE2 is part of x86-64).
        let sad = unsafe { WelsSampleSad16x16_sse2(a.0.as_ptr(), 16, b.0.as_ptr(), 16) };
        assert_eq!(sad, 3 + 8);
    }

    use super::*;
    use crate::devices::pattern::{read_strip, render};
    use crate::encode::test_frames::noisy_pattern;

    #[test]
    fn keyframes_carry_sps_and_pps_and_can_be_forced() {
        let mut enc = H264Encoder::new(H264Config::new(320, 240, 30.0, 500_000)).unwrap();
        let first = enc.encode(&render(320, 240, 0, 0), false).unwrap().unwrap();
        assert!(first.keyframe, "the first frame is an IDR");
        let types = nal_types(&first.data);
        assert_eq!(&types[..2], &[7, 8], "SPS, PPS first: {types:?}");
        assert!(types.contains(&5));
        assert!(is_keyframe(&first.data));
        let delta = enc.encode(&render(320, 240, 1, 0), false).unwrap().unwrap();
        assert!(!delta.keyframe);
        assert!(!nal_types(&delta.data).contains(&7));
        assert!(!is_keyframe(&delta.data));
        let forced = enc.encode(&render(320, 240, 2, 0), true).unwrap().unwrap();
        assert!(forced.keyframe);
        assert!(nal_types(&forced.data).starts_with(&[7, 8]));
        // SPS: profile_idc 66 with constraint_set1 (Constrained Baseline, what
        // profile-level-id 42e01f negotiates), level 3.1.
        let sps = openh264::nal_units(&forced.data).next().unwrap();
        let at = sps.iter().position(|&b| b == 1).unwrap() + 1;
        assert_eq!(sps[at + 1], 0x42);
        assert_eq!(sps[at + 2] & 0x40, 0x40, "constraint_set1 flag");
        assert_eq!(sps[at + 3], 31, "level 3.1");
        assert!(
            enc.encode(&render(640, 480, 3, 0), false).is_err(),
            "size mismatch"
        );
    }

    #[test]
    fn the_strip_survives_300_kbits_at_640x480() {
        let mut enc = H264Encoder::new(H264Config::new(640, 480, 30.0, 300_000)).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let mut decoded = 0;
        for n in 0..90u32 {
            let unit = enc
                .encode(
                    &render(640, 480, n, 1_700_000_000_000 + n as u64 * 33),
                    false,
                )
                .unwrap()
                .unwrap();
            let frame = dec
                .decode(&unit.data)
                .unwrap()
                .expect("one picture per unit");
            assert_eq!((frame.width(), frame.height()), (640, 480));
            let strip = read_strip(&frame).unwrap_or_else(|| panic!("frame {n}: strip unreadable"));
            assert_eq!(strip.frame_number, n);
            assert_eq!(
                strip.capture_time_ms,
                (1_700_000_000_000u64 + n as u64 * 33) as u32
            );
            decoded += 1;
        }
        assert_eq!(decoded, 90);
    }

    #[test]
    fn bitrate_changes_take_effect() {
        // Before the first frame (rebuilds) and while running (SetOption). The pattern with
        // noise, not pure noise: at 100 kbit/s that makes openh264 skip every frame.
        let size = |before: u32, after: u32| {
            let mut enc = H264Encoder::new(H264Config::new(640, 480, 30.0, 1_000_000)).unwrap();
            enc.set_bitrate(before).unwrap();
            let mut bytes = 0;
            for n in 0..120u32 {
                if n == 30 {
                    enc.set_bitrate(after).unwrap();
                }
                let unit = enc.encode(&noisy_pattern(n), false).unwrap();
                if n >= 60 {
                    bytes += unit.map_or(0, |u| u.data.len());
                }
            }
            bytes
        };
        let (low, high) = (size(2_000_000, 100_000), size(100_000, 2_000_000));
        // Two seconds measured: 100 kbit/s is ~25 kB.
        assert!(
            (10_000..60_000).contains(&low),
            "100 kbit/s gave {low} bytes"
        );
        assert!(
            high > 4 * low,
            "2 Mbit/s gave {high} bytes, 100 kbit/s {low}"
        );
    }

    #[test]
    fn odd_sizes_are_padded() {
        let mut enc = H264Encoder::new(H264Config::new(321, 181, 30.0, 300_000)).unwrap();
        let unit = enc.encode(&render(321, 181, 0, 0), false).unwrap().unwrap();
        let frame = H264Decoder::new()
            .unwrap()
            .decode(&unit.data)
            .unwrap()
            .unwrap();
        assert_eq!((frame.width(), frame.height()), (322, 182));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut dec = H264Decoder::new().unwrap();
        let _ = dec.decode(&[0, 0, 0, 1, 0x65, 0xff, 0xff, 0x00, 0x12]);
        let _ = dec.decode(b"not h264 at all");
    }
}
