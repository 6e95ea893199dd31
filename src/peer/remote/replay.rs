//! The receive side of one remote video track run synchronously over a list of RTP
//! packets — depacketize, make the units, gate them by declared size, decode — as the
//! reader task and the decoder thread run it, without tasks, threads or a peer: what the
//! fuzz targets (`fuzz/`) drive with hostile packets.

use std::time::{Duration, Instant};

use super::decode::VideoDecoder;
use super::depacketize::{Depacketizer, UnitMaker};
use super::size_gate::{Admit, SizeGate};
use crate::encode::{EncodeError, PictureLimit, VideoCodec};

/// What became of the packets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Units the depacketizer completed.
    pub units: u64,
    /// Units flagged as after a loss (a keyframe would be asked for).
    pub after_loss: u64,
    /// Units (or NAL units in reassembly) dropped for their size.
    pub oversized: u64,
    /// Units the size gate held back.
    pub refused: u64,
    pub frames_decoded: u64,
    pub decode_errors: u64,
}

/// Feeds `packets` (in the order given, each arriving `spacing` after the previous) to a
/// remote `codec` track's depacketizer, and every unit it completes through the unit
/// maker, the size gate of `limit` and the decoder. Fails only when no decoder can be made.
pub fn replay_video(
    codec: VideoCodec,
    packets: impl IntoIterator<Item = rtc::rtp::Packet>,
    spacing: Duration,
    limit: PictureLimit,
) -> Result<Replayed, EncodeError> {
    let mut decoder = VideoDecoder::new(codec)?;
    let mut depacketizer = Depacketizer::new(Some(codec));
    let mut maker = UnitMaker::new(Some(codec));
    let mut gate = SizeGate::new(limit);
    let mut out = Replayed::default();
    let mut now = Instant::now();
    for packet in packets {
        now += spacing;
        depacketizer.push(packet, now);
        while let Some(payload) = depacketizer.pop() {
            out.units += 1;
            out.after_loss += u64::from(payload.after_loss);
            let _ = maker.unit(&payload, 0);
            if gate.admit(decoder.declared_size(&payload.data)) != Admit::Decode {
                out.refused += 1;
                continue;
            }
            match decoder.decode(&payload.data) {
                Ok(Some(frame)) => {
                    if gate.admit(Some((frame.width(), frame.height()))) == Admit::Decode {
                        out.frames_decoded += 1;
                    } else {
                        out.refused += 1;
                    }
                }
                Ok(None) => {}
                Err(_) => out.decode_errors += 1,
            }
        }
    }
    out.oversized = depacketizer.oversized();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;

    #[test]
    fn the_captured_streams_decode_unit_by_unit() {
        for (name, codec) in [("h264", VideoCodec::H264), ("vp8", VideoCodec::Vp8)] {
            let (packets, stream) = fixtures::load(name);
            let got = replay_video(
                codec,
                packets,
                Duration::from_millis(1),
                PictureLimit::default(),
            )
            .unwrap();
            // Every unit, the last one too: each is complete on its marker packet.
            assert_eq!(got.units, stream.units.len() as u64, "{name}: {got:?}");
            assert_eq!(got.frames_decoded, got.units, "{name}: {got:?}");
            assert_eq!(
                (
                    got.after_loss,
                    got.oversized,
                    got.refused,
                    got.decode_errors
                ),
                (0, 0, 0, 0),
                "{name}"
            );
        }
    }

    #[test]
    fn a_stream_over_the_limit_is_refused_not_decoded() {
        let (packets, _) = fixtures::load("vp8");
        let small = PictureLimit {
            width: 160,
            height: 90,
        };
        let got = replay_video(VideoCodec::Vp8, packets, Duration::from_millis(1), small).unwrap();
        assert!(got.units > 0);
        assert_eq!(got.frames_decoded, 0, "{got:?}");
        assert_eq!(got.refused, got.units, "{got:?}");
    }
}
