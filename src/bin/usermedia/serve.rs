//! `usermedia serve`: listen, capture per the constraints (asking the operator first in
//! `prompt` mode), publish as a stream, serve WHEP, the viewer page, `/status`,
//! `/permissions` and `/indicator`; Ctrl-C closes every session and exits cleanly.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use usermedia::encode::pipeline::BitrateLadder;
use usermedia::peer::{BitrateBounds, PeerConfig, PeerFactory};
use usermedia::server::Publisher;
use usermedia_signaling::{
    router, HttpLimits, LinkIceServer, ServerConfig, StreamToken, TokenFile,
};

use crate::args::{
    parse_impair, video_rates, CodecArg, DeviceArgs, IceArgs, DEFAULT_MIN_VIDEO_BITRATE,
};
use crate::exit::{self, Classify, CliError};
use crate::media::{prepare, print_media_error, runtime};

/// The exit codes of `serve`, in its `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  stopped by Ctrl-C
  1  a media error (getUserMedia's), printed as {\"error\": ...} on stdout
  2  bad input: a bad flag, constraints that are not JSON, a bad devices, token,
     certificate or key file
  3  a runtime failure: cannot listen (address in use, no permission), the encoders or
     the server failing";

/// `usermedia serve`'s flags.
#[derive(clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct Options {
    #[command(flatten)]
    pub device_args: DeviceArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// getUserMedia constraints for what to capture, or @FILE [default: video and audio,
    /// each only if a device of that kind exists: a camera without a microphone still
    /// streams]
    #[arg(long, value_name = "JSON")]
    pub constraints: Option<String>,
    /// Name of the published stream: 1 to 64 of A-Z a-z 0-9 . _ -
    #[arg(long, default_value = "default", value_name = "NAME", value_parser = stream_name)]
    pub stream: String,
    /// Require `Authorization: Bearer TOKEN` for publishing (and, with
    /// --token-for-viewing, for viewing); valid for every stream. Without any token,
    /// anyone may publish.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// A token valid for stream NAME only (repeatable); used on another stream it gets 403.
    #[arg(long = "stream-token", value_name = "NAME=TOKEN")]
    pub stream_tokens: Vec<StreamToken>,
    /// Read tokens from a file: one per line, `TOKEN` (every stream, at most one such
    /// line) or `STREAM TOKEN` (that stream only); blank lines and `#` lines are skipped.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Require a token for viewing too (and for joining a call room).
    #[arg(long)]
    pub token_for_viewing: bool,
    /// A token that may only view stream NAME (repeatable; with --token-for-viewing):
    /// used to publish, or on a publisher's session, it gets 403.
    #[arg(long = "view-token", value_name = "NAME=TOKEN")]
    pub view_tokens: Vec<StreamToken>,
    /// The operator's token for GET /status (which lists session ids). --token works
    /// too; when any token is configured, /status needs one of them.
    #[arg(long, value_name = "TOKEN")]
    pub status_token: Option<String>,
    /// An origin (scheme://host[:port]) whose pages may use this server from a browser
    /// (repeatable): CORS answers and call-room WebSocket upgrades allow only these.
    /// Default: any origin.
    #[arg(long = "allowed-origin", value_name = "URL")]
    pub allowed_origins: Vec<String>,
    /// Most HTTP connections open at once (WebSockets included); one more gets 503.
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub max_connections: usize,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key). Browsers need a
    /// secure context for getUserMedia anywhere but on localhost.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub ice: IceArgs,
    /// Highest video bitrate, bits per second: the top rung of the bitrate tiers and the
    /// ceiling of each viewer's congestion control. Viewers on slower links get lower tiers
    /// (by default this/2.5 and this/6, fewer for small pictures).
    #[arg(long, default_value_t = 1_500_000, value_name = "BPS")]
    pub video_bitrate: u32,
    /// Lowest video bitrate congestion control may ask for, bits per second. Below about
    /// 150 kbit/s video is mostly keyframes and mush; raise it to keep quality on links you
    /// know are good, lower it for very poor ones.
    #[arg(long, default_value_t = DEFAULT_MIN_VIDEO_BITRATE, value_name = "BPS")]
    pub min_video_bitrate: u32,
    /// The bitrate tiers, bits per second, comma-separated (e.g. 2500000,1000000,300000):
    /// one encoder per tier that has viewers, each viewer on the highest its bandwidth
    /// allows. None may exceed --video-bitrate. Default: derived from --video-bitrate.
    #[arg(long, value_name = "BPS,...", value_delimiter = ',')]
    pub video_tiers: Vec<u32>,
    /// Send video only in this codec. Default: H.264 or VP8, whichever each viewer's offer
    /// lists first (one encoder per codec in use, shared by its viewers).
    #[arg(long, value_enum, value_name = "CODEC")]
    pub video_codec: Option<CodecArg>,
    /// Most viewers at once (503 with Retry-After past it).
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub max_viewers: usize,
    /// Impair each viewer's UDP path independently (in process, below SRTP, both
    /// directions): a spec such as "loss=5%,delay=80ms,seed=7" or @FILE.json, a schedule
    /// (docs/interop.md#impairment). The n-th viewer draws from seeds derived from the seed
    /// and n. Publishers (WHIP) are not impaired.
    #[arg(long, value_name = "SPEC")]
    pub impair_viewers: Option<String>,
    /// When a devices-file event unplugs the stream's device, withdraw the stream for good
    /// (as for a failure) instead of answering new viewers 503 until the scripted replug
    /// and publishing it again then (docs/devices-file.md#device-timelines).
    #[arg(long)]
    pub no_reopen_on_replug: bool,
}

/// [`video_rates`] for `serve`: congestion control starts at the ceiling, the top rung.
///
/// A viewer's first tier is the highest rung at or below its starting estimate, and the
/// start is all the estimate there is when it connects. Starting at 1 Mbit/s under a
/// 1.5 Mbit/s top rung put every viewer on the second rung: the first viewer started a
/// second encoder, and every viewer paid a move and a keyframe ~5 s later when it climbed.
/// Starting at the top puts a fresh viewer on the shared top-tier encoder; a link that
/// cannot carry it is found by the first feedback and the viewer moves down at once (down
/// moves are prompt, up moves wait 4 s).
fn serve_rates(
    max: u32,
    min: u32,
    tiers: &[u32],
) -> Result<(BitrateBounds, BitrateLadder), CliError> {
    let (bounds, ladder) = video_rates(max, min, tiers)?;
    Ok((
        BitrateBounds {
            start: bounds.max,
            ..bounds
        },
        ladder,
    ))
}

/// The peer connections `serve` makes for `opts` (video within `bounds`); bad ICE flags
/// are bad input.
fn serve_peer_config(opts: &Options, bounds: BitrateBounds) -> Result<PeerConfig, CliError> {
    let mut config = PeerConfig {
        max_peers: opts.max_viewers,
        video_bitrate: bounds,
        ..PeerConfig::default()
    };
    opts.ice.configure(&mut config)?;
    Ok(config)
}

/// The ICE servers `serve` advertises in `Link` headers: every --ice-server, TURN ones
/// with the credentials (the server sends those only to clients that pass its token check).
fn advertised_ice_servers(config: &PeerConfig) -> Vec<LinkIceServer> {
    config
        .ice_servers
        .iter()
        .flat_map(|s| {
            s.urls.iter().map(|url| {
                let turn = usermedia::peer::IceUrl::parse(url).is_ok_and(|u| u.is_turn());
                LinkIceServer {
                    url: url.clone(),
                    username: turn.then(|| s.username.clone()),
                    credential: turn.then(|| s.credential.clone()),
                }
            })
        })
        .collect()
}

/// The tokens of --token, --stream-token and --token-file together; an unreadable or
/// invalid token file is bad input.
fn tokens(opts: &Options) -> Result<(Option<String>, Vec<StreamToken>), CliError> {
    let mut token = opts.token.clone();
    let mut stream_tokens = opts.stream_tokens.clone();
    if let Some(path) = &opts.token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read token file {}", path.display()))
            .bad_input()?;
        let file = TokenFile::parse(&text)
            .with_context(|| format!("token file {}", path.display()))
            .bad_input()?;
        if let Some(t) = file.token {
            if token.is_some() {
                return Err(CliError::bad_input(format!(
                    "token file {}: a token for every stream, and --token gives one too",
                    path.display()
                )));
            }
            token = Some(t);
        }
        stream_tokens.extend(file.stream_tokens);
    }
    Ok((token, stream_tokens))
}

/// A `--stream` value: a valid stream name.
fn stream_name(s: &str) -> Result<String, String> {
    usermedia_signaling::check_stream_name(s).map(|()| s.to_owned())
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => tracing::warn!("cannot watch SIGTERM: {e}"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// How long closing the sessions may take on shutdown.
const CLOSE_SESSIONS_WITHIN: std::time::Duration = std::time::Duration::from_millis(500);

/// `usermedia serve`: check the flags, listen, capture, publish, serve until Ctrl-C.
///
/// The server is up before getUserMedia runs, so that a `prompt` permission can be
/// answered over HTTP (`POST /permissions/{id}`, the `/operator` page) while getUserMedia
/// waits; the stream is published (and the "serving" line printed) once capture succeeds.
pub fn run(mut opts: Options) -> Result<ExitCode, CliError> {
    let (token, stream_tokens) = tokens(&opts)?;
    if opts.token_for_viewing
        && token.is_none()
        && stream_tokens.is_empty()
        && opts.view_tokens.is_empty()
    {
        return Err(CliError::bad_input(
            "--token-for-viewing needs --token, --stream-token, --view-token or --token-file",
        ));
    }
    let (bounds, ladder) = serve_rates(
        opts.video_bitrate,
        opts.min_video_bitrate,
        &opts.video_tiers,
    )?;
    let peer_config = serve_peer_config(&opts, bounds)?;
    let impair_viewers = parse_impair("--impair-viewers", opts.impair_viewers.as_deref())?;
    // Checked before capturing: a bad certificate or key is reported at once.
    let tls = match (&opts.tls_cert, &opts.tls_key) {
        (Some(cert), Some(key)) => Some(usermedia_signaling::server_config(cert, key).bad_input()?),
        _ => None,
    };
    opts.device_args.context = Some(format!("stream:{}", opts.stream));
    let Some((devices, constraints)) = prepare(&opts.device_args, opts.constraints.as_deref())?
    else {
        return Ok(exit::media_error());
    };
    let runtime = runtime()?;
    runtime.block_on(async move {
        let ice_servers = advertised_ice_servers(&peer_config);
        let factory = PeerFactory::new(peer_config);
        // Bound now: a port in use is reported before anyone connects.
        if let Some(udp) = factory.udp_port_addr().await.runtime()? {
            println!("usermedia: media on UDP {udp} for every viewer");
        }
        let publisher = Arc::new(
            Publisher::new(factory)
                .with_devices(Arc::clone(&devices))
                .with_video_codec(opts.video_codec.map(Into::into))
                .with_ingest_ladder(ladder.clone())
                .with_viewer_impairment(impair_viewers)
                .with_reopen_on_replug(!opts.no_reopen_on_replug),
        );
        let config = ServerConfig {
            token,
            stream_tokens,
            token_for_viewing: opts.token_for_viewing,
            view_tokens: opts.view_tokens.clone(),
            status_token: opts.status_token.clone(),
            allowed_origins: opts.allowed_origins.clone(),
            ice_servers,
            ..ServerConfig::default()
        };
        let app = router(Arc::clone(&publisher), config);
        // The address is a valid flag; that it is in use or not ours is the machine's state.
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("cannot listen on {}", opts.listen))
            .runtime()?;
        let local = listener.local_addr().context("listener address").runtime()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
            tracing::info!("shutting down");
        };
        let limits = HttpLimits {
            max_connections: opts.max_connections.max(1),
            ..HttpLimits::default()
        };
        let server = match tls {
            Some(config) => {
                let listener = usermedia_signaling::TlsListener::new(listener, config)
                    .context("TLS listener")
                    .runtime()?;
                tokio::spawn(usermedia_signaling::serve(listener, app, limits, shutdown))
            }
            None => tokio::spawn(usermedia_signaling::serve(listener, app, limits, shutdown)),
        };
        if devices.prompter().is_some() {
            let what = if std::io::stdin().is_terminal() { "on the terminal or " } else { "" };
            println!("usermedia: permission prompts are answered {what}at {scheme}://{local}/operator (POST {scheme}://{local}/permissions/ID)");
        }
        let capturing = {
            let devices = Arc::clone(&devices);
            tokio::task::spawn_blocking(move || devices.get_user_media(&constraints))
        };
        let captured = tokio::select! {
            r = capturing => r.context("getUserMedia").runtime()?,
            () = stop_signal() => {
                // A prompt still waiting is refused, so getUserMedia returns at once.
                if let Some(p) = devices.prompter() {
                    p.close();
                }
                let _ = stop.send(());
                let _ = server.await;
                return Ok(ExitCode::SUCCESS);
            }
        };
        let stream = match captured {
            Ok(stream) => stream,
            Err(e) => {
                print_media_error(&e.to_json());
                let _ = stop.send(());
                let _ = server.await;
                return Ok(exit::media_error());
            }
        };
        publisher
            .publish(&opts.stream, stream.get_tracks().to_vec(), ladder)
            .context("cannot start the encoders")
            .runtime()?;
        println!("usermedia: serving stream {:?} — open {scheme}://{local}/ (WHEP: POST {scheme}://{local}/whep/{})", opts.stream, opts.stream);
        let viewers = Arc::clone(&publisher);
        crate::indicator::show_on_terminal(Arc::clone(&devices), move || {
            Some(viewers.session_count())
        });
        let mut server = server;
        let ended = tokio::select! {
            () = stop_signal() => None,
            // The server ending by itself: its error is a runtime failure.
            r = &mut server => Some(r),
        };
        if let Some(p) = devices.prompter() {
            p.close();
        }
        let ended = match ended {
            Some(r) => r,
            None => {
                let _ = stop.send(());
                server.await
            }
        };
        ended.context("server").runtime()?;
        if tokio::time::timeout(CLOSE_SESSIONS_WITHIN, publisher.close_all()).await.is_err() {
            tracing::warn!("sessions still closing at exit");
        }
        // The captured tracks, and the ones a camera flip put in their place.
        for t in stream
            .get_tracks()
            .iter()
            .cloned()
            .chain(publisher.tracks(&opts.stream))
        {
            t.stop();
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::tests::ok;

    #[test]
    fn serve_starts_viewers_on_the_top_tier_by_default() {
        use clap::Parser;
        use usermedia::encode::pipeline::TierState;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: Options,
        }
        let opts = Cli::try_parse_from(["serve"]).unwrap().serve;
        let (bounds, ladder) = ok(serve_rates(
            opts.video_bitrate,
            opts.min_video_bitrate,
            &opts.video_tiers,
        ));
        let config = serve_peer_config(&opts, bounds).unwrap();
        for size in [(640, 480), (1280, 720)] {
            let rungs = ladder.rungs(Some(size));
            assert!(rungs.len() >= 2, "{rungs:?}");
            assert_eq!(config.video_bitrate.start, rungs[0]);
            assert_eq!(
                TierState::initial(&rungs, f64::from(config.video_bitrate.start)).tier(),
                0
            );
        }
        // Explicit tiers under the ceiling: still the top one.
        let (bounds, ladder) = ok(serve_rates(3_000_000, 150_000, &[2_000_000, 500_000]));
        let rungs = ladder.rungs(None);
        assert_eq!(
            TierState::initial(&rungs, f64::from(bounds.start)).tier(),
            0
        );
        // publish (one receiver, no tiers) keeps its cautious start.
        assert_eq!(ok(video_rates(1_500_000, 150_000, &[])).0.start, 1_000_000);
    }

    #[test]
    fn serve_parses_the_bitrate_flags() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: Options,
        }
        let cli = Cli::try_parse_from([
            "serve",
            "--video-bitrate",
            "4000000",
            "--min-video-bitrate",
            "250000",
            "--video-tiers",
            "4000000,1500000,400000",
        ])
        .unwrap();
        assert_eq!(cli.serve.video_bitrate, 4_000_000);
        assert_eq!(cli.serve.min_video_bitrate, 250_000);
        assert_eq!(cli.serve.video_tiers, [4_000_000, 1_500_000, 400_000]);
    }
}
