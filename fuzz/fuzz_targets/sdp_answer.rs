//! A remote offer through our answer path: the server's structural SDP check, then (as
//! `Peer::answer_as` does) the m-section limit, the directions restricted to our role,
//! the candidate cap, the codecs per section, and the webrtc-rs core's
//! `set_remote_description` and `create_answer`. The first byte picks the role.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usermedia::fuzzing::answer_offer;
use usermedia::peer::AnswerRole;
use usermedia_signaling::SessionDescription;

fuzz_target!(|data: &[u8]| {
    let Some((&role, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(sdp) = SessionDescription::parse(text) else {
        return;
    };
    let role = if role & 1 == 0 {
        AnswerRole::Send
    } else {
        AnswerRole::Receive
    };
    if let Ok(answer) = answer_offer(sdp.as_str(), role) {
        // Whatever the offer asked, the answer's audio and video sections keep to the role
        // (a data channel's section is sendrecv).
        let forbidden = match role {
            AnswerRole::Send => ["a=recvonly", "a=sendrecv"],
            AnswerRole::Receive => ["a=sendonly", "a=sendrecv"],
        };
        let mut media = false;
        for line in answer.lines().map(|l| l.trim_end_matches('\r')) {
            if let Some(m) = line.strip_prefix("m=") {
                media = m.starts_with("audio") || m.starts_with("video");
            }
            assert!(
                !(media && forbidden.contains(&line)),
                "{line} in the answer:\n{answer}"
            );
        }
    }
});
