//! Fan-out: the sinks of one encoder (bounded channels to threads or async tasks), their
//! receiving ends, and the rules a unit reaches them by — a sink starts on a keyframe, a
//! full sink loses units and resumes on the next keyframe, the end reaches every receiver.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::encode::EncodedUnit;
use crate::sync::lock;

/// A sink's sending end: a std channel for threads, a tokio one for async tasks.
enum SinkTx {
    Blocking(SyncSender<EncodedUnit>),
    Async(tokio::sync::mpsc::Sender<EncodedUnit>),
}

enum Sent {
    Ok,
    Full,
    Gone,
}

impl SinkTx {
    fn try_send(&self, unit: EncodedUnit) -> Sent {
        match self {
            SinkTx::Blocking(tx) => match tx.try_send(unit) {
                Ok(()) => Sent::Ok,
                Err(TrySendError::Full(_)) => Sent::Full,
                Err(TrySendError::Disconnected(_)) => Sent::Gone,
            },
            SinkTx::Async(tx) => match tx.try_send(unit) {
                Ok(()) => Sent::Ok,
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => Sent::Full,
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => Sent::Gone,
            },
        }
    }
}

struct Sink {
    tx: SinkTx,
    dropped: Arc<AtomicU64>,
    /// Dead once the receiver is dropped: lets the encoder idle without sending.
    alive: Weak<()>,
    /// Lost a unit (or just joined): skip deltas until a keyframe.
    needs_keyframe: bool,
    /// Has received a unit: deltas skipped from then on count as dropped.
    started: bool,
}

/// The sinks of one encoder.
#[derive(Default)]
pub(super) struct Fanout {
    sinks: Mutex<Vec<Sink>>,
    /// The source is gone (the track ended, a passthrough's feeder was dropped): `sinks`
    /// was cleared and new sinks are not kept, so every receiver sees the end (`None`)
    /// instead of waiting forever on a sender that handles still hold. Set under the
    /// `sinks` lock.
    ended: AtomicBool,
}

impl Fanout {
    /// A blocking sink of `capacity` units; `true` if it was added (`false`: the source
    /// has ended, and so has the receiver).
    pub(super) fn subscribe(&self, capacity: usize) -> (EncodedReceiver, bool) {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let (dropped, alive, added) = self.add(SinkTx::Blocking(tx));
        let rx = EncodedReceiver {
            rx,
            dropped,
            _alive: alive,
        };
        (rx, added)
    }

    /// [`subscribe`](Self::subscribe) for async consumers.
    pub(super) fn subscribe_async(&self, capacity: usize) -> (AsyncEncodedReceiver, bool) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        let (dropped, alive, added) = self.add(SinkTx::Async(tx));
        let rx = AsyncEncodedReceiver {
            rx,
            dropped,
            _alive: alive,
        };
        (rx, added)
    }

    fn add(&self, tx: SinkTx) -> (Arc<AtomicU64>, Arc<()>, bool) {
        let dropped = Arc::new(AtomicU64::new(0));
        let alive = Arc::new(());
        let mut sinks = lock(&self.sinks);
        if self.ended.load(Ordering::Relaxed) {
            // Nothing will come: dropping `tx` here ends the receiver at once.
            return (dropped, alive, false);
        }
        sinks.push(Sink {
            tx,
            dropped: Arc::clone(&dropped),
            alive: Arc::downgrade(&alive),
            needs_keyframe: true,
            started: false,
        });
        (dropped, alive, true)
    }

    /// The source is gone: drops every sink's sender (receivers get `None`) and refuses
    /// new ones. The senders would otherwise live as long as any handle (a set's
    /// `Running`, a viewer's tap) and receivers would wait forever.
    pub(super) fn end(&self) {
        let mut sinks = lock(&self.sinks);
        self.ended.store(true, Ordering::Relaxed);
        sinks.clear();
    }

    /// Forgets sinks whose receiver was dropped; the live ones left.
    pub(super) fn prune(&self) -> usize {
        let mut sinks = lock(&self.sinks);
        sinks.retain(|s| s.alive.strong_count() > 0);
        sinks.len()
    }

    /// Live sinks (receivers not dropped) now.
    pub(super) fn live(&self) -> usize {
        lock(&self.sinks)
            .iter()
            .filter(|s| s.alive.strong_count() > 0)
            .count()
    }

    /// Sends `unit` to every live sink: a sink waiting for a keyframe skips deltas; a full
    /// sink loses the unit (counted) and, for `video`, waits for the next keyframe. Returns
    /// whether a sink lost sync that way (a keyframe should be requested).
    pub(super) fn send(&self, unit: &EncodedUnit, video: bool) -> bool {
        let mut lost_sync = false;
        lock(&self.sinks).retain_mut(|s| {
            if s.needs_keyframe && !unit.keyframe {
                if s.started {
                    s.dropped.fetch_add(1, Ordering::Relaxed);
                }
                return true;
            }
            match s.tx.try_send(unit.clone()) {
                Sent::Ok => {
                    s.needs_keyframe = false;
                    s.started = true;
                    true
                }
                Sent::Full => {
                    s.dropped.fetch_add(1, Ordering::Relaxed);
                    s.needs_keyframe = video;
                    lost_sync |= s.needs_keyframe;
                    true
                }
                Sent::Gone => false,
            }
        });
        lost_sync
    }
}

/// The receiving end of a sink.
pub struct EncodedReceiver {
    rx: Receiver<EncodedUnit>,
    dropped: Arc<AtomicU64>,
    _alive: Arc<()>,
}

impl EncodedReceiver {
    /// The next unit; `None` once the encoder has stopped (track ended).
    pub fn recv(&self) -> Option<EncodedUnit> {
        self.rx.recv().ok()
    }

    /// The next unit within `timeout`: `Ok(None)` on timeout, `Err(())` once stopped.
    #[allow(clippy::result_unit_err)]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<EncodedUnit>, ()> {
        match self.rx.recv_timeout(timeout) {
            Ok(u) => Ok(Some(u)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(()),
        }
    }

    /// Units this sink lost because it fell behind (including deltas skipped while it
    /// waited for a keyframe to resume on).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The receiving end of an async sink.
pub struct AsyncEncodedReceiver {
    rx: tokio::sync::mpsc::Receiver<EncodedUnit>,
    dropped: Arc<AtomicU64>,
    _alive: Arc<()>,
}

impl AsyncEncodedReceiver {
    /// The next unit; `None` once the encoder has stopped.
    pub async fn recv(&mut self) -> Option<EncodedUnit> {
        self.rx.recv().await
    }

    /// Units this sink lost because it fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::{MediaDevices, PermissionPolicy};
    use crate::encode::pipeline::testing::{camera, unit};
    use crate::encode::pipeline::{CodecConfig, EncodedTrack};

    #[test]
    fn a_full_sink_loses_units_and_resumes_on_a_keyframe() {
        let fanout = Fanout::default();
        let (sink, added) = fanout.subscribe(2);
        assert!(added);
        assert!(
            !fanout.send(&unit(0, 0, false), true),
            "skipped: it starts on a keyframe"
        );
        assert_eq!(sink.dropped(), 0, "not started yet: nothing lost");
        fanout.send(&unit(0, 1, true), true);
        fanout.send(&unit(0, 2, false), true);
        assert!(fanout.send(&unit(0, 3, false), true), "full: lost sync");
        assert!(
            !fanout.send(&unit(0, 4, false), true),
            "waits for a keyframe"
        );
        assert_eq!(sink.dropped(), 2);
        let got: Vec<u8> = std::iter::from_fn(|| sink.recv_timeout(Duration::ZERO).ok().flatten())
            .map(|u| u.data[1])
            .collect();
        assert_eq!(got, [1, 2]);
        fanout.send(&unit(0, 5, false), true);
        fanout.send(&unit(0, 6, true), true);
        assert_eq!(
            sink.recv_timeout(Duration::ZERO).unwrap().unwrap().data[1],
            6
        );
    }

    #[test]
    fn ended_sinks_and_late_ones_see_the_end() {
        let fanout = Fanout::default();
        let (sink, _) = fanout.subscribe(2);
        let (dropped, _) = fanout.subscribe_async(2);
        assert_eq!(fanout.live(), 2);
        drop(dropped);
        assert_eq!((fanout.live(), fanout.prune()), (1, 1));
        fanout.end();
        assert_eq!(sink.recv_timeout(Duration::ZERO), Err(()));
        let (late, added) = fanout.subscribe(2);
        assert!(!added);
        assert_eq!(late.recv_timeout(Duration::ZERO), Err(()));
    }

    #[test]
    fn a_slow_sink_loses_units_then_resumes_on_a_keyframe() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let track = camera(&devices, r#"{"video": {"width": 320, "height": 240}}"#);
        let encoded = EncodedTrack::start(&track, CodecConfig::H264 { bitrate: 300_000 }).unwrap();
        let slow = encoded.subscribe(2);
        let fast = encoded.subscribe(256);
        std::thread::sleep(Duration::from_millis(700));
        assert!(slow.dropped() > 5);
        let fast_count =
            std::iter::from_fn(|| fast.recv_timeout(Duration::ZERO).ok().flatten()).count();
        assert!(
            fast_count >= 18,
            "the fast sink was not slowed: {fast_count}"
        );
        // Drain the stale pair; the next unit the slow sink gets is a keyframe.
        let _ = slow.recv();
        let _ = slow.recv();
        let next = slow.recv_timeout(Duration::from_secs(1)).unwrap().unwrap();
        assert!(
            next.keyframe,
            "after losing units a sink resumes on a keyframe"
        );
    }
}
