//! The largest picture we decode from a peer, and the sizes a unit declares before it is
//! decoded: a VP8 keyframe's header, an H.264 sequence parameter set. Pure: a stream over
//! the limit is refused by reading a few bytes, never by letting the decoder allocate it.

use std::fmt;
use std::str::FromStr;

/// The largest picture decoded from a peer: at most `width × height` pixels, neither side
/// longer than the longer of the two (so a portrait stream of the same size passes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureLimit {
    pub width: u32,
    pub height: u32,
}

impl Default for PictureLimit {
    /// 4096×2304 (4K UHD fits; a keyframe declaring 16383×16383 does not).
    fn default() -> Self {
        PictureLimit {
            width: 4096,
            height: 2304,
        }
    }
}

impl PictureLimit {
    /// Whether a `width × height` picture is within the limit.
    pub fn allows(&self, width: u32, height: u32) -> bool {
        let side = self.width.max(self.height);
        u64::from(width) * u64::from(height) <= u64::from(self.width) * u64::from(self.height)
            && width <= side
            && height <= side
    }
}

impl fmt::Display for PictureLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for PictureLimit {
    type Err = String;

    /// `WxH`, e.g. `1920x1080`; both at least 16.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a picture size: expected WxH, e.g. 1920x1080");
        let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
        let (width, height) = (
            w.trim().parse::<u32>().map_err(|_| bad())?,
            h.trim().parse::<u32>().map_err(|_| bad())?,
        );
        if width < 16 || height < 16 {
            return Err(format!("{s:?}: each side must be at least 16 pixels"));
        }
        Ok(PictureLimit { width, height })
    }
}

/// The size a VP8 keyframe declares in its header (RFC 6386 §9.1: the start code
/// `9d 01 2a`, then 14-bit width and height); `None` for a delta frame or a short header.
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    if frame.first()? & 1 != 0 || frame.get(3..6)? != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([*frame.get(6)?, *frame.get(7)?]) & 0x3fff;
    let h = u16::from_le_bytes([*frame.get(8)?, *frame.get(9)?]) & 0x3fff;
    Some((u32::from(w), u32::from(h)))
}

/// The largest picture size declared by an SPS in an Annex-B access unit (before
/// cropping: an upper bound), if it carries one that can be read.
pub fn h264_declared_size(annex_b: &[u8]) -> Option<(u32, u32)> {
    super::annex_b::nal_units(annex_b)
        .filter_map(|body| (body[0] & 0x1f == 7).then(|| sps_size(body.get(1..)?))?)
        .max_by_key(|&(w, h)| u64::from(w) * u64::from(h))
}

/// Reads exp-Golomb codes from an RBSP (emulation-prevention bytes removed).
struct Bits {
    rbsp: Vec<u8>,
    pos: usize,
}

impl Bits {
    fn new(nal: &[u8]) -> Self {
        let mut rbsp = Vec::with_capacity(nal.len());
        let mut zeros = 0;
        for &b in nal {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            rbsp.push(b);
        }
        Bits { rbsp, pos: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        let byte = self.rbsp.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0, |v, _| Some((v << 1) | self.bit()?))
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some(((1u64 << zeros) - 1 + u64::from(self.bits(zeros)?)).min(u64::from(u32::MAX)) as u32)
    }

    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// The coded size of an SPS (after its NAL header byte), ITU-T H.264 §7.3.2.1.1.
fn sps_size(sps: &[u8]) -> Option<(u32, u32)> {
    let mut r = Bits::new(sps);
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    if [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].contains(&profile) {
        let chroma_format = r.ue()?;
        if chroma_format == 3 {
            r.bit()?; // separate_colour_plane_flag
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            let lists = if chroma_format == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i64, 8i64);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256) % 256;
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = u64::from(r.bit()?);
    let width = width_mbs * 16;
    let height = height_units * 16 * (2 - frame_mbs_only);
    Some((
        width.min(u64::from(u32::MAX)) as u32,
        height.min(u64::from(u32::MAX)) as u32,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_parses_and_allows_either_orientation() {
        let limit = PictureLimit::default();
        assert_eq!(limit.to_string(), "4096x2304");
        assert!(limit.allows(3840, 2160) && limit.allows(2160, 3840) && limit.allows(4096, 2304));
        assert!(
            !limit.allows(16383, 16383) && !limit.allows(4097, 2304) && !limit.allows(8192, 16)
        );
        assert_eq!(
            "1920x1080".parse::<PictureLimit>(),
            Ok(PictureLimit {
                width: 1920,
                height: 1080
            })
        );
        for bad in ["", "1920", "x1080", "1920x", "axb", "8x8", "-1x100"] {
            assert!(bad.parse::<PictureLimit>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_vp8_keyframe_declares_its_size() {
        // Frame tag (keyframe, show), start code, 16383 × 16383 with scaling bits set.
        let huge = [
            0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0xff, 0xff, 0xff, 0xff, 0,
        ];
        assert_eq!(vp8_keyframe_size(&huge), Some((16383, 16383)));
        let vga = [0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
        assert_eq!(vp8_keyframe_size(&vga), Some((640, 480)));
        assert_eq!(
            vp8_keyframe_size(&[0x51, 0, 0, 0x9d, 1, 0x2a, 0, 0, 0, 0]),
            None
        );
        assert_eq!(vp8_keyframe_size(&vga[..8]), None);
        assert_eq!(vp8_keyframe_size(&[0x50, 0, 0, 1, 2, 3, 0, 0, 0, 0]), None);
    }

    #[test]
    fn encoded_keyframes_declare_the_size_they_were_encoded_at() {
        use crate::devices::pattern::render;
        for (w, h) in [(320, 240), (640, 480), (1280, 720)] {
            let mut h264 = crate::encode::h264::H264Encoder::new(
                crate::encode::h264::H264Config::new(w, h, 30.0, 500_000),
            )
            .unwrap();
            let unit = h264
                .encode(&render(w, h, 0, 0), true)
                .unwrap()
                .expect("a unit");
            let (dw, dh) = h264_declared_size(&unit.data).expect("an SPS");
            // The coded size: whole macroblocks (720 → 720, 240 → 240).
            assert_eq!((dw, dh), (w.div_ceil(16) * 16, h.div_ceil(16) * 16));
        }
        assert_eq!(h264_declared_size(&[0, 0, 0, 1, 0x65, 0x88]), None);
    }

    #[test]
    fn a_hostile_sps_declares_a_huge_size() {
        // Baseline SPS: profile 66, level 31, id 0, frame_num 4 bits, poc type 2,
        // 1 ref, then 1023 + 1 macroblocks wide and high, frame_mbs_only.
        let mut bits = String::new();
        bits += "01000010"; // profile_idc 66
        bits += "11100000"; // constraint flags
        bits += "00011111"; // level 31
        bits += "1"; // sps id 0
        bits += "1"; // log2_max_frame_num_minus4 0
        bits += "011"; // poc type 2
        bits += "010"; // max_num_ref_frames 1
        bits += "0"; // gaps
        let ue = |v: u32| {
            let code = v + 1;
            let len = 32 - code.leading_zeros();
            format!("{}{:b}", "0".repeat(len as usize - 1), code)
        };
        bits += &ue(1023); // width in mbs - 1
        bits += &ue(1023); // height in map units - 1
        bits += "1"; // frame_mbs_only
        bits += "1"; // stop bit
        while !bits.len().is_multiple_of(8) {
            bits.push('0');
        }
        let body: Vec<u8> = (0..bits.len() / 8)
            .map(|i| u8::from_str_radix(&bits[i * 8..i * 8 + 8], 2).unwrap())
            .collect();
        let unit = [&[0, 0, 0, 1, 0x67][..], &body].concat();
        assert_eq!(h264_declared_size(&unit), Some((16384, 16384)));
        assert!(!PictureLimit::default().allows(16384, 16384));
    }
}
