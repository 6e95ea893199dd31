//! The encoded units of a video track since its last keyframe, bounded (pure): a consumer
//! added mid-stream (a recorder, a relay) is handed them first, so it starts at a
//! keyframe instead of waiting for the next one. Frames are handed on as soon as they are
//! complete, so the stream's first keyframe is often out before the application has
//! subscribed.

use crate::encode::EncodedUnit;

/// The most units held (a group of pictures longer than this is not held).
pub(super) const MAX_UNITS: usize = 256;
/// The most bytes held.
pub(super) const MAX_BYTES: usize = 8 << 20;

/// The units since the last keyframe, while they fit the bounds.
#[derive(Default)]
pub(super) struct CatchUp {
    units: Vec<EncodedUnit>,
    bytes: usize,
    /// Units since the last keyframe went over the bounds: none is held until the next.
    overflowed: bool,
}

impl CatchUp {
    /// Takes the next unit of the stream.
    pub(super) fn keep(&mut self, unit: &EncodedUnit) {
        if unit.keyframe {
            self.units.clear();
            self.bytes = 0;
            self.overflowed = false;
        } else if self.units.is_empty() {
            return; // no keyframe to start from
        }
        if self.units.len() >= MAX_UNITS || self.bytes + unit.data.len() > MAX_BYTES {
            self.units = Vec::new();
            self.bytes = 0;
            self.overflowed = true;
            return;
        }
        self.bytes += unit.data.len();
        self.units.push(unit.clone());
    }

    /// The units from the last keyframe on; empty when none is held.
    pub(super) fn units(&self) -> &[EncodedUnit] {
        &self.units
    }

    /// The units since the last keyframe were too many to hold: a new consumer needs a
    /// new keyframe.
    pub(super) fn overflowed(&self) -> bool {
        self.overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    fn unit(n: u8, keyframe: bool, len: usize) -> EncodedUnit {
        EncodedUnit {
            data: Bytes::from(vec![n; len]),
            keyframe,
            timestamp: Duration::from_millis(u64::from(n)),
            duration: Duration::ZERO,
            capture_time_ms: 0,
        }
    }

    fn held(c: &CatchUp) -> Vec<u8> {
        c.units().iter().map(|u| u.data[0]).collect()
    }

    #[test]
    fn units_from_the_last_keyframe_on_are_held() {
        let mut c = CatchUp::default();
        c.keep(&unit(1, false, 10));
        assert!(held(&c).is_empty(), "no keyframe yet: nothing decodable");
        c.keep(&unit(2, true, 10));
        c.keep(&unit(3, false, 10));
        assert_eq!(held(&c), [2, 3]);
        c.keep(&unit(4, true, 10));
        c.keep(&unit(5, false, 10));
        assert_eq!(held(&c), [4, 5]);
        assert!(!c.overflowed());
    }

    #[test]
    fn a_group_over_the_bounds_is_not_held_until_the_next_keyframe() {
        let mut c = CatchUp::default();
        c.keep(&unit(0, true, 10));
        for n in 1..MAX_UNITS {
            c.keep(&unit(n as u8, false, 10));
        }
        assert_eq!(c.units().len(), MAX_UNITS);
        c.keep(&unit(1, false, 10));
        assert!(c.units().is_empty() && c.overflowed());
        c.keep(&unit(2, false, 10));
        assert!(c.units().is_empty(), "not from the middle of a group");
        c.keep(&unit(3, true, 10));
        assert_eq!(held(&c), [3]);
        assert!(!c.overflowed());
        // By bytes.
        c.keep(&unit(4, false, MAX_BYTES));
        assert!(c.units().is_empty() && c.overflowed());
    }
}
