//! Which devices have open sources, since when, and whether every track on them is muted:
//! the "devices in use" report behind the privacy indicator, kept by leases that each
//! worker holds for as long as its source is open.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use super::delivery::TrackOutput;
use crate::sync::lock;

/// The tracks a worker feeds, as the worker keeps them.
pub(crate) type Outputs = Mutex<Vec<Weak<TrackOutput>>>;

/// One open source of a device.
#[derive(Debug)]
struct Open {
    since: SystemTime,
    /// The tracks on it, once its worker runs: muted when every live one is disabled.
    outputs: Weak<Outputs>,
}

/// One device's use now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceUse {
    /// Sources of the device open now (a track and its clones share one).
    pub(crate) open_sources: usize,
    /// When the oldest of them opened.
    pub(crate) since: SystemTime,
    /// Every live track on the device is disabled (`enabled = false`): it is open but
    /// sends black frames or silence.
    pub(crate) muted: bool,
}

/// Which devices have open sources: the "devices in use" report.
#[derive(Debug, Default)]
pub(crate) struct UsageRegistry {
    open: Mutex<BTreeMap<String, BTreeMap<u64, Open>>>,
    next: Mutex<u64>,
}

impl UsageRegistry {
    pub(crate) fn lease(self: &Arc<Self>, device_id: &str) -> DeviceLease {
        let key = {
            let mut next = lock(&self.next);
            *next += 1;
            *next
        };
        lock(&self.open)
            .entry(device_id.to_owned())
            .or_default()
            .insert(
                key,
                Open {
                    since: SystemTime::now(),
                    outputs: Weak::new(),
                },
            );
        DeviceLease {
            registry: Arc::clone(self),
            device_id: device_id.to_owned(),
            key,
        }
    }

    /// How many sources of each device are open, by deviceId.
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> BTreeMap<String, usize> {
        self.report()
            .into_iter()
            .map(|(id, u)| (id, u.open_sources))
            .collect()
    }

    /// Every device with an open source, by deviceId: how many, since when, muted or not.
    pub(crate) fn report(&self) -> BTreeMap<String, DeviceUse> {
        lock(&self.open)
            .iter()
            .filter(|(_, opens)| !opens.is_empty())
            .map(|(id, opens)| {
                let since = opens
                    .values()
                    .map(|o| o.since)
                    .min()
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                let mut any_live = false;
                let mut all_muted = true;
                for open in opens.values() {
                    let Some(outputs) = open.outputs.upgrade() else {
                        // A worker not started yet: its first track is enabled.
                        all_muted = false;
                        continue;
                    };
                    for output in lock(&outputs).iter().filter_map(Weak::upgrade) {
                        if output.is_ended() {
                            continue;
                        }
                        any_live = true;
                        all_muted &= !output.enabled();
                    }
                }
                let usage = DeviceUse {
                    open_sources: opens.len(),
                    since,
                    muted: any_live && all_muted,
                };
                (id.clone(), usage)
            })
            .collect()
    }
}

/// Counts one open source of a device for as long as it lives.
pub(crate) struct DeviceLease {
    registry: Arc<UsageRegistry>,
    device_id: String,
    key: u64,
}

impl DeviceLease {
    /// The tracks this source feeds, so the report can tell muted from live.
    pub(crate) fn watch(&self, outputs: &Arc<Outputs>) {
        if let Some(open) = lock(&self.registry.open)
            .get_mut(&self.device_id)
            .and_then(|o| o.get_mut(&self.key))
        {
            open.outputs = Arc::downgrade(outputs);
        }
    }
}

impl Drop for DeviceLease {
    fn drop(&mut self) {
        let mut open = lock(&self.registry.open);
        if let Some(opens) = open.get_mut(&self.device_id) {
            opens.remove(&self.key);
            if opens.is_empty() {
                open.remove(&self.device_id);
            }
        }
        tracing::info!("device released: {:?}", self.device_id);
    }
}
