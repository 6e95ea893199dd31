//! Which waiter a message from Janus belongs to (pure): a request registers its
//! transaction *before* it is sent, so its result is matched whether the long poll brings
//! the event before or after the POST's `ack`; messages no one waits for go to the handle
//! they name (`sender`), or to the session.

use std::collections::HashMap;

use super::protocol::Incoming;

/// Requests waiting for their result at once, at most.
pub const MAX_PENDING: usize = 64;

/// Where a message goes.
#[derive(Debug, PartialEq)]
pub enum Route<W> {
    /// To the request that waits for it (matched by transaction and handle).
    Waiter(W),
    /// To the events of handle `sender`.
    Handle(u64),
    /// To the session (keepalive, timeout).
    Session,
}

/// The pending requests, by transaction.
#[derive(Debug)]
pub struct Matcher<W> {
    pending: HashMap<String, (Option<u64>, W)>,
}

impl<W> Default for Matcher<W> {
    fn default() -> Self {
        Matcher {
            pending: HashMap::new(),
        }
    }
}

/// Too many requests are waiting already.
#[derive(Debug, PartialEq, Eq)]
pub struct TooManyPending;

impl<W> Matcher<W> {
    /// Registers a request on `handle` (`None`: the session itself) by its transaction.
    pub fn register(
        &mut self,
        transaction: String,
        handle: Option<u64>,
        waiter: W,
    ) -> Result<(), TooManyPending> {
        if self.pending.len() >= MAX_PENDING {
            return Err(TooManyPending);
        }
        self.pending.insert(transaction, (handle, waiter));
        Ok(())
    }

    /// Forgets a request (answered synchronously, failed or timed out).
    pub fn cancel(&mut self, transaction: &str) -> Option<W> {
        self.pending.remove(transaction).map(|(_, w)| w)
    }

    /// How many requests wait.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Every waiter, taken (the session ended: they learn it by their waiter's drop).
    pub fn drain(&mut self) -> Vec<W> {
        self.pending.drain().map(|(_, (_, w))| w).collect()
    }

    /// Where `message` from the long poll goes. A transaction matches only a request on
    /// the same handle (a message naming another `sender` is not its result).
    pub fn route(&mut self, message: &Incoming) -> Route<W> {
        let sender = message.sender();
        if let Some(tx) = message.transaction() {
            let same_handle = self
                .pending
                .get(tx)
                .is_some_and(|(h, _)| h.is_none() || sender.is_none() || *h == sender);
            // An `ack` never ends a wait: the result follows it.
            if same_handle && !matches!(message, Incoming::Ack { .. }) {
                if let Some((_, w)) = self.pending.remove(tx) {
                    return Route::Waiter(w);
                }
            }
        }
        match sender {
            Some(h) => Route::Handle(h),
            None => Route::Session,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sender: u64, tx: Option<&str>) -> Incoming {
        Incoming::Event {
            sender: Some(sender),
            transaction: tx.map(str::to_owned),
            plugindata: None,
            jsep: None,
        }
    }

    #[test]
    fn an_event_before_the_ack_reaches_its_waiter() {
        let mut m = Matcher::default();
        m.register("t1".into(), Some(7), "join").unwrap();
        // The event arrives on the long poll first; the POST's ack later.
        assert_eq!(m.route(&event(7, Some("t1"))), Route::Waiter("join"));
        assert_eq!(m.pending(), 0);
        // A second event with the same transaction is news for the handle.
        assert_eq!(m.route(&event(7, Some("t1"))), Route::Handle(7));
    }

    #[test]
    fn an_ack_does_not_end_the_wait_and_other_handles_do_not_match() {
        let mut m = Matcher::default();
        m.register("t1".into(), Some(7), 1).unwrap();
        let ack = Incoming::Ack {
            transaction: Some("t1".into()),
        };
        assert_eq!(m.route(&ack), Route::Session);
        assert_eq!(m.route(&event(8, Some("t1"))), Route::Handle(8));
        assert_eq!(m.route(&event(7, None)), Route::Handle(7));
        assert_eq!(m.route(&event(7, Some("t1"))), Route::Waiter(1));
        assert_eq!(m.route(&Incoming::Keepalive), Route::Session);
    }

    #[test]
    fn pending_requests_are_bounded_and_cancellable() {
        let mut m = Matcher::default();
        for i in 0..MAX_PENDING {
            m.register(format!("t{i}"), None, i).unwrap();
        }
        assert_eq!(m.register("one more".into(), None, 0), Err(TooManyPending));
        assert_eq!(m.cancel("t3"), Some(3));
        assert_eq!(m.cancel("t3"), None);
        assert_eq!(m.drain().len(), MAX_PENDING - 1);
    }
}
