//! A VideoRoom participant's policy, as a pure state machine fed events and the time:
//! which feeds to subscribe to as publishers come and go (never our own, nor the feeds our
//! other sessions publish: a bot's echoes), when to retry a subscription that failed, and
//! what to announce.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::videoroom::{Publisher, RoomEvent};

/// Feeds followed at once, at most (the rest are announced and ignored).
pub const MAX_FEEDS: usize = 16;
/// Attempts to subscribe to one feed before giving up on it.
pub const SUBSCRIBE_ATTEMPTS: u32 = 3;
/// The pause before another attempt.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What the participant's driver does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Subscribe to `feed` (a new handle, Janus's offer answered).
    Subscribe { feed: u64, display: Option<String> },
    /// Close the subscription to `feed` (it is gone).
    Drop { feed: u64 },
    /// Tell the user.
    Announce(Notice),
}

/// What happened in the room.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Published { feed: u64, display: Option<String> },
    Unpublished { feed: u64 },
    GaveUp { feed: u64, attempts: u32 },
    TooManyFeeds { feed: u64 },
}

#[derive(Debug)]
enum State {
    /// Waiting to subscribe (again) at this time.
    Waiting(Instant),
    Subscribing,
    Subscribed,
}

#[derive(Debug)]
struct Feed {
    display: Option<String>,
    attempts: u32,
    state: State,
}

/// The policy of one participant.
#[derive(Debug)]
pub struct Participant {
    me: Option<u64>,
    subscribe: bool,
    feeds: BTreeMap<u64, Feed>,
    /// Feeds published by our other sessions: never followed, announced or counted.
    ignored: BTreeSet<u64>,
}

impl Participant {
    /// A participant that subscribes to every other publisher (`subscribe`), or only
    /// follows them (a publisher that receives nothing).
    pub fn new(subscribe: bool) -> Self {
        Participant {
            me: None,
            subscribe,
            feeds: BTreeMap::new(),
            ignored: BTreeSet::new(),
        }
    }

    /// `feed` is published by another session of ours (a bot's echo): it is never
    /// followed, announced or counted against [`MAX_FEEDS`]. Best told before Janus
    /// announces it (between its join and its publish); if it is followed already, its
    /// subscription is dropped without a notice.
    pub fn ignore(&mut self, feed: u64) -> Vec<Action> {
        if !self.ignored.insert(feed) {
            return Vec::new();
        }
        match self.feeds.remove(&feed) {
            Some(_) => vec![Action::Drop { feed }],
            None => Vec::new(),
        }
    }

    /// Whether `feed` is ignored (see [`ignore`](Self::ignore)).
    pub fn ignores(&self, feed: u64) -> bool {
        self.ignored.contains(&feed)
    }

    /// Our own feed id, once joined.
    pub fn me(&self) -> Option<u64> {
        self.me
    }

    /// The feeds followed now.
    pub fn feeds(&self) -> impl Iterator<Item = u64> + '_ {
        self.feeds.keys().copied()
    }

    /// Acts on a VideoRoom event of our publisher's handle (new feeds are subscribed at
    /// once; only retries wait).
    pub fn on_event(&mut self, event: &RoomEvent) -> Vec<Action> {
        match event {
            RoomEvent::Joined { id, publishers, .. } => {
                self.me = Some(*id);
                self.add(publishers)
            }
            RoomEvent::Publishers(publishers) => self.add(publishers),
            RoomEvent::Unpublished(Some(feed)) | RoomEvent::Leaving(Some(feed)) => {
                self.remove(*feed)
            }
            _ => Vec::new(),
        }
    }

    fn add(&mut self, publishers: &[Publisher]) -> Vec<Action> {
        let mut actions = Vec::new();
        for p in publishers {
            if Some(p.id) == self.me
                || self.feeds.contains_key(&p.id)
                || self.ignored.contains(&p.id)
            {
                continue;
            }
            if self.feeds.len() >= MAX_FEEDS {
                actions.push(Action::Announce(Notice::TooManyFeeds { feed: p.id }));
                continue;
            }
            actions.push(Action::Announce(Notice::Published {
                feed: p.id,
                display: p.display.clone(),
            }));
            let state = if self.subscribe {
                actions.push(Action::Subscribe {
                    feed: p.id,
                    display: p.display.clone(),
                });
                State::Subscribing
            } else {
                State::Subscribed
            };
            self.feeds.insert(
                p.id,
                Feed {
                    display: p.display.clone(),
                    attempts: u32::from(self.subscribe),
                    state,
                },
            );
        }
        actions
    }

    fn remove(&mut self, feed: u64) -> Vec<Action> {
        match self.feeds.remove(&feed) {
            Some(_) => vec![
                Action::Drop { feed },
                Action::Announce(Notice::Unpublished { feed }),
            ],
            None => Vec::new(),
        }
    }

    /// The subscription to `feed` is up.
    pub fn subscribed(&mut self, feed: u64) {
        if let Some(f) = self.feeds.get_mut(&feed) {
            f.state = State::Subscribed;
        }
    }

    /// The subscription to `feed` failed: retried after [`RETRY_AFTER`], up to
    /// [`SUBSCRIBE_ATTEMPTS`] in all.
    pub fn subscribe_failed(&mut self, feed: u64, now: Instant) -> Vec<Action> {
        let Some(f) = self.feeds.get_mut(&feed) else {
            return Vec::new();
        };
        if f.attempts >= SUBSCRIBE_ATTEMPTS {
            let attempts = f.attempts;
            self.feeds.remove(&feed);
            return vec![Action::Announce(Notice::GaveUp { feed, attempts })];
        }
        f.state = State::Waiting(now + RETRY_AFTER);
        Vec::new()
    }

    /// The retries due at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        for (&feed, f) in &mut self.feeds {
            if matches!(f.state, State::Waiting(at) if at <= now) {
                f.state = State::Subscribing;
                f.attempts += 1;
                actions.push(Action::Subscribe {
                    feed,
                    display: f.display.clone(),
                });
            }
        }
        actions
    }

    /// When [`poll`](Self::poll) has something to do next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.feeds
            .values()
            .filter_map(|f| match f.state {
                State::Waiting(at) => Some(at),
                _ => None,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher(id: u64) -> Publisher {
        Publisher {
            id,
            display: Some(format!("p{id}")),
        }
    }

    fn subscribes(actions: &[Action]) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Subscribe { feed, .. } => Some(*feed),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_other_publisher_is_subscribed_once_and_dropped_when_gone() {
        let mut p = Participant::new(true);
        let joined = RoomEvent::Joined {
            id: 1,
            private_id: Some(9),
            publishers: vec![publisher(2)],
        };
        assert_eq!(subscribes(&p.on_event(&joined)), [2]);
        // Our own feed and a known one are not subscribed again; a later one is.
        let later = RoomEvent::Publishers(vec![publisher(1), publisher(2), publisher(3)]);
        assert_eq!(subscribes(&p.on_event(&later)), [3]);
        p.subscribed(2);
        let gone = p.on_event(&RoomEvent::Unpublished(Some(2)));
        assert_eq!(gone[0], Action::Drop { feed: 2 });
        assert!(p.on_event(&RoomEvent::Leaving(Some(2))).is_empty());
        assert_eq!(p.on_event(&RoomEvent::Leaving(Some(3))).len(), 2);
        assert_eq!(p.feeds().count(), 0);
        // Our own unpublish is not a feed leaving.
        assert!(p.on_event(&RoomEvent::Unpublished(None)).is_empty());
    }

    #[test]
    fn a_failed_subscription_is_retried_then_given_up() {
        let t0 = Instant::now();
        let mut p = Participant::new(true);
        p.on_event(&RoomEvent::Publishers(vec![publisher(5)]));
        assert!(p.subscribe_failed(5, t0).is_empty());
        assert_eq!(p.next_deadline(), Some(t0 + RETRY_AFTER));
        assert!(p.poll(t0).is_empty());
        assert_eq!(subscribes(&p.poll(t0 + RETRY_AFTER)), [5]);
        assert!(p.subscribe_failed(5, t0 + RETRY_AFTER).is_empty());
        assert_eq!(subscribes(&p.poll(t0 + RETRY_AFTER * 2)), [5]);
        let gave_up = p.subscribe_failed(5, t0 + RETRY_AFTER * 2);
        assert_eq!(
            gave_up,
            [Action::Announce(Notice::GaveUp {
                feed: 5,
                attempts: SUBSCRIBE_ATTEMPTS
            })]
        );
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn a_publisher_only_follows_and_feeds_are_bounded() {
        let mut p = Participant::new(false);
        let many: Vec<Publisher> = (10..10 + MAX_FEEDS as u64 + 2).map(publisher).collect();
        let actions = p.on_event(&RoomEvent::Publishers(many));
        assert!(subscribes(&actions).is_empty());
        let too_many = actions
            .iter()
            .filter(|a| matches!(a, Action::Announce(Notice::TooManyFeeds { .. })))
            .count();
        assert_eq!(too_many, 2);
        assert_eq!(p.feeds().count(), MAX_FEEDS);
    }

    #[test]
    fn feeds_of_our_other_sessions_are_never_followed_nor_counted() {
        let mut p = Participant::new(true);
        assert!(p.ignore(4).is_empty());
        assert!(p.ignore(4).is_empty(), "told twice");
        assert!(p.ignores(4) && !p.ignores(5));
        // Ignored before Janus announces it: neither subscribed nor announced.
        let actions = p.on_event(&RoomEvent::Publishers(vec![publisher(4), publisher(5)]));
        assert_eq!(subscribes(&actions), [5]);
        let announced: Vec<u64> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Announce(Notice::Published { feed, .. }) => Some(*feed),
                _ => None,
            })
            .collect();
        assert_eq!(announced, [5]);
        // Told after it was followed: dropped quietly.
        assert_eq!(p.ignore(5), [Action::Drop { feed: 5 }]);
        assert_eq!(p.feeds().count(), 0);
        // Its leaving is nothing to us.
        assert!(p.on_event(&RoomEvent::Unpublished(Some(4))).is_empty());
        // Ignored feeds take no place among the MAX_FEEDS followed.
        let ours: Vec<u64> = (100..100 + MAX_FEEDS as u64).collect();
        for &f in &ours {
            p.ignore(f);
        }
        let mut everyone: Vec<Publisher> = ours.iter().map(|&f| publisher(f)).collect();
        everyone.extend((10..10 + MAX_FEEDS as u64).map(publisher));
        let actions = p.on_event(&RoomEvent::Publishers(everyone));
        assert_eq!(subscribes(&actions).len(), MAX_FEEDS);
        assert!(subscribes(&actions).iter().all(|f| (10..100).contains(f)));
    }
}
