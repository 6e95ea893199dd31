//! A call-room text message: parsed as a `ClientMessage`, relayed (or answered with the
//! error reply the relay sends), and the relayed message serialized and read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usermedia_signaling::fuzzing::room_message;
use usermedia_signaling::{ClientMessage, ServerMessage};

fuzz_target!(|data: &[u8]| {
    let Some((&joined, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match room_message(text, joined & 1 == 1) {
        Ok(Some((_to, relayed))) => {
            let json = relayed.to_json();
            let back: ServerMessage = serde_json::from_str(&json).expect("our JSON reads back");
            assert_eq!(back, relayed);
        }
        Ok(None) => {}
        Err(reply) => {
            let back: ServerMessage = serde_json::from_str(&reply).expect("the reply is JSON");
            assert!(matches!(back, ServerMessage::Error { .. }));
        }
    }
    if let Ok(message) = ClientMessage::parse(text) {
        assert_eq!(ClientMessage::parse(&message.to_json()).ok(), Some(message));
    }
});
