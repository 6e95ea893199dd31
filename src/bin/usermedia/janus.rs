//! `publish --janus` and `bot --janus`: the capture published into a Janus VideoRoom (and,
//! for the bot, every other publisher subscribed to), the flags they share, their JSON
//! lines, and which Janus failures are the caller's input (exit 2: a bad URL, a room that
//! does not exist without --janus-create) and which the network's (exit 3).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc;
use usermedia::analysis::ReceiveAnalysis;
use usermedia::client::{
    join_janus_saying, Chat, ChatMessage, JanusEvent, JanusOptions, JanusParticipant, OwnFeeds,
    SessionError,
};
use usermedia::encode::VideoCodec;
use usermedia::peer::RemoteTrack;
use usermedia_signaling::janus::{JanusError, RoomSettings};

use crate::bot_record::Participants;
use crate::client::Client;
use crate::exit::CliError;
use crate::janus_echo::JanusEchoes;
use crate::print_json;

/// How long our published connection may take to come up after Janus's answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The Janus VideoRoom flags of `publish` and `bot`.
#[derive(clap::Args, Clone, Default)]
pub struct JanusArgs {
    /// Janus's HTTP API, e.g. http://127.0.0.1:8088/janus: publish into (or, for `bot`,
    /// join) a VideoRoom there, given with --janus-room.
    #[arg(long, value_name = "URL", requires = "janus_room")]
    pub janus: Option<String>,
    /// The VideoRoom's numeric id.
    #[arg(long, value_name = "N", requires = "janus")]
    pub janus_room: Option<u64>,
    /// Create the room if it does not exist (videocodec "h264,vp8", audiocodec "opus",
    /// bitrate 1500000, 16 publishers; not kept across Janus restarts). Without it a
    /// missing room is an error (exit 2).
    #[arg(long, requires = "janus")]
    pub janus_create: bool,
    /// Our display name in the room.
    #[arg(long, value_name = "NAME", requires = "janus")]
    pub janus_display: Option<String>,
}

impl JanusArgs {
    /// The URL and room when --janus is given.
    pub fn target(&self) -> Option<(&str, u64)> {
        Some((self.janus.as_deref()?, self.janus_room?))
    }

    fn options(&self, room: u64, subscribe: bool, own_feeds: OwnFeeds) -> JanusOptions {
        JanusOptions {
            room,
            display: self.janus_display.clone(),
            create: self.janus_create.then(RoomSettings::default),
            subscribe,
            own_feeds,
        }
    }
}

/// Bad input unless `url` is http:// or https:// with a host (checked before capturing).
pub fn check_url(url: &str) -> Result<(), CliError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => Ok(()),
        _ => Err(CliError::bad_input(format!(
            "--janus {url:?} is not an http:// or https:// URL with a host"
        ))),
    }
}

/// A failed join, classified: a bad URL or TLS setting, and a room that does not exist,
/// are bad input; the rest (unreachable, refused otherwise, timeouts) runtime failures.
pub fn join_failure(error: SessionError, url: &str, room: u64) -> CliError {
    let what = format!("joining Janus room {room} at {url}");
    if let SessionError::Janus(e) = &error {
        if e.is_no_such_room() {
            return CliError::bad_input(format!(
                "{what}: the room does not exist ({e}); --janus-create creates it"
            ));
        }
        if matches!(e, JanusError::BadUrl(..)) {
            return CliError::BadInput(anyhow::Error::new(error).context(what));
        }
    }
    if matches!(&error, SessionError::Http(_)) {
        return crate::client::session_failure(error, what);
    }
    CliError::Runtime(anyhow::Error::new(error).context(what))
}

async fn join(
    client: &Client,
    args: &JanusArgs,
    subscribe: bool,
    own_feeds: OwnFeeds,
    codec: Option<VideoCodec>,
    chat: Option<(Chat, mpsc::Receiver<ChatMessage>)>,
) -> Result<(JanusParticipant, String, u64), CliError> {
    let (url, room) = args
        .target()
        .ok_or_else(|| CliError::bad_input("--janus needs --janus-room"))?;
    let encoders = client.encoders(codec)?;
    let participant = join_janus_saying(
        &client.http,
        &client.factory,
        url,
        args.options(room, subscribe, own_feeds),
        encoders,
        chat,
    )
    .await
    .map_err(|e| join_failure(e, url, room))?;
    Ok((participant, url.to_owned(), room))
}

/// Waits for --seconds or Ctrl-C, whichever comes first (Ctrl-C during --seconds leaves
/// cleanly too: files finalized, the `left` line printed).
pub(crate) async fn until_leaving(seconds: Option<f64>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match seconds {
        Some(s) => tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(s)) => {}
            _ = ctrl_c => {}
        },
        None => ctrl_c.await,
    }
}

/// The join, unless it is time to leave first (Ctrl-C while joining): then `None`, the
/// half-made session dropped (it is destroyed in the background; given a moment to go out).
async fn join_or_leave<T>(
    joining: impl std::future::Future<Output = Result<T, CliError>>,
    leave: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Result<Option<T>, CliError> {
    let joined = tokio::select! {
        joined = joining => Some(joined),
        _ = leave.as_mut() => None,
    };
    match joined {
        Some(joined) => joined.map(Some),
        None => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            eprintln!("usermedia: left before joining");
            Ok(None)
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `publish --janus`: publish until Ctrl-C or --seconds, then leave cleanly and print the
/// connection's stats.
pub async fn publish(
    client: &Client,
    args: &JanusArgs,
    codec: Option<VideoCodec>,
    seconds: Option<f64>,
) -> Result<ExitCode, CliError> {
    let leave = until_leaving(seconds);
    tokio::pin!(leave);
    let Some((mut participant, url, room)) = join_or_leave(
        join(client, args, false, OwnFeeds::default(), codec, None),
        &mut leave,
    )
    .await?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    if let Err(e) = participant
        .publisher()
        .wait_connected(CONNECT_TIMEOUT)
        .await
    {
        participant.leave().await;
        return Err(CliError::runtime(format!(
            "publishing into Janus room {room} at {url}: {e}"
        )));
    }
    println!(
        "usermedia: publishing into Janus room {room} at {url} (feed {})",
        participant.feed
    );
    let mut webrtcup = None;
    let failure = loop {
        tokio::select! {
            _ = &mut leave => break None,
            event = participant.next_event() => match event {
                Some(JanusEvent::PublisherUp { after }) => webrtcup = Some(ms(after)),
                Some(JanusEvent::Failed(e)) => break Some(e),
                Some(_) => {}
                None => break Some(SessionError::Janus(JanusError::SessionEnded("closed".into()))),
            }
        }
    };
    let stats = participant.publisher().stats().await;
    let mut summary = json!({
        "janus": url, "room": room, "feed": participant.feed,
        "webrtcupMs": webrtcup, "stats": stats,
    });
    if let Some(impairment) = participant.publisher().impairment() {
        summary["impairment"] = json!(impairment);
    }
    print_json(&summary);
    participant.leave().await;
    match failure {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => Err(CliError::Runtime(
            anyhow::Error::new(e).context(format!("publishing into Janus room {room} at {url}")),
        )),
    }
}

/// A remote track with the feed it came from, and its place in the analysis' report.
struct Received {
    feed: u64,
    display: Option<String>,
    track: RemoteTrack,
    report: Option<usize>,
}

fn describe(r: &Received) -> Value {
    let mut v = crate::bot::describe(&r.track);
    v["feed"] = json!(r.feed);
    v["display"] = json!(r.display);
    v
}

/// `bot --janus`: publish, subscribe to every other publisher as they come and go, print
/// the JSON lines, leave cleanly.
pub async fn bot(
    client: &Client,
    args: &JanusArgs,
    seconds: Option<f64>,
    mut participants: Participants,
    chat: (Chat, mpsc::Receiver<ChatMessage>),
    echo: bool,
) -> Result<ExitCode, CliError> {
    let joined_at = Instant::now();
    let leave = until_leaving(seconds);
    tokio::pin!(leave);
    // Ours: the bot's feed and its echoes', never subscribed to by one another.
    let own = OwnFeeds::default();
    let joining = join(client, args, true, own.clone(), None, Some(chat));
    let Some((mut participant, url, room)) = join_or_leave(joining, &mut leave).await? else {
        return Ok(ExitCode::SUCCESS);
    };
    println!(
        "usermedia: in Janus room {room} at {url} (feed {})",
        participant.feed
    );
    let mut received: Vec<Received> = Vec::new();
    // What each remote track really delivered (as `view` reports it), as in our rooms.
    let analysis = ReceiveAnalysis::new();
    let mut analyzed = 0;
    let mut echoes = JanusEchoes::new(&url, room, client.http.clone(), client.factory.clone(), own);
    let mut echo_tick = tokio::time::interval(Duration::from_millis(200));
    let failure = loop {
        let event = tokio::select! {
            _ = &mut leave => break None,
            _ = echo_tick.tick(), if echo => {
                echoes.start_ready().await;
                continue;
            }
            event = participant.next_event() => event,
        };
        let Some(event) = event else {
            break Some(SessionError::Janus(JanusError::SessionEnded(
                "closed".into(),
            )));
        };
        // Our own echoes are never subscribed to (they share `own`), so nothing of
        // theirs comes here.
        match event {
            JanusEvent::PublisherUp { after } => {
                print_json(&json!({"event": "webrtcup", "feed": null, "ms": ms(after)}));
            }
            JanusEvent::SubscriberUp { feed, after } => {
                print_json(&json!({"event": "webrtcup", "feed": feed, "ms": ms(after)}));
            }
            JanusEvent::Published { feed, display } => {
                print_json(&json!({"event": "publisher", "feed": feed, "display": display}));
            }
            JanusEvent::Unpublished { feed } => {
                print_json(&json!({"event": "unpublished", "feed": feed}));
                participants.left(&feed.to_string());
                echoes.left(feed).await;
            }
            JanusEvent::GaveUp { feed, attempts } => {
                print_json(&json!({"event": "gaveUp", "feed": feed, "attempts": attempts}));
            }
            JanusEvent::Track {
                feed,
                display,
                track,
            } => {
                let report = match analysis.watch(track.track()) {
                    Ok(()) => {
                        analyzed += 1;
                        Some(analyzed - 1)
                    }
                    Err(e) => {
                        tracing::warn!("cannot analyze a remote track: {e}");
                        None
                    }
                };
                participants.track(&feed.to_string(), track.clone(), report);
                if echo && echoes.echoes(feed, display.as_deref()) {
                    echoes.track(feed, &track);
                }
                let r = Received {
                    feed,
                    display,
                    track,
                    report,
                };
                let mut line = json!({"event": "track", "track": describe(&r)});
                line["feed"] = json!(feed);
                line["sinceJoinMs"] = json!(ms(joined_at.elapsed()));
                print_json(&line);
                received.push(r);
            }
            JanusEvent::Message(m) => crate::chat::print_message(&m),
            JanusEvent::Failed(e) => break Some(e),
        }
    };
    analysis.stop();
    let quality = analysis.report();
    let tracks: Vec<Value> = received
        .iter()
        .map(|r| {
            let mut v = describe(r);
            if let Some(q) = r.report.and_then(|i| quality.get(i)) {
                v["quality"] = json!(q);
            }
            v
        })
        .collect();
    let participants = participants.finish(&quality);
    print_json(
        &json!({"event": "left", "room": room, "janus": url, "tracks": tracks,
        "participants": participants}),
    );
    echoes.leave_all().await;
    participant.leave().await;
    match failure {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => Err(CliError::Runtime(
            anyhow::Error::new(e).context(format!("in Janus room {room} at {url}")),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_room_is_bad_input_naming_janus_create() {
        let missing = SessionError::Janus(JanusError::Room {
            request: "join",
            code: 426,
            reason: "No such room (77)".into(),
        });
        let e = join_failure(missing, "http://h/janus", 77);
        assert_eq!(e.code(), 2);
        let text = e.to_string();
        assert!(
            text.contains("room 77") && text.contains("--janus-create"),
            "{text}"
        );
        assert!(text.contains("error 426"), "{text}");
        let gone = SessionError::Janus(JanusError::Transport {
            url: "http://h/janus".into(),
            message: "connection refused".into(),
        });
        assert_eq!(join_failure(gone, "http://h/janus", 1).code(), 3);
        let bad = SessionError::Janus(JanusError::BadUrl("x".into(), "no".into()));
        assert_eq!(join_failure(bad, "x", 1).code(), 2);
    }

    #[test]
    fn the_janus_url_must_be_http() {
        assert!(check_url("http://127.0.0.1:8088/janus").is_ok());
        assert!(check_url("https://sfu.example/janus").is_ok());
        for bad in ["ws://h/janus", "http://", "http:///janus", "janus"] {
            assert_eq!(check_url(bad).unwrap_err().code(), 2, "{bad}");
        }
    }
}
