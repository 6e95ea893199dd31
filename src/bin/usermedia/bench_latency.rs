//! `usermedia bench latency`: capture → decoded at a loopback peer, from the built-in
//! pattern's strip (its capture time, read again from each decoded frame), p50/p95/p99
//! over a window ([`usermedia::bench::latency`]).

use std::process::ExitCode;
use std::time::Duration;

use usermedia::bench::latency::{LatencyConfig, LatencyReport};
use usermedia::devices::{MediaDevices, PermissionPolicy};

use crate::bench::{failed, parse_warmup, parse_window, print, VideoArgs};
use crate::exit::CliError;

const AFTER_HELP: &str = "\
The numbers (ms, nearest-rank percentiles over the window's frames):
  latency_ms_p50/p95/p99  from the capture time the pattern's strip carries to the
                          frame's hand-over by the receiving peer's decoder: encode,
                          packetize, SRTP, loopback, depacketize, decode
  frames, frames_skipped, freezes  what arrived in the window
Both peers run in this process, on 127.0.0.1; the strip's clock has 1 ms steps.

Exit codes:
  0  measured
  1  a media error (the size and rate cannot be captured), printed as {\"error\": ...}
  2  bad input: a bad flag or value (an unknown codec, an odd size)
  3  a runtime failure: a peer that does not connect, no frame, no readable strip";

/// `usermedia bench latency`'s flags.
#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Options {
    #[command(flatten)]
    pub video: VideoArgs,
    /// The window measured, seconds.
    #[arg(long, value_name = "S", default_value_t = 10.0, value_parser = parse_window)]
    pub seconds: f64,
    /// From the first decoded frame to the window, seconds.
    #[arg(long, value_name = "S", default_value_t = 1.0, value_parser = parse_warmup)]
    pub warmup: f64,
    /// One JSON line instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `usermedia bench latency`.
pub fn run(opts: Options) -> Result<ExitCode, CliError> {
    let spec = opts.video.spec()?;
    let config = LatencyConfig {
        codec: spec.codec,
        bitrate: spec.bitrate,
        warmup: Duration::from_secs_f64(opts.warmup),
        window: Duration::from_secs_f64(opts.seconds),
    };
    let runtime = crate::media::runtime()?;
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let result = runtime.block_on(async {
        let stream = devices.get_user_media_json(&spec.constraints())?;
        let tracks = stream.get_tracks().to_vec();
        let track = stream.get_video_tracks().into_iter().next();
        let result = match track {
            Some(track) => usermedia::bench::latency::run(&config, &track).await,
            None => Err(usermedia::bench::BenchError::Timeout(
                "no video track".into(),
            )),
        };
        for t in &tracks {
            t.stop();
        }
        result
    });
    match result {
        Ok(r) => {
            show(&r, opts.json);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => failed(e),
    }
}

fn show(r: &LatencyReport, json: bool) {
    let title = format!(
        "latency: {}x{}@{} {}, capture → decoded at a loopback peer, {:.1} s window",
        r.width, r.height, r.fps, r.codec, r.seconds
    );
    print(
        r,
        json,
        &title,
        &[
            (
                "latency",
                format!(
                    "p50 {} ms, p95 {} ms, p99 {} ms",
                    r.latency_ms_p50, r.latency_ms_p95, r.latency_ms_p99
                ),
            ),
            (
                "frames",
                format!(
                    "{} decoded ({} with the strip), {} skipped, {} freezes",
                    r.frames, r.frames_with_strip, r.frames_skipped, r.freezes
                ),
            ),
        ],
    );
}
