//! `usermedia select`: getUserMedia's device and settings selection without opening
//! anything; prints the chosen tracks (or the media error) as JSON, with `--explain` every
//! candidate and its fitness distance, and the translation of legacy constraints.

use std::process::ExitCode;

use serde_json::{json, Map, Value};

use crate::args::DeviceArgs;
use crate::exit::{self, CliError};
use usermedia::constraints::legacy_translations;

use crate::media::{parse_constraints, read_constraints};
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
    /// Also print every candidate settings dictionary with its fitness distance (and, for
    /// legacy constraints, what they were translated to).
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
        if let Some(legacy) = legacy_explanation(&opts.constraints)? {
            out.insert("legacy".into(), legacy);
        }
    }
    print_json(&Value::Object(out));
    Ok(code)
}

/// `"legacy": {"video": {"input": ..., "translated": ...}}` for the kinds written in the
/// legacy syntax (`mandatory`/`optional`); `None` when neither is.
fn legacy_explanation(arg: &str) -> Result<Option<Value>, CliError> {
    // Already read and parsed once: the text is JSON here.
    let text = read_constraints(arg)?;
    let Ok(value) = serde_json::from_str::<Value>(&text) else {
        return Ok(None);
    };
    let by_kind: Map<String, Value> = legacy_translations(&value)
        .into_iter()
        .map(|t| (t.kind.as_str().to_owned(), json!(t)))
        .collect();
    Ok((!by_kind.is_empty()).then_some(Value::Object(by_kind)))
}
