//! A track's events — `mute`, `unmute`, `ended` — handed to its listeners over bounded
//! channels, in the order they happen (a listener that does not read loses events,
//! counted; it never blocks the source).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sync::lock;

/// Events a listener can miss before it loses some: far more than a script produces
/// between two reads.
const EVENT_QUEUE: usize = 64;

/// One of a track's events, as a page's `onmute`, `onunmute` and `onended` see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackEvent {
    /// The source cannot provide media for now: `muted` is true, and the track delivers
    /// black frames or silence.
    Mute,
    /// The source provides media again: `muted` is false.
    Unmute,
    /// The track ended (the last event), with the reason (`"stopped"`, `"source ended:
    /// ..."`).
    Ended { reason: String },
}

/// The receiving end of `MediaStreamTrack::events()`: a track's events in order.
pub struct TrackEventReceiver {
    rx: Receiver<TrackEvent>,
    lost: Arc<AtomicU64>,
}

impl TrackEventReceiver {
    /// The next event within `timeout` (`None`: none came, or the track has ended and its
    /// `Ended` event was read).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<TrackEvent> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// An event if one is waiting.
    pub fn try_recv(&self) -> Option<TrackEvent> {
        self.rx.try_recv().ok()
    }

    /// Events lost because this listener's queue was full.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

struct Listener {
    tx: SyncSender<TrackEvent>,
    lost: Arc<AtomicU64>,
}

/// A track's listeners.
#[derive(Default)]
pub(super) struct Listeners {
    listeners: Mutex<Vec<Listener>>,
}

impl Listeners {
    /// A new listener; `ended` if the track has ended already (its reason is sent at once).
    pub(super) fn listen(&self, ended: Option<&str>) -> TrackEventReceiver {
        let (tx, rx) = mpsc::sync_channel(EVENT_QUEUE);
        let lost = Arc::new(AtomicU64::new(0));
        match ended {
            Some(reason) => {
                let _ = tx.try_send(TrackEvent::Ended {
                    reason: reason.to_owned(),
                });
            }
            None => lock(&self.listeners).push(Listener {
                tx,
                lost: Arc::clone(&lost),
            }),
        }
        TrackEventReceiver { rx, lost }
    }

    /// Hands `event` to every listener; after `Ended`, the listeners are let go.
    pub(super) fn send(&self, event: TrackEvent) {
        let last = matches!(event, TrackEvent::Ended { .. });
        let mut listeners = lock(&self.listeners);
        listeners.retain(|l| match l.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                l.lost.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
        if last {
            listeners.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_get_events_in_order_and_late_ones_the_end() {
        let l = Listeners::default();
        let rx = l.listen(None);
        l.send(TrackEvent::Mute);
        l.send(TrackEvent::Unmute);
        l.send(TrackEvent::Ended {
            reason: "stopped".into(),
        });
        l.send(TrackEvent::Mute); // nobody listens after the end
        let got: Vec<TrackEvent> = std::iter::from_fn(|| rx.try_recv()).collect();
        assert_eq!(
            got,
            [
                TrackEvent::Mute,
                TrackEvent::Unmute,
                TrackEvent::Ended {
                    reason: "stopped".into()
                }
            ]
        );
        assert_eq!(rx.recv_timeout(Duration::from_millis(1)), None);
        let late = l.listen(Some("stopped"));
        assert_eq!(
            late.try_recv(),
            Some(TrackEvent::Ended {
                reason: "stopped".into()
            })
        );
        // A listener that never reads loses events, counted.
        let slow = Listeners::default();
        let rx = slow.listen(None);
        for _ in 0..EVENT_QUEUE + 3 {
            slow.send(TrackEvent::Mute);
        }
        assert_eq!(rx.lost(), 3);
    }
}
