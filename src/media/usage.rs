//! Which devices have open sources, and how many: the "devices in use" report, kept by
//! leases that each worker holds for as long as its source is open.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::sync::lock;

/// Which devices have open sources, and how many: the "devices in use" report.
#[derive(Debug, Default)]
pub(crate) struct UsageRegistry {
    open: Mutex<BTreeMap<String, usize>>,
}

impl UsageRegistry {
    pub(crate) fn lease(self: &Arc<Self>, device_id: &str) -> DeviceLease {
        *lock(&self.open).entry(device_id.to_owned()).or_insert(0) += 1;
        DeviceLease {
            registry: Arc::clone(self),
            device_id: device_id.to_owned(),
        }
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<String, usize> {
        lock(&self.open).clone()
    }
}

/// Counts one open source of a device for as long as it lives.
pub(crate) struct DeviceLease {
    registry: Arc<UsageRegistry>,
    device_id: String,
}

impl Drop for DeviceLease {
    fn drop(&mut self) {
        let mut open = lock(&self.registry.open);
        if let Some(n) = open.get_mut(&self.device_id) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.device_id);
            }
        }
        tracing::info!("device released: {:?}", self.device_id);
    }
}
