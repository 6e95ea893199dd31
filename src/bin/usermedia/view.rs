//! `usermedia view`: the receiving counterpart of `publish`. It pulls a WHEP stream (ours,
//! or any server's), decodes it and reports what really arrived, as JSON lines: one
//! `{"event":"track",...}` per track as it starts and, on exit (Ctrl-C, --seconds, or the
//! stream's end), one `{"event":"summary","tracks":[...]}` with per video track frames,
//! rate, size, skipped/repeated/reordered frames, freezes and latency (from the pattern's
//! strip, or freezes from arrival times without it), and per audio track its length, level
//! and A/V offset. With --record DIR what arrived is also written to DIR as an MP4 file,
//! without re-encoding.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};
use usermedia::analysis::ReceiveAnalysis;
use usermedia::constraints::MediaKind;
use usermedia::peer::{PeerConfig, PeerFactory, PeerState, RemoteTrack};
use usermedia::record::{RecordCodec, Recorder};
use usermedia_signaling::{ClientError, HttpClient};

use crate::args::{parse_seconds, IceArgs, ImpairArgs};
use crate::client::session_failure;
use crate::exit::{Classify, CliError};
use crate::print_json;

/// How long the connection may take to come up after the server's answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Encoded units a track's recording may fall behind by.
const RECORD_QUEUE: usize = 256;
/// How long the decoders may take to hand on what they hold once the session has ended.
const DRAIN: Duration = Duration::from_secs(1);

/// What `view --help` ends with: the output, an example, the exit codes.
const AFTER_HELP: &str = "\
Output (stdout, one JSON object a line; docs/cli.md has every field):
  {\"event\":\"track\",\"track\":{\"kind\",\"id\",\"mimeType\"}}   per track as it starts
  {\"event\":\"summary\",\"tracks\":[...],\"stats\":[...],\"files\":[...]}   on exit
  video: frames, fps, width, height, source (\"strip\" or \"arrival\"), frames_skipped,
  frames_repeated, frames_reordered, freezes {count, longest_ms}, latency_ms {p50, p95, p99};
  audio: seconds, level, av_offset_ms (audio later than video: positive);
  with --impair, \"impairment\": what the impairment did (packets dropped, delayed, ...)

Example:
  usermedia view --whep http://127.0.0.1:8080/whep/default --seconds 10 --record out/

Exit codes:
  0  media arrived; the summary was printed (Ctrl-C, --seconds or the stream's end)
  2  bad input: a bad flag, URL or CA file, a --record DIR that cannot be created, a token
     or URL the server refuses (HTTP 401, 403, 404)
  3  a runtime or network failure: the server cannot be reached, refuses the session
     otherwise (409, 503, ...), the connection fails or times out, a recording cannot be
     written, or no media arrived at all (the summary is still printed)";

/// `usermedia view`'s flags.
#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Options {
    /// The WHEP endpoint: `usermedia serve`'s http://HOST:8080/whep/STREAM, or any server's.
    #[arg(long, value_name = "URL")]
    pub whep: String,
    /// Bearer token for the endpoint.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Also trust the certificates in this PEM file for https:// (a private CA, or a
    /// self-signed server's certificate); the system's roots stay trusted. Repeatable.
    #[arg(long = "ca-cert", value_name = "PEM")]
    pub ca_certs: Vec<PathBuf>,
    #[command(flatten)]
    pub ice: IceArgs,
    #[command(flatten)]
    pub impair: ImpairArgs,
    /// Stop after this many seconds instead of waiting for Ctrl-C or the stream's end.
    #[arg(long, value_name = "N", value_parser = parse_seconds)]
    pub seconds: Option<f64>,
    /// Also write what arrives, as it arrived (no re-encoding), to DIR/view-UNIXMS.mp4:
    /// H.264 or VP8 video and Opus audio. The file is complete on every way out.
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// A test hook: hold the decoded audio this many ms before it plays (video is not
    /// held), so a test can check the A/V offset reported. Hidden.
    #[arg(long, value_name = "MS", hide = true, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=5000))]
    pub audio_delay_ms: u64,
}

/// A remote track as its `track` line shows it.
fn describe(track: &RemoteTrack) -> Value {
    json!({ "kind": track.kind(), "id": track.id(), "mimeType": track.mime_type() })
}

/// The recording's file in `dir` (created if missing).
fn recording_path(dir: &Path) -> Result<PathBuf, CliError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        CliError::bad_input(format!("--record {}: cannot create it: {e}", dir.display()))
    })?;
    // Named by the start's UNIX time in ms: views into one directory do not collide.
    let stamp = usermedia::media::wall_clock_ms();
    Ok(dir.join(format!("view-{stamp}.mp4")))
}

/// Why the viewing stopped.
enum Stop {
    Asked,
    StreamEnded,
}

/// `usermedia view`: connect, receive, analyze (and record), report.
pub fn run(opts: Options) -> Result<ExitCode, CliError> {
    let http = match HttpClient::with_ca_certs(&opts.ca_certs) {
        Ok(http) => http,
        Err(e @ ClientError::Tls(_)) => return Err(CliError::BadInput(e.into())),
        Err(e) => return Err(CliError::Runtime(e.into())),
    };
    let mut config = PeerConfig::default();
    opts.ice.configure(&mut config)?;
    opts.impair.configure(&mut config)?;
    config.audio_delay = Duration::from_millis(opts.audio_delay_ms);
    let record_path = opts.record.as_deref().map(recording_path).transpose()?;
    let runtime = tokio::runtime::Runtime::new().runtime()?;
    runtime.block_on(async {
        let factory = PeerFactory::new(config);
        let session = usermedia::client::view_whep_with(
            &http,
            &factory,
            &opts.whep,
            opts.token.as_deref(),
        )
        .await
        .map_err(|e| session_failure(e, format!("viewing {}", opts.whep)))?;
        if let Err(e) = session.peer.wait_connected(CONNECT_TIMEOUT).await {
            let _ = session.end().await;
            return Err(CliError::runtime(format!("viewing {}: {e}", opts.whep)));
        }
        eprintln!(
            "usermedia: viewing {} (session {})",
            opts.whep, session.http.location
        );
        // Created once connected, so a failed start leaves no empty file behind.
        let recorder = match &record_path {
            Some(path) => Some(Recorder::create(path).runtime()?),
            None => None,
        };
        let analysis = ReceiveAnalysis::new();
        let leave = async {
            match opts.seconds {
                Some(s) => tokio::time::sleep(Duration::from_secs_f64(s)).await,
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        tokio::pin!(leave);
        let mut state = session.peer.watch_state();
        let mut check = tokio::time::interval(Duration::from_millis(250));
        let mut tracks: Vec<RemoteTrack> = Vec::new();
        let stop = loop {
            tokio::select! {
                _ = &mut leave => break Stop::Asked,
                track = session.peer.next_remote_track(Duration::from_secs(3600)) => {
                    let Some(track) = track else { break Stop::StreamEnded };
                    print_json(&json!({ "event": "track", "track": describe(&track) }));
                    analysis
                        .watch(track.track())
                        .context_runtime("cannot start the analysis")?;
                    if let Some(recorder) = &recorder {
                        let codec = match track.kind() {
                            MediaKind::Video => track.video_codec().map(RecordCodec::Video),
                            MediaKind::Audio => Some(RecordCodec::Opus),
                        };
                        if let Some(codec) = codec {
                            recorder
                                .record(codec, track.subscribe_encoded(RECORD_QUEUE))
                                .runtime()?;
                        }
                    }
                    tracks.push(track);
                }
                changed = state.changed() => {
                    let s = *state.borrow_and_update();
                    if changed.is_err() || matches!(s, PeerState::Failed | PeerState::Closed) {
                        break Stop::StreamEnded;
                    }
                }
                _ = check.tick() => {
                    if !tracks.is_empty() && tracks.iter().all(RemoteTrack::ended) {
                        break Stop::StreamEnded;
                    }
                }
            }
        };
        if matches!(stop, Stop::StreamEnded) {
            eprintln!("usermedia: the stream ended");
        }
        // End the session first (DELETE, then the connection closes) and let the decoders
        // drain what they hold, so the analysis and the recording stop on the same last
        // unit instead of the recorder taking units the analysis no longer sees.
        let impairment = session.peer.impairment();
        if let Err(e) = session.end().await {
            tracing::debug!("ending the session: {e}");
        }
        let drained = tokio::time::Instant::now() + DRAIN;
        while !tracks.iter().all(RemoteTrack::ended) && tokio::time::Instant::now() < drained {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        analysis.stop();
        let mut summary = json!({
            "event": "summary",
            "whep": opts.whep,
            "tracks": analysis.report(),
            "stats": tracks.iter().map(|t| json!({"id": t.id(), "stats": t.stats()})).collect::<Vec<_>>(),
        });
        if let Some(impairment) = impairment {
            summary["impairment"] = json!(impairment);
        }
        let recorded = recorder.map(|r| r.finish());
        let mut failure = None;
        match recorded {
            Some(Ok(r)) => summary["files"] = json!([r.path]),
            Some(Err(e)) => failure = Some(CliError::Runtime(e.into())),
            None => {}
        }
        print_json(&summary);
        if let Some(e) = failure {
            return Err(e);
        }
        if !analysis.any_media() {
            return Err(CliError::runtime(format!(
                "viewing {}: no media arrived",
                opts.whep
            )));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `.context_runtime(what)`: a runtime failure described by `what` and its cause.
trait ContextRuntime<T> {
    fn context_runtime(self, what: &str) -> Result<T, CliError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> ContextRuntime<T> for Result<T, E> {
    fn context_runtime(self, what: &str) -> Result<T, CliError> {
        self.map_err(|e| CliError::Runtime(anyhow::Error::new(e).context(what.to_owned())))
    }
}
