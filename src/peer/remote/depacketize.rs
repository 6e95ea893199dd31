//! Pure RTP depacketizing: packets of one remote track in, encoded units out — H.264
//! access units and VP8 frames reassembled by the [assembler](super::assemble) (handed on
//! on the marker bit), Opus packets as they come — with the loss that breaks a video reference chain flagged, timestamps put
//! on the track's timeline, and Opus durations and channel counts read from the TOC byte.
//!
//! No tasks, threads or clocks: the caller passes the time (`now`) and the wall-clock
//! capture time, so the tests feed captured packets synchronously.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::codec::vp8::Vp8Packet;

use super::assemble::Assembler;
use super::sequence::{SequenceGuard, Verdict};
use crate::constraints::MediaKind;
use crate::encode::{annex_b, EncodedUnit, VideoCodec};

/// RTP clock rate of video.
const VIDEO_CLOCK: f64 = 90_000.0;
/// RTP clock rate of Opus (always 48 kHz in WebRTC).
const OPUS_CLOCK: f64 = 48_000.0;
/// How long a frame with a missing packet is waited for before it is given up (in RTP time).
const MAX_REORDER_DELAY: Duration = Duration::from_millis(500);
/// Packets the assembler holds at most while a frame is incomplete.
const MAX_LATE_PACKETS: u16 = 256;
/// The largest access unit or frame taken from a peer (and the largest H.264 NAL unit
/// being reassembled from FU-A fragments); larger ones are dropped, and the next unit
/// is flagged as after a loss.
pub(crate) const MAX_UNIT_BYTES: usize = 4 << 20;

/// What a remote track carries, from its negotiated MIME type (any case): its kind and,
/// for video, the codec that decides the depacketizer and the decoder. `None` for a codec
/// we cannot decode (only H.264, VP8 and Opus are).
pub(super) fn media_of(mime_type: &str) -> Option<(MediaKind, Option<VideoCodec>)> {
    let mime = mime_type.to_ascii_lowercase();
    match VideoCodec::from_mime_type(&mime) {
        Some(codec) => Some((MediaKind::Video, Some(codec))),
        None if mime == "audio/opus" => Some((MediaKind::Audio, None)),
        None => None,
    }
}

/// One depacketized payload: a whole video frame or an Opus packet.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Depacketized {
    pub data: Bytes,
    /// The RTP timestamp of its packets.
    pub rtp_timestamp: u32,
    /// Video: until the next frame's timestamp when that ended it, else the interval
    /// since the frame before (see [`super::assemble::Frame`]); Opus: from the TOC byte.
    pub duration: Duration,
    /// Packets were lost for good (not padding) before it: the video reference chain is
    /// broken, and VP8's decoder would decode on from the wrong reference without an
    /// error, so the receiver asks for a keyframe.
    pub after_loss: bool,
}

/// Reassembles the payloads of one track from its RTP packets, none larger than its cap.
pub(super) struct Depacketizer {
    builder: Builder,
    /// The H.264 depacketizer's count, shared with it (the assembler owns it).
    fragments: Arc<FragmentLoss>,
    max_unit: usize,
    /// Units dropped for their size so far.
    oversized: u64,
    /// A unit was dropped: the next one is after a loss.
    broken: bool,
    codec: Option<VideoCodec>,
    /// Which video packets reach the assembler.
    sequence: SequenceGuard,
}

/// The reassembly of one codec.
enum Builder {
    H264(Box<Assembler<BoundedH264>>),
    Vp8(Box<Assembler<Vp8Packet>>),
    /// Opus: one packet is one payload, handed on in arrival order.
    Opus(VecDeque<Depacketized>),
}

impl Builder {
    fn new(codec: Option<VideoCodec>, max_unit: usize, fragments: &Arc<FragmentLoss>) -> Self {
        let delay = MAX_REORDER_DELAY;
        match codec {
            Some(VideoCodec::H264) => Builder::H264(Box::new(Assembler::new(
                BoundedH264::new(max_unit, Arc::clone(fragments)),
                90_000,
                MAX_LATE_PACKETS,
                delay,
            ))),
            Some(VideoCodec::Vp8) => Builder::Vp8(Box::new(Assembler::new(
                Vp8Packet::default(),
                90_000,
                MAX_LATE_PACKETS,
                delay,
            ))),
            None => Builder::Opus(VecDeque::new()),
        }
    }
}

impl Depacketizer {
    /// A depacketizer for `codec`'s frames, or Opus packets for `None`.
    pub(super) fn new(codec: Option<VideoCodec>) -> Self {
        Depacketizer::with_max_unit(codec, MAX_UNIT_BYTES)
    }

    /// A depacketizer whose units are at most `max_unit` bytes.
    pub(super) fn with_max_unit(codec: Option<VideoCodec>, max_unit: usize) -> Self {
        let fragments = Arc::new(FragmentLoss::default());
        Depacketizer {
            builder: Builder::new(codec, max_unit, &fragments),
            codec,
            fragments,
            max_unit,
            oversized: 0,
            broken: false,
            sequence: SequenceGuard::new(MAX_LATE_PACKETS),
        }
    }

    /// Units (or H.264 NAL units being reassembled) dropped so far for being over the cap.
    pub(super) fn oversized(&self) -> u64 {
        self.oversized + self.fragments.discarded.load(Ordering::Relaxed)
    }

    /// Takes a packet, in any order; `now` is the time it arrived.
    pub(super) fn push(&mut self, packet: rtc::rtp::Packet, now: Instant) {
        if self.codec.is_some() {
            match self.sequence.admit(packet.header.sequence_number, now) {
                Verdict::Take => {}
                Verdict::Drop => {
                    tracing::debug!(
                        "remote RTP: sequence number {} is far from the stream's: dropped",
                        packet.header.sequence_number
                    );
                    return;
                }
                Verdict::Restart => {
                    // What the old builder held is lost; the next unit says so.
                    self.builder = Builder::new(self.codec, self.max_unit, &self.fragments);
                    self.broken = true;
                }
            }
        }
        match &mut self.builder {
            Builder::H264(b) => b.push(packet),
            Builder::Vp8(b) => b.push(packet),
            Builder::Opus(ready) => ready.push_back(Depacketized {
                duration: opus_duration(&packet.payload).unwrap_or(Duration::from_millis(20)),
                rtp_timestamp: packet.header.timestamp,
                data: packet.payload,
                after_loss: false,
            }),
        }
    }

    /// The next complete payload, if any. A video frame is complete once its packets up
    /// to the one with the marker bit are all in (or, from a sender that sets no marker,
    /// once a newer packet follows it); with packets missing it is waited for until the
    /// newer ones are [`MAX_REORDER_DELAY`] ahead of it (it is then given up).
    /// A unit over the cap is dropped (counted), and the next one is flagged as after a
    /// loss.
    pub(super) fn pop(&mut self) -> Option<Depacketized> {
        loop {
            let sample = match &mut self.builder {
                Builder::H264(b) => b.pop(),
                Builder::Vp8(b) => b.pop(),
                Builder::Opus(ready) => return ready.pop_front(),
            }?;
            let fragments_lost = self.fragments.broken.swap(false, Ordering::Relaxed);
            if sample.data.is_empty() {
                // Nothing left of it (fragments discarded): the next unit carries the loss.
                self.broken |= fragments_lost;
                continue;
            }
            if sample.data.len() > self.max_unit {
                self.oversized += 1;
                self.broken = true;
                tracing::debug!(
                    "a remote unit of {} bytes is over the cap of {} bytes: dropped",
                    sample.data.len(),
                    self.max_unit
                );
                continue;
            }
            let after_loss =
                sample.after_loss || std::mem::take(&mut self.broken) || fragments_lost;
            return Some(Depacketized {
                after_loss,
                rtp_timestamp: sample.rtp_timestamp,
                duration: sample.duration,
                data: sample.data,
            });
        }
    }
}

/// rtc's H.264 depacketizer with a bounded FU-A reassembly: rtc's `H264Packet` appends
/// fragments until an end bit arrives (an FU-A that never ends grows without bound) and
/// carries a partial NAL unit into the next one. Here a new start discards a stale
/// partial unit, a fragment without a start is dropped, and a NAL unit growing over the
/// cap is discarded.
pub(super) struct BoundedH264 {
    inner: H264Packet,
    max_unit: usize,
    /// Bytes of the FU-A being reassembled, if one is.
    partial: Option<usize>,
    loss: Arc<FragmentLoss>,
}

/// Partial NAL units [`BoundedH264`] discarded.
#[derive(Default)]
struct FragmentLoss {
    /// So far.
    discarded: AtomicU64,
    /// Since the last unit was taken.
    broken: AtomicBool,
}

/// FU-A (RFC 6184 §5.8): the NAL unit type of a fragment.
const FU_A: u8 = 28;
/// STAP-A (RFC 6184 §5.7.1): the NAL unit type of an aggregation packet.
const STAP_A: u8 = 24;

/// Whether a STAP-A payload's size fields each fit in it. webrtc-rs reads a size field's
/// second byte without checking it is there (found by the `rtp_h264` fuzz target: a panic,
/// index out of bounds, on a STAP-A with one byte left after its last unit), so such a
/// packet must not reach it.
fn stap_a_well_formed(b: &[u8]) -> bool {
    let mut at = 1;
    while at < b.len() {
        let Some(size) = b.get(at..at + 2) else {
            return false;
        };
        at += 2 + usize::from(u16::from_be_bytes([size[0], size[1]]));
        if at > b.len() {
            return false;
        }
    }
    true
}

impl BoundedH264 {
    fn new(max_unit: usize, loss: Arc<FragmentLoss>) -> Self {
        BoundedH264 {
            inner: H264Packet::default(),
            max_unit,
            partial: None,
            loss,
        }
    }

    fn discard(&mut self) {
        self.inner = H264Packet::default();
        self.partial = None;
        self.loss.discarded.fetch_add(1, Ordering::Relaxed);
        self.loss.broken.store(true, Ordering::Relaxed);
    }
}

impl rtc::rtp::packetizer::Depacketizer for BoundedH264 {
    fn depacketize(&mut self, b: &Bytes) -> rtc::shared::error::Result<Bytes> {
        if b.first().is_some_and(|h| h & 0x1f == STAP_A) && !stap_a_well_formed(b) {
            return Err(rtc::shared::error::Error::ErrShortPacket);
        }
        if b.len() < 2 || b[0] & 0x1f != FU_A {
            return self.inner.depacketize(b);
        }
        let (start, end) = (b[1] & 0x80 != 0, b[1] & 0x40 != 0);
        if start && self.partial.is_some() {
            // The stale unit's end never came.
            self.discard();
        }
        let so_far = match (start, self.partial) {
            (true, _) => 0,
            (false, Some(n)) => n,
            // A middle or end without its start: nothing to append it to.
            (false, None) => return Ok(Bytes::new()),
        };
        let total = so_far + b.len() - 2;
        if total > self.max_unit {
            self.discard();
            return Ok(Bytes::new());
        }
        self.partial = if end { None } else { Some(total) };
        self.inner.depacketize(b)
    }

    fn is_partition_head(&self, payload: &Bytes) -> bool {
        self.inner.is_partition_head(payload)
    }

    fn is_partition_tail(&self, marker: bool, payload: &Bytes) -> bool {
        self.inner.is_partition_tail(marker, payload)
    }
}

/// Turns depacketized payloads into [`EncodedUnit`]s: timestamps on the track's timeline,
/// keyframe flags, and (H.264) the last SPS/PPS seen put before an IDR that lacks them,
/// so a forwarded IDR always decodes on its own (a viewer joining mid-stream starts there).
pub(super) struct UnitMaker {
    codec: Option<VideoCodec>,
    /// The first RTP timestamp and the ticks since it (unwrapped).
    origin: Option<(u32, i64)>,
    /// The last SPS and PPS NAL units, with their start codes.
    parameter_sets: Option<(Bytes, Bytes)>,
}

impl UnitMaker {
    pub(super) fn new(codec: Option<VideoCodec>) -> Self {
        UnitMaker {
            codec,
            origin: None,
            parameter_sets: None,
        }
    }

    /// The unit of a depacketized payload, stamped with `capture_time_ms` (wall clock);
    /// `None` for an empty payload.
    pub(super) fn unit(
        &mut self,
        payload: &Depacketized,
        capture_time_ms: u64,
    ) -> Option<EncodedUnit> {
        let data = payload.data.clone();
        match self.codec {
            Some(_) => self.video(
                data,
                payload.rtp_timestamp,
                payload.duration,
                capture_time_ms,
            ),
            None => self.audio(
                data,
                payload.rtp_timestamp,
                payload.duration,
                capture_time_ms,
            ),
        }
    }

    /// Position of RTP timestamp `ts` after the first one (small reorderings go back).
    fn position(&mut self, ts: u32, clock: f64) -> Duration {
        let (last, ticks) = self.origin.get_or_insert((ts, 0));
        *ticks += i64::from(ts.wrapping_sub(*last) as i32);
        *last = ts;
        Duration::from_secs_f64((*ticks).max(0) as f64 / clock)
    }

    fn video(
        &mut self,
        data: Bytes,
        ts: u32,
        duration: Duration,
        capture_time_ms: u64,
    ) -> Option<EncodedUnit> {
        if data.is_empty() {
            return None;
        }
        let timestamp = self.position(ts, VIDEO_CLOCK);
        let (data, keyframe) = match self.codec? {
            VideoCodec::H264 => self.h264(data),
            VideoCodec::Vp8 => {
                let key = crate::encode::vp8::is_keyframe(&data);
                (data, key)
            }
        };
        Some(EncodedUnit {
            data,
            keyframe,
            timestamp,
            duration,
            capture_time_ms,
        })
    }

    /// The access unit, with the parameter sets added to an IDR without them.
    fn h264(&mut self, data: Bytes) -> (Bytes, bool) {
        let (mut sps, mut pps, mut idr) = (None, None, false);
        for body in annex_b::nal_units(&data) {
            // A parameter set ends in its stop bit, never in a zero byte: trailing zeros
            // are padding.
            let parameter_set = || {
                let end = body.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                Bytes::from([&[0, 0, 0, 1], &body[..end]].concat())
            };
            match body.first().map(|h| h & 0x1f) {
                Some(7) => sps = Some(parameter_set()),
                Some(8) => pps = Some(parameter_set()),
                Some(5) => idr = true,
                _ => {}
            }
        }
        match (sps, pps) {
            (Some(sps), Some(pps)) => {
                self.parameter_sets = Some((sps, pps));
                (data, idr)
            }
            _ if idr => match &self.parameter_sets {
                Some((sps, pps)) => {
                    let mut with = Vec::with_capacity(sps.len() + pps.len() + data.len());
                    with.extend_from_slice(sps);
                    with.extend_from_slice(pps);
                    with.extend_from_slice(&data);
                    (Bytes::from(with), true)
                }
                None => (data, true),
            },
            _ => (data, idr),
        }
    }

    /// An Opus unit; `duration` was read from its TOC when the packet was pushed.
    fn audio(
        &mut self,
        data: Bytes,
        ts: u32,
        duration: Duration,
        capture_time_ms: u64,
    ) -> Option<EncodedUnit> {
        if data.is_empty() {
            return None;
        }
        let timestamp = self.position(ts, OPUS_CLOCK);
        Some(EncodedUnit {
            data,
            keyframe: true,
            timestamp,
            duration,
            capture_time_ms,
        })
    }
}

/// How long an Opus packet plays, from its TOC byte (RFC 6716 §3.1): the configuration
/// gives the frame size, the code the number of frames.
pub(super) fn opus_duration(packet: &[u8]) -> Option<Duration> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame_us: u64 = match config {
        0..=11 => [10_000, 20_000, 40_000, 60_000][usize::from(config % 4)],
        12..=15 => [10_000, 20_000][usize::from(config % 2)],
        _ => [2_500, 5_000, 10_000, 20_000][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u64::from(*packet.get(1)? & 0x3f),
    };
    Some(Duration::from_micros(frame_us * frames))
}

/// The channel count an Opus packet was encoded with: its TOC byte's stereo flag
/// (RFC 6716 §3.1). The SDP says `opus/48000/2` whatever is sent, so this is how a
/// receiver learns that a sender is mono.
pub(super) fn opus_channels(packet: &[u8]) -> Option<u16> {
    packet
        .first()
        .map(|toc| if toc & 0x04 != 0 { 2 } else { 1 })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn a_stap_a_whose_sizes_overrun_it_is_refused_before_webrtc_rs_reads_it() {
        use rtc::rtp::packetizer::Depacketizer;
        let mut h264 = BoundedH264::new(1 << 20, Arc::default());
        // Found by fuzzing: one byte left after the last unit (webrtc-rs panicked).
        let ragged = Bytes::from_static(&[24, 0, 1, 0x65, 7]);
        assert!(h264.depacketize(&ragged).is_err());
        assert!(h264
            .depacketize(&Bytes::from_static(&[24, 0, 9, 0x65]))
            .is_err());
        let whole = Bytes::from_static(&[24, 0, 2, 0x67, 1, 0, 1, 0x68]);
        let out = h264.depacketize(&whole).unwrap();
        assert_eq!(&out[..], &[0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68]);
    }

    #[test]
    fn opus_channels_follow_the_toc() {
        assert_eq!(opus_channels(&[0xfc]), Some(2)); // CELT 20 ms, stereo
        assert_eq!(opus_channels(&[0xf8]), Some(1)); // CELT 20 ms, mono
        assert_eq!(opus_channels(&[]), None);
    }

    #[test]
    fn opus_durations_follow_the_toc() {
        assert_eq!(opus_duration(&[0xf8, 0]), Some(Duration::from_millis(20))); // CELT 20 ms
        assert_eq!(opus_duration(&[0x08]), Some(Duration::from_millis(20))); // SILK 20 ms
        assert_eq!(opus_duration(&[0xf9]), Some(Duration::from_millis(40))); // two frames
        assert_eq!(opus_duration(&[0xfb, 3]), Some(Duration::from_millis(60))); // code 3
        assert_eq!(opus_duration(&[0xfb]), None);
        assert_eq!(opus_duration(&[]), None);
    }

    #[test]
    fn media_follows_the_mime_type() {
        assert_eq!(
            media_of("video/H264"),
            Some((MediaKind::Video, Some(VideoCodec::H264)))
        );
        assert_eq!(
            media_of("video/vp8"),
            Some((MediaKind::Video, Some(VideoCodec::Vp8)))
        );
        assert_eq!(media_of("audio/OPUS"), Some((MediaKind::Audio, None)));
        assert_eq!(media_of("video/AV1"), None);
        assert_eq!(media_of("audio/PCMU"), None);
    }

    #[test]
    fn h264_idrs_carry_the_last_parameter_sets() {
        let sps = [0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f];
        let pps = [0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80];
        let idr = [0, 0, 0, 1, 0x65, 0x88, 0x84];
        let delta = [0, 0, 0, 1, 0x41, 0x9a];
        let ms = Duration::from_millis(33);
        let mut maker = UnitMaker::new(Some(VideoCodec::H264));
        let first = [&sps[..], &pps, &idr].concat();
        let u = maker
            .video(Bytes::from(first.clone()), 1000, ms, 0)
            .unwrap();
        assert!(u.keyframe && u.data == first && u.timestamp == Duration::ZERO);
        let u = maker
            .video(Bytes::copy_from_slice(&delta), 1000 + 3000, ms, 0)
            .unwrap();
        assert!(!u.keyframe && u.timestamp == Duration::from_secs_f64(3000.0 / 90_000.0));
        // An IDR alone gets the SPS/PPS seen before.
        let u = maker
            .video(Bytes::copy_from_slice(&idr), 1000 + 6000, ms, 0)
            .unwrap();
        assert!(u.keyframe);
        assert_eq!(u.data, first);
        assert_eq!(crate::encode::h264::nal_types(&u.data), [7, 8, 5]);
        // Timestamps wrap.
        let mut maker = UnitMaker::new(Some(VideoCodec::Vp8));
        maker.video(Bytes::from_static(&[0x10]), u32::MAX - 1499, ms, 0);
        let u = maker
            .video(Bytes::from_static(&[0x11]), 1500, ms, 0)
            .unwrap();
        assert_eq!(u.timestamp, Duration::from_secs_f64(3000.0 / 90_000.0));
        assert!(!u.keyframe, "VP8's P bit set: a delta");
    }

    // ---- Captured packets of our own sender (see `super::super::fixtures`) ----

    use super::super::fixtures::{self, SentUnit};

    /// What the depacketizer makes of `packets`, fed in this order (one per millisecond).
    fn depacketize(
        codec: Option<VideoCodec>,
        packets: impl IntoIterator<Item = rtc::rtp::Packet>,
    ) -> Vec<(Depacketized, EncodedUnit)> {
        let (mut depacketizer, mut maker) = (Depacketizer::new(codec), UnitMaker::new(codec));
        let start = Instant::now();
        let mut out = Vec::new();
        for (i, packet) in packets.into_iter().enumerate() {
            let now = start + Duration::from_millis(i as u64);
            depacketizer.push(packet, now);
            while let Some(payload) = depacketizer.pop() {
                let unit = maker.unit(&payload, 0).expect("a unit");
                out.push((payload, unit));
            }
        }
        out
    }

    /// Checks that `got` are the units `sent`, in order (a video frame is complete on its
    /// marker packet: the last one too, without a packet after it).
    fn assert_units(
        codec: Option<VideoCodec>,
        got: &[(Depacketized, EncodedUnit)],
        sent: &[SentUnit],
    ) {
        let clock = if codec.is_some() {
            VIDEO_CLOCK
        } else {
            OPUS_CLOCK
        };
        assert_eq!(got.len(), sent.len(), "one unit per unit sent");
        let first = sent[0].rtp_timestamp;
        for (n, ((payload, unit), sent)) in got.iter().zip(sent).enumerate() {
            assert_eq!(payload.rtp_timestamp, sent.rtp_timestamp, "unit {n}");
            assert!(!payload.after_loss, "unit {n}: nothing was lost");
            assert_eq!(unit.keyframe, sent.keyframe || codec.is_none(), "unit {n}");
            // On the track's timeline from the first unit, across the timestamp wrap.
            let ticks = sent.rtp_timestamp.wrapping_sub(first);
            assert_eq!(
                unit.timestamp,
                Duration::from_secs_f64(f64::from(ticks) / clock)
            );
            match codec {
                Some(VideoCodec::H264) => {
                    // Annex B again: the same NAL units (STAP-A and FU-A undone), the
                    // first keyframe already carrying its SPS and PPS.
                    assert_eq!(crate::encode::h264::nal_types(&unit.data), sent.nal_types);
                }
                Some(VideoCodec::Vp8) => assert_eq!(unit.data.len(), sent.bytes, "unit {n}"),
                None => {
                    assert_eq!(unit.data.len(), sent.bytes, "unit {n}");
                    assert_eq!(unit.duration.as_micros() as u64, sent.duration_us);
                }
            }
        }
        if codec.is_some() {
            // A frame handed on at its marker lasts as long as the interval before it:
            // 1/30 s; the first frame has none before it, so 0 (what the receiver
            // forwards as the unit's duration).
            let frame = Duration::from_secs(1) / 30;
            let odd: Vec<(u32, Duration)> = got
                .iter()
                .filter(|(p, _)| p.duration.abs_diff(frame) > Duration::from_micros(20))
                .map(|(p, _)| (p.rtp_timestamp, p.duration))
                .collect();
            assert!(
                odd.len() <= 1 && odd.iter().all(|&(_, d)| d.is_zero()),
                "durations other than 1/30 s: {odd:?}"
            );
        }
    }

    fn keyframes(got: &[(Depacketized, EncodedUnit)]) -> Vec<usize> {
        got.iter()
            .enumerate()
            .filter(|(_, (_, u))| u.keyframe)
            .map(|(n, _)| n)
            .collect()
    }

    /// The first unit sent in more than `min` packets, after the first `after` units.
    fn unit_in_packets(sent: &[SentUnit], min: usize, after: usize) -> (usize, usize) {
        let n = (after..sent.len())
            .find(|&n| sent[n].packets >= min)
            .expect("a unit of that many packets");
        (n, sent[..n].iter().map(|u| u.packets).sum())
    }

    fn video_fixture(name: &str, codec: VideoCodec) {
        let (packets, stream) = fixtures::load(name);
        let sent = &stream.units;
        assert_eq!(packets.len(), sent.iter().map(|u| u.packets).sum::<usize>());
        let got = depacketize(Some(codec), packets.clone());
        assert_units(Some(codec), &got, sent);
        let sent_keyframes: Vec<usize> = (0..got.len()).filter(|&n| sent[n].keyframe).collect();
        assert!(
            sent_keyframes.len() >= 2 && sent_keyframes[0] == 0,
            "the first frame and the forced one are keyframes: {sent_keyframes:?}"
        );
        assert_eq!(
            keyframes(&got),
            sent_keyframes,
            "keyframes where they were sent"
        );

        // Reordered packets: within a frame of several packets and across two frames,
        // each pair swapped; the assembler puts them back in order.
        let (multi, at) = unit_in_packets(sent, 3, 1);
        let mut reordered = packets.clone();
        reordered.swap(at, at + 1);
        reordered.swap(at + sent[multi].packets - 1, at + sent[multi].packets);
        let again = depacketize(Some(codec), reordered);
        assert_eq!(again.len(), got.len());
        for ((a, ua), (b, ub)) in again.iter().zip(&got) {
            assert_eq!(
                (&a.data, a.rtp_timestamp, a.after_loss),
                (&b.data, b.rtp_timestamp, b.after_loss)
            );
            assert_eq!(ua, ub);
        }

        // A lost packet: the frame it belonged to is given up (once newer packets are half
        // a second of RTP time ahead), and the next frame says the chain broke: the
        // reader asks for a keyframe there.
        for (lost_unit, first_packet) in [unit_in_packets(sent, 1, 3), unit_in_packets(sent, 2, 3)]
        {
            let lost = first_packet + sent[lost_unit].packets / 2;
            let mut missing = packets.clone();
            missing.remove(lost);
            let got = depacketize(Some(codec), missing);
            let timestamps: Vec<u32> = got.iter().map(|(p, _)| p.rtp_timestamp).collect();
            let expected: Vec<u32> = sent
                .iter()
                .enumerate()
                .filter(|&(n, _)| n != lost_unit)
                .map(|(_, u)| u.rtp_timestamp)
                .collect();
            assert_eq!(
                timestamps, expected,
                "every frame but the broken one (unit {lost_unit})"
            );
            let broken: Vec<u32> = got
                .iter()
                .filter(|(p, _)| p.after_loss)
                .map(|(p, _)| p.rtp_timestamp)
                .collect();
            assert_eq!(
                broken,
                [sent[lost_unit + 1].rtp_timestamp],
                "the chain breaks once, after the loss"
            );
        }
    }

    #[test]
    fn h264_from_openh264_depacketizes_frame_by_frame() {
        video_fixture("h264", VideoCodec::H264);
    }

    #[test]
    fn vp8_from_libvpx_depacketizes_frame_by_frame() {
        video_fixture("vp8", VideoCodec::Vp8);
    }

    #[test]
    fn opus_packets_keep_their_durations_and_channels() {
        let (packets, stream) = fixtures::load("opus");
        assert_eq!(
            packets.len(),
            stream.units.len(),
            "one packet per Opus packet"
        );
        for packet in &packets {
            assert_eq!(opus_channels(&packet.payload), Some(1), "the tone is mono");
            assert_eq!(
                opus_duration(&packet.payload),
                Some(Duration::from_millis(20))
            );
        }
        let got = depacketize(None, packets);
        assert_units(None, &got, &stream.units);
        let last = &got[got.len() - 1].1;
        assert_eq!(
            last.timestamp,
            Duration::from_millis(20) * (got.len() as u32 - 1)
        );
    }

    // ---- Hostile senders ----

    /// An RTP packet of payload type 96, SSRC 1.
    pub(in crate::peer::remote) fn packet(
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: Vec<u8>,
    ) -> rtc::rtp::Packet {
        rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                marker,
                payload_type: 96,
                sequence_number: seq,
                timestamp,
                ssrc: 1,
                ..Default::default()
            },
            payload: Bytes::from(payload),
        }
    }

    /// Feeds `packets` to a depacketizer of `codec` capped at `max_unit`; the payloads
    /// out, and the count of oversized units.
    fn hostile(
        codec: VideoCodec,
        max_unit: usize,
        packets: Vec<rtc::rtp::Packet>,
    ) -> (Vec<Depacketized>, u64) {
        let mut depacketizer = Depacketizer::with_max_unit(Some(codec), max_unit);
        let start = Instant::now();
        let mut out = Vec::new();
        for packet in packets {
            depacketizer.push(packet, start);
            while let Some(p) = depacketizer.pop() {
                out.push(p);
            }
        }
        (out, depacketizer.oversized())
    }

    /// A well-formed one-packet H.264 unit (a non-IDR slice) and the packet after it.
    fn h264_tail(seq: u16) -> (Vec<rtc::rtp::Packet>, Vec<u8>) {
        let slice = vec![0x41, 0x9a, 0x02, 0x03];
        let packets = vec![
            packet(seq, 90_000, true, slice.clone()),
            packet(seq + 1, 93_000, true, vec![0x41, 0x9a]),
        ];
        (packets, [&[0, 0, 0, 1][..], &slice].concat())
    }

    #[test]
    fn an_fu_a_that_never_ends_is_capped_and_the_next_unit_comes_through() {
        const CAP: usize = 64 << 10;
        // An IDR's FU-A start, then 100 middles of 1,200 bytes (120 kB), never an end.
        let mut packets = vec![packet(
            0,
            1000,
            false,
            [vec![0x7c, 0x85], vec![7; 1200]].concat(),
        )];
        for seq in 1..100u16 {
            packets.push(packet(
                seq,
                1000,
                false,
                [vec![0x7c, 0x05], vec![7; 1200]].concat(),
            ));
        }
        let (tail, expected) = h264_tail(100);
        packets.extend(tail);
        let (out, oversized) = hostile(VideoCodec::H264, CAP, packets);
        assert!(
            out.iter().all(|p| p.data.len() <= CAP),
            "nothing over the cap"
        );
        let good = out
            .iter()
            .find(|p| p.rtp_timestamp == 90_000)
            .expect("the well-formed unit after it");
        assert_eq!(good.data, expected, "no stale fragment in front of it");
        assert!(good.after_loss, "the chain broke: a keyframe is asked for");
        assert!(oversized >= 1, "counted");
    }

    #[test]
    fn a_new_fu_a_start_discards_a_stale_partial_unit() {
        // A fragment start and a middle at one timestamp, no end; then a whole FU-A.
        let packets = vec![
            packet(0, 1000, false, vec![0x7c, 0x85, 1, 1, 1]),
            packet(1, 1000, false, vec![0x7c, 0x05, 2, 2, 2]),
            packet(2, 4000, false, vec![0x7c, 0x85, 0x88, 3]),
            packet(3, 4000, true, vec![0x7c, 0x45, 4, 5]),
            packet(4, 7000, true, vec![0x41, 0x9a]),
        ];
        let (out, oversized) = hostile(VideoCodec::H264, MAX_UNIT_BYTES, packets);
        let unit = out
            .iter()
            .find(|p| p.rtp_timestamp == 4000)
            .expect("the whole unit");
        assert_eq!(unit.data[..], [0, 0, 0, 1, 0x65, 0x88, 3, 4, 5]);
        assert!(out
            .iter()
            .all(|p| !p.data.windows(3).any(|w| w == [1, 1, 1])));
        assert_eq!(oversized, 1, "the stale unit was discarded");
        // A middle without its start, after a whole NAL unit of the same frame: nothing
        // is built from it, and nothing of it is carried into the next unit.
        let packets = vec![
            packet(0, 1000, false, vec![0x7c, 0x85, 0x88, 1]),
            packet(1, 1000, false, vec![0x7c, 0x45, 2]),
            packet(2, 1000, true, vec![0x7c, 0x05, 9, 9]),
            packet(3, 4000, false, vec![0x7c, 0x85, 0x88, 3]),
            packet(4, 4000, true, vec![0x7c, 0x45, 4]),
            packet(5, 7000, true, vec![0x41, 0x9a]),
        ];
        let (out, _) = hostile(VideoCodec::H264, MAX_UNIT_BYTES, packets);
        assert!(out.iter().all(|p| !p.data.contains(&9)), "{out:?}");
        let unit = out
            .iter()
            .find(|p| p.rtp_timestamp == 4000)
            .expect("{out:?}");
        assert_eq!(unit.data[..], [0, 0, 0, 1, 0x65, 0x88, 3, 4]);
    }

    /// Found by fuzzing (`fuzz/regressions/rtp_vp8/`): rtc's sample builder (used before the
    /// assembler) purged a jump of n sequence numbers in O(n²) steps, seconds of CPU for
    /// one packet 30 000 away; far packets are still dropped at once.
    #[test]
    fn far_sequence_numbers_are_dropped_at_once_and_a_new_sequence_is_taken_up() {
        let frame = |seq: u16, ts: u32| packet(seq, ts, true, vec![0x10, 0x31, 0x02, 0x00]);
        let mut packets = Vec::new();
        for i in 0..20u16 {
            packets.push(frame(i, 3000 * u32::from(i)));
            // Each far from the stream and from the last far one: never a new sequence.
            packets.push(frame(30_000 + 997 * i, 77));
        }
        // The sender restarts its sequence: two in a row there, then on.
        for i in 0..5u16 {
            packets.push(frame(50_000 + i, 90_000 + 3000 * u32::from(i)));
        }
        let started = Instant::now();
        let (out, _) = hostile(VideoCodec::Vp8, MAX_UNIT_BYTES, packets);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        let timestamps: Vec<u32> = out.iter().map(|p| p.rtp_timestamp).collect();
        let old: Vec<u32> = (0..20).map(|i| 3000 * i).collect();
        // Every old frame came out on its marker; the new sequence's first packet
        // (50 000) was held back.
        assert_eq!(timestamps[..20], old[..], "{timestamps:?}");
        assert_eq!(
            timestamps[20..],
            [93_000, 96_000, 99_000, 102_000],
            "{timestamps:?}"
        );
        assert!(out[..20].iter().all(|p| !p.after_loss));
        assert!(out[20].after_loss, "the restart broke the chain");
    }

    #[test]
    fn a_huge_vp8_frame_is_dropped_and_the_next_frame_comes_through() {
        const CAP: usize = 64 << 10;
        // A keyframe's first partition spread over 100 packets of 1,200 bytes (120 kB).
        let mut packets = vec![packet(
            0,
            1000,
            false,
            [vec![0x10, 0x00], vec![7; 1200]].concat(),
        )];
        for seq in 1..100u16 {
            packets.push(packet(
                seq,
                1000,
                seq == 99,
                [vec![0x00], vec![7; 1200]].concat(),
            ));
        }
        packets.push(packet(100, 4000, true, vec![0x10, 0x31, 0x02, 0x00, 0x00]));
        packets.push(packet(101, 7000, true, vec![0x10, 0x31, 0x03, 0x00, 0x00]));
        let (out, oversized) = hostile(VideoCodec::Vp8, CAP, packets);
        assert!(
            out.iter().all(|p| p.data.len() <= CAP),
            "nothing over the cap"
        );
        assert_eq!(oversized, 1);
        let next = out
            .iter()
            .find(|p| p.rtp_timestamp == 4000)
            .expect("the next frame");
        assert_eq!(next.data[..], [0x31, 0x02, 0, 0]);
        assert!(next.after_loss, "the chain broke: a keyframe is asked for");
        // Under the default cap, the same frame passes.
        let mut packets = vec![packet(
            0,
            1000,
            false,
            [vec![0x10, 0x00], vec![7; 1200]].concat(),
        )];
        for seq in 1..100u16 {
            packets.push(packet(
                seq,
                1000,
                seq == 99,
                [vec![0x00], vec![7; 1200]].concat(),
            ));
        }
        packets.push(packet(100, 4000, true, vec![0x10, 0x31, 0x02, 0x00, 0x00]));
        let (out, oversized) = hostile(VideoCodec::Vp8, MAX_UNIT_BYTES, packets);
        assert_eq!((out.len(), oversized), (2, 0));
        assert_eq!(out[0].data.len(), 1201 + 99 * 1200);
    }
}
