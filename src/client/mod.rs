//! The client side: sessions we open on other servers (WHIP publishing, WHEP viewing) and
//! our participant in a WebSocket call room or a Janus VideoRoom.

mod echo;
mod janus;
mod room;
mod session;

pub use echo::echo_encoders;
pub use janus::{join_janus, JanusEvent, JanusOptions, JanusParticipant};
pub use room::{join_room, join_room_with, CallBot, CallEvent};
pub use session::{
    publish_whip, publish_whip_with, view_whep, view_whep_with, RemoteSession, SessionError,
};
