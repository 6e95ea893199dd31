//! The `usermedia` command line: `devices` and `select` (more commands arrive with capture,
//! encoding and signaling).
//!
//! Exit codes: 0 success; 1 a media error (printed as JSON on stdout by `select`);
//! 2 bad input — unreadable or invalid JSON, a bad devices file, a bad flag.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::{json, Map, Value};

use usermedia::constraints::{ConstraintsError, MediaStreamConstraints, MediaTrackCapabilities};
use usermedia::devices::{MediaDevices, Permission, PermissionPolicy, SourceSpec};
use usermedia::MediaKind;

mod bot;
mod capture;
mod serve;

#[derive(Parser)]
#[command(
    name = "usermedia",
    version,
    about = "getUserMedia for machines without a browser: constraints, devices, tracks",
    long_about = "getUserMedia for machines without a browser.\n\n\
        Devices come from --devices FILE (virtual devices, JSON) or, without it, from the \
        machine: its real cameras and microphones or, when it has none at all, a built-in \
        virtual camera (virtual-pattern) and microphone (virtual-tone).\n\n\
        Log level: RUST_LOG (default: warn; warnings name ignored constraint keys)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct DeviceArgs {
    /// Virtual devices file (JSON, see README). Without it: the machine's devices.
    #[arg(long, value_name = "FILE")]
    devices: Option<PathBuf>,
    /// Refuse access, as a denied permission would: `camera`, `microphone` or a deviceId.
    /// Repeatable.
    #[arg(long, value_name = "WHAT")]
    deny: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// List the capture devices with their modes and capabilities.
    Devices {
        #[command(flatten)]
        device_args: DeviceArgs,
        /// Print JSON: devices (with capabilities) and the supported constraints.
        #[arg(long)]
        json: bool,
    },
    /// Capture and publish as a stream: browsers view it through WHEP (open the printed URL).
    Serve(serve::Options),
    /// Capture and publish to a WHIP endpoint (an SFU, another usermedia) until Ctrl-C,
    /// then end the session (DELETE).
    Publish(serve::PublishOptions),
    /// Join a call room (ws://HOST/ws?room=R, as the /call page does) as a participant:
    /// send what it captures, decode what the others send, print one JSON line per remote
    /// track and, on leaving (Ctrl-C or --seconds), their settings and counters.
    Bot(bot::Options),
    /// Capture for a while and write what arrived: video.y4m and audio.wav in DIR, so a
    /// person can look and listen. Prints the settings chosen and the frame/sample counts.
    Capture {
        /// getUserMedia constraints as JSON, or @FILE.
        #[arg(
            long,
            value_name = "JSON",
            default_value = r#"{"video":true,"audio":true}"#
        )]
        constraints: String,
        #[command(flatten)]
        device_args: DeviceArgs,
        /// How long to capture.
        #[arg(long, value_name = "N", value_parser = parse_seconds)]
        seconds: f64,
        /// Directory for the files (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Run getUserMedia's device and settings selection without opening anything and
    /// print the chosen tracks as JSON. Exit 1 with {"error": ...} on a media error.
    Select {
        /// getUserMedia constraints as JSON, e.g. '{"video":{"width":1280}}', or @FILE.
        #[arg(long, value_name = "JSON")]
        constraints: String,
        #[command(flatten)]
        device_args: DeviceArgs,
        /// Also print every candidate settings dictionary with its fitness distance.
        #[arg(long)]
        explain: bool,
    },
}

/// A failure that is the caller's input, not a media error: exit 2.
struct BadInput(anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for BadInput {
    fn from(e: E) -> Self {
        BadInput(e.into())
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // webrtc-rs (crates `webrtc`, `rtc*`) logs routine connection set-up at warn
                // level (measured: ~5 lines per viewer, e.g. ICE pings before candidates
                // arrive, and the interceptor slots we replace on purpose). Its errors stay
                // visible; RUST_LOG=warn shows everything. Our own info lines (devices in use,
                // sessions) are on: an operator should see them.
                tracing_subscriber::EnvFilter::new("warn,usermedia=info,webrtc=error,rtc=error")
            }),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Devices { device_args, json } => run_devices(&device_args, json),
        Command::Capture {
            constraints,
            device_args,
            seconds,
            out,
        } => capture::run(&constraints, &device_args, seconds, &out),
        Command::Publish(opts) => serve::publish(opts),
        Command::Bot(opts) => bot::run(opts),
        Command::Serve(opts) => serve::run(opts),
        Command::Select {
            constraints,
            device_args,
            explain,
        } => run_select(&constraints, &device_args, explain),
    };
    match result {
        Ok(code) => code,
        Err(BadInput(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        Ok(_) => Err("must be above 0 and at most 86400".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn policy_from(deny: &[String]) -> PermissionPolicy {
    let mut policy = PermissionPolicy::granted();
    for what in deny {
        match what.as_str() {
            "camera" => policy.set_kind(MediaKind::Video, Permission::Denied),
            "microphone" => policy.set_kind(MediaKind::Audio, Permission::Denied),
            id => {
                policy.devices.insert(id.to_owned(), Permission::Denied);
            }
        }
    }
    policy
}

fn load_devices(args: &DeviceArgs) -> Result<MediaDevices, BadInput> {
    let policy = policy_from(&args.deny);
    let devices = match &args.devices {
        Some(path) => MediaDevices::from_devices_file(path, policy)?,
        None => MediaDevices::system(policy),
    };
    for id in &args.deny {
        let known = matches!(id.as_str(), "camera" | "microphone")
            || devices.devices().iter().any(|d| d.device_id() == id);
        if !known {
            tracing::warn!(
                "--deny {id:?}: no such device (expected camera, microphone or a deviceId)"
            );
        }
    }
    Ok(devices)
}

fn read_constraints(arg: &str) -> Result<String, BadInput> {
    match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(Path::new(path))
            .with_context(|| format!("cannot read constraints file {path}"))
            .map_err(BadInput),
        None => Ok(arg.to_owned()),
    }
}

fn print_json(value: &Value) {
    // serde_json cannot fail on a Value.
    println!("{}", serde_json::to_string(value).unwrap_or_default());
}

/// Parses `--constraints` (text or @FILE). Invalid JSON is bad input (exit 2); a
/// TypeError is a media error, printed as JSON (`Ok(None)`: exit 1).
fn parse_constraints(arg: &str) -> Result<Option<MediaStreamConstraints>, BadInput> {
    let text = read_constraints(arg)?;
    match MediaStreamConstraints::from_json_str(&text) {
        Ok((constraints, warnings)) => {
            for w in warnings {
                tracing::warn!("{w}");
            }
            Ok(Some(constraints))
        }
        Err(ConstraintsError::Json(e)) => Err(BadInput(anyhow::anyhow!(
            "--constraints is not valid JSON: {e}"
        ))),
        Err(ConstraintsError::Type(e)) => {
            print_json(&json!({ "error": e.to_json() }));
            Ok(None)
        }
    }
}

fn run_select(arg: &str, args: &DeviceArgs, explain: bool) -> Result<ExitCode, BadInput> {
    let devices = load_devices(args)?;
    let Some(constraints) = parse_constraints(arg)? else {
        return Ok(ExitCode::from(1));
    };
    let (result, explanations) = if explain {
        let (result, explanations) = devices.explain(&constraints);
        (result, Some(explanations))
    } else {
        (devices.select(&constraints), None)
    };
    let mut out = Map::new();
    let code = match result {
        Ok(selections) => {
            let tracks: Vec<Value> = selections
                .iter()
                .map(|sel| {
                    json!({
                        "kind": sel.kind,
                        "label": sel.device.label,
                        "deviceId": sel.device.device_id(),
                        "settings": sel.selection.settings,
                    })
                })
                .collect();
            out.insert("tracks".into(), Value::Array(tracks));
            ExitCode::SUCCESS
        }
        Err(e) => {
            out.insert("error".into(), json!(e.to_json()));
            ExitCode::from(1)
        }
    };
    if let Some(explanations) = explanations {
        let by_kind: Map<String, Value> = explanations
            .into_iter()
            .map(|k| (k.kind.as_str().to_owned(), json!(k.candidates)))
            .collect();
        out.insert("explain".into(), Value::Object(by_kind));
    }
    print_json(&Value::Object(out));
    Ok(code)
}

fn source_name(source: &SourceSpec) -> String {
    match source {
        SourceSpec::Pattern => "pattern".into(),
        SourceSpec::Tone => "tone".into(),
        SourceSpec::File(p) => format!("file {}", p.display()),
        SourceSpec::Camera { index } => format!("camera /dev/video{index}"),
        SourceSpec::Microphone { pcm_id } => format!("ALSA {pcm_id}"),
        SourceSpec::Remote => "remote".into(),
    }
}

fn run_devices(args: &DeviceArgs, as_json: bool) -> Result<ExitCode, BadInput> {
    let devices = load_devices(args)?;
    let infos = devices.enumerate_devices();
    if as_json {
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
            usermedia::constraints::DeviceModes::Video(modes) => {
                let list: Vec<String> = modes
                    .iter()
                    .map(|m| format!("{}x{}@{}", m.width, m.height, m.frame_rate))
                    .collect();
                println!("            modes: {}", list.join(", "));
            }
            usermedia::constraints::DeviceModes::Audio { modes, .. } => {
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
