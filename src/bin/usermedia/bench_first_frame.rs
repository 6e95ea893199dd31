//! `usermedia bench first-frame`: how fast a viewer sees the first picture — from starting
//! the offer, and from calling getUserMedia, to the first decoded frame at a second peer on
//! loopback (the built-in pattern camera), p50/p95 over --runs fresh runs
//! ([`usermedia::bench::first_frame`]).

use std::process::ExitCode;

use usermedia::bench::first_frame::{run_once, FirstFrameReport};
use usermedia::devices::{MediaDevices, PermissionPolicy};

use crate::bench::{failed, print, VideoArgs};
use crate::exit::CliError;

const AFTER_HELP: &str = "\
The numbers (ms, nearest-rank percentiles over the runs):
  offer_to_frame_ms_p50/p95           from starting the offer to the first decoded frame
                                      at the receiving peer (ICE, DTLS, the keyframe)
  get_user_media_to_frame_ms_p50/p95  from calling getUserMedia to that frame (opening
                                      the camera and the encoder too)
Both peers run in this process, on 127.0.0.1.

Exit codes:
  0  measured
  1  a media error (the constraints cannot be met), printed as {\"error\": ...} on stdout
  2  bad input: a bad flag or value (0 runs, an unknown codec, an odd size)
  3  a runtime failure: a peer that does not connect, no frame in 10 s";

/// `usermedia bench first-frame`'s flags.
#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Options {
    /// Runs, each from getUserMedia on.
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub runs: u64,
    #[command(flatten)]
    pub video: VideoArgs,
    /// One JSON line instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `usermedia bench first-frame`.
pub fn run(opts: Options) -> Result<ExitCode, CliError> {
    let spec = opts.video.spec()?;
    let constraints = spec.constraints();
    let runtime = crate::media::runtime()?;
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let runs = runtime.block_on(async {
        let mut runs = Vec::new();
        for _ in 0..opts.runs {
            runs.push(run_once(&devices, &constraints, spec.codec, spec.bitrate).await?);
        }
        Ok(runs)
    });
    let runs = match runs {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let r = FirstFrameReport::of(&runs, spec.codec, spec.width, spec.height);
    let title = format!(
        "first frame: {}x{}@{} {}, {} runs, loopback",
        r.width, r.height, spec.fps, r.codec, r.runs
    );
    print(
        &r,
        opts.json,
        &title,
        &[
            (
                "offer → decoded",
                format!(
                    "p50 {:.1} ms, p95 {:.1} ms",
                    r.offer_to_frame_ms_p50, r.offer_to_frame_ms_p95
                ),
            ),
            (
                "getUserMedia → decoded",
                format!(
                    "p50 {:.1} ms, p95 {:.1} ms",
                    r.get_user_media_to_frame_ms_p50, r.get_user_media_to_frame_ms_p95
                ),
            ),
        ],
    );
    Ok(ExitCode::SUCCESS)
}
