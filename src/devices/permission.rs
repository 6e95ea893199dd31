//! The permission policy: the headless analogue of the browser's prompt and of
//! Permissions-Policy. It decides `NotAllowedError` and whether labels are shown.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::constraints::MediaKind;

/// One permission state, named after the Permissions API's states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Granted ahead of time: labels are visible from the start.
    Granted,
    /// Asked when getUserMedia runs, and the configured answer is yes (a headless box has
    /// nobody to click): labels stay hidden until a getUserMedia of that kind succeeds.
    #[default]
    Prompt,
    /// Refused: getUserMedia rejects with `NotAllowedError`.
    Denied,
}

/// Per-kind permissions with per-device overrides. Deserializes from
/// `{"camera": "granted", "microphone": "denied", "devices": {"front": "denied"}}`.
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
}

impl PermissionPolicy {
    /// Everything granted, labels visible: an operator running the tool on their own box.
    pub fn granted() -> Self {
        PermissionPolicy {
            camera: Permission::Granted,
            microphone: Permission::Granted,
            devices: BTreeMap::new(),
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
    fn unknown_fields_are_rejected() {
        assert!(serde_json::from_str::<PermissionPolicy>(r#"{"camra": "granted"}"#).is_err());
    }
}
