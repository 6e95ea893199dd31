//! The allow-list, in the manner of Permissions-Policy: which contexts (`stream:NAME`,
//! `room:NAME`) may use which device kinds (`camera`, `microphone`).
//!
//! A context the list does not name falls back to the `*` entry, and without one is
//! allowed everything (as a document with no Permissions-Policy header is). A call with no
//! context at all (plain `get_user_media`, `usermedia capture`) is the top-level document:
//! only the `*` entry applies to it, as a Permissions-Policy header binds its own document.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::constraints::MediaKind;

/// A policy-controlled feature: a kind of capture device, named as Permissions-Policy
/// names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Feature {
    Camera,
    Microphone,
}

impl Feature {
    /// The feature a kind of track needs.
    pub fn of(kind: MediaKind) -> Feature {
        match kind {
            MediaKind::Video => Feature::Camera,
            MediaKind::Audio => Feature::Microphone,
        }
    }

    /// `"camera"` or `"microphone"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Camera => "camera",
            Feature::Microphone => "microphone",
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Feature {
    type Err = AllowListError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "camera" => Ok(Feature::Camera),
            "microphone" => Ok(Feature::Microphone),
            other => Err(AllowListError(format!(
                "unknown feature {other:?} (expected camera or microphone)"
            ))),
        }
    }
}

/// A bad allow-list entry; the message names the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AllowListError(pub String);

/// Contexts and the features each may use. Serializes as
/// `{"room:r1": ["camera"], "stream:cam": ["camera", "microphone"], "*": []}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, BTreeSet<Feature>>")]
#[serde(into = "BTreeMap<String, BTreeSet<Feature>>")]
pub struct AllowList {
    entries: BTreeMap<String, BTreeSet<Feature>>,
}

impl TryFrom<BTreeMap<String, BTreeSet<Feature>>> for AllowList {
    type Error = AllowListError;

    fn try_from(entries: BTreeMap<String, BTreeSet<Feature>>) -> Result<Self, Self::Error> {
        for context in entries.keys() {
            check_context(context)?;
        }
        Ok(AllowList { entries })
    }
}

impl From<AllowList> for BTreeMap<String, BTreeSet<Feature>> {
    fn from(list: AllowList) -> Self {
        list.entries
    }
}

/// A context is `*`, `stream:NAME` or `room:NAME` (NAME not empty, no `=` or `,`).
fn check_context(context: &str) -> Result<(), AllowListError> {
    if context == "*" {
        return Ok(());
    }
    let name = context
        .strip_prefix("stream:")
        .or_else(|| context.strip_prefix("room:"))
        .ok_or_else(|| {
            AllowListError(format!(
                "context {context:?}: expected stream:NAME, room:NAME or *"
            ))
        })?;
    if name.is_empty() || name.contains(['=', ',']) || name.chars().any(char::is_whitespace) {
        return Err(AllowListError(format!(
            "context {context:?}: the name must be non-empty, without '=', ',' or spaces"
        )));
    }
    Ok(())
}

impl AllowList {
    /// Whether the list is empty (every context may use everything).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets what `context` may use (replacing an earlier entry for it).
    pub fn set(
        &mut self,
        context: &str,
        features: impl IntoIterator<Item = Feature>,
    ) -> Result<(), AllowListError> {
        check_context(context)?;
        self.entries
            .insert(context.to_owned(), features.into_iter().collect());
        Ok(())
    }

    /// Adds an entry written `CONTEXT=FEATURE,FEATURE` (the `--allow` flag): e.g.
    /// `room:r1=camera`, `stream:cam=camera,microphone`, `room:quiet=` (nothing).
    pub fn add_entry(&mut self, entry: &str) -> Result<(), AllowListError> {
        let (context, features) = entry.split_once('=').ok_or_else(|| {
            AllowListError(format!(
                "{entry:?}: expected CONTEXT=FEATURES, e.g. room:r1=camera,microphone"
            ))
        })?;
        let features = features
            .split(',')
            .filter(|f| !f.trim().is_empty())
            .map(Feature::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AllowListError(format!("{entry:?}: {e}")))?;
        self.set(context.trim(), features)
    }

    /// Whether `context` may use devices of `kind` (`None`: the top-level caller, which only
    /// the `*` entry restricts).
    pub fn allows(&self, context: Option<&str>, kind: MediaKind) -> bool {
        let named = context.and_then(|c| self.entries.get(c));
        match named.or_else(|| self.entries.get("*")) {
            Some(features) => features.contains(&Feature::of(kind)),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_decide_per_context() {
        let mut list = AllowList::default();
        list.add_entry("room:r1=camera").unwrap();
        list.add_entry("stream:cam=camera, microphone").unwrap();
        list.add_entry("room:quiet=").unwrap();
        assert!(list.allows(Some("room:r1"), MediaKind::Video));
        assert!(!list.allows(Some("room:r1"), MediaKind::Audio));
        assert!(list.allows(Some("stream:cam"), MediaKind::Audio));
        assert!(!list.allows(Some("room:quiet"), MediaKind::Video));
        // Unlisted contexts and the top level: everything, until a `*` entry says otherwise.
        assert!(list.allows(Some("room:other"), MediaKind::Audio));
        assert!(list.allows(None, MediaKind::Audio));
        assert!(list.allows(None, MediaKind::Video));
        list.add_entry("*=microphone").unwrap();
        assert!(!list.allows(Some("room:other"), MediaKind::Video));
        assert!(list.allows(Some("room:other"), MediaKind::Audio));
        // The `*` entry binds the top level too; named entries do not.
        assert!(!list.allows(None, MediaKind::Video));
        assert!(list.allows(None, MediaKind::Audio));
    }

    #[test]
    fn bad_entries_name_the_problem() {
        let mut list = AllowList::default();
        let e = list.add_entry("room:r1=camera,speaker").unwrap_err();
        assert!(e.0.contains("speaker"), "{e}");
        let e = list.add_entry("r1=camera").unwrap_err();
        assert!(e.0.contains("stream:NAME"), "{e}");
        assert!(list.add_entry("room:r1").is_err());
        assert!(list.add_entry("room:=camera").is_err());
        assert!(list.is_empty());
    }

    #[test]
    fn the_json_form_round_trips_and_checks_contexts() {
        let list: AllowList = serde_json::from_str(r#"{"room:r1": ["camera"], "*": []}"#).unwrap();
        assert!(!list.allows(Some("stream:x"), MediaKind::Video));
        let text = serde_json::to_string(&list).unwrap();
        assert_eq!(serde_json::from_str::<AllowList>(&text).unwrap(), list);
        assert!(serde_json::from_str::<AllowList>(r#"{"r1": ["camera"]}"#).is_err());
        assert!(serde_json::from_str::<AllowList>(r#"{"room:r1": ["speaker"]}"#).is_err());
    }
}
