//! A trickle-ICE `PATCH` body (`application/trickle-ice-sdpfrag`): the server's checks,
//! then the session's handling — the restart credentials, our fragment, and the
//! candidates added to a webrtc-rs core (at most the session's cap).
#![no_main]

use libfuzzer_sys::fuzz_target;
use usermedia::fuzzing::trickle;
use usermedia::peer::MAX_REMOTE_CANDIDATES;
use usermedia_signaling::fuzzing::restart_fragment;

fuzz_target!(|data: &[u8]| {
    if restart_fragment(data).is_none() {
        return;
    }
    let Ok(fragment) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(added) = trickle(fragment) {
        assert!(added <= MAX_REMOTE_CANDIDATES);
    }
});
