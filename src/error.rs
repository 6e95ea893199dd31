//! `MediaError`: the DOMException names that getUserMedia and applyConstraints reject with,
//! and `LegacyError`, the same errors as the legacy callback API reports them.
//!
//! Callers script against the *names* (they are what a web page sees), so each variant maps
//! to exactly one spec name and `name()` returns it verbatim.

use serde::Serialize;

/// An error from getUserMedia, applyConstraints or a device, named as the spec names it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MediaError {
    /// The constraints themselves are malformed (neither kind requested, a value of the
    /// wrong JSON type). Nothing was looked at.
    #[error("TypeError: {message}")]
    TypeError { message: String },
    /// No device of the requested kind exists at all.
    #[error("NotFoundError: {message}")]
    NotFoundError { message: String },
    /// The permission policy refused access.
    #[error("NotAllowedError: {message}")]
    NotAllowedError { message: String },
    /// The device exists and was allowed but is busy or failed to open.
    #[error("NotReadableError: {message}")]
    NotReadableError { message: String },
    /// No device could satisfy a required constraint; `constraint` names it.
    #[error("OverconstrainedError: {constraint}: {message}")]
    OverconstrainedError { constraint: String, message: String },
    /// Something else went wrong while starting a source.
    #[error("AbortError: {message}")]
    AbortError { message: String },
    /// The request was made in a context that may not make it.
    #[error("SecurityError: {message}")]
    SecurityError { message: String },
}

impl MediaError {
    /// The spec's name of the error, e.g. `"OverconstrainedError"`.
    pub fn name(&self) -> &'static str {
        match self {
            MediaError::TypeError { .. } => "TypeError",
            MediaError::NotFoundError { .. } => "NotFoundError",
            MediaError::NotAllowedError { .. } => "NotAllowedError",
            MediaError::NotReadableError { .. } => "NotReadableError",
            MediaError::OverconstrainedError { .. } => "OverconstrainedError",
            MediaError::AbortError { .. } => "AbortError",
            MediaError::SecurityError { .. } => "SecurityError",
        }
    }

    /// The human-readable message, without the name.
    pub fn message(&self) -> &str {
        match self {
            MediaError::TypeError { message }
            | MediaError::NotFoundError { message }
            | MediaError::NotAllowedError { message }
            | MediaError::NotReadableError { message }
            | MediaError::OverconstrainedError { message, .. }
            | MediaError::AbortError { message }
            | MediaError::SecurityError { message } => message,
        }
    }

    /// The failed constraint of an `OverconstrainedError`, `None` for every other name.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            MediaError::OverconstrainedError { constraint, .. } => Some(constraint),
            _ => None,
        }
    }

    pub(crate) fn type_error(message: impl Into<String>) -> Self {
        MediaError::TypeError {
            message: message.into(),
        }
    }

    /// The JSON form printed by the CLI: `{"name", "constraint"?, "message"}`.
    pub fn to_json(&self) -> ErrorJson<'_> {
        ErrorJson {
            name: self.name(),
            constraint: self.constraint(),
            message: self.message(),
        }
    }
}

/// Serializable view of a [`MediaError`], as `usermedia select` prints it.
#[derive(Debug, Serialize)]
pub struct ErrorJson<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<&'a str>,
    pub message: &'a str,
}

/// The error codes of the legacy `NavigatorUserMediaError` (the callback
/// `navigator.getUserMedia` of old browsers). docs/legacy.md has the mapping table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum LegacyErrorCode {
    /// The request was refused: the permission policy, an insecure context, or a device
    /// that could not be started (the legacy draft failed a hardware lock this way too).
    #[serde(rename = "PERMISSION_DENIED")]
    PermissionDenied,
    /// The request cannot be served at all: malformed constraints, or no device of a
    /// requested kind.
    #[serde(rename = "NOT_SUPPORTED_ERROR")]
    NotSupportedError,
    /// No device satisfies a mandatory constraint; `constraint_name` names it.
    #[serde(rename = "MANDATORY_UNSATISFIED_ERROR")]
    MandatoryUnsatisfiedError,
}

impl LegacyErrorCode {
    /// The code as old browsers spelled it, e.g. `"PERMISSION_DENIED"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LegacyErrorCode::PermissionDenied => "PERMISSION_DENIED",
            LegacyErrorCode::NotSupportedError => "NOT_SUPPORTED_ERROR",
            LegacyErrorCode::MandatoryUnsatisfiedError => "MANDATORY_UNSATISFIED_ERROR",
        }
    }

    /// The legacy code of a modern error.
    pub fn of(error: &MediaError) -> LegacyErrorCode {
        match error {
            MediaError::NotAllowedError { .. }
            | MediaError::SecurityError { .. }
            | MediaError::NotReadableError { .. }
            | MediaError::AbortError { .. } => LegacyErrorCode::PermissionDenied,
            MediaError::TypeError { .. } | MediaError::NotFoundError { .. } => {
                LegacyErrorCode::NotSupportedError
            }
            MediaError::OverconstrainedError { .. } => LegacyErrorCode::MandatoryUnsatisfiedError,
        }
    }
}

impl std::fmt::Display for LegacyErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The legacy `NavigatorUserMediaError`: what the error callback of
/// `MediaDevices::get_user_media_legacy` receives. `code` is the legacy code; `name` stays
/// the modern DOMException name it was mapped from (as adapter.js's errors keep a name),
/// so a caller can still tell a missing camera from malformed constraints.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[serde(rename_all = "camelCase")]
#[error("{code}: {message}")]
pub struct LegacyError {
    pub code: LegacyErrorCode,
    /// The modern name, e.g. `"NotFoundError"`.
    pub name: &'static str,
    pub message: String,
    /// The unsatisfied mandatory constraint, by its modern name (`"width"`), for
    /// `MANDATORY_UNSATISFIED_ERROR` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint_name: Option<String>,
    /// The modern error.
    #[source]
    #[serde(skip)]
    pub cause: MediaError,
}

impl From<MediaError> for LegacyError {
    fn from(error: MediaError) -> Self {
        LegacyError {
            code: LegacyErrorCode::of(&error),
            name: error.name(),
            message: error.message().to_owned(),
            constraint_name: error.constraint().map(str::to_owned),
            cause: error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_spec() {
        let cases = [
            (MediaError::type_error("x"), "TypeError"),
            (
                MediaError::OverconstrainedError {
                    constraint: "width".into(),
                    message: "m".into(),
                },
                "OverconstrainedError",
            ),
            (
                MediaError::NotFoundError {
                    message: "m".into(),
                },
                "NotFoundError",
            ),
        ];
        for (err, name) in cases {
            assert_eq!(err.name(), name);
            assert!(err.to_string().starts_with(name));
        }
    }

    #[test]
    fn legacy_codes_of_every_modern_error() {
        let m = || "m".to_owned();
        let cases = [
            (
                MediaError::NotAllowedError { message: m() },
                "PERMISSION_DENIED",
            ),
            (
                MediaError::SecurityError { message: m() },
                "PERMISSION_DENIED",
            ),
            (
                MediaError::NotReadableError { message: m() },
                "PERMISSION_DENIED",
            ),
            (MediaError::AbortError { message: m() }, "PERMISSION_DENIED"),
            (
                MediaError::TypeError { message: m() },
                "NOT_SUPPORTED_ERROR",
            ),
            (
                MediaError::NotFoundError { message: m() },
                "NOT_SUPPORTED_ERROR",
            ),
            (
                MediaError::OverconstrainedError {
                    constraint: "width".into(),
                    message: m(),
                },
                "MANDATORY_UNSATISFIED_ERROR",
            ),
        ];
        for (modern, code) in cases {
            let name = modern.name();
            let legacy = LegacyError::from(modern.clone());
            assert_eq!(legacy.code.as_str(), code, "{name}");
            assert_eq!(legacy.name, name);
            assert_eq!(legacy.message, "m");
            assert_eq!(legacy.cause, modern);
            assert_eq!(legacy.to_string(), format!("{code}: m"));
            let v = serde_json::to_value(&legacy).unwrap();
            assert_eq!(v["code"], code);
            assert_eq!(v["name"], name);
            if code == "MANDATORY_UNSATISFIED_ERROR" {
                assert_eq!(legacy.constraint_name.as_deref(), Some("width"));
                assert_eq!(v["constraintName"], "width");
            } else {
                assert_eq!(legacy.constraint_name, None);
                assert!(v.get("constraintName").is_none());
            }
        }
    }

    #[test]
    fn json_has_constraint_only_for_overconstrained() {
        let over = MediaError::OverconstrainedError {
            constraint: "width".into(),
            message: "too wide".into(),
        };
        let v = serde_json::to_value(over.to_json()).unwrap();
        assert_eq!(v["constraint"], "width");
        let other = MediaError::NotAllowedError {
            message: "no".into(),
        };
        let v = serde_json::to_value(other.to_json()).unwrap();
        assert!(v.get("constraint").is_none());
        assert_eq!(v["name"], "NotAllowedError");
    }
}
