//! MediaStreamConstraints: the types, their JSON form, validation, fitness distance and
//! SelectSettings. Pure logic — no I/O, no async — so it is cheap to test exhaustively.
//!
//! Written here rather than taken from the `webrtc-constraints` crate: selection needs
//! crop-and-scale candidates, advanced sets applied across devices, and error messages
//! naming the key path, none of which that crate models.

mod candidates;
mod fitness;
mod legacy;
mod model;
mod parse;
mod property;
mod select;
mod settings;
mod value;

pub use candidates::{Candidate, CandidateValues, CandidateView};
pub use fitness::{constraint_distance, first_unmet_required, fitness_distance};
pub use legacy::{legacy_keys, legacy_translations, LegacyMember, LegacyTranslation};
pub use model::{AudioMode, DeviceModel, DeviceModes, FacingMode, ResizeMode, VideoMode};
pub use parse::ConstraintsError;
pub use property::{MediaKind, Property, SupportedConstraints, ValueType};
pub use select::{explain_selection, select_settings, CandidateReport, Selection};
pub use settings::{MediaTrackCapabilities, MediaTrackSettings, Range, SettingValue, Settings};
pub use value::{
    Constraint, ConstraintSet, Flag, FlagConstraint, MediaStreamConstraints, MediaTrackConstraints,
    NumberConstraint, StringConstraint,
};
