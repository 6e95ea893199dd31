//! The permission policy: the headless analogue of the browser's prompt and of
//! Permissions-Policy. It decides `NotAllowedError` and whether labels are shown: a mode
//! per kind (`allow`, `deny`, `prompt`), overrides per device, and the allow-list of which
//! contexts may use which kinds.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::allow_list::AllowList;
use crate::constraints::MediaKind;

/// One permission state, named after the Permissions API's states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Granted ahead of time (`allow`): labels are visible from the start.
    #[serde(alias = "allow")]
    Granted,
    /// Asked when getUserMedia runs. With a [`Prompter`](super::Prompter) attached to the
    /// devices, the operator is asked and getUserMedia waits for the answer (no answer in
    /// time: `NotAllowedError`); without one, the answer is yes (a headless box has nobody
    /// to click). Labels stay hidden until a getUserMedia of that kind succeeds.
    #[default]
    Prompt,
    /// Refused (`deny`): getUserMedia rejects with `NotAllowedError`.
    #[serde(alias = "deny")]
    Denied,
}

impl FromStr for Permission {
    type Err = String;

    /// `allow` (or `granted`), `deny` (or `denied`), `prompt`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" | "granted" => Ok(Permission::Granted),
            "deny" | "denied" => Ok(Permission::Denied),
            "prompt" => Ok(Permission::Prompt),
            other => Err(format!(
                "{other:?} is not a permission mode (expected allow, deny or prompt)"
            )),
        }
    }
}

/// Per-kind permissions with per-device overrides and the allow-list. Deserializes from
/// `{"camera": "granted", "microphone": "denied", "devices": {"front": "denied"},
/// "allow": {"room:r1": ["camera"]}}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionPolicy {
    #[serde(default)]
    pub camera: Permission,
    #[serde(default)]
    pub microphone: Permission,
    /// Overrides by deviceId.
    #[serde(default)]
    pub devices: BTreeMap<String, Permission>,
    /// Which contexts may use which kinds (empty: every context everything).
    #[serde(default, skip_serializing_if = "AllowList::is_empty")]
    pub allow: AllowList,
}

impl PermissionPolicy {
    /// Everything granted, labels visible: an operator running the tool on their own box.
    pub fn granted() -> Self {
        PermissionPolicy {
            camera: Permission::Granted,
            microphone: Permission::Granted,
            devices: BTreeMap::new(),
            allow: AllowList::default(),
        }
    }

    /// What a browser does before anyone has answered a prompt (the default).
    pub fn prompt() -> Self {
        Self::default()
    }

    /// The permission for a kind of device.
    pub fn for_kind(&self, kind: MediaKind) -> Permission {
        match kind {
            MediaKind::Video => self.camera,
            MediaKind::Audio => self.microphone,
        }
    }

    /// Sets the permission for a kind.
    pub fn set_kind(&mut self, kind: MediaKind, permission: Permission) {
        match kind {
            MediaKind::Video => self.camera = permission,
            MediaKind::Audio => self.microphone = permission,
        }
    }

    /// The permission for one device: its override, else its kind's.
    pub fn for_device(&self, kind: MediaKind, device_id: &str) -> Permission {
        self.devices
            .get(device_id)
            .copied()
            .unwrap_or_else(|| self.for_kind(kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_overrides_kind() {
        let policy: PermissionPolicy =
            serde_json::from_str(r#"{"camera": "granted", "devices": {"front": "denied"}}"#)
                .unwrap();
        assert_eq!(
            policy.for_device(MediaKind::Video, "front"),
            Permission::Denied
        );
        assert_eq!(
            policy.for_device(MediaKind::Video, "back"),
            Permission::Granted
        );
        assert_eq!(policy.for_kind(MediaKind::Audio), Permission::Prompt);
    }

    #[test]
    fn modes_read_as_the_cli_and_the_json_name_them() {
        assert_eq!("allow".parse(), Ok(Permission::Granted));
        assert_eq!("deny".parse(), Ok(Permission::Denied));
        assert_eq!("prompt".parse(), Ok(Permission::Prompt));
        assert!("ask"
            .parse::<Permission>()
            .unwrap_err()
            .contains("allow, deny or prompt"));
        let policy: PermissionPolicy = serde_json::from_str(
            r#"{"camera": "allow", "microphone": "deny", "allow": {"room:r1": ["camera"]}}"#,
        )
        .unwrap();
        assert_eq!(policy.camera, Permission::Granted);
        assert_eq!(policy.microphone, Permission::Denied);
        assert!(!policy.allow.allows(Some("room:r1"), MediaKind::Audio));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(serde_json::from_str::<PermissionPolicy>(r#"{"camra": "granted"}"#).is_err());
    }
}
