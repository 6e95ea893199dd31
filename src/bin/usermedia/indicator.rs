//! The indicator on the terminal: while a device is open, a status line on stderr (when it
//! is a terminal) names each device, live or muted, since when, and the viewers.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use usermedia::devices::{DeviceInUse, MediaDeviceKind, MediaDevices};

/// The status line for `in_use` at `now_ms` (milliseconds since the UNIX epoch), with
/// `viewers` when the command has them; empty when no device is open.
pub fn status_line(in_use: &[DeviceInUse], viewers: Option<usize>, now_ms: u64) -> String {
    if in_use.is_empty() {
        return String::new();
    }
    let devices: Vec<String> = in_use
        .iter()
        .map(|d| {
            let kind = match d.kind {
                MediaDeviceKind::Videoinput => "camera",
                MediaDeviceKind::Audioinput => "microphone",
            };
            let state = if d.muted { "muted" } else { "in use" };
            let secs = d.since_ms / 1000 % 86_400;
            format!(
                "{kind} {state}: {} since {:02}:{:02}:{:02} UTC ({})",
                d.label,
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                elapsed(now_ms.saturating_sub(d.since_ms) / 1000)
            )
        })
        .collect();
    let mut line = format!("● {}", devices.join(" · "));
    if let Some(n) = viewers {
        line.push_str(&format!(" · {n} viewer{}", if n == 1 { "" } else { "s" }));
    }
    line
}

/// `1h02m03s`, `2m05s`, `7s`.
fn elapsed(secs: u64) -> String {
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, s) => format!("{h}h{m:02}m{s:02}s"),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Keeps the status line up to date once a second (call inside the runtime), when stderr
/// is a terminal; `viewers` counts the viewers, if the command has any.
pub fn show_on_terminal(
    devices: Arc<MediaDevices>,
    viewers: impl Fn() -> Option<usize> + Send + 'static,
) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    tokio::spawn(async move {
        let mut shown = false;
        loop {
            let line = status_line(&devices.devices_in_use(), viewers(), now_ms());
            if !line.is_empty() || shown {
                // Carriage return and erase the line: the status line rewrites itself.
                eprint!("\r\x1b[K{line}");
                let _ = std::io::stderr().flush();
            }
            shown = !line.is_empty();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(kind: MediaDeviceKind, label: &str, muted: bool) -> DeviceInUse {
        DeviceInUse {
            device_id: label.into(),
            kind,
            label: label.into(),
            open_sources: 1,
            since_ms: 3_600_000 + 125_000,
            muted,
        }
    }

    #[test]
    fn the_line_names_devices_their_state_since_when_and_the_viewers() {
        let now = 3_600_000 + 250_000;
        let line = status_line(
            &[
                device(MediaDeviceKind::Videoinput, "Cam", false),
                device(MediaDeviceKind::Audioinput, "Mic", true),
            ],
            Some(2),
            now,
        );
        assert_eq!(
            line,
            "● camera in use: Cam since 01:02:05 UTC (2m05s) · \
             microphone muted: Mic since 01:02:05 UTC (2m05s) · 2 viewers"
        );
        assert_eq!(status_line(&[], Some(3), now), "");
        assert_eq!(elapsed(3723), "1h02m03s");
        assert_eq!(elapsed(7), "7s");
    }
}
