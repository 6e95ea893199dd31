//! Scripted device timelines (the devices file's `"events"`): what happens to which device
//! when — fail, unplug, replug, mute, unmute — and so each device's condition at a given
//! time, the events between two times and the next one due. Pure: fed the time since the
//! devices were loaded; `scripted.rs` and `device_change.rs` are the edges that make
//! sources, tracks and `devicechange` subscribers act on it.

use std::time::Duration;

/// The longest time an event may be scripted at: a year, in seconds.
pub const MAX_EVENT_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// What an event does to its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceAction {
    /// The device breaks for good: its tracks end (`"source ended: NotReadableError: ..."`)
    /// and opening it again is a `NotReadableError`.
    Fail,
    /// The device goes away: its tracks end (`"source ended: ... unplugged ..."`), it leaves
    /// `enumerateDevices()` and selection, and `devicechange` fires.
    Unplug,
    /// An unplugged device comes back: listed and selectable again (its ended tracks stay
    /// ended, as in a browser), and `devicechange` fires.
    Replug,
    /// The device cannot provide media for a while: its tracks become `muted` (a `mute`
    /// event) and deliver black frames or silence at the same pace.
    Mute,
    /// The muted device provides media again: `unmute`, and its frames flow again.
    Unmute,
}

impl DeviceAction {
    /// Every action, as the devices file spells it.
    pub const ALL: [DeviceAction; 5] = [
        DeviceAction::Fail,
        DeviceAction::Unplug,
        DeviceAction::Replug,
        DeviceAction::Mute,
        DeviceAction::Unmute,
    ];

    /// The devices file's name of the action.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceAction::Fail => "fail",
            DeviceAction::Unplug => "unplug",
            DeviceAction::Replug => "replug",
            DeviceAction::Mute => "mute",
            DeviceAction::Unmute => "unmute",
        }
    }

    /// The action named `name`, or an error listing the known ones.
    pub fn parse(name: &str) -> Result<Self, String> {
        if let Some(a) = Self::ALL.into_iter().find(|a| a.as_str() == name) {
            return Ok(a);
        }
        let known = Self::ALL.map(|a| format!("{:?}", a.as_str())).join(", ");
        Err(format!("unknown action {name:?}; expected one of: {known}"))
    }

    /// Whether the action changes the list of devices (`devicechange` fires).
    pub fn changes_devices(self) -> bool {
        matches!(self, DeviceAction::Unplug | DeviceAction::Replug)
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
    /// Plugged in and working, but muted since `at` (by a `mute` event, or since its
    /// replug at `at` if it was unplugged while muted).
    Muted { at: Duration },
    /// Unplugged at `at` (until a replug).
    Unplugged { at: Duration },
    /// Failed at `at` (and stays failed).
    Failed { at: Duration },
}

/// An event that cannot follow the ones before it on its device (a replug without an
/// unplug, a mute of a muted device, anything after a failure, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {index}: {problem}")]
pub struct TimelineError {
    /// The event's index in the list given (the devices file's `events[index]`).
    pub index: usize,
    /// What is wrong, naming the device and the times.
    pub problem: String,
}

/// One device's state while its events are applied in order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct State {
    failed: Option<Duration>,
    unplugged: Option<Duration>,
    muted: Option<Duration>,
    replugged: Option<Duration>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl State {
    /// The state after `e`, or why `e` cannot happen now.
    fn step(self, e: &DeviceEvent) -> Result<State, String> {
        let d = &e.device;
        let at = secs(e.at);
        if let Some(f) = self.failed {
            return Err(format!(
                "{d:?} failed for good at {} s; no event may follow (\"{}\" at {at} s)",
                secs(f),
                e.action.as_str()
            ));
        }
        let mut next = self;
        match (e.action, self.unplugged) {
            (DeviceAction::Replug, Some(_)) => {
                next.unplugged = None;
                next.replugged = Some(e.at);
            }
            (DeviceAction::Replug, None) => {
                return Err(format!(
                    "replug of {d:?} at {at} s without an unplug before it"
                ))
            }
            (_, Some(u)) => {
                return Err(format!(
                    "{d:?} is unplugged at {at} s (since {} s): \"{}\" needs a replug first",
                    secs(u),
                    e.action.as_str()
                ))
            }
            (DeviceAction::Fail, None) => next.failed = Some(e.at),
            (DeviceAction::Unplug, None) => next.unplugged = Some(e.at),
            (DeviceAction::Mute, None) => match self.muted {
                Some(m) => {
                    return Err(format!(
                        "mute of {d:?} at {at} s: it is muted already (since {} s)",
                        secs(m)
                    ))
                }
                None => next.muted = Some(e.at),
            },
            (DeviceAction::Unmute, None) => match self.muted {
                Some(_) => next.muted = None,
                None => {
                    return Err(format!(
                        "unmute of {d:?} at {at} s without a mute before it"
                    ))
                }
            },
        }
        Ok(next)
    }

    fn condition(self) -> DeviceCondition {
        match self {
            State {
                failed: Some(at), ..
            } => DeviceCondition::Failed { at },
            State {
                unplugged: Some(at),
                ..
            } => DeviceCondition::Unplugged { at },
            State {
                muted: Some(at),
                replugged,
                ..
            } => DeviceCondition::Muted {
                at: replugged.map_or(at, |r| r.max(at)),
            },
            _ => DeviceCondition::Working,
        }
    }
}

/// The events of a devices file, in time order (events at the same time in file order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceTimeline {
    events: Vec<DeviceEvent>,
}

impl DeviceTimeline {
    /// The events, put in time order. Lenient: an event that cannot follow the ones
    /// before it on its device (see [`try_new`](Self::try_new)) is ignored.
    pub fn new(mut events: Vec<DeviceEvent>) -> Self {
        events.sort_by_key(|e| e.at);
        DeviceTimeline { events }
    }

    /// The events, put in time order, or the first (in time order) that cannot follow the
    /// ones before it on its device: a replug of a device not unplugged, an unplug of an
    /// unplugged one, a mute of a muted device, an unmute of one not muted, anything but a
    /// replug while unplugged, anything after a failure.
    pub fn try_new(events: Vec<DeviceEvent>) -> Result<Self, TimelineError> {
        let mut order: Vec<(usize, DeviceEvent)> = events.into_iter().enumerate().collect();
        order.sort_by_key(|(_, e)| e.at);
        let mut states: std::collections::HashMap<String, State> = Default::default();
        for (index, e) in &order {
            let state = states.entry(e.device.clone()).or_default();
            *state = state.step(e).map_err(|problem| TimelineError {
                index: *index,
                problem,
            })?;
        }
        Ok(DeviceTimeline {
            events: order.into_iter().map(|(_, e)| e).collect(),
        })
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

    /// `device`'s state after its events up to `elapsed` (inclusive), applied in order.
    fn state(&self, device: &str, elapsed: Duration) -> State {
        self.events
            .iter()
            .take_while(|e| e.at <= elapsed)
            .filter(|e| e.device == device)
            .fold(State::default(), |now, e| now.step(e).unwrap_or(now))
    }

    /// The condition of `device` at `elapsed` since the devices were loaded: its events up
    /// to then (inclusive), applied in order.
    pub fn condition(&self, device: &str, elapsed: Duration) -> DeviceCondition {
        self.state(device, elapsed).condition()
    }

    /// Whether `device` is plugged in at `elapsed` (listed and selectable): not unplugged.
    /// A failed device stays listed, as a broken camera does.
    pub fn is_present(&self, device: &str, elapsed: Duration) -> bool {
        self.state(device, elapsed).unplugged.is_none()
    }

    /// When `device`, unplugged at `elapsed`, is replugged (`None`: it is not unplugged
    /// then, or no replug follows).
    pub fn replug_at(&self, device: &str, elapsed: Duration) -> Option<Duration> {
        self.state(device, elapsed).unplugged?;
        self.events
            .iter()
            .find(|e| e.at > elapsed && e.device == device && e.action == DeviceAction::Replug)
            .map(|e| e.at)
    }

    /// The events after `from` up to `to` (inclusive), in order.
    pub fn between(&self, from: Duration, to: Duration) -> impl Iterator<Item = &DeviceEvent> {
        self.events
            .iter()
            .skip_while(move |e| e.at <= from)
            .take_while(move |e| e.at <= to)
    }

    /// When the first event after `elapsed` for which `wanted` holds is due.
    pub fn next_after(
        &self,
        elapsed: Duration,
        wanted: impl Fn(&DeviceEvent) -> bool,
    ) -> Option<Duration> {
        self.events
            .iter()
            .find(|e| e.at > elapsed && wanted(e))
            .map(|e| e.at)
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

/// The devices file's events as a timeline: each checked on its own
/// ([`event_from_file`]), then in sequence ([`DeviceTimeline::try_new`]; the error names
/// `events[i].do`).
pub(super) fn timeline_from_file(events: Vec<DeviceEvent>) -> Result<DeviceTimeline, String> {
    DeviceTimeline::try_new(events).map_err(|e| format!("events[{}].do: {}", e.index, e.problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn ev(at: f64, device: &str, action: DeviceAction) -> DeviceEvent {
        DeviceEvent {
            at: s(at),
            device: device.into(),
            action,
        }
    }

    fn fail(at: f64, device: &str) -> DeviceEvent {
        ev(at, device, DeviceAction::Fail)
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
        for action in DeviceAction::ALL {
            let e = event_from_file(3.0, "back", action.as_str(), &ids, "events[0]").unwrap();
            assert_eq!(e.action, action);
        }
        for bad in [-1.0, f64::NAN, f64::INFINITY, MAX_EVENT_SECONDS * 2.0] {
            let m = event_from_file(bad, "back", "fail", &ids, "events[2]").unwrap_err();
            assert!(m.starts_with("events[2].at_s:"), "{m}");
        }
    }

    #[test]
    fn unplug_replug_mute_and_unmute_change_the_condition_in_order() {
        use DeviceAction::*;
        let t = DeviceTimeline::try_new(vec![
            ev(3.0, "back", Unplug),
            ev(6.0, "back", Replug),
            ev(4.0, "mic", Mute),
            ev(5.0, "mic", Unmute),
            ev(1.0, "back", Mute),
        ])
        .unwrap();
        assert_eq!(t.condition("back", s(0.5)), DeviceCondition::Working);
        assert_eq!(
            t.condition("back", s(1.0)),
            DeviceCondition::Muted { at: s(1.0) }
        );
        assert_eq!(
            t.condition("back", s(3.0)),
            DeviceCondition::Unplugged { at: s(3.0) }
        );
        assert!(!t.is_present("back", s(3.0)) && t.is_present("back", s(2.9)));
        assert_eq!(t.replug_at("back", s(3.5)), Some(s(6.0)));
        assert_eq!(t.replug_at("back", s(2.0)), None, "not unplugged then");
        // Unplugged while muted: it comes back muted.
        assert_eq!(
            t.condition("back", s(6.0)),
            DeviceCondition::Muted { at: s(6.0) }
        );
        assert!(t.is_present("back", s(6.0)));
        assert_eq!(
            t.condition("mic", s(4.2)),
            DeviceCondition::Muted { at: s(4.0) }
        );
        assert_eq!(t.condition("mic", s(5.0)), DeviceCondition::Working);
        // The edges ask what happened between two times and what comes next.
        let seen: Vec<(&str, DeviceAction)> = t
            .between(s(3.0), s(5.0))
            .map(|e| (e.device.as_str(), e.action))
            .collect();
        assert_eq!(
            seen,
            [("mic", Mute), ("mic", Unmute)],
            "after 3 s, up to 5 s"
        );
        assert_eq!(
            t.next_after(s(3.0), |e| e.action.changes_devices()),
            Some(s(6.0))
        );
        assert_eq!(t.next_after(s(6.0), |_| true), None);
    }

    #[test]
    fn events_that_cannot_follow_the_ones_before_are_errors_naming_them() {
        use DeviceAction::*;
        let problem = |events: Vec<DeviceEvent>| DeviceTimeline::try_new(events).unwrap_err();
        let e = problem(vec![ev(6.0, "back", Replug)]);
        assert_eq!(e.index, 0);
        assert!(e.problem.contains("without an unplug"), "{e}");
        // Indices are the list's, not the time order's.
        let e = problem(vec![
            ev(5.0, "mic", Unmute),
            ev(4.0, "mic", Mute),
            ev(6.0, "mic", Unmute),
        ]);
        assert_eq!(e.index, 2, "{e}");
        let e = problem(vec![ev(1.0, "mic", Mute), ev(2.0, "mic", Mute)]);
        assert!(e.index == 1 && e.problem.contains("muted already"), "{e}");
        let e = problem(vec![ev(1.0, "back", Unplug), ev(2.0, "back", Unplug)]);
        assert!(e.index == 1 && e.problem.contains("unplugged"), "{e}");
        let e = problem(vec![ev(1.0, "back", Unplug), ev(2.0, "back", Mute)]);
        assert!(e.problem.contains("replug first"), "{e}");
        let e = problem(vec![ev(1.0, "back", Fail), ev(2.0, "back", Unplug)]);
        assert!(e.problem.contains("failed for good"), "{e}");
        // Other devices are unaffected; the same event twice on two devices is fine.
        assert!(DeviceTimeline::try_new(vec![ev(1.0, "a", Unplug), ev(1.0, "b", Unplug)]).is_ok());
        assert_eq!(
            timeline_from_file(vec![ev(6.0, "back", Replug)]).unwrap_err(),
            "events[0].do: replug of \"back\" at 6 s without an unplug before it"
        );
        // The lenient constructor ignores what cannot happen.
        let t = DeviceTimeline::new(vec![ev(1.0, "back", Replug), ev(2.0, "back", Unmute)]);
        assert_eq!(t.condition("back", s(3.0)), DeviceCondition::Working);
    }
}
