//! `usermedia serve`: capture per the constraints, publish as a stream, serve WHEP, the
//! viewer page and `/status`; Ctrl-C closes every session and exits cleanly.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use usermedia::peer::{PeerConfig, PeerFactory};
use usermedia::service::Publisher;
use usermedia_signaling::{router, ServerConfig};

use super::{load_devices, parse_constraints, print_json, BadInput, DeviceArgs};

pub(super) struct Options {
    pub device_args: DeviceArgs,
    pub listen: SocketAddr,
    pub constraints: String,
    pub stream: String,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_for_viewing: bool,
    pub ice_addrs: Vec<IpAddr>,
    pub video_bitrate: u32,
    pub max_viewers: usize,
}

pub(super) fn run(opts: Options) -> Result<ExitCode, BadInput> {
    let token = match (&opts.token, &opts.token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read token file {}", path.display()))?;
            let t = text.lines().next().unwrap_or("").trim().to_owned();
            if t.is_empty() {
                return Err(BadInput(anyhow::anyhow!(
                    "token file {} is empty",
                    path.display()
                )));
            }
            Some(t)
        }
        (None, None) => None,
    };
    if opts.token_for_viewing && token.is_none() {
        return Err(BadInput(anyhow::anyhow!(
            "--token-for-viewing needs --token or --token-file"
        )));
    }
    let devices = Arc::new(load_devices(&opts.device_args)?);
    let Some(constraints) = parse_constraints(&opts.constraints)? else {
        return Ok(ExitCode::from(1));
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let stream = match devices.get_user_media(&constraints) {
            Ok(s) => s,
            Err(e) => {
                print_json(&json!({ "error": e.to_json() }));
                return Ok(ExitCode::from(1));
            }
        };
        let factory = PeerFactory::new(PeerConfig {
            ice_addrs: opts.ice_addrs.clone(),
            max_peers: opts.max_viewers,
            ..PeerConfig::default()
        });
        let publisher = Arc::new(Publisher::new(factory).with_devices(Arc::clone(&devices)));
        publisher
            .publish(&opts.stream, stream.get_tracks().to_vec(), opts.video_bitrate)
            .context("cannot start the encoders")?;
        for t in stream.get_tracks() {
            tracing::warn!(
                "capturing {} from {:?}: {}",
                t.kind(),
                t.label(),
                serde_json::to_string(&t.get_settings()).unwrap_or_default()
            );
        }
        let config = ServerConfig {
            token,
            token_for_viewing: opts.token_for_viewing,
            ..ServerConfig::default()
        };
        let app = router(Arc::clone(&publisher) as Arc<dyn usermedia_signaling::Endpoint>, config);
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("cannot listen on {}", opts.listen))?;
        let local = listener.local_addr().context("listener address")?;
        println!("usermedia: serving stream {:?} — open http://{local}/ (WHEP: POST http://{local}/whep/{})", opts.stream, opts.stream);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
                tracing::warn!("shutting down");
            })
            .await
            .context("server")?;
        publisher.close_all().await;
        for t in stream.get_tracks() {
            t.stop();
        }
        Ok(ExitCode::SUCCESS)
    })
}
