//! `usermedia bench`: measures this build on this machine — `fanout` (one capture and
//! encode, N viewers in a separate process), `first-frame`, `latency` and `pipeline` (one
//! file each: `bench_*.rs`) — and prints a table, or one JSON line with --json. Here: the
//! subcommands, the flags they share, the hidden receiving role `fanout` re-executes this
//! binary in, and how a benchmark's failure maps to the exit codes.

use std::process::ExitCode;

use serde::Serialize;
use usermedia::bench::{BenchError, VideoSpec};
use usermedia::encode::VideoCodec;

use crate::args::CodecArg;
use crate::exit::{Classify, CliError};
use crate::media::print_media_error;
use crate::{bench_fanout, bench_first_frame, bench_latency, bench_pipeline, print_json};

/// What `bench --help` ends with.
const AFTER_HELP: &str = "\
Each benchmark prints a table, or one JSON line with --json (docs/cli.md#bench has every
key; docs/performance.md the numbers measured). Peers use 127.0.0.1 only. Numbers move by
up to 1.7x from day to day on shared machines: compare runs made together.

Exit codes:
  0  measured
  1  a media error (the constraints cannot be met), printed as {\"error\": ...} on stdout
  2  bad input: a bad flag or value (0 viewers, an unknown codec, an odd size), a bad
     devices file or constraints
  3  a runtime failure: a peer that does not connect, a viewer that gets no frame";

/// `usermedia bench`'s subcommands.
#[derive(clap::Args)]
#[command(after_help = AFTER_HELP, subcommand_required = true)]
pub struct Options {
    #[command(subcommand)]
    pub which: Which,
}

#[derive(clap::Subcommand)]
pub enum Which {
    /// One capture and one encode sent to N viewers (a separate process that counts RTP
    /// and frames without decoding): publisher and receivers' CPU per media second,
    /// frames and bitrate per viewer, memory, first frame.
    Fanout(bench_fanout::Options),
    /// Offer → first decoded frame at a loopback peer, and getUserMedia → that frame:
    /// p50/p95 over --runs runs.
    FirstFrame(bench_first_frame::Options),
    /// Capture (the pattern's strip) → decoded at a loopback peer: p50/p95/p99.
    Latency(bench_latency::Options),
    /// Capture → convert → encode at full speed per codec and size: frames/s, CPU per frame.
    Pipeline(bench_pipeline::Options),
    /// The receiving process of `fanout` (it starts it): JSON requests on stdin.
    #[command(hide = true)]
    Receivers,
}

/// `usermedia bench`.
pub fn run(opts: Options) -> Result<ExitCode, CliError> {
    match opts.which {
        Which::Fanout(o) => bench_fanout::run(o),
        Which::FirstFrame(o) => bench_first_frame::run(o),
        Which::Latency(o) => bench_latency::run(o),
        Which::Pipeline(o) => bench_pipeline::run(o),
        Which::Receivers => receivers(),
    }
}

/// The receiving role: answers the publisher's offers read from stdin until it closes.
fn receivers() -> Result<ExitCode, CliError> {
    let runtime = crate::media::runtime()?;
    runtime.block_on(async {
        let factory = usermedia::bench::loopback_factory(false, MAX_VIEWERS, 1_000_000);
        usermedia::bench::receivers::serve(
            std::io::BufReader::new(std::io::stdin()),
            std::io::stdout(),
            factory,
        )
        .await
        .runtime()
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The most viewers `fanout` takes.
pub const MAX_VIEWERS: usize = 4096;

/// The video flags the benchmarks share.
#[derive(clap::Args, Clone, Copy)]
pub struct VideoArgs {
    /// Picture width (even).
    #[arg(long, value_name = "W", default_value_t = 1280, value_parser = clap::value_parser!(u32).range(16..=4096))]
    pub width: u32,
    /// Picture height (even).
    #[arg(long, value_name = "H", default_value_t = 720, value_parser = clap::value_parser!(u32).range(16..=4096))]
    pub height: u32,
    /// Frames per second.
    #[arg(long, value_name = "F", default_value_t = 30.0, value_parser = parse_fps)]
    pub fps: f64,
    /// Video bitrate: bits per second, or with k or M (1300k).
    #[arg(long, value_name = "B", default_value = "1300k", value_parser = parse_bitrate)]
    pub bitrate: u32,
    /// The video codec.
    #[arg(long, value_enum, default_value = "h264")]
    pub codec: CodecArg,
}

impl VideoArgs {
    /// The spec, or bad input for an odd size.
    pub fn spec(&self) -> Result<VideoSpec, CliError> {
        even(self.width, self.height)?;
        Ok(VideoSpec {
            width: self.width,
            height: self.height,
            fps: self.fps,
            codec: VideoCodec::from(self.codec),
            bitrate: self.bitrate,
        })
    }
}

/// Bad input unless both sides are even (the encoders' 4:2:0 needs it).
pub fn even(width: u32, height: u32) -> Result<(), CliError> {
    if width % 2 == 1 || height % 2 == 1 {
        return Err(CliError::bad_input(format!(
            "the size {width}x{height} is odd: width and height must be even"
        )));
    }
    Ok(())
}

/// Frames per second, 1 to 120.
pub fn parse_fps(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (1.0..=120.0).contains(&v) => Ok(v),
        Ok(_) => Err("must be 1 to 120".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A bitrate: bits per second, or a number with k (×1000) or M (×1,000,000); 50 kbit/s to
/// 50 Mbit/s.
pub fn parse_bitrate(s: &str) -> Result<u32, String> {
    let (number, scale) = match s.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1e3),
        None => match s.strip_suffix('M') {
            Some(n) => (n, 1e6),
            None => (s, 1.0),
        },
    };
    let value = number
        .parse::<f64>()
        .map_err(|e| format!("{e} (expected bits per second, e.g. 1300000 or 1300k)"))?
        * scale;
    if !(50e3..=50e6).contains(&value) {
        return Err("must be 50k to 50M bits per second".into());
    }
    Ok(value.round() as u32)
}

/// Seconds of a benchmark's window: above 0, at most an hour.
pub fn parse_window(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(v),
        Ok(_) => Err("must be above 0 and at most 3600".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Seconds of a warm-up: 0 to 60.
pub fn parse_warmup(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=60.0).contains(&v) => Ok(v),
        Ok(_) => Err("must be 0 to 60".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A benchmark's failure as the command's outcome: a media error printed as JSON (exit
/// 1); anything else a runtime failure (exit 3).
pub fn failed(e: BenchError) -> Result<ExitCode, CliError> {
    match e {
        BenchError::Media(m) => {
            print_media_error(&m.to_json());
            Ok(crate::exit::media_error())
        }
        e => Err(CliError::Runtime(e.into())),
    }
}

/// Prints `report` as one JSON line, or `table` (label, value rows) for a person.
pub fn print(report: &impl Serialize, json: bool, title: &str, table: &[(&str, String)]) {
    if json {
        print_json(&serde_json::to_value(report).unwrap_or_default());
        return;
    }
    println!("{title}");
    let width = table
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, v) in table {
        println!("  {k:<width$}  {v}");
    }
}

/// Prints `report` as one JSON line, or a table of `rows` under `header` for a person.
pub fn print_rows(
    report: &impl Serialize,
    json: bool,
    title: &str,
    header: &[&str],
    rows: &[Vec<String>],
) {
    if json {
        print_json(&serde_json::to_value(report).unwrap_or_default());
        return;
    }
    println!("{title}");
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect();
        println!("  {}", padded.join("  "));
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates_take_a_unit_and_stay_in_range() {
        assert_eq!(parse_bitrate("1300000"), Ok(1_300_000));
        assert_eq!(parse_bitrate("1300k"), Ok(1_300_000));
        assert_eq!(parse_bitrate("2.5M"), Ok(2_500_000));
        assert!(parse_bitrate("0").is_err());
        assert!(parse_bitrate("fast").is_err());
        assert!(parse_bitrate("100M").is_err());
        assert!(parse_fps("0").is_err());
        assert_eq!(parse_fps("29.97"), Ok(29.97));
        assert!(parse_window("0").is_err());
        assert_eq!(parse_warmup("0"), Ok(0.0));
        assert_eq!(even(641, 480).unwrap_err().code(), 2);
        assert!(even(640, 480).is_ok());
    }
}
