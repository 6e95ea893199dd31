//! The task reading a remote track's RTP: counts what arrives, reads the sender's capture
//! times (abs-capture-time), feeds the packets to the [depacketizer](super::depacketize),
//! asks for a keyframe when loss breaks the chain, and hands the units to the consumers of
//! encoded units and to the decoder's queue.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::decode::Unit;
use super::depacketize::{Depacketizer, UnitMaker};
use super::Inner;
use crate::constraints::MediaKind;
use crate::encode::{EncodedUnit, VideoCodec};
use crate::media::MediaFrame;
use crate::peer::capture_time::{self, CaptureClock};
use crate::sync::lock;

/// Starts the reader of `track` (of `codec`, Opus for `None`). `units` is the decoder's
/// queue (`None`: not decoding); `idle_frames`, the frame sender when there is no decoder,
/// lives as long as the reader so the track ends with it.
pub(super) fn spawn(
    track: Arc<dyn TrackRemote>,
    inner: Arc<Inner>,
    codec: Option<VideoCodec>,
    units: Option<SyncSender<Unit>>,
    idle_frames: Option<SyncSender<MediaFrame>>,
    capture_ext: Arc<AtomicU8>,
) {
    tokio::spawn(async move {
        let mut depacketizer = Depacketizer::new(codec);
        let mut maker = UnitMaker::new(codec);
        let mut capture = CaptureClock::default();
        let clock_rate = if codec.is_some() { 90_000 } else { 48_000 };
        while let Some(event) = track.poll().await {
            match event {
                TrackRemoteEvent::OnRtpPacket(packet) => {
                    let counters = &inner.counters;
                    counters.packets.fetch_add(1, Ordering::Relaxed);
                    counters
                        .bytes
                        .fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
                    let id = capture_ext.load(Ordering::Relaxed);
                    if let Some(ms) = (id > 0)
                        .then(|| packet.header.get_extension(id))
                        .flatten()
                        .and_then(|v| capture_time::decode(&v))
                    {
                        capture.observe(packet.header.timestamp, ms);
                        counters.capture_ms.store(ms, Ordering::Relaxed);
                        counters
                            .capture_received_ms
                            .store(crate::media::wall_clock_ms(), Ordering::Relaxed);
                    }
                    if units.is_none() && !inner.forwarding.load(Ordering::Relaxed) {
                        continue;
                    }
                    let now = Instant::now();
                    depacketizer.push(packet, now);
                    let oversized = depacketizer.oversized();
                    while let Some(payload) = depacketizer.pop() {
                        if payload.after_loss {
                            inner.pli.notify_one();
                        }
                        // The sender's capture time when it sends one (a relay passes it
                        // on), else the arrival.
                        let captured = capture
                            .capture_ms(payload.rtp_timestamp, clock_rate)
                            .unwrap_or_else(crate::media::wall_clock_ms);
                        inner.forward(|| maker.unit(&payload, captured));
                        if let Some(units) = &units {
                            inner.queue(units, payload.data, payload.rtp_timestamp);
                        }
                    }
                    // Units over the size cap count as dropped before decoding.
                    let over = depacketizer.oversized() - oversized;
                    if over > 0 {
                        counters.dropped.fetch_add(over, Ordering::Relaxed);
                    }
                }
                TrackRemoteEvent::OnEnded => break,
                _ => {}
            }
        }
        // Dropping the consumers ends what they feed (a passthrough's viewers).
        *lock(&inner.forwards) = Default::default();
        // Dropping the senders ends the decoder thread, which ends the track.
        drop(idle_frames);
    });
}

impl Inner {
    /// Hands the unit `make` builds to every consumer, and holds a video unit for the
    /// consumers added later; builds nothing for audio without a consumer.
    fn forward(&self, make: impl FnOnce() -> Option<EncodedUnit>) {
        let video = self.kind == MediaKind::Video;
        if !video && !self.forwarding.load(Ordering::Relaxed) {
            return;
        }
        let mut forwards = lock(&self.forwards);
        let (list, catch_up) = &mut *forwards;
        if !video && list.is_empty() {
            return;
        }
        let Some(unit) = make() else { return };
        if video {
            catch_up.keep(&unit);
        }
        if list.is_empty() {
            return;
        }
        list.retain_mut(|f| f(&unit));
        self.counters
            .units_forwarded
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Queues a unit for the decoder; a full queue drops it (counted) and, for video,
    /// asks for a keyframe.
    fn queue(&self, tx: &SyncSender<Unit>, data: Bytes, rtp_timestamp: u32) {
        match tx.try_send((data, rtp_timestamp)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                if self.kind == MediaKind::Video {
                    self.pli.notify_one();
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}
