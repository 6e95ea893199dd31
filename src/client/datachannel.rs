//! Text chat over data channels (the bot's `--say` and the messages it prints): a `chat`
//! channel per connection, what we say sent as each one opens, what arrives bounded in
//! size and rate and handed to the owner as [`ChatMessage`]s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::peer::{DataChannel, DataEvent};

/// The label of the chat channel (the `/call` page uses the same).
pub const CHAT_LABEL: &str = "chat";
/// The longest message sent or taken, in bytes of UTF-8; longer ones received are dropped.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Messages taken from one channel in a burst; then [`MESSAGES_PER_SECOND`].
pub const MESSAGE_BURST: u32 = 20;
/// Messages taken from one channel per second, sustained; more are dropped.
pub const MESSAGES_PER_SECOND: u32 = 10;
/// Messages waiting for the owner to read them; more are dropped.
const QUEUE: usize = 256;

/// A message someone in the call sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who sent it: the room's participant id (a Janus feed's id in a Janus room).
    pub from: String,
    pub text: String,
}

/// A message we would send that cannot be.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChatError {
    #[error("the message is {0} bytes; at most {MAX_MESSAGE_BYTES} are sent")]
    TooLong(usize),
}

/// A token bucket (pure, fed the time): [`MESSAGE_BURST`] at once, then
/// [`MESSAGES_PER_SECOND`].
#[derive(Debug, Clone)]
pub struct RateLimit {
    tokens: f64,
    last: Option<Instant>,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            tokens: f64::from(MESSAGE_BURST),
            last: None,
        }
    }
}

impl RateLimit {
    /// Whether a message arriving at `now` is taken.
    pub fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + refill * f64::from(MESSAGES_PER_SECOND))
                .min(f64::from(MESSAGE_BURST));
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Checks a message we would send.
pub fn check_message(text: &str) -> Result<(), ChatError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ChatError::TooLong(text.len()));
    }
    Ok(())
}

/// The chat of one participant: what it says on every channel that opens, and where the
/// messages it receives go.
#[derive(Clone)]
pub struct Chat {
    say: Option<Arc<str>>,
    tx: mpsc::Sender<ChatMessage>,
    dropped: Arc<AtomicU64>,
}

impl Chat {
    /// A chat saying `say` (if any) once on each channel as it opens; the receiver gets
    /// the messages that arrive.
    pub fn new(say: Option<String>) -> Result<(Chat, mpsc::Receiver<ChatMessage>), ChatError> {
        if let Some(text) = &say {
            check_message(text)?;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let chat = Chat {
            say: say.map(Arc::from),
            tx,
            dropped: Arc::default(),
        };
        Ok((chat, rx))
    }

    /// What this chat says (`--say`), if anything.
    pub fn say(&self) -> Option<&str> {
        self.say.as_deref()
    }

    /// Messages received and dropped so far (too long, too fast, or not read in time).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Serves `channel`, whose other end is participant `from`: says our text when it
    /// opens, hands on what arrives, until it closes. Returns at once (a task runs it).
    pub fn attach(&self, from: String, channel: DataChannel) {
        let chat = self.clone();
        tokio::spawn(async move { chat.serve(from, channel).await });
    }

    async fn serve(self, from: String, channel: DataChannel) {
        let mut limit = RateLimit::default();
        loop {
            let event = channel.next_event().await;
            tracing::debug!("chat: from {from}: {event:?}");
            match event {
                DataEvent::Open => {
                    if let Some(text) = &self.say {
                        if let Err(e) = channel.send_text(text).await {
                            tracing::warn!("chat: cannot say to {from}: {e}");
                        }
                    }
                }
                DataEvent::Text(text) => {
                    let taken = text.len() <= MAX_MESSAGE_BYTES && limit.allow(Instant::now());
                    let message = ChatMessage {
                        from: from.clone(),
                        text,
                    };
                    if !taken || self.tx.try_send(message).is_err() {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("chat: a message from {from} dropped");
                    }
                }
                DataEvent::Binary(_) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                DataEvent::Closed => break,
            }
        }
    }
}

/// How long a connection waits for the other side to open its data channel.
pub(crate) const DATA_CHANNEL_WAIT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_taken_then_the_sustained_rate() {
        let mut limit = RateLimit::default();
        let t0 = Instant::now();
        let taken = (0..100).filter(|_| limit.allow(t0)).count();
        assert_eq!(taken, MESSAGE_BURST as usize);
        // One second later, MESSAGES_PER_SECOND more.
        let t1 = t0 + Duration::from_secs(1);
        let taken = (0..100).filter(|_| limit.allow(t1)).count();
        assert_eq!(taken, MESSAGES_PER_SECOND as usize);
        // A long pause refills only up to the burst.
        let t2 = t1 + Duration::from_secs(600);
        let taken = (0..100).filter(|_| limit.allow(t2)).count();
        assert_eq!(taken, MESSAGE_BURST as usize);
    }

    #[test]
    fn a_message_too_long_to_say_is_refused() {
        assert!(check_message("hello").is_ok());
        let long = "x".repeat(MAX_MESSAGE_BYTES + 1);
        assert_eq!(
            check_message(&long),
            Err(ChatError::TooLong(MAX_MESSAGE_BYTES + 1))
        );
        assert!(Chat::new(Some(long)).is_err());
    }
}
