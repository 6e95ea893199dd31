//! `usermedia bench fanout`: one capture and one encode sent to N viewers that run in a
//! second process (this binary re-executed as `bench receivers`) and count RTP and frames
//! without decoding. The source is a clip of the pattern with sensor-like noise written
//! for the run (or the built-in pattern, or whatever --devices names); the numbers are the
//! library's [`usermedia::bench::fanout`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use usermedia::bench::fanout::{FanoutConfig, FanoutReport};
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::MediaStreamConstraints;

use crate::bench::{failed, parse_warmup, parse_window, print, VideoArgs, MAX_VIEWERS};
use crate::exit::{Classify, CliError};
use crate::media::{parse_constraints, print_media_error};

const AFTER_HELP: &str = "\
The numbers:
  publisher_cpu_per_media_s  user+sys CPU seconds of this process (capture, encode, every
                             viewer's send path) per second of media, over the steady
                             window that starts --warmup after every viewer's first frame
  receiver_cpu_per_media_s   the same for the receiving process (all viewers)
  fps_per_viewer_min/median  frames each viewer completed per second in the window
  kbps_per_viewer_median     kbit/s each viewer received (RTP payload and headers)
  publisher_rss_bytes        this process's resident memory at the end
  rss_per_viewer_bytes       what each viewer after the first added to it
  first_frame_ms_p50/p95     from starting a viewer's offer to its first complete frame
docs/cli.md#bench-fanout lists every JSON key.

Examples:
  usermedia bench fanout --viewers 16
  usermedia bench fanout --devices clip.json --constraints '{\"video\":{\"width\":1280}}' --viewers 4 --json

Exit codes:
  0  measured
  1  a media error (the constraints cannot be met), printed as {\"error\": ...} on stdout
  2  bad input: a bad flag or value (0 viewers, an unknown codec, an odd size), a bad
     devices file or constraints
  3  a runtime failure: a peer that does not connect, a viewer that gets no frame";

/// `usermedia bench fanout`'s flags.
#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Options {
    /// Receiving peers, each its own connection.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=MAX_VIEWERS as u64))]
    pub viewers: u64,
    #[command(flatten)]
    pub video: VideoArgs,
    /// The steady window measured, seconds.
    #[arg(long, value_name = "S", default_value_t = 10.0, value_parser = parse_window)]
    pub seconds: f64,
    /// From the last viewer's first frame to the window, seconds.
    #[arg(long, value_name = "S", default_value_t = 2.0, value_parser = parse_warmup)]
    pub warmup: f64,
    /// Capture from this devices file's first matching camera (docs/devices-file.md; a Y4M
    /// clip for the same frames as another publisher) instead of the noisy clip.
    #[arg(long, value_name = "FILE")]
    pub devices: Option<PathBuf>,
    /// getUserMedia constraints (JSON or @FILE) instead of the exact --width, --height and
    /// --fps.
    #[arg(long, value_name = "JSON")]
    pub constraints: Option<String>,
    /// The built-in pattern camera instead of the noisy clip (it compresses to a fraction
    /// of the bitrate, so packets and their cost are fewer).
    #[arg(long, conflicts_with = "devices")]
    pub pattern: bool,
    /// One JSON line instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// A directory of this process's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, CliError> {
        let dir = std::env::temp_dir().join(format!("usermedia-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| CliError::runtime(format!("cannot create {}: {e}", dir.display())))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The devices to capture from: the file's, the built-in pattern, or a noisy clip written
/// to `dir` at the flags' size and rate.
fn devices(opts: &Options, dir: &Path) -> Result<MediaDevices, CliError> {
    let policy = PermissionPolicy::granted();
    if let Some(file) = &opts.devices {
        return MediaDevices::from_devices_file(file, policy).bad_input();
    }
    if opts.pattern {
        return Ok(MediaDevices::builtin_virtual(policy));
    }
    let v = &opts.video;
    // One second of distinct frames, played in a loop.
    let frames = (v.fps.round() as u32).max(10);
    let file = usermedia::bench::clip::write_noisy_clip(dir, v.width, v.height, v.fps, frames)
        .runtime()?;
    MediaDevices::from_devices_file(&file, policy).runtime()
}

/// `usermedia bench fanout`.
pub fn run(opts: Options) -> Result<ExitCode, CliError> {
    let spec = opts.video.spec()?;
    let constraints = opts
        .constraints
        .clone()
        .unwrap_or_else(|| spec.constraints());
    let Some(constraints) = parse_constraints(&constraints)? else {
        return Ok(crate::exit::media_error());
    };
    let dir = TempDir::new()?;
    let devices = devices(&opts, &dir.0)?;
    let exe = std::env::current_exe().map_err(|e| {
        CliError::runtime(format!(
            "cannot find this program to start the receivers: {e}"
        ))
    })?;
    let mut receivers = std::process::Command::new(exe);
    receivers.args(["bench", "receivers"]);
    // Its peers' routine log lines (a track ending at the close) are noise here.
    if std::env::var_os("RUST_LOG").is_none() {
        receivers.env("RUST_LOG", "error");
    }
    let config = FanoutConfig {
        viewers: opts.viewers as usize,
        codec: spec.codec,
        bitrate: spec.bitrate,
        warmup: Duration::from_secs_f64(opts.warmup),
        window: Duration::from_secs_f64(opts.seconds),
    };
    let runtime = crate::media::runtime()?;
    let report = runtime.block_on(async {
        let Some(track) = capture(&devices, &constraints)? else {
            return Ok(None);
        };
        let report = usermedia::bench::fanout::run(&config, &track, receivers).await;
        track.stop();
        Ok::<_, CliError>(Some(report))
    })?;
    match report {
        None => Ok(crate::exit::media_error()),
        Some(Err(e)) => failed(e),
        Some(Ok(report)) => {
            show(&report, opts.json);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The video track getUserMedia gives for `constraints`; `None` after a media error was
/// printed. Constraints without video are bad input.
fn capture(
    devices: &MediaDevices,
    constraints: &MediaStreamConstraints,
) -> Result<Option<usermedia::MediaStreamTrack>, CliError> {
    let stream = match devices.get_user_media(constraints) {
        Ok(s) => s,
        Err(e) => {
            print_media_error(&e.to_json());
            return Ok(None);
        }
    };
    for audio in stream.get_audio_tracks() {
        audio.stop();
    }
    match stream.get_video_tracks().into_iter().next() {
        Some(t) => Ok(Some(t)),
        None => Err(CliError::bad_input("--constraints ask for no video")),
    }
}

fn show(r: &FanoutReport, json: bool) {
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0));
    let title = format!(
        "fanout: {} viewer(s) of {}x{}@{} {} at {} kbit/s, {:.1} s window",
        r.viewers,
        r.width,
        r.height,
        r.fps,
        r.codec,
        r.bitrate / 1000,
        r.seconds
    );
    let per_viewer_ms = r.publisher_cpu_per_media_s * 1000.0 / r.viewers as f64;
    print(
        r,
        json,
        &title,
        &[
            (
                "publisher CPU",
                format!(
                    "{:.4} s per media s ({per_viewer_ms:.1} ms/s per viewer, encode included)",
                    r.publisher_cpu_per_media_s
                ),
            ),
            (
                "receivers' CPU",
                format!("{:.4} s per media s", r.receiver_cpu_per_media_s),
            ),
            (
                "fps per viewer",
                format!(
                    "min {:.2}, median {:.2}",
                    r.fps_per_viewer_min, r.fps_per_viewer_median
                ),
            ),
            (
                "per viewer",
                format!(
                    "{:.0} kbit/s, {:.0} packets/s (median); encoder {:.0} kbit/s, {:.2} of {:.2} fps",
                    r.kbps_per_viewer_median,
                    r.packets_per_viewer_s_median,
                    r.encoder_kbps,
                    r.encoder_fps,
                    r.source_fps
                ),
            ),
            (
                "publisher memory",
                format!(
                    "{} RSS, {} per viewer",
                    mib(r.publisher_rss_bytes),
                    mib(r.rss_per_viewer_bytes)
                ),
            ),
            (
                "receivers' memory",
                format!("{} RSS", mib(r.receiver_rss_bytes)),
            ),
            (
                "first frame",
                format!(
                    "p50 {:.0} ms, p95 {:.0} ms (offer → first complete frame)",
                    r.first_frame_ms_p50, r.first_frame_ms_p95
                ),
            ),
        ],
    );
}
