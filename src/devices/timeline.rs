//! Scripted device timelines (the devices file's `"events"`): what happens to which device
//! when, and so each device's condition at a given time. Pure: fed the time since the
//! devices were loaded; `scripted.rs` is the edge that makes sources act on it.
//!
//! Only `"fail"` exists so far (a NotReadableError-style failure: the device breaks, its
//! tracks end with the reason, opening it again fails); unplug, replug, mute and unmute
//! (issue 15) are further actions on the same timeline.

use std::time::Duration;

/// The longest time an event may be scripted at: a year, in seconds.
pub const MAX_EVENT_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// What an event does to its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAction {
    /// The device breaks for good: its tracks end (`"source ended: NotReadableError: ..."`)
    /// and opening it again is a `NotReadableError`.
    Fail,
}

impl DeviceAction {
    /// Every action, as the devices file spells it.
    pub const ALL: [DeviceAction; 1] = [DeviceAction::Fail];

    /// The devices file's name of the action.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceAction::Fail => "fail",
        }
    }

    /// The action named `name`, or an error listing the known ones (naming the actions
    /// planned but not yet supported as such).
    pub fn parse(name: &str) -> Result<Self, String> {
        if let Some(a) = Self::ALL.into_iter().find(|a| a.as_str() == name) {
            return Ok(a);
        }
        let known = Self::ALL.map(|a| format!("{:?}", a.as_str())).join(", ");
        if ["unplug", "replug", "mute", "unmute"].contains(&name) {
            Err(format!("{name:?} is not supported yet; supported: {known}"))
        } else {
            Err(format!("unknown action {name:?}; expected one of: {known}"))
        }
    }
}

/// One scripted event: `action` on the device `device` at `at` after the devices were
/// loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEvent {
    pub at: Duration,
    pub device: String,
    pub action: DeviceAction,
}

/// A device's condition at some time of its timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCondition {
    /// As it should be.
    Working,
    /// Failed at `at` (and stays failed).
    Failed { at: Duration },
}

/// The events of a devices file, in time order (events at the same time in file order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceTimeline {
    events: Vec<DeviceEvent>,
}

impl DeviceTimeline {
    pub fn new(mut events: Vec<DeviceEvent>) -> Self {
        events.sort_by_key(|e| e.at);
        DeviceTimeline { events }
    }

    /// The events, in time order.
    pub fn events(&self) -> &[DeviceEvent] {
        &self.events
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Whether any event concerns `device`.
    pub fn scripts(&self, device: &str) -> bool {
        self.events.iter().any(|e| e.device == device)
    }

    /// The condition of `device` at `elapsed` since the devices were loaded: its events up
    /// to then (inclusive), applied in order.
    pub fn condition(&self, device: &str, elapsed: Duration) -> DeviceCondition {
        self.events
            .iter()
            .take_while(|e| e.at <= elapsed)
            .filter(|e| e.device == device)
            .fold(DeviceCondition::Working, |now, e| match (now, e.action) {
                (DeviceCondition::Failed { .. }, DeviceAction::Fail) => now,
                (DeviceCondition::Working, DeviceAction::Fail) => {
                    DeviceCondition::Failed { at: e.at }
                }
            })
    }
}

/// An event as the devices file gives it (`{"at_s": 3, "device": "back", "do": "fail"}`),
/// checked against the file's deviceIds; errors name the field under `at` (`events[0]`).
pub(super) fn event_from_file(
    at_s: f64,
    device: &str,
    action: &str,
    device_ids: &[&str],
    at: &str,
) -> Result<DeviceEvent, String> {
    if !(at_s.is_finite() && (0.0..=MAX_EVENT_SECONDS).contains(&at_s)) {
        return Err(format!(
            "{at}.at_s: must be 0..={MAX_EVENT_SECONDS} seconds, got {at_s}"
        ));
    }
    if !device_ids.contains(&device) {
        let ids = device_ids
            .iter()
            .map(|d| format!("{d:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(format!(
            "{at}.device: no device {device:?} in this file (its devices: {ids})"
        ));
    }
    let action = DeviceAction::parse(action).map_err(|e| format!("{at}.do: {e}"))?;
    Ok(DeviceEvent {
        at: Duration::from_secs_f64(at_s),
        device: device.to_owned(),
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn fail(at: f64, device: &str) -> DeviceEvent {
        DeviceEvent {
            at: s(at),
            device: device.into(),
            action: DeviceAction::Fail,
        }
    }

    #[test]
    fn a_device_fails_at_its_event_and_stays_failed() {
        let t = DeviceTimeline::new(vec![fail(5.0, "mic"), fail(3.0, "back"), fail(4.0, "back")]);
        assert_eq!(t.events()[0].at, s(3.0), "sorted by time");
        assert_eq!(t.condition("back", s(2.999)), DeviceCondition::Working);
        let failed = DeviceCondition::Failed { at: s(3.0) };
        assert_eq!(t.condition("back", s(3.0)), failed);
        assert_eq!(
            t.condition("back", s(4.5)),
            failed,
            "the first failure stays"
        );
        assert_eq!(t.condition("mic", s(4.9)), DeviceCondition::Working);
        assert_eq!(
            t.condition("mic", s(100.0)),
            DeviceCondition::Failed { at: s(5.0) }
        );
        assert_eq!(t.condition("front", s(100.0)), DeviceCondition::Working);
        assert!(t.scripts("back") && !t.scripts("front"));
    }

    #[test]
    fn events_from_the_file_are_checked() {
        let ids = ["back", "mic"];
        let e = event_from_file(3.0, "back", "fail", &ids, "events[0]").unwrap();
        assert_eq!(e, fail(3.0, "back"));
        let m = event_from_file(3.0, "front", "fail", &ids, "events[1]").unwrap_err();
        assert!(
            m.starts_with("events[1].device:") && m.contains("\"front\"") && m.contains("\"back\""),
            "{m}"
        );
        let m = event_from_file(3.0, "back", "explode", &ids, "events[0]").unwrap_err();
        assert!(
            m.starts_with("events[0].do:") && m.contains("\"explode\"") && m.contains("\"fail\""),
            "{m}"
        );
        let m = event_from_file(3.0, "back", "unplug", &ids, "events[0]").unwrap_err();
        assert!(m.contains("not supported yet"), "{m}");
        for bad in [-1.0, f64::NAN, f64::INFINITY, MAX_EVENT_SECONDS * 2.0] {
            let m = event_from_file(bad, "back", "fail", &ids, "events[2]").unwrap_err();
            assert!(m.starts_with("events[2].at_s:"), "{m}");
        }
    }
}
