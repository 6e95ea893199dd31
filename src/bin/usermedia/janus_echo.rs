//! `bot --janus --echo`: each remote feed's media sent back into the VideoRoom by a
//! publisher of the bot's own (its "echo", one Janus session per echoed feed, displayed as
//! `echo of FEED`), whose tracks forward the received units as they came (no decode, no
//! re-encode). The bot and its echoes share one `OwnFeeds`, so the bot never subscribes to
//! its echoes' feeds: they are neither reported, recorded nor echoed again.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::oneshot;
use usermedia::client::{echo_encoders_of, join_janus, JanusEvent, JanusOptions, OwnFeeds};
use usermedia::peer::{PeerFactory, RemoteTrack};
use usermedia_signaling::HttpClient;

use crate::print_json;

/// How long a feed's first track waits for its others before its echo joins.
const GATHER: Duration = Duration::from_millis(800);
/// How long an echo may take to leave when the bot leaves (Janus's teardown is bounded too).
const LEAVE_WAIT: Duration = Duration::from_secs(6);
/// The display name of an echo: this, then the echoed feed's id.
pub const ECHO_DISPLAY: &str = "echo of ";

/// A feed whose tracks are being gathered.
struct Pending {
    feed: u64,
    since: Instant,
    tracks: Vec<RemoteTrack>,
}

/// One echo: the publisher sending a feed's media back, run by a task of its own (which
/// drains its events) until told to leave.
struct Echo {
    source: u64,
    feed: u64,
    leave: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Echo {
    async fn stop(self) {
        let _ = self.leave.send(());
        let _ = tokio::time::timeout(LEAVE_WAIT, self.task).await;
    }
}

/// The echoes of a Janus room's feeds.
pub struct JanusEchoes {
    url: String,
    room: u64,
    http: HttpClient,
    factory: PeerFactory,
    pending: Vec<Pending>,
    active: Vec<Echo>,
    /// The bot's feed and every echo's (those gone included).
    own: OwnFeeds,
}

impl JanusEchoes {
    pub fn new(
        url: &str,
        room: u64,
        http: HttpClient,
        factory: PeerFactory,
        own: OwnFeeds,
    ) -> Self {
        JanusEchoes {
            url: url.to_owned(),
            room,
            http,
            factory,
            pending: Vec::new(),
            active: Vec::new(),
            own,
        }
    }

    /// Whether `feed` (displayed as `display`) is to be echoed: not if it is an echo,
    /// ours (never subscribed to anyway) or another bot's (two echoing bots would feed
    /// each other forever).
    pub fn echoes(&self, feed: u64, display: Option<&str>) -> bool {
        !self.own.contains(feed) && !display.is_some_and(|d| d.starts_with(ECHO_DISPLAY))
    }

    /// `track` of `feed` is to be echoed.
    pub fn track(&mut self, feed: u64, track: &RemoteTrack) {
        match self.pending.iter_mut().find(|p| p.feed == feed) {
            Some(p) => p.tracks.push(track.clone()),
            None => self.pending.push(Pending {
                feed,
                since: Instant::now(),
                tracks: vec![track.clone()],
            }),
        }
    }

    /// Publishes the echo of every feed whose tracks are all there (two) or waited long
    /// enough.
    pub async fn start_ready(&mut self) {
        let (ready, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.tracks.len() >= 2 || p.since.elapsed() >= GATHER);
        self.pending = waiting;
        for p in ready {
            if let Some(echo) = self.start(p).await {
                print_json(&json!({"event": "echo", "feed": echo.source, "echoFeed": echo.feed}));
                self.active.push(echo);
            }
        }
    }

    async fn start(&self, p: Pending) -> Option<Echo> {
        let encoders = echo_encoders_of(&p.tracks, &format!("feed {}", p.feed));
        if encoders.is_empty() {
            return None;
        }
        let options = JanusOptions {
            room: self.room,
            display: Some(format!("{ECHO_DISPLAY}{}", p.feed)),
            create: None,
            subscribe: false,
            own_feeds: self.own.clone(),
        };
        let joined = join_janus(&self.http, &self.factory, &self.url, options, encoders).await;
        let mut participant = match joined {
            Ok(participant) => participant,
            Err(e) => {
                tracing::warn!("cannot publish the echo of feed {}: {e}", p.feed);
                return None;
            }
        };
        let feed = participant.feed;
        let source = p.feed;
        let (leave, mut told) = oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut told => break,
                    event = participant.next_event() => match event {
                        Some(JanusEvent::Failed(e)) => {
                            tracing::warn!("the echo of feed {source} failed: {e}");
                            return;
                        }
                        None => return,
                        Some(_) => {}
                    }
                }
            }
            participant.leave().await;
        });
        Some(Echo {
            source,
            feed,
            leave,
            task,
        })
    }

    /// `feed` left: its echo leaves too.
    pub async fn left(&mut self, feed: u64) {
        self.pending.retain(|p| p.feed != feed);
        let (gone, kept): (Vec<Echo>, Vec<Echo>) = std::mem::take(&mut self.active)
            .into_iter()
            .partition(|e| e.source == feed);
        self.active = kept;
        for echo in gone {
            echo.stop().await;
        }
    }

    /// Every echo leaves, all at once (the bot leaves).
    pub async fn leave_all(&mut self) {
        let stops = std::mem::take(&mut self.active).into_iter().map(Echo::stop);
        futures_util::future::join_all(stops).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usermedia::peer::PeerConfig;

    #[test]
    fn echoes_are_never_echoed() {
        let http = HttpClient::new().unwrap();
        let factory = PeerFactory::new(PeerConfig::default());
        let own = OwnFeeds::default();
        own.add(7);
        let echoes = JanusEchoes::new("http://h/janus", 1, http, factory, own);
        assert!(!echoes.echoes(7, Some("bot")), "our own echo");
        assert!(!echoes.echoes(9, Some("echo of 3")), "another bot's echo");
        assert!(echoes.echoes(8, Some("alice")) && echoes.echoes(8, None));
    }
}
