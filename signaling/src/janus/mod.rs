//! A Janus VideoRoom client over Janus's HTTP long-poll API: the core protocol's types
//! (`protocol`), the transaction matcher, the session with its long poll and keepalive,
//! the VideoRoom plugin's requests and events, and a participant's policy as a pure state
//! machine. It knows the Janus API and SDP text, nothing of capture or codecs: the main
//! package's `client::janus` puts peers behind it.

mod matcher;
mod participant;
mod protocol;
mod session;
mod videoroom;

pub use matcher::{Matcher, Route, TooManyPending, MAX_PENDING};
pub use participant::{Action, Notice, Participant, MAX_FEEDS, RETRY_AFTER, SUBSCRIBE_ATTEMPTS};
pub use protocol::{
    ErrorBody, Incoming, JanusError, Jsep, PluginData, MAX_REASON_CHARS, NO_SUCH_ROOM, ROOM_EXISTS,
};
pub use session::{
    HandleEvent, JanusEvents, JanusSession, PluginReply, KEEPALIVE_INTERVAL, MAX_EVENTS_PER_POLL,
    MAX_REPLY_BYTES, MAX_UNREAD_EVENTS, REQUEST_TIMEOUT,
};
pub use videoroom::{
    Participant as RoomParticipant, Publisher, RoomEvent, RoomSettings, VideoRoomHandle,
    MAX_PUBLISHERS, PLUGIN,
};
