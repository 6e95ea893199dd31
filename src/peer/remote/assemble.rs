//! Video frames from RTP packets (pure, fed the time through nothing but the packets): a
//! frame is handed on as soon as it is complete — its last packet carries the RTP marker
//! bit (RFC 6184 §5.1, RFC 7741 §4.1) and every packet from its first to that one is
//! present — instead of when the next frame's first packet arrives (one frame interval
//! later). A sender that never sets the marker still works: a frame also ends where a
//! packet with a newer timestamp follows it without a gap. A frame with a missing packet
//! is waited for (a retransmission may fill the gap) until the newest packet held is
//! [`Assembler::new`]'s `max_delay` of RTP time ahead of it or more than `max_late`
//! packets are held; it is then given up and the next frame says packets were lost.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use rtc::rtp::packetizer::Depacketizer;

/// One reassembled frame.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Frame {
    /// Its depacketized payloads, concatenated.
    pub data: Bytes,
    /// The RTP timestamp of its packets.
    pub rtp_timestamp: u32,
    /// Until the next frame's timestamp when that is known (a frame ended by a newer
    /// packet), else the interval since the frame before it (zero for the first frame).
    pub duration: Duration,
    /// Packets (not padding) were given up before it.
    pub after_loss: bool,
}

/// Reassembles the frames of one stream, in sequence order, with `D`'s depacketizer.
pub(super) struct Assembler<D: Depacketizer> {
    depacketizer: D,
    clock_rate: u32,
    /// Packets held, by unwrapped sequence number.
    held: BTreeMap<u64, rtc::rtp::Packet>,
    /// The unwrapped number of the highest packet seen.
    highest: Option<u64>,
    /// Where the next frame starts (the packet after the last one consumed).
    next: Option<u64>,
    /// The RTP timestamp of the last frame handed on.
    last: Option<u32>,
    /// Packets were given up since the last frame handed on.
    lost: bool,
    max_late: usize,
    max_delay_ticks: u32,
}

/// Where unwrapped sequence numbers start, so that none goes below zero.
const ORIGIN: u64 = 1 << 32;

impl<D: Depacketizer> Assembler<D> {
    /// An assembler of a stream clocked at `clock_rate` that holds at most `max_late`
    /// packets and waits for a missing one until newer packets are `max_delay` ahead.
    pub(super) fn new(
        depacketizer: D,
        clock_rate: u32,
        max_late: u16,
        max_delay: Duration,
    ) -> Self {
        Assembler {
            depacketizer,
            clock_rate,
            held: BTreeMap::new(),
            highest: None,
            next: None,
            last: None,
            lost: false,
            max_late: usize::from(max_late),
            max_delay_ticks: (u128::from(clock_rate) * max_delay.as_millis() / 1000) as u32,
        }
    }

    /// Takes a packet, in any order; one older than a frame already handed on (or given
    /// up) is dropped.
    pub(super) fn push(&mut self, packet: rtc::rtp::Packet) {
        let seq = packet.header.sequence_number;
        let ext = match self.highest {
            None => ORIGIN + u64::from(seq),
            Some(h) => {
                let delta = i64::from(seq.wrapping_sub(h as u16) as i16);
                h.saturating_add_signed(delta)
            }
        };
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        if self.next.is_some_and(|n| ext < n) {
            return;
        }
        self.held.insert(ext, packet);
    }

    /// The next complete frame, if any (a frame whose packets are all empty padding is
    /// skipped, one whose first packet does not start a frame is dropped as a loss).
    pub(super) fn pop(&mut self) -> Option<Frame> {
        loop {
            let start = match self.next {
                Some(n) => n,
                None => *self.held.keys().next()?,
            };
            match self.complete_from(start) {
                Some((end, after)) => {
                    if let Some(frame) = self.take(start, end, after) {
                        return Some(frame);
                    }
                }
                None if self.must_give_up() => self.give_up(start),
                None => return None,
            }
        }
    }

    /// The end (exclusive) of the frame starting at `start` when it is complete, and the
    /// timestamp of the packet after it when that ended it.
    fn complete_from(&self, start: u64) -> Option<(u64, Option<u32>)> {
        let timestamp = self.held.get(&start)?.header.timestamp;
        for (seq, (&n, packet)) in (start..).zip(self.held.range(start..)) {
            if n != seq {
                return None; // a gap
            }
            if packet.header.timestamp != timestamp {
                return Some((n, Some(packet.header.timestamp)));
            }
            if packet.header.marker {
                return Some((n + 1, None));
            }
        }
        None
    }

    /// Too many packets held, or the newest too far ahead of the oldest.
    fn must_give_up(&self) -> bool {
        if self.held.len() > self.max_late {
            return true;
        }
        let (Some((_, first)), Some((_, newest))) =
            (self.held.first_key_value(), self.held.last_key_value())
        else {
            return false;
        };
        self.max_delay_ticks > 0
            && newest.header.timestamp.wrapping_sub(first.header.timestamp) > self.max_delay_ticks
    }

    /// Gives up the frame starting at `start`: its packets up to the first gap go, and
    /// the next frame starts at the first packet held after it.
    fn give_up(&mut self, start: u64) {
        let mut seq = start;
        while self.held.remove(&seq).is_some() {
            seq += 1;
        }
        self.lost = true;
        self.next = self.held.keys().next().copied().or(Some(seq));
    }

    /// Takes packets `start..end` out as a frame: `None` when they were padding or not
    /// the start of a frame (counted as a loss).
    fn take(&mut self, start: u64, end: u64, after: Option<u32>) -> Option<Frame> {
        let mut packets = Vec::with_capacity((end - start) as usize);
        for seq in start..end {
            packets.extend(self.held.remove(&seq));
        }
        self.next = Some(end);
        let first = packets.first()?;
        let timestamp = first.header.timestamp;
        if !self.depacketizer.is_partition_head(&first.payload) {
            let padding = packets
                .iter()
                .all(|p| p.payload.is_empty() && self.last == Some(p.header.timestamp));
            self.lost |= !padding;
            return None;
        }
        let mut data = Vec::new();
        for packet in &packets {
            match self.depacketizer.depacketize(&packet.payload) {
                Ok(part) => data.extend_from_slice(&part),
                Err(_) => {
                    self.lost = true;
                    return None;
                }
            }
        }
        let ticks = |from: u32, to: u32| {
            Duration::from_secs_f64(f64::from(to.wrapping_sub(from)) / f64::from(self.clock_rate))
        };
        let duration = after
            .map(|next| ticks(timestamp, next))
            .or(self.last.map(|last| ticks(last, timestamp)))
            .unwrap_or(Duration::ZERO);
        self.last = Some(timestamp);
        Some(Frame {
            data: Bytes::from(data),
            rtp_timestamp: timestamp,
            duration,
            after_loss: std::mem::take(&mut self.lost),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp::codec::vp8::Vp8Packet;

    const FRAME: u32 = 3000;

    /// A VP8 packet: the first of a frame has the S bit; the payload is `seq`, 0, 0.
    fn packet(seq: u16, timestamp: u32, first: bool, marker: bool) -> rtc::rtp::Packet {
        let payload = vec![if first { 0x10 } else { 0x00 }, seq as u8, 0, 0];
        super::super::depacketize::tests::packet(seq, timestamp, marker, payload)
    }

    /// Frame `n` (from sequence number `seq`) in `count` packets, the last with the
    /// marker bit when `marker`.
    fn frame(n: u32, seq: u16, count: u16, marker: bool) -> Vec<rtc::rtp::Packet> {
        (0..count)
            .map(|i| {
                packet(
                    seq.wrapping_add(i),
                    n * FRAME,
                    i == 0,
                    marker && i == count - 1,
                )
            })
            .collect()
    }

    fn assembler() -> Assembler<Vp8Packet> {
        Assembler::new(
            Vp8Packet::default(),
            90_000,
            256,
            Duration::from_millis(500),
        )
    }

    /// Pushes `packet` and returns the timestamps of the frames that came out.
    fn feed(a: &mut Assembler<Vp8Packet>, packet: rtc::rtp::Packet) -> Vec<(u32, bool)> {
        a.push(packet);
        std::iter::from_fn(|| a.pop())
            .map(|f| (f.rtp_timestamp / FRAME, f.after_loss))
            .collect()
    }

    #[test]
    fn in_order_frames_come_out_on_their_marker() {
        let mut a = assembler();
        let mut seq = 0;
        for n in 0..4 {
            let packets = frame(n, seq, 3, true);
            seq += 3;
            let last = packets.len() - 1;
            for (i, p) in packets.into_iter().enumerate() {
                let out = feed(&mut a, p);
                if i < last {
                    assert!(out.is_empty(), "frame {n}: not before its last packet");
                } else {
                    assert_eq!(out, [(n, false)], "frame {n}: on its marker");
                }
            }
        }
        // Payloads: the VP8 descriptor byte stripped, the packets in order.
        let mut a = assembler();
        frame(0, 10, 3, true).into_iter().for_each(|p| a.push(p));
        let f = a.pop().expect("the frame");
        assert_eq!(f.data[..], [10, 0, 0, 11, 0, 0, 12, 0, 0]);
        assert_eq!(f.duration, Duration::ZERO, "the first: no interval known");
        frame(1, 13, 1, true).into_iter().for_each(|p| a.push(p));
        let f = a.pop().expect("the next frame");
        assert_eq!(
            f.duration,
            Duration::from_secs(1) / 30,
            "since the one before"
        );
    }

    #[test]
    fn a_missing_middle_packet_holds_the_frame_until_it_is_retransmitted() {
        let mut a = assembler();
        let packets = frame(0, 0, 3, true);
        assert!(feed(&mut a, packets[0].clone()).is_empty());
        assert!(
            feed(&mut a, packets[2].clone()).is_empty(),
            "packet 1 missing"
        );
        // The next frame arrives whole while the gap is open: nothing overtakes.
        for p in frame(1, 3, 2, true) {
            assert!(feed(&mut a, p).is_empty());
        }
        // The retransmission fills the gap: both frames, in order, nothing lost.
        assert_eq!(feed(&mut a, packets[1].clone()), [(0, false), (1, false)]);
    }

    #[test]
    fn a_frame_whose_gap_never_fills_is_given_up_and_the_next_says_so() {
        let mut a = assembler();
        let packets = frame(0, 0, 3, true);
        feed(&mut a, packets[0].clone());
        feed(&mut a, packets[2].clone());
        // Frames 1..=15 are within 500 ms of frame 0: held.
        let mut seq = 3;
        for n in 1..=15 {
            for p in frame(n, seq, 2, true) {
                assert!(feed(&mut a, p).is_empty(), "frame {n} waits");
            }
            seq += 2;
        }
        // Frame 16 is more than 500 ms ahead: frame 0 is given up, the rest flushed.
        let mut out = Vec::new();
        for p in frame(16, seq, 2, true) {
            out.extend(feed(&mut a, p));
        }
        let expected: Vec<(u32, bool)> = (1..=16).map(|n| (n, n == 1)).collect();
        assert_eq!(out, expected);
        // The late retransmission is too late: dropped.
        assert!(feed(&mut a, packets[1].clone()).is_empty());
        assert_eq!(
            feed(&mut a, packet(seq + 2, 17 * FRAME, true, true)),
            [(17, false)]
        );
    }

    #[test]
    fn too_many_packets_held_give_the_frame_up() {
        let mut a = Assembler::new(Vp8Packet::default(), 90_000, 8, Duration::ZERO);
        feed(&mut a, packet(0, 0, true, false)); // its packet 1 never comes
        let mut out = Vec::new();
        for seq in 2..12u16 {
            out.extend(feed(
                &mut a,
                packet(seq, u32::from(seq) * FRAME, true, true),
            ));
        }
        assert_eq!(out.first(), Some(&(2, true)), "{out:?}");
        assert_eq!(out.len(), 10, "{out:?}");
    }

    #[test]
    fn reordered_packets_are_put_back_in_order() {
        let mut a = assembler();
        let mut packets = frame(0, 100, 3, true);
        packets.extend(frame(1, 103, 3, true));
        packets.swap(0, 1); // within a frame
        packets.swap(2, 3); // across two frames
        let mut out = Vec::new();
        for p in packets {
            out.extend(feed(&mut a, p));
        }
        assert_eq!(out, [(0, false), (1, false)]);
        // Across the sequence number wrap.
        let mut a = assembler();
        let packets = frame(0, 65534, 3, true);
        feed(&mut a, packets[1].clone());
        feed(&mut a, packets[0].clone());
        assert_eq!(feed(&mut a, packets[2].clone()), [(0, false)]);
    }

    #[test]
    fn without_markers_a_frame_ends_when_a_newer_timestamp_follows() {
        let mut a = assembler();
        let mut out = Vec::new();
        for n in 0..3 {
            for p in frame(n, n as u16 * 2, 2, false) {
                out.extend(feed(&mut a, p));
            }
        }
        assert_eq!(
            out,
            [(0, false), (1, false)],
            "the last waits for a newer packet"
        );
        let mut a = assembler();
        frame(0, 0, 2, false).into_iter().for_each(|p| a.push(p));
        a.push(packet(2, 5000, true, false));
        let f = a.pop().expect("ended by the newer packet");
        assert_eq!(f.duration, Duration::from_secs_f64(5000.0 / 90_000.0));
    }

    #[test]
    fn padding_is_skipped_and_a_headless_frame_is_a_loss() {
        let mut a = assembler();
        feed(&mut a, packet(0, 0, true, true));
        let mut padding = packet(1, 0, false, false);
        padding.payload = Bytes::new();
        assert!(feed(&mut a, padding).is_empty());
        assert_eq!(feed(&mut a, packet(2, FRAME, true, true)), [(1, false)]);
        // A frame whose first packet is lost for good: its rest is dropped as a loss.
        let mut a = assembler();
        feed(&mut a, packet(10, 0, false, false));
        feed(&mut a, packet(11, 0, false, true));
        assert_eq!(feed(&mut a, packet(12, FRAME, true, true)), [(1, true)]);
    }
}
