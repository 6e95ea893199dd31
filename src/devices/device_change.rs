//! `devicechange`: the subscribers of a [`MediaDevices`](super::MediaDevices) told when one
//! of its devices is unplugged or replugged. The edge of the pure timeline: one thread,
//! started by the first subscription, sleeps until the timeline's next such event, tells
//! every subscriber, and ends after the last event or once the devices are dropped.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::descriptor::MediaDeviceKind;
use super::scripted::ScriptClock;
use super::timeline::DeviceAction;
use crate::sync::lock;

/// Changes a subscriber can leave unread before it loses some.
const CHANGE_QUEUE: usize = 64;

/// One `devicechange`: which device came or went, and when on the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceChange {
    pub device_id: String,
    pub kind: MediaDeviceKind,
    /// [`DeviceAction::Unplug`] (gone from `enumerateDevices()`) or
    /// [`DeviceAction::Replug`] (listed again).
    pub action: DeviceAction,
    /// The event's time, after the devices were loaded.
    pub at: Duration,
}

/// The receiving end of [`MediaDevices::on_device_change`](super::MediaDevices::on_device_change).
pub struct DeviceChangeReceiver {
    rx: Receiver<DeviceChange>,
}

impl DeviceChangeReceiver {
    /// The next change within `timeout` (`None`: none came, or none can come any more).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<DeviceChange> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// A change if one is waiting.
    pub fn try_recv(&self) -> Option<DeviceChange> {
        self.rx.try_recv().ok()
    }
}

type Subscribers = Mutex<Vec<SyncSender<DeviceChange>>>;

/// The subscribers of one `MediaDevices` and the thread that tells them.
#[derive(Debug, Default)]
pub(super) struct DeviceChangeHub {
    subscribers: Arc<Subscribers>,
    /// Dropped with the hub: wakes the thread, which then ends.
    stop: Mutex<Option<mpsc::Sender<()>>>,
}

impl DeviceChangeHub {
    /// A new subscriber of the changes `clock` plays on the devices `kinds` (by id), the
    /// thread started if it is not running.
    pub(super) fn subscribe(
        &self,
        clock: Option<&Arc<ScriptClock>>,
        kinds: impl FnOnce() -> HashMap<String, MediaDeviceKind>,
    ) -> DeviceChangeReceiver {
        let (tx, rx) = mpsc::sync_channel(CHANGE_QUEUE);
        let Some(clock) = clock else {
            // Nothing scripted: no change ever comes (the sender is dropped).
            return DeviceChangeReceiver { rx };
        };
        let more = clock
            .timeline()
            .next_after(clock.elapsed(), |e| e.action.changes_devices());
        if more.is_none() {
            // Every change has happened: none will come.
            return DeviceChangeReceiver { rx };
        }
        lock(&self.subscribers).push(tx);
        let mut stop = lock(&self.stop);
        if stop.is_none() {
            let (stop_tx, stop_rx) = mpsc::channel();
            let clock = Arc::clone(clock);
            let subscribers = Arc::downgrade(&self.subscribers);
            let kinds = kinds();
            let spawned = std::thread::Builder::new()
                .name("devicechange".into())
                .spawn(move || run(&clock, &subscribers, &kinds, &stop_rx));
            match spawned {
                Ok(_) => *stop = Some(stop_tx),
                Err(e) => tracing::warn!("cannot start the devicechange thread: {e}"),
            }
        }
        DeviceChangeReceiver { rx }
    }
}

/// Tells `subscribers` each unplug and replug of the timeline from now on, at its time.
fn run(
    clock: &ScriptClock,
    subscribers: &Weak<Subscribers>,
    kinds: &HashMap<String, MediaDeviceKind>,
    stop: &Receiver<()>,
) {
    let timeline = clock.timeline();
    let mut played = clock.elapsed();
    while let Some(next) = timeline.next_after(played, |e| e.action.changes_devices()) {
        let wait = next.saturating_sub(clock.elapsed());
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            // The devices are gone.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(subscribers) = subscribers.upgrade() else {
            return;
        };
        let mut subscribers = lock(&subscribers);
        for e in timeline
            .between(played, next)
            .filter(|e| e.action.changes_devices())
        {
            let Some(&kind) = kinds.get(&e.device) else {
                continue;
            };
            let change = DeviceChange {
                device_id: e.device.clone(),
                kind,
                action: e.action,
                at: e.at,
            };
            tracing::info!(
                "devicechange: {kind} {:?} {}ged",
                change.device_id,
                e.action.as_str()
            );
            subscribers.retain(|s| {
                !matches!(
                    s.try_send(change.clone()),
                    Err(TrySendError::Disconnected(_))
                )
            });
        }
        played = next;
    }
    // The last change is told: the subscribers' channels close.
    if let Some(subscribers) = subscribers.upgrade() {
        lock(&subscribers).clear();
    }
}
