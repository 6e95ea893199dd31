//! `usermedia bench pipeline`: capture → convert → encode at full speed for each codec
//! and size (camera frames in YUYV converted to I420, then encoded): frames per second and
//! CPU per frame ([`usermedia::bench::pipeline`]).

use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use usermedia::bench::pipeline::PipelineRow;
use usermedia::encode::VideoCodec;

use crate::args::CodecArg;
use crate::bench::{even, parse_bitrate, parse_fps, parse_window, print_rows};
use crate::exit::CliError;

/// The bitrate at 1280×720 when --bitrate is not given; other sizes scale it by pixels.
const BITRATE_720P: f64 = 1_300_000.0;

const AFTER_HELP: &str = "\
The numbers, per codec and size:
  fps                 frames through convert + encode per second, one frame after another
  cpu_ms_per_frame    CPU of the process per frame (every thread: VP8 encodes on two, so
                      fps can exceed 1000 / cpu_ms_per_frame)
  convert_ms_per_frame, encode_ms_per_frame  wall-clock time of each step
  kbps                what the encoder produced, at --fps
The frames are the pattern with sensor-like noise, packed as a camera's YUYV beforehand.

Exit codes:
  0  measured
  2  bad input: a bad flag or value (an unknown codec, an odd size)
  3  a runtime failure: an encoder that cannot start";

/// A picture size, WxH.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Size(pub u32, pub u32);

fn parse_size(s: &str) -> Result<Size, String> {
    let (w, h) = s.split_once('x').ok_or("expected WxH, e.g. 1280x720")?;
    let side = |v: &str| -> Result<u32, String> {
        match v.parse::<u32>() {
            Ok(n) if (16..=4096).contains(&n) && n % 2 == 0 => Ok(n),
            Ok(_) => Err(format!("{v}: each side must be even, 16 to 4096")),
            Err(e) => Err(format!("{v}: {e}")),
        }
    };
    Ok(Size(side(w)?, side(h)?))
}

/// `usermedia bench pipeline`'s flags.
#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Options {
    /// The codecs (repeatable) [default: h264 and vp8]
    #[arg(long = "codec", value_enum, value_name = "CODEC")]
    pub codecs: Vec<CodecArg>,
    /// The sizes, WxH (repeatable) [default: 640x480, 1280x720 and 1920x1080]
    #[arg(long = "size", value_name = "WxH", value_parser = parse_size)]
    pub sizes: Vec<Size>,
    /// Frame rate of the timestamps (the encoders' rate control works per frame at it).
    #[arg(long, value_name = "F", default_value_t = 30.0, value_parser = parse_fps)]
    pub fps: f64,
    /// Bitrate for every size [default: 1300k at 1280x720, scaled by pixels]
    #[arg(long, value_name = "B", value_parser = parse_bitrate)]
    pub bitrate: Option<u32>,
    /// Time per codec and size, seconds.
    #[arg(long, value_name = "S", default_value_t = 2.0, value_parser = parse_window)]
    pub seconds: f64,
    /// One JSON line instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `bench pipeline --json`'s line.
#[derive(Serialize)]
struct Report {
    rows: Vec<PipelineRow>,
}

/// `usermedia bench pipeline`.
pub fn run(opts: Options) -> Result<ExitCode, CliError> {
    let codecs: Vec<VideoCodec> = if opts.codecs.is_empty() {
        VideoCodec::ALL.to_vec()
    } else {
        opts.codecs.iter().map(|&c| c.into()).collect()
    };
    let sizes = if opts.sizes.is_empty() {
        vec![Size(640, 480), Size(1280, 720), Size(1920, 1080)]
    } else {
        opts.sizes.clone()
    };
    let mut rows = Vec::new();
    for &Size(w, h) in &sizes {
        even(w, h)?;
        let bitrate = opts
            .bitrate
            .unwrap_or_else(|| (BITRATE_720P * f64::from(w * h) / (1280.0 * 720.0)).round() as u32);
        for &codec in &codecs {
            let row = usermedia::bench::pipeline::run(
                codec,
                w,
                h,
                opts.fps,
                bitrate,
                Duration::from_secs_f64(opts.seconds),
            )
            .map_err(|e| CliError::Runtime(e.into()))?;
            rows.push(row);
        }
    }
    let report = Report { rows };
    print_rows(
        &report,
        opts.json,
        "pipeline: YUYV camera frames → I420 → encode, one frame after another",
        &[
            "codec",
            "size",
            "fps",
            "CPU ms/frame",
            "convert ms",
            "encode ms",
            "kbit/s",
        ],
        &report
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.codec.to_owned(),
                    format!("{}x{}", r.width, r.height),
                    format!("{:.0}", r.fps),
                    format!("{:.2}", r.cpu_ms_per_frame),
                    format!("{:.2}", r.convert_ms_per_frame),
                    format!("{:.2}", r.encode_ms_per_frame),
                    format!("{:.0}", r.kbps),
                ]
            })
            .collect::<Vec<_>>(),
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_even_and_bounded() {
        assert_eq!(parse_size("1280x720"), Ok(Size(1280, 720)));
        assert!(parse_size("1281x720").is_err());
        assert!(parse_size("1280").is_err());
        assert!(parse_size("8x8").is_err());
    }
}
