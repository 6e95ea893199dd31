//! `usermedia serve`: capture per the constraints, publish as a stream, serve WHEP, the
//! viewer page and `/status`; Ctrl-C closes every session and exits cleanly.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use usermedia::devices::{MediaDeviceKind, MediaDevices};
use usermedia::encode::pipeline::BitrateLadder;
use usermedia::peer::{BitrateBounds, PeerConfig, PeerFactory};
use usermedia::server::Publisher;
use usermedia::MediaStream;
use usermedia_signaling::{router, ServerConfig, StreamToken, TokenFile};

use super::{load_devices, parse_constraints, parse_seconds, print_json, BadInput, DeviceArgs};

/// Default of --min-video-bitrate.
const DEFAULT_MIN_VIDEO_BITRATE: u32 = 150_000;

/// Where `publish`'s congestion control starts when the bounds allow: high enough for a
/// sharp first picture, low enough not to flood a poor link before the first feedback.
/// (`serve` starts at its top rung instead: see [`serve_rates`].)
const START_VIDEO_BITRATE: u32 = 1_000_000;

/// Congestion-control bounds and the bitrate ladder from --video-bitrate (`max`),
/// --min-video-bitrate and --video-tiers (empty: derived from `max`). The ceiling is `max`
/// itself, so the flag is what viewers can really get.
fn video_rates(
    max: u32,
    min: u32,
    tiers: &[u32],
) -> Result<(BitrateBounds, BitrateLadder), BadInput> {
    if max == 0 {
        return Err(BadInput(anyhow::anyhow!("--video-bitrate must be above 0")));
    }
    if min > max {
        return Err(BadInput(anyhow::anyhow!(
            "--min-video-bitrate {min} is above --video-bitrate {max}"
        )));
    }
    if let Some(t) = tiers.iter().find(|&&t| t > max || t == 0) {
        return Err(BadInput(anyhow::anyhow!(
            "--video-tiers: {t} is outside 1..={max} (--video-bitrate): such a tier could never be used"
        )));
    }
    let bounds = BitrateBounds {
        min,
        start: START_VIDEO_BITRATE.clamp(min, max),
        max,
    };
    let ladder = if tiers.is_empty() {
        BitrateLadder::from(max)
    } else {
        BitrateLadder::Explicit(tiers.to_vec())
    };
    Ok((bounds, ladder))
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
) -> Result<(BitrateBounds, BitrateLadder), BadInput> {
    let (bounds, ladder) = video_rates(max, min, tiers)?;
    Ok((
        BitrateBounds {
            start: bounds.max,
            ..bounds
        },
        ladder,
    ))
}

/// The peer connections `serve` makes for `opts` (video within `bounds`).
fn serve_peer_config(opts: &Options, bounds: BitrateBounds) -> PeerConfig {
    PeerConfig {
        ice_addrs: opts.ice_addrs.clone(),
        max_peers: opts.max_viewers,
        video_bitrate: bounds,
        ..PeerConfig::default()
    }
}

/// `usermedia serve`'s flags.
#[derive(clap::Args)]
pub(super) struct Options {
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
    /// Name of the published stream.
    #[arg(long, default_value = "default", value_name = "NAME")]
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
    /// Require a token for viewing too.
    #[arg(long)]
    pub token_for_viewing: bool,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key). Browsers need a
    /// secure context for getUserMedia anywhere but on localhost.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Local address ICE gathers on (repeatable). Default: every interface that is up,
    /// loopback included.
    #[arg(long = "ice-addr", value_name = "IP")]
    pub ice_addrs: Vec<IpAddr>,
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
    pub video_codec: Option<usermedia::encode::VideoCodec>,
    /// Most viewers at once (503 with Retry-After past it).
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub max_viewers: usize,
}

/// What `serve` and `publish` start with: the devices, the captured stream and a runtime.
/// `None` after a media error was printed as JSON (exit 1).
type Captured = (Arc<MediaDevices>, MediaStream, tokio::runtime::Runtime);

/// Constraints asking for every kind of device `devices` has (both when it has none, so
/// getUserMedia reports NotFoundError).
fn default_constraints(devices: &MediaDevices) -> String {
    let kinds: Vec<MediaDeviceKind> = devices.enumerate_devices().iter().map(|d| d.kind).collect();
    let video = kinds.contains(&MediaDeviceKind::Videoinput);
    let audio = kinds.contains(&MediaDeviceKind::Audioinput);
    let (video, audio) = if video || audio {
        (video, audio)
    } else {
        (true, true)
    };
    json!({ "video": video, "audio": audio }).to_string()
}

fn capture(args: &DeviceArgs, constraints: Option<&str>) -> Result<Option<Captured>, BadInput> {
    let devices = Arc::new(load_devices(args)?);
    let constraints = match constraints {
        Some(c) => c.to_owned(),
        None => {
            let c = default_constraints(&devices);
            tracing::info!("capturing {c} (the kinds of device this machine has)");
            c
        }
    };
    let Some(constraints) = parse_constraints(&constraints)? else {
        return Ok(None);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Inside the runtime: sources start their threads, encoders and peers need tokio.
    let stream = runtime.block_on(async { devices.get_user_media(&constraints) });
    match stream {
        Ok(stream) => Ok(Some((devices, stream, runtime))),
        Err(e) => {
            print_json(&json!({ "error": e.to_json() }));
            Ok(None)
        }
    }
}

/// The tokens of --token, --stream-token and --token-file together.
fn tokens(opts: &Options) -> Result<(Option<String>, Vec<StreamToken>), BadInput> {
    let mut token = opts.token.clone();
    let mut stream_tokens = opts.stream_tokens.clone();
    if let Some(path) = &opts.token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read token file {}", path.display()))?;
        let file =
            TokenFile::parse(&text).with_context(|| format!("token file {}", path.display()))?;
        if let Some(t) = file.token {
            if token.is_some() {
                return Err(BadInput(anyhow::anyhow!(
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

pub(super) fn run(opts: Options) -> Result<ExitCode, BadInput> {
    let (token, stream_tokens) = tokens(&opts)?;
    if opts.token_for_viewing && token.is_none() && stream_tokens.is_empty() {
        return Err(BadInput(anyhow::anyhow!(
            "--token-for-viewing needs --token, --stream-token or --token-file"
        )));
    }
    let (bounds, ladder) = serve_rates(
        opts.video_bitrate,
        opts.min_video_bitrate,
        &opts.video_tiers,
    )?;
    // Checked before capturing: a bad certificate or key is reported at once.
    let tls = match (&opts.tls_cert, &opts.tls_key) {
        (Some(cert), Some(key)) => Some(usermedia_signaling::server_config(cert, key)?),
        _ => None,
    };
    let Some((devices, stream, runtime)) = capture(&opts.device_args, opts.constraints.as_deref())?
    else {
        return Ok(ExitCode::from(1));
    };
    runtime.block_on(async move {
        let factory = PeerFactory::new(serve_peer_config(&opts, bounds));
        let publisher = Arc::new(
            Publisher::new(factory)
                .with_devices(Arc::clone(&devices))
                .with_video_codec(opts.video_codec)
                .with_ingest_ladder(ladder.clone()),
        );
        publisher
            .publish(&opts.stream, stream.get_tracks().to_vec(), ladder)
            .context("cannot start the encoders")?;
        let config = ServerConfig {
            token,
            stream_tokens,
            token_for_viewing: opts.token_for_viewing,
            ..ServerConfig::default()
        };
        let app = router(Arc::clone(&publisher), config);
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("cannot listen on {}", opts.listen))?;
        let local = listener.local_addr().context("listener address")?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("usermedia: serving stream {:?} — open {scheme}://{local}/ (WHEP: POST {scheme}://{local}/whep/{})", opts.stream, opts.stream);
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        };
        match tls {
            Some(config) => {
                let listener = usermedia_signaling::TlsListener::new(listener, config)
                    .context("TLS listener")?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
        }
        .context("server")?;
        publisher.close_all().await;
        for t in stream.get_tracks() {
            t.stop();
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The flags of the commands that capture and connect out to a server (`publish`, `bot`).
#[derive(clap::Args)]
pub(super) struct ClientArgs {
    /// Also trust the certificates in this PEM file for https:// and wss:// (a private CA,
    /// or a self-signed server's certificate); the system's roots stay trusted. Repeatable.
    #[arg(long = "ca-cert", value_name = "PEM")]
    pub ca_certs: Vec<PathBuf>,
    #[command(flatten)]
    pub device_args: DeviceArgs,
    /// getUserMedia constraints, or @FILE [default: video and audio, each only if a device
    /// of that kind exists]
    #[arg(long, value_name = "JSON")]
    pub constraints: Option<String>,
    /// Local address ICE gathers on (repeatable; default: every interface that is up).
    #[arg(long = "ice-addr", value_name = "IP")]
    pub ice_addrs: Vec<IpAddr>,
    /// Highest video bitrate, bits per second (also the ceiling of congestion control).
    #[arg(long, default_value_t = 1_500_000, value_name = "BPS")]
    pub video_bitrate: u32,
    /// Lowest video bitrate congestion control may ask for, bits per second (below about
    /// 150 kbit/s video is mostly keyframes and mush).
    #[arg(long, default_value_t = DEFAULT_MIN_VIDEO_BITRATE, value_name = "BPS")]
    pub min_video_bitrate: u32,
}

/// What a client command works with once its flags are checked and capture started.
pub(super) struct Client {
    pub http: usermedia_signaling::HttpClient,
    pub stream: MediaStream,
    pub runtime: tokio::runtime::Runtime,
    pub factory: PeerFactory,
    ladder: BitrateLadder,
    _devices: Arc<MediaDevices>,
}

impl ClientArgs {
    /// Checks the flags and starts capturing; `None` when getUserMedia failed (the error
    /// was printed as JSON). A client sends to few receivers (one WHIP server, a call's
    /// handful): one encoder per codec following their estimates up to --video-bitrate does
    /// better than tiers restarting encoders as those estimates move.
    pub(super) fn start(&self) -> Result<Option<Client>, BadInput> {
        let http = usermedia_signaling::HttpClient::with_ca_certs(&self.ca_certs)?;
        let (bounds, _) = video_rates(self.video_bitrate, self.min_video_bitrate, &[])?;
        let Some((devices, stream, runtime)) =
            capture(&self.device_args, self.constraints.as_deref())?
        else {
            return Ok(None);
        };
        let factory = PeerFactory::new(PeerConfig {
            ice_addrs: self.ice_addrs.clone(),
            video_bitrate: bounds,
            ..PeerConfig::default()
        });
        Ok(Some(Client {
            http,
            stream,
            runtime,
            factory,
            ladder: BitrateLadder::Explicit(vec![self.video_bitrate]),
            _devices: devices,
        }))
    }
}

impl Client {
    /// The encoders of every captured track (video only in `codec` when given). Call
    /// inside the runtime.
    pub(super) fn encoders(
        &self,
        codec: Option<usermedia::encode::VideoCodec>,
    ) -> Result<Vec<usermedia::encode::pipeline::TrackEncoders>, BadInput> {
        let mut encoders = Vec::new();
        for t in self.stream.get_tracks() {
            let e = usermedia::server::encode_track_with(t, self.ladder.clone(), codec);
            encoders.push(e.context("cannot start the encoders")?);
        }
        Ok(encoders)
    }
}

/// `usermedia publish`'s flags.
#[derive(clap::Args)]
pub(super) struct PublishOptions {
    /// The WHIP endpoint, e.g. http://127.0.0.1:8080/whip/cam.
    #[arg(long, value_name = "URL")]
    pub whip: String,
    /// Bearer token for the endpoint.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Offer video only in this codec. Default: H.264 and VP8 (H.264 first); the server's
    /// answer picks.
    #[arg(long, value_enum, value_name = "CODEC")]
    pub video_codec: Option<usermedia::encode::VideoCodec>,
    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long, value_name = "N", value_parser = parse_seconds)]
    pub seconds: Option<f64>,
}

/// `usermedia publish`: capture, publish through WHIP, DELETE on Ctrl-C (or after --seconds).
pub(super) fn publish(opts: PublishOptions) -> Result<ExitCode, BadInput> {
    let Some(client) = opts.client.start()? else {
        return Ok(ExitCode::from(1));
    };
    client.runtime.block_on(async {
        let encoded = client.encoders(opts.video_codec)?;
        let session = match usermedia::client::publish_whip_with(
            &client.http,
            &client.factory,
            &opts.whip,
            opts.token.as_deref(),
            &encoded,
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                return Err(BadInput(anyhow::anyhow!(
                    "publishing to {}: {e}",
                    opts.whip
                )))
            }
        };
        if let Err(e) = session
            .peer
            .wait_connected(std::time::Duration::from_secs(15))
            .await
        {
            let _ = session.end().await;
            return Err(BadInput(anyhow::anyhow!(
                "publishing to {}: {e}",
                opts.whip
            )));
        }
        println!(
            "usermedia: publishing to {} (session {})",
            opts.whip, session.http.location
        );
        match opts.seconds {
            Some(s) => tokio::time::sleep(std::time::Duration::from_secs_f64(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        let stats = session.peer.stats().await;
        print_json(&json!({ "whip": opts.whip, "session": session.http.location, "stats": stats }));
        if let Err(e) = session.end().await {
            tracing::warn!("ending the session: {e}");
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok<T>(r: Result<T, BadInput>) -> T {
        match r {
            Ok(v) => v,
            Err(BadInput(e)) => panic!("{e:#}"),
        }
    }

    #[test]
    fn the_default_constraints_ask_for_the_kinds_that_exist() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            MediaDevices::from_devices_file(&path, Default::default()).unwrap()
        };
        let camera = r#"{ "kind": "videoinput", "deviceId": "cam", "source": "pattern",
            "modes": [ {"width": 640, "height": 480, "frameRate": 30} ] }"#;
        let mic = r#"{ "kind": "audioinput", "deviceId": "mic", "source": "tone",
            "modes": [ {"sampleRate": 48000, "channelCount": 1, "sampleSize": 16} ] }"#;
        let only_camera = file("camera.json", &format!(r#"{{"devices": [{camera}]}}"#));
        let only_mic = file("mic.json", &format!(r#"{{"devices": [{mic}]}}"#));
        let both = file("both.json", &format!(r#"{{"devices": [{camera}, {mic}]}}"#));
        let none = file("none.json", r#"{"devices": []}"#);
        let parsed = |d: &MediaDevices| -> serde_json::Value {
            serde_json::from_str(&default_constraints(d)).unwrap()
        };
        assert_eq!(parsed(&only_camera), json!({"video": true, "audio": false}));
        assert_eq!(parsed(&only_mic), json!({"video": false, "audio": true}));
        assert_eq!(parsed(&both), json!({"video": true, "audio": true}));
        // Nothing at all: ask for both, and getUserMedia says NotFoundError.
        assert_eq!(parsed(&none), json!({"video": true, "audio": true}));
    }

    #[test]
    fn the_bitrate_flags_set_the_bounds_and_the_ladder() {
        // --video-bitrate above the old fixed 2.5 Mbit/s ceiling is reachable.
        let (bounds, ladder) = ok(video_rates(4_000_000, 300_000, &[]));
        assert_eq!(
            bounds,
            BitrateBounds {
                min: 300_000,
                start: 1_000_000,
                max: 4_000_000
            }
        );
        assert_eq!(ladder, BitrateLadder::Derived { max: 4_000_000 });
        // A low ceiling pulls the start down with it.
        let (bounds, _) = ok(video_rates(500_000, 150_000, &[]));
        assert_eq!((bounds.start, bounds.max), (500_000, 500_000));
        let (_, ladder) = ok(video_rates(3_000_000, 150_000, &[300_000, 3_000_000]));
        assert_eq!(ladder.rungs(None), [3_000_000, 300_000]);
        assert!(video_rates(1_000_000, 2_000_000, &[]).is_err());
        assert!(video_rates(1_000_000, 150_000, &[2_000_000]).is_err());
        assert!(video_rates(0, 0, &[]).is_err());
    }

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
        let config = serve_peer_config(&opts, bounds);
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
