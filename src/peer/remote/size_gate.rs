//! Which remote video units reach the decoder, by the picture size they declare (pure): a
//! stream over the [`PictureLimit`] is refused once, with a log line, and its units are
//! dropped — no decode, no allocation, no keyframe request — until a unit declares a size
//! within the limit.

use crate::encode::PictureLimit;

/// What becomes of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    Decode,
    /// Dropped: the stream is over the limit (already reported).
    Drop,
    /// Dropped: the stream has just gone over the limit at this size (report it).
    Refuse {
        width: u32,
        height: u32,
    },
}

#[derive(Debug)]
pub(super) struct SizeGate {
    limit: PictureLimit,
    /// The refused size, while the stream is over the limit.
    refused: Option<(u32, u32)>,
}

impl SizeGate {
    pub(super) fn new(limit: PictureLimit) -> Self {
        SizeGate {
            limit,
            refused: None,
        }
    }

    pub(super) fn limit(&self) -> PictureLimit {
        self.limit
    }

    /// A unit declaring `declared` (a keyframe's or SPS's size; `None` for a unit that
    /// declares none), or a picture decoded at that size.
    pub(super) fn admit(&mut self, declared: Option<(u32, u32)>) -> Admit {
        match declared {
            Some((width, height)) if !self.limit.allows(width, height) => {
                if self.refused.replace((width, height)) == Some((width, height)) {
                    Admit::Drop
                } else {
                    Admit::Refuse { width, height }
                }
            }
            Some(_) => {
                self.refused = None;
                Admit::Decode
            }
            None if self.refused.is_some() => Admit::Drop,
            None => Admit::Decode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_over_the_limit_is_refused_once_then_dropped_until_it_fits() {
        let mut gate = SizeGate::new(PictureLimit::default());
        assert_eq!(gate.admit(Some((640, 480))), Admit::Decode);
        assert_eq!(
            gate.admit(None),
            Admit::Decode,
            "deltas of a stream that fits"
        );
        assert_eq!(
            gate.admit(Some((16383, 16383))),
            Admit::Refuse {
                width: 16383,
                height: 16383
            }
        );
        assert_eq!(gate.admit(None), Admit::Drop, "its deltas");
        assert_eq!(
            gate.admit(Some((16383, 16383))),
            Admit::Drop,
            "reported once"
        );
        assert_eq!(
            gate.admit(Some((8192, 8192))),
            Admit::Refuse {
                width: 8192,
                height: 8192
            },
            "a new size is reported"
        );
        assert_eq!(
            gate.admit(Some((1280, 720))),
            Admit::Decode,
            "back within it"
        );
        assert_eq!(gate.admit(None), Admit::Decode);
    }
}
