//! `MediaError`: the DOMException names that getUserMedia and applyConstraints reject with.
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
