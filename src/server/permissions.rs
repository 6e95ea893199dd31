//! The media side of `/permissions` and `/indicator`: the devices' prompt and indicator in
//! the signaling crate's shapes.

use usermedia_signaling::{PermissionDecision, PermissionRequest, UnknownRequest};

use crate::devices::{Decision, MediaDevices};

/// The requests the devices' prompt has waiting (none without devices or a prompt).
pub(super) fn requests(devices: Option<&MediaDevices>) -> Vec<PermissionRequest> {
    let Some(prompter) = devices.and_then(MediaDevices::prompter) else {
        return Vec::new();
    };
    prompter
        .pending()
        .into_iter()
        .map(|r| PermissionRequest {
            id: r.id,
            context: r.context,
            features: r.features.iter().map(|f| f.as_str().to_owned()).collect(),
            devices: r.devices,
            expires_in_ms: r.expires_in_ms,
        })
        .collect()
}

/// Answers request `id` of the devices' prompt.
pub(super) fn answer(
    devices: Option<&MediaDevices>,
    id: &str,
    decision: PermissionDecision,
) -> Result<(), UnknownRequest> {
    let prompter = devices
        .and_then(MediaDevices::prompter)
        .ok_or_else(|| UnknownRequest(id.to_owned()))?;
    let decision = match decision {
        PermissionDecision::Allow => Decision::Allow,
        PermissionDecision::Deny => Decision::Deny,
    };
    prompter
        .decide(id, decision)
        .map_err(|_| UnknownRequest(id.to_owned()))
}

/// The devices' indicator as JSON (`None` without devices).
pub(super) fn indicator(devices: Option<&MediaDevices>) -> Option<serde_json::Value> {
    devices.and_then(|d| serde_json::to_value(d.indicator()).ok())
}
