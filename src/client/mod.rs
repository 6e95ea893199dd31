//! The client side: sessions we open on other servers (WHIP publishing, WHEP viewing) and
//! our participant in a WebSocket call room or a Janus VideoRoom.

mod datachannel;
mod echo;
mod janus;
mod room;
mod session;

pub use datachannel::{
    check_message, Chat, ChatError, ChatMessage, RateLimit, CHAT_LABEL, MAX_MESSAGE_BYTES,
    MESSAGES_PER_SECOND, MESSAGE_BURST,
};
pub use echo::{echo_encoders, echo_encoders_of};
pub use janus::{
    join_janus, join_janus_saying, JanusEvent, JanusOptions, JanusParticipant, OwnFeeds,
};
pub use room::{join_room, join_room_saying, join_room_with, CallBot, CallEvent};
pub use session::{
    publish_whip, publish_whip_with, view_whep, view_whep_with, RemoteSession, SessionError,
};
