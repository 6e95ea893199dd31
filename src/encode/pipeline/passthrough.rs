//! Passthrough: units that arrive already encoded (a WHIP publisher's) are fanned out as
//! they are, keyframe requests going to their origin; [`PassthroughFeeder`] is where they
//! are pushed in.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::encoded::{CodecConfig, EncodedTrack, Shared, Source};
use crate::encode::EncodedUnit;
use crate::sync::lock;

/// Window over which a passthrough measures the rate it forwards.
const RATE_WINDOW: Duration = Duration::from_secs(1);

impl EncodedTrack {
    /// A passthrough of already encoded units of `codec` (`codec.bitrate()` is only the
    /// starting figure of its stats): the units given to the returned feeder are sent to
    /// every sink as they are, with the fan-out's rules (a new sink starts on a keyframe, a
    /// slow one loses units and resumes on a keyframe). Keyframes cannot be forced here, so
    /// whenever one is needed (a new sink, a PLI/FIR from a peer, a sink that lost sync)
    /// `keyframe_request` is called: it should ask the origin (send a PLI to the publisher)
    /// and must not block; it is called often, so it rate-limits itself.
    /// [`set_bitrate`](Self::set_bitrate) and [`vote_bitrate`](Self::vote_bitrate) do
    /// nothing: the publisher decides the rate. Dropping the feeder ends the sinks.
    pub fn passthrough(
        codec: CodecConfig,
        keyframe_request: impl Fn() + Send + Sync + 'static,
    ) -> (Self, PassthroughFeeder) {
        Self::passthrough_at(codec, 0, keyframe_request)
    }

    /// [`passthrough`](Self::passthrough) standing as tier `tier` of a set (tests feed
    /// tiers by hand this way).
    pub(super) fn passthrough_at(
        codec: CodecConfig,
        tier: usize,
        keyframe_request: impl Fn() + Send + Sync + 'static,
    ) -> (Self, PassthroughFeeder) {
        let shared = Shared::new(
            codec.kind(),
            codec,
            Source::Passthrough(Box::new(keyframe_request)),
            tier,
            0,
        );
        let feeder = PassthroughFeeder {
            shared: Arc::clone(&shared),
            rate: Mutex::new(RateWindow::new(Instant::now())),
        };
        (EncodedTrack { shared }, feeder)
    }
}

/// The rate of what passes, measured over [`RATE_WINDOW`].
struct RateWindow {
    start: Instant,
    bytes: u64,
}

impl RateWindow {
    fn new(now: Instant) -> Self {
        RateWindow {
            start: now,
            bytes: 0,
        }
    }

    /// Counts `bytes` at `now`; the rate in bits per second when a window closed.
    fn add(&mut self, bytes: u64, now: Instant) -> Option<u64> {
        self.bytes += bytes;
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed < RATE_WINDOW {
            return None;
        }
        let bps = (self.bytes as f64 * 8.0 / elapsed.as_secs_f64()) as u64;
        *self = RateWindow::new(now);
        Some(bps)
    }
}

/// Where a passthrough [`EncodedTrack`]'s units come from: whoever receives them (a remote
/// track's depacketizer) pushes them here. Dropping it ends the passthrough's sinks.
pub struct PassthroughFeeder {
    shared: Arc<Shared>,
    rate: Mutex<RateWindow>,
}

impl PassthroughFeeder {
    /// Forwards `unit` to every sink. Never blocks: a full sink loses it (counted). With
    /// no sinks the unit is only counted.
    pub fn push(&self, unit: EncodedUnit) {
        let shared = &self.shared;
        let c = &shared.counters;
        c.frames_in.fetch_add(1, Ordering::Relaxed);
        if let Some(bps) = lock(&self.rate).add(unit.data.len() as u64, Instant::now()) {
            c.bitrate.store(bps, Ordering::Relaxed);
        }
        if shared.fanout.prune() > 0 {
            shared.fan_out(unit);
        }
    }
}

impl Drop for PassthroughFeeder {
    fn drop(&mut self) {
        // The origin is gone: receivers see the end (`recv` gives `None`).
        self.shared.end();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use bytes::Bytes;

    use super::*;

    #[test]
    fn the_rate_is_measured_over_a_second() {
        let t0 = Instant::now();
        let mut rate = RateWindow::new(t0);
        assert_eq!(rate.add(50_000, t0 + Duration::from_millis(500)), None);
        assert_eq!(rate.add(75_000, t0 + RATE_WINDOW), Some(1_000_000));
        assert_eq!(rate.add(1, t0 + RATE_WINDOW), None, "a new window");
    }

    #[test]
    fn a_passthrough_forwards_units_and_asks_its_origin_for_keyframes() {
        let asked = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&asked);
        let (track, feeder) =
            EncodedTrack::passthrough(CodecConfig::Vp8 { bitrate: 1 }, move || {
                counter.fetch_add(1, Ordering::Relaxed);
            });
        let unit = |n: u8, keyframe: bool| EncodedUnit {
            data: Bytes::from(vec![u8::from(!keyframe), n]),
            keyframe,
            timestamp: Duration::from_millis(33 * u64::from(n)),
            duration: Duration::from_millis(33),
            capture_time_ms: 0,
        };
        feeder.push(unit(0, true)); // no sink yet: counted, not sent
        let sink = track.subscribe(2);
        assert_eq!(
            asked.load(Ordering::Relaxed),
            1,
            "a new sink asks for a keyframe"
        );
        feeder.push(unit(1, false)); // skipped: the sink starts on a keyframe
        feeder.push(unit(2, true));
        feeder.push(unit(3, false));
        let got: Vec<u8> = std::iter::from_fn(|| sink.recv_timeout(Duration::ZERO).ok().flatten())
            .map(|u| u.data[1])
            .collect();
        assert_eq!(got, [2, 3]);
        // Full: the sink loses units, asks for a keyframe and resumes on one.
        for n in 4..8 {
            feeder.push(unit(n, false));
        }
        assert!(sink.dropped() >= 2 && asked.load(Ordering::Relaxed) >= 2);
        while let Ok(Some(_)) = sink.recv_timeout(Duration::ZERO) {}
        feeder.push(unit(8, false));
        feeder.push(unit(9, true));
        let next = sink.recv_timeout(Duration::ZERO).unwrap().unwrap();
        assert_eq!(next.data[1], 9);
        track.request_keyframe();
        assert!(
            asked.load(Ordering::Relaxed) >= 3,
            "a PLI goes to the origin"
        );
        track.set_bitrate(5);
        track.vote_bitrate(1, Some(5));
        let stats = track.stats();
        assert!(stats.passthrough && stats.frames_in == 10 && stats.keyframes_forced == 0);
        assert_ne!(stats.bitrate, 5, "the publisher's rate, not ours to set");
        drop(feeder);
        assert_eq!(
            sink.recv_timeout(Duration::from_secs(1)),
            Err(()),
            "ended with its origin"
        );
    }
}
