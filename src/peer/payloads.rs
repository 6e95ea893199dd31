//! A unit's RTP payloads, cut once and shared by every viewer it is sent to: each viewer
//! only writes its own header (SSRC, sequence number, timestamp) in front of the same
//! payload bytes. H.264 units are cut once (the fragments are reference-counted slices of
//! one buffer); VP8 is cut per viewer, as its payloader numbers pictures per stream, and an
//! Opus packet is its own payload (nothing to cut).
//!
//! webrtc-rs's H.264 payloader keeps state across units in one case: parameter sets (SPS,
//! PPS) not yet followed by a picture are held and sent in front of the next unit's first
//! picture. A unit that leaves such state behind, and the units after it until none is
//! left, are cut by the viewer's own payloader, so every viewer gets the same payloads as
//! with a payloader of its own.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::packetizer::Payloader;

use crate::encode::annex_b::{self, next_start_code};
use crate::sync::lock;

/// Units whose cuts are kept (the newest of every encoder and tier in flight).
const KEPT: usize = 64;

/// One unit's payloads.
struct Cut {
    /// The unit (kept, so its buffer — the key — cannot be freed and reused).
    data: Bytes,
    /// The payload size it was cut at.
    mtu: usize,
    payloads: Arc<[Bytes]>,
    /// The payloader is left holding parameter sets after this unit.
    holds: bool,
}

/// The cuts of recent H.264 units.
pub(super) struct Cuts(Mutex<VecDeque<Cut>>);

/// The cuts every viewer in the process shares.
pub(super) static CUTS: Cuts = Cuts(Mutex::new(VecDeque::new()));

/// The same bytes: the same buffer, offset and length (a kept cut pins the buffer).
fn same(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

/// The payloads of H.264 `data` at `mtu` from a payloader with no held state, and whether
/// it holds parameter sets afterwards.
fn shared_h264(
    cuts: &Cuts,
    data: &Bytes,
    mtu: usize,
) -> Result<(Arc<[Bytes]>, bool), rtc::shared::error::Error> {
    if let Some(cut) = lock(&cuts.0)
        .iter()
        .rev()
        .find(|c| c.mtu == mtu && same(&c.data, data))
    {
        return Ok((Arc::clone(&cut.payloads), cut.holds));
    }
    let payloads: Arc<[Bytes]> = H264Payloader::default().payload(mtu, data)?.into();
    let holds = leaves_parameter_sets(data);
    let mut cuts = lock(&cuts.0);
    if !cuts.iter().any(|c| c.mtu == mtu && same(&c.data, data)) {
        if cuts.len() >= KEPT {
            cuts.pop_front();
        }
        cuts.push_back(Cut {
            data: data.clone(),
            mtu,
            payloads: Arc::clone(&payloads),
            holds,
        });
    }
    Ok((payloads, holds))
}

/// Whether webrtc-rs's H.264 payloader, starting with nothing held, holds an SPS or a PPS
/// after the Annex B unit `data`: it holds each until both precede a picture (any other
/// NAL unit but an access unit delimiter or filler).
fn leaves_parameter_sets(data: &[u8]) -> bool {
    let (mut sps, mut pps) = (false, false);
    for first in nal_first_bytes(data) {
        match first & 0x1f {
            7 => sps = true,
            8 => pps = true,
            9 | 12 => {}
            _ if sps && pps => (sps, pps) = (false, false),
            _ => {}
        }
    }
    sps || pps
}

/// The first byte of each non-empty NAL unit of `data`, split at start codes as
/// webrtc-rs's payloader splits them; without a start code the whole of `data` is one.
fn nal_first_bytes(data: &[u8]) -> Vec<u8> {
    if next_start_code(data, 0).is_none() {
        return data.first().copied().into_iter().collect();
    }
    annex_b::nal_units(data).map(|unit| unit[0]).collect()
}

/// How one sender cuts its units into payloads.
pub(super) struct Payloads {
    /// Where H.264 cuts are shared.
    cuts: &'static Cuts,
    /// The viewer's own payloader (VP8, Opus, and H.264 while state is held).
    own: Box<dyn Payloader>,
    /// H.264: cut once, shared.
    h264: bool,
    /// The own payloader holds state from the last unit: the next is cut by it too.
    own_holds: bool,
    mtu: usize,
}

impl Payloads {
    /// Payloads of at most `mtu` bytes cut by `own`; `h264` shares the cuts in `cuts`.
    pub(super) fn new(
        cuts: &'static Cuts,
        own: Box<dyn Payloader>,
        h264: bool,
        mtu: usize,
    ) -> Self {
        Payloads {
            cuts,
            own,
            h264,
            own_holds: false,
            mtu,
        }
    }

    /// The payloads of the unit `data`, in order.
    pub(super) fn cut(&mut self, data: &Bytes) -> Result<Arc<[Bytes]>, rtc::shared::error::Error> {
        if self.h264 && !self.own_holds {
            let (payloads, holds) = shared_h264(self.cuts, data, self.mtu)?;
            if !holds {
                return Ok(payloads);
            }
        }
        let payloads = self.own.payload(self.mtu, data)?;
        if self.h264 {
            self.own_holds = leaves_parameter_sets(data);
        }
        Ok(payloads.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    /// A cache of this test's own (the process's is shared by tests running at once).
    fn fresh() -> &'static Cuts {
        Box::leak(Box::new(Cuts(Mutex::new(VecDeque::new()))))
    }

    fn annex_b(nals: &[&[u8]]) -> Bytes {
        let mut out = Vec::new();
        for nal in nals {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
        Bytes::from(out)
    }

    fn idr(len: usize) -> Vec<u8> {
        let mut v = vec![0x65];
        v.extend((0..len).map(|i| (i % 251) as u8 | 0x80));
        v
    }

    /// Every unit of `units` cut by `cuts` and by a payloader of its own gives the same
    /// payloads.
    fn same_as_own(units: &[Bytes]) {
        let cuts = fresh();
        let mut own = H264Payloader::default();
        let mut cuts = Payloads::new(cuts, Box::new(H264Payloader::default()), true, 1188);
        for (i, unit) in units.iter().enumerate() {
            let expected = own.payload(1188, unit).expect("own");
            let got = cuts.cut(unit).expect("cut");
            assert_eq!(&got[..], &expected[..], "unit {i}");
        }
    }

    #[test]
    fn shared_cuts_match_a_payloader_of_ones_own() {
        let key = annex_b(&[SPS, PPS, &idr(5000)]);
        let delta = annex_b(&[&[0x41, 0x9a, 0x01, 0x02]]);
        same_as_own(&[key.clone(), delta.clone(), delta.clone(), key]);
        // Parameter sets alone in a unit are held for the next unit's picture.
        let sets = annex_b(&[SPS, PPS]);
        let pic = annex_b(&[&idr(3000)]);
        same_as_own(&[delta.clone(), sets, pic, delta.clone(), delta]);
        // Only an SPS: held until a PPS comes.
        same_as_own(&[annex_b(&[SPS, &idr(100)]), annex_b(&[PPS, &idr(200)])]);
    }

    #[test]
    fn a_unit_is_cut_once_for_every_viewer() {
        let unit = annex_b(&[SPS, PPS, &idr(4000)]);
        let cuts = fresh();
        let mut a = Payloads::new(cuts, Box::new(H264Payloader::default()), true, 1188);
        let mut b = Payloads::new(cuts, Box::new(H264Payloader::default()), true, 1188);
        let first = a.cut(&unit).expect("a");
        let second = b.cut(&unit.clone()).expect("b");
        assert!(Arc::ptr_eq(&first, &second), "one cut shared");
        assert!(first.len() > 3);
        // A copy of the bytes elsewhere is another unit.
        let copy = Bytes::copy_from_slice(&unit);
        assert!(!Arc::ptr_eq(&first, &b.cut(&copy).expect("copy")));
    }

    #[test]
    fn parameter_sets_left_held_are_found() {
        assert!(!leaves_parameter_sets(&annex_b(&[SPS, PPS, &idr(10)])));
        assert!(leaves_parameter_sets(&annex_b(&[SPS, PPS])));
        assert!(leaves_parameter_sets(&annex_b(&[&idr(10), SPS])));
        assert!(leaves_parameter_sets(&annex_b(&[SPS, &idr(10)])));
        assert!(!leaves_parameter_sets(&annex_b(&[&[0x09, 0x10], &idr(10)])));
        assert!(!leaves_parameter_sets(&[0x65, 1, 2, 3]));
        assert!(leaves_parameter_sets(&[0x67, 1, 2, 3]));
    }
}
