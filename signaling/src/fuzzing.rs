//! Entry points for the fuzz targets (`fuzz/`, cargo-fuzz): the server's handling of
//! outside input that is not public, as thin wrappers. Hidden from the docs; not an API.

use crate::room_protocol::{ClientMessage, ServerMessage};

/// What the call-room relay makes of a text message from a participant (`joined` or
/// not): the target and the message relayed to it, or the error reply the sender gets
/// (`None` for a join or leave, which are not relayed).
pub fn room_message(text: &str, joined: bool) -> Result<Option<(String, ServerMessage)>, String> {
    match ClientMessage::parse(text) {
        Ok(message) => Ok(message.relay("fuzz")),
        Err(e) => Err(crate::rooms::invalid(&e, joined)),
    }
}

/// Whether a `PATCH` body is an ICE restart's fragment as the server checks it (it has
/// `a=ice-ufrag:` and `a=ice-pwd:`), after the UTF-8 check.
pub fn restart_fragment(body: &[u8]) -> Option<bool> {
    let fragment = std::str::from_utf8(body).ok()?;
    Some(
        crate::http::has_attribute(fragment, "a=ice-ufrag:")
            && crate::http::has_attribute(fragment, "a=ice-pwd:"),
    )
}
