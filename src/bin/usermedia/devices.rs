//! `usermedia devices`: the capture devices with their modes, as text or (`--json`) with
//! their capabilities and the supported constraints.

use std::process::ExitCode;

use serde_json::{json, Value};

use usermedia::constraints::{DeviceModes, MediaTrackCapabilities};
use usermedia::devices::{Permission, SourceSpec};

use crate::args::DeviceArgs;
use crate::exit::CliError;
use crate::print_json;

/// The exit codes of `devices`, in its `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  listed
  2  bad input: a bad flag, a bad devices file";

/// `usermedia devices`' flags.
#[derive(clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct Options {
    #[command(flatten)]
    pub device_args: DeviceArgs,
    /// Print JSON: devices (with capabilities) and the supported constraints.
    #[arg(long)]
    pub json: bool,
}

/// How a device's source is named in the listing.
fn source_name(source: &SourceSpec) -> String {
    match source {
        SourceSpec::Pattern => "pattern".into(),
        SourceSpec::Tone => "tone".into(),
        SourceSpec::File(p) => format!("file {}", p.display()),
        SourceSpec::Camera { index } => format!("camera /dev/video{index}"),
        SourceSpec::Microphone { pcm_id } => format!("ALSA {pcm_id}"),
    }
}

/// `usermedia devices`: list them.
pub fn run(opts: Options) -> Result<ExitCode, CliError> {
    let devices = opts.device_args.load()?;
    let infos = devices.enumerate_devices();
    if opts.json {
        let list: Vec<Value> = infos
            .iter()
            .zip(devices.devices())
            .map(|(info, d)| {
                let mut v = json!(info);
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("source".into(), json!(source_name(&d.source)));
                    obj.insert(
                        "capabilities".into(),
                        json!(MediaTrackCapabilities::of_device(&d.model)),
                    );
                }
                v
            })
            .collect();
        print_json(&json!({
            "devices": list,
            "supportedConstraints": devices.get_supported_constraints(),
        }));
        return Ok(ExitCode::SUCCESS);
    }
    if infos.is_empty() {
        println!("no devices");
    }
    for (info, d) in infos.iter().zip(devices.devices()) {
        let facing = d
            .model
            .facing_mode
            .map(|f| format!(", facing {}", f.as_str()))
            .unwrap_or_default();
        let denied = devices.policy().for_device(d.kind(), d.device_id()) == Permission::Denied;
        println!(
            "{:<10}  {}  {:?}  (group {}, source {}{}{})",
            info.kind.as_str(),
            info.device_id,
            info.label,
            info.group_id,
            source_name(&d.source),
            facing,
            if denied { ", DENIED" } else { "" }
        );
        match &d.model.modes {
            DeviceModes::Video(modes) => {
                let list: Vec<String> = modes
                    .iter()
                    .map(|m| format!("{}x{}@{}", m.width, m.height, m.frame_rate))
                    .collect();
                println!("            modes: {}", list.join(", "));
            }
            DeviceModes::Audio { modes, .. } => {
                let list: Vec<String> = modes
                    .iter()
                    .map(|m| {
                        format!(
                            "{} Hz {} ch {}-bit",
                            m.sample_rate, m.channel_count, m.sample_size
                        )
                    })
                    .collect();
                println!("            modes: {}", list.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
