//! The privacy indicator: which devices are open, since when, muted or live — per device
//! (`devicesInUse` of `/status`) and per kind (the "camera in use" badge).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{MediaDeviceKind, MediaDevices};
use crate::constraints::MediaKind;

/// A device with open sources, as the "devices in use" report shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInUse {
    pub device_id: String,
    pub kind: MediaDeviceKind,
    pub label: String,
    /// Sources of this device open now (a track and its clones share one).
    pub open_sources: usize,
    /// When it opened: milliseconds since the UNIX epoch.
    pub since_ms: u64,
    /// Open, but every track on it is disabled (`enabled = false`): black or silent.
    pub muted: bool,
}

/// What the indicator shows for one kind of device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UseState {
    /// No device of the kind is open.
    Off,
    /// A device of the kind is open and some track on it is enabled.
    Live,
    /// Devices of the kind are open, every track on them disabled.
    Muted,
}

/// One kind's indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindIndicator {
    pub state: UseState,
    /// When the oldest open device of the kind opened (milliseconds since the UNIX
    /// epoch); absent when off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
}

/// The indicator: the camera's and the microphone's state. Nothing in it names a session,
/// a stream or a device, so it may be served to anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Indicator {
    pub camera: KindIndicator,
    pub microphone: KindIndicator,
}

impl Indicator {
    /// The indicator of these devices in use.
    pub fn of(in_use: &[DeviceInUse]) -> Indicator {
        let kind = |kind: MediaDeviceKind| {
            let open: Vec<&DeviceInUse> = in_use.iter().filter(|d| d.kind == kind).collect();
            let state = if open.is_empty() {
                UseState::Off
            } else if open.iter().all(|d| d.muted) {
                UseState::Muted
            } else {
                UseState::Live
            };
            KindIndicator {
                state,
                since_ms: open.iter().map(|d| d.since_ms).min(),
            }
        };
        Indicator {
            camera: kind(MediaDeviceKind::Videoinput),
            microphone: kind(MediaDeviceKind::Audioinput),
        }
    }

    /// Whether any device is open.
    pub fn any_open(&self) -> bool {
        self.camera.state != UseState::Off || self.microphone.state != UseState::Off
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl MediaDevices {
    /// The devices with open sources now, in device order.
    pub fn devices_in_use(&self) -> Vec<DeviceInUse> {
        let open = self.usage.report();
        self.devices
            .iter()
            .filter_map(|d| {
                open.get(d.device_id()).map(|u| DeviceInUse {
                    device_id: d.device_id().to_owned(),
                    kind: d.kind().into(),
                    label: d.label.clone(),
                    open_sources: u.open_sources,
                    since_ms: unix_ms(u.since),
                    muted: u.muted,
                })
            })
            .collect()
    }

    /// The indicator now: per kind, off, live or muted.
    pub fn indicator(&self) -> Indicator {
        Indicator::of(&self.devices_in_use())
    }

    /// Whether a device of `kind` is open now.
    pub fn in_use(&self, kind: MediaKind) -> bool {
        let kind = MediaDeviceKind::from(kind);
        self.devices_in_use().iter().any(|d| d.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(kind: MediaDeviceKind, since_ms: u64, muted: bool) -> DeviceInUse {
        DeviceInUse {
            device_id: format!("{kind:?}{since_ms}"),
            kind,
            label: String::new(),
            open_sources: 1,
            since_ms,
            muted,
        }
    }

    #[test]
    fn a_kind_is_muted_only_when_every_open_device_is() {
        let cam = MediaDeviceKind::Videoinput;
        let ind = Indicator::of(&[device(cam, 20, true), device(cam, 10, false)]);
        assert_eq!(ind.camera.state, UseState::Live);
        assert_eq!(ind.camera.since_ms, Some(10));
        assert_eq!(ind.microphone.state, UseState::Off);
        assert!(ind.any_open());
        let ind = Indicator::of(&[device(cam, 20, true)]);
        assert_eq!(ind.camera.state, UseState::Muted);
        assert!(!Indicator::of(&[]).any_open());
        assert_eq!(
            serde_json::to_value(Indicator::of(&[device(cam, 5, false)])).unwrap(),
            serde_json::json!({"camera": {"state": "live", "sinceMs": 5},
                               "microphone": {"state": "off"}})
        );
    }
}
