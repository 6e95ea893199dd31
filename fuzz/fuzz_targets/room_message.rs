//! A call-room text message: parsed as a `ClientMessage`, relayed (or answered with the
//! error reply the relay sends), and the relayed message serialized and read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use usermedia_signaling::fuzzing::room_message;
use usermedia_signaling::{ClientMessage, ServerMessage};

/// JSON values equal but for the last digits of numbers: serde_json's default float
/// parsing is not exact, so a huge number read back may differ in its last bit (the
/// first long run found `3.3333333333333338e78` read back as `…334e78`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || ((x - y) / x).abs() < 1e-12,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, x), (ky, y))| kx == ky && same(x, y))
        }
        _ => a == b,
    }
}

fn json(message: &impl serde::Serialize) -> Value {
    serde_json::to_value(message).expect("a message serializes")
}

fuzz_target!(|data: &[u8]| {
    let Some((&joined, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match room_message(text, joined & 1 == 1) {
        Ok(Some((_to, relayed))) => {
            let back: ServerMessage =
                serde_json::from_str(&relayed.to_json()).expect("our JSON reads back");
            assert!(same(&json(&back), &json(&relayed)), "{back:?} {relayed:?}");
        }
        Ok(None) => {}
        Err(reply) => {
            let back: ServerMessage = serde_json::from_str(&reply).expect("the reply is JSON");
            assert!(matches!(back, ServerMessage::Error { .. }));
        }
    }
    if let Ok(message) = ClientMessage::parse(text) {
        let back = ClientMessage::parse(&message.to_json()).expect("our JSON parses");
        assert!(same(&json(&back), &json(&message)), "{back:?} {message:?}");
    }
});
