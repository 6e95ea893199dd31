//! The constrainable properties of the spec, their names, value types and the kinds they apply to.

use serde::{Deserialize, Serialize};

/// The kind of a track: the spec's `"audio"` / `"video"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    /// `"audio"` or `"video"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }

    /// The device kind that produces this track kind: `"audioinput"` / `"videoinput"`.
    pub fn device_kind(self) -> &'static str {
        match self {
            MediaKind::Audio => "audioinput",
            MediaKind::Video => "videoinput",
        }
    }
}

impl std::fmt::Display for MediaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a property's constraint values are written and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// `ConstrainULong`: integers (fractions are truncated, as WebIDL's `long` does).
    Long,
    /// `ConstrainDouble`.
    Double,
    /// `ConstrainDOMString`: a string or a list of strings.
    String,
    /// `ConstrainBoolean`.
    Boolean,
    /// `ConstrainBooleanOrDOMString` (echoCancellation): a boolean or `"all"`/`"remote-only"`.
    BooleanOrMode,
}

/// A constrainable property. The declaration order is the spec's order of
/// `MediaTrackSupportedConstraints`; it is also the canonical order in which constraints
/// are evaluated and in which the first unsatisfiable one is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Property {
    Width,
    Height,
    AspectRatio,
    FrameRate,
    FacingMode,
    ResizeMode,
    SampleRate,
    SampleSize,
    EchoCancellation,
    AutoGainControl,
    NoiseSuppression,
    Latency,
    ChannelCount,
    DeviceId,
    GroupId,
}

impl Property {
    /// Every property, in the spec's order.
    pub const ALL: [Property; 15] = [
        Property::Width,
        Property::Height,
        Property::AspectRatio,
        Property::FrameRate,
        Property::FacingMode,
        Property::ResizeMode,
        Property::SampleRate,
        Property::SampleSize,
        Property::EchoCancellation,
        Property::AutoGainControl,
        Property::NoiseSuppression,
        Property::Latency,
        Property::ChannelCount,
        Property::DeviceId,
        Property::GroupId,
    ];

    /// The property's name as it appears in JSON constraints and settings.
    pub fn name(self) -> &'static str {
        match self {
            Property::Width => "width",
            Property::Height => "height",
            Property::AspectRatio => "aspectRatio",
            Property::FrameRate => "frameRate",
            Property::FacingMode => "facingMode",
            Property::ResizeMode => "resizeMode",
            Property::SampleRate => "sampleRate",
            Property::SampleSize => "sampleSize",
            Property::EchoCancellation => "echoCancellation",
            Property::AutoGainControl => "autoGainControl",
            Property::NoiseSuppression => "noiseSuppression",
            Property::Latency => "latency",
            Property::ChannelCount => "channelCount",
            Property::DeviceId => "deviceId",
            Property::GroupId => "groupId",
        }
    }

    /// The property with this exact (case-sensitive) name, as browsers match them.
    pub fn from_name(name: &str) -> Option<Property> {
        Property::ALL.into_iter().find(|p| p.name() == name)
    }

    /// How values of this property are written and compared.
    pub fn value_type(self) -> ValueType {
        match self {
            Property::Width
            | Property::Height
            | Property::SampleRate
            | Property::SampleSize
            | Property::ChannelCount => ValueType::Long,
            Property::AspectRatio | Property::FrameRate | Property::Latency => ValueType::Double,
            Property::FacingMode
            | Property::ResizeMode
            | Property::DeviceId
            | Property::GroupId => ValueType::String,
            Property::AutoGainControl | Property::NoiseSuppression => ValueType::Boolean,
            Property::EchoCancellation => ValueType::BooleanOrMode,
        }
    }

    /// Whether the property exists for tracks of this kind. A constraint on a property that
    /// does not apply (width on a microphone) is ignored: it adds 0 to the fitness distance.
    pub fn applies_to(self, kind: MediaKind) -> bool {
        match self {
            Property::DeviceId | Property::GroupId => true,
            Property::Width
            | Property::Height
            | Property::AspectRatio
            | Property::FrameRate
            | Property::FacingMode
            | Property::ResizeMode => kind == MediaKind::Video,
            Property::SampleRate
            | Property::SampleSize
            | Property::EchoCancellation
            | Property::AutoGainControl
            | Property::NoiseSuppression
            | Property::Latency
            | Property::ChannelCount => kind == MediaKind::Audio,
        }
    }
}

impl std::fmt::Display for Property {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `getSupportedConstraints()`: every property this implementation understands, mapped to
/// `true`. Serializes to the JSON object a web page sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedConstraints(());

impl SupportedConstraints {
    pub(crate) fn new() -> Self {
        SupportedConstraints(())
    }

    /// The supported property names, in the spec's order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        Property::ALL.into_iter().map(Property::name)
    }

    /// Whether `name` is a supported constraint (exact, case-sensitive match).
    pub fn contains(&self, name: &str) -> bool {
        Property::from_name(name).is_some()
    }
}

impl Serialize for SupportedConstraints {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(Property::ALL.len()))?;
        for name in self.names() {
            map.serialize_entry(name, &true)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for p in Property::ALL {
            assert_eq!(Property::from_name(p.name()), Some(p));
        }
        assert_eq!(Property::from_name("Width"), None);
        assert_eq!(Property::from_name("vidoe"), None);
    }

    #[test]
    fn kinds() {
        assert!(Property::Width.applies_to(MediaKind::Video));
        assert!(!Property::Width.applies_to(MediaKind::Audio));
        assert!(Property::SampleRate.applies_to(MediaKind::Audio));
        assert!(!Property::FacingMode.applies_to(MediaKind::Audio));
        assert!(Property::DeviceId.applies_to(MediaKind::Audio));
        assert!(Property::GroupId.applies_to(MediaKind::Video));
    }

    #[test]
    fn supported_constraints_json() {
        let v = serde_json::to_value(SupportedConstraints::new()).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 15);
        assert!(obj.values().all(|v| v == &serde_json::Value::Bool(true)));
        assert!(obj.contains_key("resizeMode"));
    }
}
