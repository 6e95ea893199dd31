//! `usermedia select`: getUserMedia's device and settings selection without opening
//! anything; prints the chosen tracks (or the media error) as JSON, with `--explain` every
//! candidate and its fitness distance.

use std::process::ExitCode;

use serde_json::{json, Map, Value};

use crate::args::DeviceArgs;
use crate::exit::{self, CliError};
use crate::media::parse_constraints;
use crate::print_json;

/// The exit codes of `select`, in its `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  tracks selected
  1  a media error (TypeError, NotFoundError, OverconstrainedError, ...), printed as
     {\"error\": ...} on stdout
  2  bad input: a bad flag, constraints that are not JSON, a bad devices file";

/// `usermedia select`'s flags.
#[derive(clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct Options {
    /// getUserMedia constraints as JSON, e.g. '{"video":{"width":1280}}', or @FILE.
    #[arg(long, value_name = "JSON")]
    pub constraints: String,
    #[command(flatten)]
    pub device_args: DeviceArgs,
    /// Also print every candidate settings dictionary with its fitness distance.
    #[arg(long)]
    pub explain: bool,
}

/// `usermedia select`: select, print one JSON object.
pub fn run(opts: Options) -> Result<ExitCode, CliError> {
    let devices = opts.device_args.load()?;
    let Some(constraints) = parse_constraints(&opts.constraints)? else {
        return Ok(exit::media_error());
    };
    let (result, explanations) = if opts.explain {
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
            exit::media_error()
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
