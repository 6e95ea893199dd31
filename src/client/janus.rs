//! A participant in a Janus VideoRoom: publishes its tracks into the room through one
//! peer connection and, when asked, subscribes to every other publisher (one subscriber
//! handle and peer per feed, Janus's offers answered receive-only), following feeds as
//! they come and go; leaving unpublishes, leaves, detaches and destroys the session. The
//! Janus protocol and the policy are the signaling crate's (`janus`); this is their
//! driver with peers. Participants sharing an [`OwnFeeds`] (a bot and its echoes) never
//! subscribe to each other.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use usermedia_signaling::janus::{
    Action, HandleEvent, Incoming, JanusError, JanusEvents, JanusSession, Notice, Participant,
    RoomEvent, RoomSettings, VideoRoomHandle,
};
use usermedia_signaling::HttpClient;

use super::datachannel::{Chat, ChatMessage, CHAT_LABEL, DATA_CHANNEL_WAIT};
use super::session::SessionError;
use crate::encode::pipeline::TrackEncoders;
use crate::peer::{AnswerRole, Peer, PeerFactory, PeerState, RemoteTrack};

/// How long leaving may take in all (each request to a Janus that is gone fails fast;
/// one that hangs is not waited for).
const TEARDOWN_LIMIT: Duration = Duration::from_secs(5);
/// How long after another publisher appears our chat text is said again on our
/// publication's data channel (its subscription to us comes up in well under this).
pub const SAY_AGAIN_AFTER: Duration = Duration::from_secs(2);
/// Unread events kept for the participant's owner.
const EVENT_CAPACITY: usize = 64;

/// Where and how to join.
#[derive(Debug, Clone)]
pub struct JanusOptions {
    /// The room's numeric id.
    pub room: u64,
    /// Our name in the room.
    pub display: Option<String>,
    /// Create the room with these settings if it does not exist; `None`: a missing room
    /// is an error (the VideoRoom's 426).
    pub create: Option<RoomSettings>,
    /// Subscribe to every other publisher (a bot) or only publish.
    pub subscribe: bool,
    /// The feeds of our own sessions in the room: this participant adds its feed as soon
    /// as it has joined and never subscribes to one of them. `OwnFeeds::default()` when
    /// the participant is alone.
    pub own_feeds: OwnFeeds,
}

/// The feed ids published by a set of our own participants in one room (a bot and the
/// echoes it publishes), shared by them. Each adds its feed between its join and its
/// publish, that is before Janus announces it to anyone, so the others never subscribe
/// to it, never announce it and do not count it against the feeds they follow.
#[derive(Debug, Clone, Default)]
pub struct OwnFeeds(Arc<Mutex<BTreeSet<u64>>>);

impl OwnFeeds {
    /// Counts `feed` as ours (a participant given this set adds its own when it joins).
    pub fn add(&self, feed: u64) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(feed);
    }

    /// Whether `feed` is one of ours.
    pub fn contains(&self, feed: u64) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&feed)
    }

    fn all(&self) -> Vec<u64> {
        let feeds = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        feeds.iter().copied().collect()
    }
}

/// What happens to a participant, in order.
pub enum JanusEvent {
    /// Janus says our published connection is up (`webrtcup`), this long after the
    /// publish request.
    PublisherUp { after: Duration },
    /// Another publisher is in the room.
    Published { feed: u64, display: Option<String> },
    /// Our subscription to `feed` is up (`webrtcup`), this long after we asked for it.
    SubscriberUp { feed: u64, after: Duration },
    /// A track of `feed` arrived.
    Track {
        feed: u64,
        display: Option<String>,
        track: RemoteTrack,
    },
    /// `feed` stopped publishing or left; its subscription is closed.
    Unpublished { feed: u64 },
    /// Subscribing to `feed` failed this many times; it is not tried again.
    GaveUp { feed: u64, attempts: u32 },
    /// A chat message arrived on the data channel of a feed we subscribe to (`from`:
    /// the feed's id); only with [`join_janus_saying`].
    Message(ChatMessage),
    /// The session failed (Janus gone, our connection failed); the participant has left.
    Failed(SessionError),
}

/// A participant in a Janus VideoRoom. Leave with [`leave`](Self::leave); dropping it
/// stops the driver without telling Janus (the session then times out there).
pub struct JanusParticipant {
    /// Our publisher's feed id.
    pub feed: u64,
    /// The Janus session's id.
    pub session_id: u64,
    peer: Arc<Peer>,
    events: mpsc::Receiver<JanusEvent>,
    leave: Option<oneshot::Sender<oneshot::Sender<()>>>,
    task: tokio::task::JoinHandle<()>,
}

impl JanusParticipant {
    /// Our published connection.
    pub fn publisher(&self) -> &Peer {
        &self.peer
    }

    /// The next thing that happened; `None` once the participant has left.
    pub async fn next_event(&mut self) -> Option<JanusEvent> {
        self.events.recv().await
    }

    /// Leaves cleanly: every subscription left and detached, then unpublish, leave,
    /// detach and destroy, within [`TEARDOWN_LIMIT`].
    pub async fn leave(mut self) {
        if let Some(leave) = self.leave.take() {
            let (done, finished) = oneshot::channel();
            if leave.send(done).is_ok() {
                let _ =
                    tokio::time::timeout(TEARDOWN_LIMIT + Duration::from_secs(1), finished).await;
            }
        }
    }
}

impl Drop for JanusParticipant {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Joins room `options.room` of the Janus at `url` (its HTTP API, e.g.
/// `http://127.0.0.1:8088/janus`) and publishes `tracks` (our offer lists H.264 then VP8;
/// Janus's answer picks). On any failure the session is destroyed before the error is
/// returned; a missing room is [`JanusError::Room`] with code 426.
pub async fn join_janus(
    client: &HttpClient,
    factory: &PeerFactory,
    url: &str,
    options: JanusOptions,
    tracks: Vec<TrackEncoders>,
) -> Result<JanusParticipant, SessionError> {
    join_janus_saying(client, factory, url, options, tracks, None).await
}

/// [`join_janus`] with a chat on the VideoRoom's data channels: our publication carries
/// a `chat` data channel (Janus relays what we send on it to our subscribers), `chat`
/// says its text when it opens and again each time another publisher appears (Janus
/// relays only live messages, so a later joiner would not see it otherwise); the
/// messages on each subscription's data channel come out as [`JanusEvent::Message`].
pub async fn join_janus_saying(
    client: &HttpClient,
    factory: &PeerFactory,
    url: &str,
    options: JanusOptions,
    tracks: Vec<TrackEncoders>,
    chat: Option<(Chat, mpsc::Receiver<ChatMessage>)>,
) -> Result<JanusParticipant, SessionError> {
    let (chat, messages) = match chat {
        Some((chat, rx)) => (Some(chat), Some(rx)),
        None => (None, None),
    };
    let (session, events) = JanusSession::create(client, url).await?;
    let session = Arc::new(session);
    let joined = publish(&session, factory, &options, &tracks, chat.as_ref()).await;
    let (handle, joined, peer, published_at, channel) = match joined {
        Ok(j) => j,
        Err(e) => {
            let _ = tokio::time::timeout(TEARDOWN_LIMIT, session.destroy()).await;
            return Err(e);
        }
    };
    let RoomEvent::Joined { id, private_id, .. } = joined.clone() else {
        return Err(SessionError::Janus(JanusError::Unexpected {
            request: "join",
            got: format!("{joined:?}"),
        }));
    };
    let (out, rx) = mpsc::channel(EVENT_CAPACITY);
    let (leave, leave_rx) = oneshot::channel();
    let mut policy = Participant::new(options.subscribe);
    let mut first = ignore_own(&mut policy, &options.own_feeds);
    first.extend(policy.on_event(&joined));
    let driver = Driver {
        session: Arc::clone(&session),
        room: options.room,
        private_id,
        factory: factory.clone(),
        publisher: handle,
        peer: Arc::clone(&peer),
        policy,
        own_feeds: options.own_feeds.clone(),
        subs: HashMap::new(),
        out,
        published_at,
        chat,
        channel,
    };
    let task = tokio::spawn(driver.run(events, leave_rx, first, messages));
    Ok(JanusParticipant {
        feed: id,
        session_id: session.id(),
        peer,
        events: rx,
        leave: Some(leave),
        task,
    })
}

type Joined = (
    VideoRoomHandle,
    RoomEvent,
    Arc<Peer>,
    Instant,
    Option<crate::peer::DataChannel>,
);

/// Tells the policy the feeds of our other sessions it does not know yet.
fn ignore_own(policy: &mut Participant, own: &OwnFeeds) -> Vec<Action> {
    // `ignore` is a no-op for a feed already ignored.
    own.all()
        .into_iter()
        .flat_map(|feed| policy.ignore(feed))
        .collect()
}

/// Attach, create the room if asked, join as a publisher and publish.
async fn publish(
    session: &Arc<JanusSession>,
    factory: &PeerFactory,
    options: &JanusOptions,
    tracks: &[TrackEncoders],
    chat: Option<&Chat>,
) -> Result<Joined, SessionError> {
    let handle = VideoRoomHandle::attach(session).await?;
    if let Some(settings) = &options.create {
        if !handle.exists(options.room).await? {
            handle.create(options.room, settings).await?;
        }
    }
    let joined = handle
        .join_publisher(options.room, options.display.as_deref())
        .await?;
    // Before publishing: Janus announces a publisher only once it publishes.
    if let RoomEvent::Joined { id, .. } = &joined {
        options.own_feeds.add(*id);
    }
    let peer = Arc::new(factory.create().await?);
    let published = async {
        for t in tracks {
            peer.add_track(t).await?;
        }
        let channel = match chat {
            Some(chat) => {
                let channel = peer.create_data_channel(CHAT_LABEL).await?;
                chat.attach("janus".into(), channel.clone());
                Some(channel)
            }
            None => None,
        };
        let offer = peer.create_offer().await?;
        let at = Instant::now();
        let answer = handle.publish_with_data(offer, channel.is_some()).await?;
        peer.accept_answer(&answer).await?;
        Ok::<_, SessionError>((at, channel))
    }
    .await;
    match published {
        Ok((at, channel)) => Ok((handle, joined, peer, at, channel)),
        Err(e) => {
            peer.close().await;
            Err(e)
        }
    }
}

/// One subscription: its handle and peer.
struct Subscription {
    handle: VideoRoomHandle,
    peer: Arc<Peer>,
    asked_at: Instant,
}

struct Driver {
    session: Arc<JanusSession>,
    room: u64,
    private_id: Option<u64>,
    factory: PeerFactory,
    publisher: VideoRoomHandle,
    peer: Arc<Peer>,
    policy: Participant,
    own_feeds: OwnFeeds,
    subs: HashMap<u64, Subscription>,
    out: mpsc::Sender<JanusEvent>,
    published_at: Instant,
    /// The chat (our publication's data channel, and the subscriptions' ones).
    chat: Option<Chat>,
    channel: Option<crate::peer::DataChannel>,
}

impl Driver {
    async fn run(
        mut self,
        mut events: JanusEvents,
        mut leave: oneshot::Receiver<oneshot::Sender<()>>,
        first: Vec<Action>,
        messages: Option<mpsc::Receiver<ChatMessage>>,
    ) {
        self.act(first).await;
        if let Some(mut messages) = messages {
            let out = self.out.clone();
            tokio::spawn(async move {
                while let Some(m) = messages.recv().await {
                    if out.send(JanusEvent::Message(m)).await.is_err() {
                        break;
                    }
                }
            });
        }
        let mut state = self.peer.watch_state();
        loop {
            let deadline = self.policy.next_deadline();
            let retry = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let actions = tokio::select! {
                event = events.next() => match event {
                    Ok(e) => self.on_event(e).await,
                    Err(e) => return self.fail(SessionError::Janus(e)).await,
                },
                done = &mut leave => {
                    self.teardown().await;
                    if let Ok(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
                _ = retry => self.policy.poll(Instant::now()),
                changed = state.changed() => {
                    let failed = changed.is_err()
                        || matches!(*state.borrow(), PeerState::Failed | PeerState::Closed);
                    if failed {
                        let e = JanusError::SessionEnded("our connection to Janus failed".into());
                        return self.fail(SessionError::Janus(e)).await;
                    }
                    Vec::new()
                }
            };
            self.act(actions).await;
        }
    }

    async fn fail(mut self, error: SessionError) {
        tracing::warn!("Janus: {error}");
        self.teardown().await;
        let _ = self.out.send(JanusEvent::Failed(error)).await;
    }

    async fn emit(&self, event: JanusEvent) {
        let _ = self.out.send(event).await;
    }

    /// An event on one of our handles.
    async fn on_event(&mut self, event: HandleEvent) -> Vec<Action> {
        let HandleEvent { handle, message } = event;
        if handle == self.publisher.id() {
            return match message {
                Incoming::Event {
                    plugindata: Some(p),
                    ..
                } => {
                    let mut actions = ignore_own(&mut self.policy, &self.own_feeds);
                    actions.extend(self.policy.on_event(&RoomEvent::parse(&p.data)));
                    actions
                }
                Incoming::Webrtcup { .. } => {
                    let after = self.published_at.elapsed();
                    self.emit(JanusEvent::PublisherUp { after }).await;
                    Vec::new()
                }
                Incoming::Hangup { reason, .. } => {
                    tracing::warn!("Janus hung up our published connection: {reason}");
                    Vec::new()
                }
                _ => Vec::new(),
            };
        }
        let Some((&feed, sub)) = self.subs.iter().find(|(_, s)| s.handle.id() == handle) else {
            return Vec::new();
        };
        match message {
            Incoming::Webrtcup { .. } => {
                let after = sub.asked_at.elapsed();
                self.policy.subscribed(feed);
                self.emit(JanusEvent::SubscriberUp { feed, after }).await;
            }
            // The publisher renegotiated: Janus offers again on the same subscription.
            Incoming::Event {
                jsep: Some(jsep), ..
            } if jsep.kind == "offer" => {
                let (peer, handle) = (Arc::clone(&sub.peer), sub.handle.clone());
                let answered = async {
                    let none = std::iter::empty::<TrackEncoders>();
                    let answer = peer.answer_as(&jsep.sdp, AnswerRole::Receive, none).await?;
                    handle.start(answer).await?;
                    Ok::<_, SessionError>(())
                };
                if let Err(e) = answered.await {
                    tracing::warn!("Janus: renegotiating feed {feed}: {e}");
                }
            }
            _ => {}
        }
        Vec::new()
    }

    async fn act(&mut self, mut actions: Vec<Action>) {
        while !actions.is_empty() {
            let mut more = Vec::new();
            for action in actions {
                match action {
                    Action::Subscribe { feed, display } => {
                        if let Err(e) = self.subscribe(feed, display).await {
                            tracing::warn!("Janus: subscribing to feed {feed}: {e}");
                            more.extend(self.policy.subscribe_failed(feed, Instant::now()));
                        }
                    }
                    Action::Drop { feed } => {
                        if let Some(sub) = self.subs.remove(&feed) {
                            close(sub).await;
                        }
                    }
                    Action::Announce(notice) => {
                        if matches!(notice, Notice::Published { .. }) {
                            self.say_again().await;
                        }
                        self.emit(announce(notice)).await
                    }
                }
            }
            actions = more;
        }
    }

    /// Says our chat text again on our publication's channel, [`SAY_AGAIN_AFTER`] after
    /// a publisher appeared (time for its subscription to us to come up).
    async fn say_again(&self) {
        let (Some(chat), Some(channel)) = (&self.chat, &self.channel) else {
            return;
        };
        let Some(text) = chat.say().map(str::to_owned) else {
            return;
        };
        let channel = channel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SAY_AGAIN_AFTER).await;
            if let Err(e) = channel.send_text(&text).await {
                tracing::debug!("chat: cannot say again: {e}");
            }
        });
    }

    /// A subscriber handle and peer for `feed`; its tracks go to the owner.
    async fn subscribe(&mut self, feed: u64, display: Option<String>) -> Result<(), SessionError> {
        let asked_at = Instant::now();
        let handle = VideoRoomHandle::attach(&self.session).await?;
        let peer = match self.factory.create().await {
            Ok(p) => Arc::new(p),
            Err(e) => {
                let _ = handle.detach().await;
                return Err(e.into());
            }
        };
        forward_tracks(&peer, feed, display, self.out.clone());
        if let Some(chat) = self.chat.clone() {
            // Janus relays a feed's messages to a subscription only once that
            // subscription's SCTP association has reported "sender dry" (the plugin's
            // `data_ready`), which needs something sent on it first: we open a channel of
            // our own (Janus acknowledges it; what we would send on it is ignored). It is
            // kept open (a dropped one would come back as if Janus had opened it).
            let own = match peer.create_data_channel(CHAT_LABEL).await {
                Ok(channel) => Some(channel),
                Err(e) => {
                    tracing::warn!("chat: no data channel to feed {feed}: {e}");
                    None
                }
            };
            // Janus opens the relaying channel (labelled with the feed's id) itself, with
            // the first message it relays: taken for as long as the subscription lasts.
            let weak = Arc::downgrade(&peer);
            tokio::spawn(async move {
                let _own = own;
                while let Some(peer) = weak.upgrade() {
                    match peer.next_data_channel(DATA_CHANNEL_WAIT).await {
                        Some(channel) => chat.attach(feed.to_string(), channel),
                        None if matches!(peer.state(), PeerState::Closed | PeerState::Failed) => {
                            break
                        }
                        None => continue,
                    }
                }
            });
        }
        let started = async {
            let offer = handle
                .join_subscriber(self.room, feed, self.private_id)
                .await?;
            let none = std::iter::empty::<TrackEncoders>();
            let answer = peer.answer_as(&offer, AnswerRole::Receive, none).await?;
            handle.start(answer).await?;
            Ok::<_, SessionError>(())
        }
        .await;
        let sub = Subscription {
            handle,
            peer,
            asked_at,
        };
        match started {
            Ok(()) => {
                self.subs.insert(feed, sub);
                Ok(())
            }
            Err(e) => {
                close(sub).await;
                Err(e)
            }
        }
    }

    /// Every subscription left and detached, then unpublish, leave, detach, destroy.
    async fn teardown(&mut self) {
        let steps = async {
            for (_, sub) in self.subs.drain() {
                close(sub).await;
            }
            if self.session.ended().is_none() {
                for (step, result) in [
                    ("unpublish", self.publisher.unpublish().await),
                    ("leave", self.publisher.leave().await),
                    ("detach", self.publisher.detach().await),
                    ("destroy", self.session.destroy().await),
                ] {
                    if let Err(e) = result {
                        tracing::debug!("Janus {step}: {e}");
                    }
                }
            }
            self.peer.close().await;
        };
        if tokio::time::timeout(TEARDOWN_LIMIT, steps).await.is_err() {
            tracing::warn!("Janus: leaving took over {TEARDOWN_LIMIT:?}; gave up waiting");
            self.peer.close().await;
        }
    }
}

fn announce(notice: Notice) -> JanusEvent {
    match notice {
        Notice::Published { feed, display } => JanusEvent::Published { feed, display },
        Notice::Unpublished { feed } => JanusEvent::Unpublished { feed },
        Notice::GaveUp { feed, attempts } => JanusEvent::GaveUp { feed, attempts },
        Notice::TooManyFeeds { feed } => {
            tracing::warn!("Janus: feed {feed} ignored: following too many feeds already");
            JanusEvent::GaveUp { feed, attempts: 0 }
        }
    }
}

/// Leaves and detaches a subscription and closes its peer.
async fn close(sub: Subscription) {
    if sub.handle.leave().await.is_ok() {
        let _ = sub.handle.detach().await;
    }
    sub.peer.close().await;
}

/// Hands `peer`'s remote tracks to the owner, tagged with their feed.
fn forward_tracks(
    peer: &Arc<Peer>,
    feed: u64,
    display: Option<String>,
    out: mpsc::Sender<JanusEvent>,
) {
    let weak = Arc::downgrade(peer);
    tokio::spawn(async move {
        while let Some(peer) = weak.upgrade() {
            let next = peer.next_remote_track(Duration::from_secs(3600)).await;
            drop(peer);
            let Some(track) = next else { break };
            let display = display.clone();
            if out
                .send(JanusEvent::Track {
                    feed,
                    display,
                    track,
                })
                .await
                .is_err()
            {
                break;
            }
        }
    });
}
