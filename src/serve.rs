//! `usermedia serve`: capture per the constraints, publish as a stream, serve WHEP, the
//! viewer page and `/status`; Ctrl-C closes every session and exits cleanly.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use usermedia::devices::MediaDevices;
use usermedia::peer::{PeerConfig, PeerFactory};
use usermedia::service::Publisher;
use usermedia::MediaStream;
use usermedia_signaling::{router, ServerConfig, StreamToken, TokenFile};

use super::{load_devices, parse_constraints, parse_seconds, print_json, BadInput, DeviceArgs};

/// `usermedia serve`'s flags.
#[derive(clap::Args)]
pub(super) struct Options {
    #[command(flatten)]
    pub device_args: DeviceArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// getUserMedia constraints for what to capture, or @FILE.
    #[arg(
        long,
        value_name = "JSON",
        default_value = r#"{"video":true,"audio":true}"#
    )]
    pub constraints: String,
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
    /// Video bitrate, bits per second (the encoder follows viewers' bandwidth below it).
    #[arg(long, default_value_t = 1_500_000, value_name = "BPS")]
    pub video_bitrate: u32,
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

fn capture(args: &DeviceArgs, constraints: &str) -> Result<Option<Captured>, BadInput> {
    let devices = Arc::new(load_devices(args)?);
    let Some(constraints) = parse_constraints(constraints)? else {
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
    // Checked before capturing: a bad certificate or key is reported at once.
    let tls = match (&opts.tls_cert, &opts.tls_key) {
        (Some(cert), Some(key)) => Some(usermedia_signaling::server_config(cert, key)?),
        _ => None,
    };
    let Some((devices, stream, runtime)) = capture(&opts.device_args, &opts.constraints)? else {
        return Ok(ExitCode::from(1));
    };
    runtime.block_on(async move {
        let factory = PeerFactory::new(PeerConfig {
            ice_addrs: opts.ice_addrs.clone(),
            max_peers: opts.max_viewers,
            ..PeerConfig::default()
        });
        let publisher = Arc::new(
            Publisher::new(factory)
                .with_devices(Arc::clone(&devices))
                .with_video_codec(opts.video_codec),
        );
        publisher
            .publish(&opts.stream, stream.get_tracks().to_vec(), opts.video_bitrate)
            .context("cannot start the encoders")?;
        let config = ServerConfig {
            token,
            stream_tokens,
            token_for_viewing: opts.token_for_viewing,
            ..ServerConfig::default()
        };
        let app = router(Arc::clone(&publisher) as Arc<dyn usermedia_signaling::Endpoint>, config);
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

/// `usermedia publish`'s flags.
#[derive(clap::Args)]
pub(super) struct PublishOptions {
    /// The WHIP endpoint, e.g. http://127.0.0.1:8080/whip/cam.
    #[arg(long, value_name = "URL")]
    pub whip: String,
    /// Bearer token for the endpoint.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Also trust the certificates in this PEM file for https:// (a private CA, or a
    /// self-signed server's certificate); the system's roots stay trusted. Repeatable.
    #[arg(long = "ca-cert", value_name = "PEM")]
    pub ca_certs: Vec<PathBuf>,
    #[command(flatten)]
    pub device_args: DeviceArgs,
    /// getUserMedia constraints, or @FILE.
    #[arg(
        long,
        value_name = "JSON",
        default_value = r#"{"video":true,"audio":true}"#
    )]
    pub constraints: String,
    /// Local address ICE gathers on (repeatable; default: every interface that is up).
    #[arg(long = "ice-addr", value_name = "IP")]
    pub ice_addrs: Vec<IpAddr>,
    /// Video bitrate, bits per second.
    #[arg(long, default_value_t = 1_500_000, value_name = "BPS")]
    pub video_bitrate: u32,
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
    let client = usermedia_signaling::HttpClient::with_ca_certs(&opts.ca_certs)?;
    let Some((_devices, stream, runtime)) = capture(&opts.device_args, &opts.constraints)? else {
        return Ok(ExitCode::from(1));
    };
    runtime.block_on(async move {
        let mut encoded = Vec::new();
        for t in stream.get_tracks() {
            let e = usermedia::service::encode_track_with(t, opts.video_bitrate, opts.video_codec);
            encoded.push(e.context("cannot start the encoders")?);
        }
        let factory = PeerFactory::new(PeerConfig {
            ice_addrs: opts.ice_addrs.clone(),
            ..PeerConfig::default()
        });
        let session = match usermedia::service::publish_whip_with(
            &client,
            &factory,
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
