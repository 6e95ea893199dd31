//! `usermedia bot`: a scriptable call participant. It joins a WebSocket call room (the
//! `/ws?room=R` of `usermedia serve`, the room a browser joins through `/call`), sends
//! what it captures to everyone there and decodes what they send. It prints one JSON line
//! per remote track as it arrives and, when it leaves (Ctrl-C or `--seconds`), one line
//! with every remote track's settings and counters, so an interop script can assert what
//! the browser sent without looking at a screen.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};
use usermedia::peer::RemoteTrack;

use super::serve::ClientArgs;
use super::{parse_seconds, print_json, BadInput};

/// `usermedia bot`'s flags.
#[derive(clap::Args)]
pub(super) struct Options {
    /// The room's WebSocket URL, e.g. ws://127.0.0.1:8080/ws?room=r1 (wss:// for TLS).
    #[arg(long, value_name = "URL")]
    pub room: String,
    /// What the bot sends and how it connects.
    #[command(flatten)]
    pub client: ClientArgs,
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
    let Some(client) = opts.client.start()? else {
        return Ok(ExitCode::from(1));
    };
    client.runtime.block_on(async {
        let encoders = client.encoders(None)?;
        let factory = client.factory.clone();
        let mut bot =
            usermedia::client::join_room_with(&client.http, &opts.room, factory, encoders)
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
