//! `usermedia capture`: getUserMedia, then write what the tracks deliver for a while —
//! video as Y4M, audio as 16-bit WAV — on one writer thread per track.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

use usermedia::devices::media_file::Y4mWriter;
use usermedia::{MediaFrame, MediaKind, MediaStreamTrack};

use crate::args::{parse_seconds, DeviceArgs};
use crate::exit::{self, Classify, CliError};
use crate::media::{prepare, print_media_error};
use crate::print_json;

/// The exit codes of `capture`, in its `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  captured and written
  1  a media error (getUserMedia's, e.g. a device that cannot open), printed as
     {\"error\": ...} on stdout
  2  bad input: a bad flag, constraints that are not JSON, a bad devices file, an --out
     directory that cannot be created or written to
  3  a runtime failure: writing the files failing midway";

/// `usermedia capture`'s flags.
#[derive(clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct Options {
    /// getUserMedia constraints as JSON, or @FILE.
    #[arg(
        long,
        value_name = "JSON",
        default_value = r#"{"video":true,"audio":true}"#
    )]
    pub constraints: String,
    #[command(flatten)]
    pub device_args: DeviceArgs,
    /// How long to capture.
    #[arg(long, value_name = "N", value_parser = parse_seconds)]
    pub seconds: f64,
    /// Directory for the files (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Frames a writer may fall behind before frames are dropped (counted in the output).
const QUEUE: usize = 120;

struct Written {
    file: PathBuf,
    frames: u64,
    samples: u64,
}

/// `usermedia capture`: getUserMedia, write for --seconds, print what was written.
pub fn run(opts: Options) -> Result<ExitCode, CliError> {
    let (seconds, out) = (opts.seconds, opts.out.as_path());
    // The top level: only the allow-list's `*` entry applies; a kind it refuses is
    // dropped (and logged) as serve and bot do.
    let Some((devices, constraints)) = prepare(&opts.device_args, Some(&opts.constraints))? else {
        return Ok(exit::media_error());
    };
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))
        .bad_input()?;
    let stream = match devices.get_user_media(&constraints) {
        Ok(s) => s,
        Err(e) => {
            print_media_error(&e.to_json());
            return Ok(exit::media_error());
        }
    };
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut writers = Vec::new();
    for track in stream.get_tracks() {
        let receiver = track.subscribe(QUEUE);
        let track = track.clone();
        let dir = out.to_owned();
        writers.push(std::thread::spawn(move || {
            let result = write_track(&track, &receiver, &dir, deadline);
            (track, receiver.dropped(), result)
        }));
    }
    let mut tracks = Vec::new();
    let mut failed = None;
    for writer in writers {
        let Ok((track, dropped, result)) = writer.join() else {
            failed = Some(CliError::runtime("a writer thread panicked"));
            continue;
        };
        track.stop();
        match result {
            Ok(w) => {
                let mut entry = json!({
                    "kind": track.kind(),
                    "label": track.label(),
                    "deviceId": track.get_settings().device_id,
                    "settings": track.get_settings(),
                    "file": w.file,
                    "frames": w.frames,
                    "dropped": dropped,
                });
                if track.kind() == MediaKind::Audio {
                    entry["samples"] = json!(w.samples);
                }
                tracks.push(entry);
            }
            Err(e) => failed = Some(e),
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    print_json(&json!({ "seconds": seconds, "tracks": Value::Array(tracks) }));
    Ok(ExitCode::SUCCESS)
}

/// Writes what `track` delivers until `deadline` into `dir`. A file that cannot be created
/// is bad input (the --out directory); a write failing midway is a runtime failure.
fn write_track(
    track: &MediaStreamTrack,
    receiver: &usermedia::FrameReceiver,
    dir: &Path,
    deadline: Instant,
) -> Result<Written, CliError> {
    let settings = track.get_settings();
    let (name, kind) = match track.kind() {
        MediaKind::Video => ("video.y4m", MediaKind::Video),
        MediaKind::Audio => ("audio.wav", MediaKind::Audio),
    };
    let file = dir.join(name);
    let create = || {
        std::fs::File::create(&file)
            .map(std::io::BufWriter::new)
            .with_context(|| format!("cannot write {}", file.display()))
            .bad_input()
    };
    let writing = || format!("writing {}", file.display());
    let mut written = Written {
        file: file.clone(),
        frames: 0,
        samples: 0,
    };
    match kind {
        MediaKind::Video => {
            let (w, h, fps) = (
                settings.width.unwrap_or(0),
                settings.height.unwrap_or(0),
                settings.frame_rate.unwrap_or(30.0),
            );
            let mut y4m = Y4mWriter::new(create()?, w, h, fps)
                .with_context(writing)
                .runtime()?;
            while let Some(frame) = next_before(receiver, deadline) {
                if let MediaFrame::Video(f) = frame {
                    y4m.write(&f).with_context(writing).runtime()?;
                    written.frames += 1;
                }
            }
            y4m.finish().with_context(writing).runtime()?;
        }
        MediaKind::Audio => {
            let spec = hound::WavSpec {
                channels: settings.channel_count.unwrap_or(1) as u16,
                sample_rate: settings.sample_rate.unwrap_or(48000),
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut wav = hound::WavWriter::new(create()?, spec)
                .with_context(writing)
                .runtime()?;
            while let Some(frame) = next_before(receiver, deadline) {
                if let MediaFrame::Audio(a) = frame {
                    for s in a.to_i16() {
                        wav.write_sample(s).with_context(writing).runtime()?;
                    }
                    written.frames += 1;
                    written.samples += a.frames() as u64;
                }
            }
            wav.finalize().with_context(writing).runtime()?;
        }
    }
    Ok(written)
}

/// The next frame, or `None` at the deadline or when the track ends.
fn next_before(receiver: &usermedia::FrameReceiver, deadline: Instant) -> Option<MediaFrame> {
    let left = deadline.checked_duration_since(Instant::now())?;
    receiver.recv_timeout(left).ok().flatten()
}
