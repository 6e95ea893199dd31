//! `usermedia bot`: a scriptable call participant. It joins a WebSocket call room (the
//! `/ws?room=R` of `usermedia serve`, the room a browser joins through `/call`; or a Janus
//! VideoRoom with `--janus`, see `janus.rs`), sends
//! what it captures to everyone there and decodes what they send. It prints one JSON line
//! per remote track as it arrives and, when it leaves (Ctrl-C or `--seconds`), one line
//! with every remote track's settings and counters, so an interop script can assert what
//! the browser sent without looking at a screen.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use usermedia::analysis::ReceiveAnalysis;
use usermedia::client::CallEvent;
use usermedia::peer::RemoteTrack;

use crate::args::{parse_seconds, ClientArgs};
use crate::bot_echo::Echoes;
use crate::bot_record::Participants;
use crate::client::{session_failure, Client};
use crate::exit::{self, CliError};
use crate::janus::JanusArgs;
use crate::print_json;

/// The exit codes of `bot`, in its `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  left the call (Ctrl-C or --seconds)
  1  a media error (getUserMedia's), printed as {\"error\": ...} on stdout
  2  bad input: a bad flag, constraints that are not JSON, a bad devices or CA file, a
     --room that is not a ws:// or wss:// URL, a --janus-room that does not exist (without
     --janus-create)
  3  a runtime or network failure: the room cannot be reached or the connection fails;
     Janus gone mid-call";

/// `usermedia bot`'s flags.
#[derive(clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct Options {
    /// The room's WebSocket URL, e.g. ws://127.0.0.1:8080/ws?room=r1 (wss:// for TLS).
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "janus",
        conflicts_with = "janus"
    )]
    pub room: Option<String>,
    /// Or join a Janus VideoRoom: publish there and subscribe to every other publisher
    /// (see docs/interop.md#janus).
    #[command(flatten)]
    pub janus: JanusArgs,
    /// What the bot sends and how it connects.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Chat on the data channels (`--say`).
    #[command(flatten)]
    pub chat: crate::chat::ChatArgs,
    /// Leave after this many seconds instead of waiting for Ctrl-C.
    #[arg(long, value_name = "N", value_parser = parse_seconds)]
    pub seconds: Option<f64>,
    /// What the bot does with what it receives (recording).
    #[command(flatten)]
    pub actions: crate::bot_record::BotActions,
}

/// One remote track as a JSON object: what it is, its settings (never `facingMode`: it
/// does not cross RTP) and its receive counters.
pub(crate) fn describe(track: &RemoteTrack) -> Value {
    json!({
        "kind": track.kind(),
        "id": track.id(),
        "mimeType": track.mime_type(),
        "settings": track.get_settings(),
        "stats": track.stats(),
    })
}

/// Bad input unless `room` is a ws:// or wss:// URL with a host, checked before capturing
/// (so that a failure to join later is the network's, not the URL's).
fn check_room(room: &str) -> Result<(), CliError> {
    if !(room.starts_with("ws://") || room.starts_with("wss://")) {
        return Err(CliError::bad_input(format!(
            "--room {room:?} is not a ws:// or wss:// URL"
        )));
    }
    match room.into_client_request() {
        Ok(request) if request.uri().host().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(_) => Err(CliError::bad_input(format!("--room {room:?} has no host"))),
        Err(e) => Err(CliError::bad_input(format!(
            "--room {room:?} is not a valid URL: {e}"
        ))),
    }
}

/// The allow-list context of the room at `url`: `room:NAME` from its `room` query
/// parameter (`None` without one).
fn room_context(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("room="))
        .filter(|name| !name.is_empty())
        .map(|name| format!("room:{name}"))
}

/// `usermedia bot`: join, send, receive, report, leave.
pub fn run(mut opts: Options) -> Result<ExitCode, CliError> {
    if let Some((url, room)) = opts.janus.target() {
        crate::janus::check_url(url)?;
        let chat = opts.chat.chat()?;
        // The allow-list applies to the room: `room:N`.
        opts.client.device_args.context = Some(format!("room:{room}"));
        let Some(client) = Client::start(&opts.client)? else {
            return Ok(exit::media_error());
        };
        let participants = Participants::new(&opts.actions)?;
        return client.runtime.block_on(async {
            crate::indicator::show_on_terminal(client.devices(), || None);
            let echo = opts.actions.echo;
            crate::janus::bot(&client, &opts.janus, opts.seconds, participants, chat, echo).await
        });
    }
    let room_url = opts.room.clone().unwrap_or_default();
    check_room(&room_url)?;
    let mut participants = Participants::new(&opts.actions)?;
    let chat = opts.chat.chat()?;
    // The allow-list applies to the room: a room without `microphone` sends video only.
    opts.client.device_args.context = room_context(&room_url);
    let Some(client) = Client::start(&opts.client)? else {
        return Ok(exit::media_error());
    };
    client.runtime.block_on(async {
        crate::indicator::show_on_terminal(client.devices(), || None);
        let encoders = client.encoders(None)?;
        let factory = client.factory.clone();
        let mut bot = usermedia::client::join_room_saying(
            &client.http,
            &room_url,
            factory,
            encoders,
            Some(chat),
        )
        .await
        .map_err(|e| session_failure(e, format!("joining {}", room_url)))?;
        println!("usermedia: in the call at {}", room_url);
        let leave = crate::janus::until_leaving(opts.seconds);
        tokio::pin!(leave);
        let mut echoes = Echoes::new(&room_url, client.http.clone(), client.factory.clone());
        let mut echo_tick = tokio::time::interval(Duration::from_millis(200));
        let mut received: Vec<RemoteTrack> = Vec::new();
        // What each remote track really delivered (as `view` reports it).
        let analysis = ReceiveAnalysis::new();
        // Per received track, its place in the analysis' report (if it is analyzed).
        let mut report_index: Vec<Option<usize>> = Vec::new();
        let mut analyzed = 0;
        loop {
            tokio::select! {
                _ = &mut leave => break,
                _ = echo_tick.tick(), if opts.actions.echo => echoes.start_ready().await,
                event = bot.next_event(Duration::from_secs(3600)) => {
                    let (from, track) = match event {
                        // What our own echoes send is theirs, not a participant's.
                        Some(CallEvent::Track { from, .. }) if echoes.is_echo(&from) => continue,
                        Some(CallEvent::Left { from }) if echoes.is_echo(&from) => continue,
                        Some(CallEvent::Track { from, track }) => (from, track),
                        Some(CallEvent::Left { from }) => {
                            echoes.left(&from);
                            print_json(&json!({ "event": "participantLeft", "id": from }));
                            participants.left(&from);
                            continue;
                        }
                        Some(CallEvent::Message(message)) => {
                            crate::chat::print_message(&message);
                            continue;
                        }
                        None => {
                            tracing::warn!("the room connection ended");
                            break;
                        }
                    };
                    print_json(&json!({ "event": "track", "track": describe(&track) }));
                    let index = match analysis.watch(track.track()) {
                        Ok(()) => {
                            analyzed += 1;
                            Some(analyzed - 1)
                        }
                        Err(e) => {
                            tracing::warn!("cannot analyze a remote track: {e}");
                            None
                        }
                    };
                    report_index.push(index);
                    participants.track(&from, track.clone(), index);
                    if opts.actions.echo {
                        echoes.track(&from, &track);
                    }
                    received.push(track);
                }
            }
        }
        analysis.stop();
        let quality = analysis.report();
        let tracks: Vec<Value> = received
            .iter()
            .zip(&report_index)
            .map(|(t, index)| {
                let mut v = describe(t);
                if let Some(q) = index.and_then(|i| quality.get(i)) {
                    v["quality"] = json!(q);
                }
                v
            })
            .collect();
        let mut left = json!({ "event": "left", "room": room_url, "tracks": tracks });
        left["participants"] = json!(participants.finish(&quality));
        if opts.client.impair.impair.is_some() {
            // Per connection (per other participant), in the order they were made.
            let impairment: Vec<Value> = bot
                .impairments()
                .into_iter()
                .map(|(peer, report)| {
                    let mut v = json!(report);
                    v["peer"] = json!(peer);
                    v
                })
                .collect();
            left["impairment"] = json!(impairment);
        }
        print_json(&left);
        bot.leave();
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_room_is_the_context_of_the_allow_list() {
        let ctx = |u| room_context(u);
        assert_eq!(ctx("ws://h/ws?room=r1").as_deref(), Some("room:r1"));
        assert_eq!(ctx("ws://h/ws?x=1&room=r2#f").as_deref(), Some("room:r2"));
        assert_eq!(ctx("ws://h/ws?room="), None);
        assert_eq!(ctx("ws://h/ws"), None);
    }

    #[test]
    fn a_room_must_be_a_websocket_url_with_a_host() {
        assert!(check_room("ws://127.0.0.1:8080/ws?room=r").is_ok());
        assert!(check_room("wss://example.org/ws?room=r").is_ok());
        for bad in [
            "http://127.0.0.1/ws?room=r",
            "ws://",
            "ws:// bad/ws",
            "room",
        ] {
            let e = check_room(bad).unwrap_err();
            assert_eq!(e.code(), 2, "{bad}: {e}");
        }
    }
}
