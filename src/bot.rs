//! `usermedia bot`: a scriptable call participant. It joins a WebSocket call room (the
//! `/ws?room=R` of `usermedia serve`, the room a browser joins through `/call`), sends
//! what it captures to everyone there and decodes what they send. It prints one JSON line
//! per remote track as it arrives and, when it leaves (Ctrl-C or `--seconds`), one line
//! with every remote track's settings and counters, so an interop script can assert what
//! the browser sent without looking at a screen.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use usermedia::encode::pipeline::BitrateLadder;
use usermedia::peer::{PeerConfig, PeerFactory, RemoteTrack};

use super::serve::{capture, video_rates, DEFAULT_MIN_VIDEO_BITRATE};
use super::{parse_seconds, print_json, BadInput, DeviceArgs};

/// `usermedia bot`'s flags.
#[derive(clap::Args)]
pub(super) struct Options {
    /// The room's WebSocket URL, e.g. ws://127.0.0.1:8080/ws?room=r1 (wss:// for TLS).
    #[arg(long, value_name = "URL")]
    pub room: String,
    /// Also trust the certificates in this PEM file for wss:// (a private CA, or a
    /// self-signed server's certificate); the system's roots stay trusted. Repeatable.
    #[arg(long = "ca-cert", value_name = "PEM")]
    pub ca_certs: Vec<PathBuf>,
    #[command(flatten)]
    pub device_args: DeviceArgs,
    /// getUserMedia constraints for what the bot sends, or @FILE [default: video and
    /// audio, each only if a device of that kind exists]
    #[arg(long, value_name = "JSON")]
    pub constraints: Option<String>,
    /// Local address ICE gathers on (repeatable; default: every interface that is up).
    #[arg(long = "ice-addr", value_name = "IP")]
    pub ice_addrs: Vec<IpAddr>,
    /// Highest video bitrate, bits per second (also the ceiling of congestion control).
    #[arg(long, default_value_t = 1_500_000, value_name = "BPS")]
    pub video_bitrate: u32,
    /// Lowest video bitrate congestion control may ask for, bits per second.
    #[arg(long, default_value_t = DEFAULT_MIN_VIDEO_BITRATE, value_name = "BPS")]
    pub min_video_bitrate: u32,
    /// Leave after this many seconds instead of waiting for Ctrl-C.
    #[arg(long, value_name = "N", value_parser = parse_seconds)]
    pub seconds: Option<f64>,
}

/// One remote track as a JSON object: what it is, its settings (never `facingMode`: it
/// does not cross RTP) and its receive counters.
fn describe(track: &RemoteTrack) -> Value {
    json!({
        "kind": track.kind(),
        "id": track.id(),
        "mimeType": track.mime_type(),
        "settings": track.get_settings(),
        "stats": track.stats(),
    })
}

/// `usermedia bot`: join, send, receive, report, leave.
pub(super) fn run(opts: Options) -> Result<ExitCode, BadInput> {
    if !(opts.room.starts_with("ws://") || opts.room.starts_with("wss://")) {
        return Err(BadInput(anyhow::anyhow!(
            "--room {:?} is not a ws:// or wss:// URL",
            opts.room
        )));
    }
    let client = usermedia_signaling::HttpClient::with_ca_certs(&opts.ca_certs)?;
    let (bounds, _) = video_rates(opts.video_bitrate, opts.min_video_bitrate, &[])?;
    // A call has few participants: one encoder per codec following the slowest of them
    // does better than tiers restarting encoders as a handful of estimates move.
    let ladder = BitrateLadder::Explicit(vec![opts.video_bitrate]);
    let Some((_devices, stream, runtime)) =
        capture(&opts.device_args, opts.constraints.as_deref())?
    else {
        return Ok(ExitCode::from(1));
    };
    runtime.block_on(async move {
        let mut encoders = Vec::new();
        for t in stream.get_tracks() {
            let e = usermedia::service::encode_track_with(t, ladder.clone(), None);
            encoders.push(e.context("cannot start the encoders")?);
        }
        let factory = PeerFactory::new(PeerConfig {
            ice_addrs: opts.ice_addrs.clone(),
            video_bitrate: bounds,
            ..PeerConfig::default()
        });
        let mut bot = usermedia::service::join_room_with(&client, &opts.room, factory, encoders)
            .await
            .map_err(|e| BadInput(anyhow::anyhow!("joining {}: {e}", opts.room)))?;
        println!("usermedia: in the call at {}", opts.room);
        let leave = async {
            match opts.seconds {
                Some(s) => tokio::time::sleep(Duration::from_secs_f64(s)).await,
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        tokio::pin!(leave);
        let mut received: Vec<RemoteTrack> = Vec::new();
        loop {
            tokio::select! {
                _ = &mut leave => break,
                track = bot.next_remote_track(Duration::from_secs(3600)) => {
                    let Some(track) = track else {
                        tracing::warn!("the room connection ended");
                        break;
                    };
                    print_json(&json!({ "event": "track", "track": describe(&track) }));
                    received.push(track);
                }
            }
        }
        let tracks: Vec<Value> = received.iter().map(describe).collect();
        print_json(&json!({ "event": "left", "room": opts.room, "tracks": tracks }));
        bot.leave();
        Ok(ExitCode::SUCCESS)
    })
}
