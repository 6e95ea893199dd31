//! What a remote offer may ask of us, enforced before it is applied (pure): at most
//! [`MAX_SECTIONS_PER_KIND`] audio and video m-sections, directions restricted to our role
//! (a viewer's offer is answered send-only, a publisher's receive-only, whatever the offer
//! says), and at most [`MAX_REMOTE_CANDIDATES`] remote candidates per session.

use super::PeerError;

/// Audio m-sections, and video m-sections, an offer may have at most.
pub const MAX_SECTIONS_PER_KIND: usize = 4;
/// Remote ICE candidates a session takes at most (in the offer and trickled together);
/// the rest are ignored and logged, so no one can make us send connectivity checks to a
/// long list of addresses.
pub const MAX_REMOTE_CANDIDATES: usize = 32;

/// What we do with the media of an offer we answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerRole {
    /// We only send (a WHEP viewer's offer): our answer is `sendonly` or `inactive`.
    Send,
    /// We only receive (a WHIP publisher's offer): our answer is `recvonly` or `inactive`.
    Receive,
}

const DIRECTIONS: [&str; 4] = ["sendrecv", "sendonly", "recvonly", "inactive"];

/// The lines of an SDP as webrtc-rs reads them: `\r`s around a line do not count (its
/// lexer skips them before a line's type), so neither may they hide a line from us.
fn sdp_lines(sdp: &str) -> impl Iterator<Item = &str> {
    sdp.lines().map(|l| l.trim_matches('\r'))
}

/// An attribute line's name and value as webrtc-rs reads them: what follows `a=`, trimmed,
/// split at the first `:`. (Found by the `sdp_answer` fuzz target: `a=sendrecv:x` or
/// `a=sendrecv ` is a direction to webrtc-rs, and slipped past an exact match.)
fn attribute(line: &str) -> Option<(&str, Option<&str>)> {
    let attr = line.strip_prefix("a=")?.trim();
    Some(match attr.split_once(':') {
        Some((key, value)) => (key, Some(value)),
        None => (attr, None),
    })
}

fn direction_of(line: &str) -> Option<&'static str> {
    let (key, _) = attribute(line)?;
    DIRECTIONS.iter().copied().find(|d| *d == key)
}

/// Whether an ICE candidate (an `a=candidate` value, with or without its `candidate:`)
/// names a component from 1 to 256 (RFC 8445 §5.1.2.1). webrtc-rs computes a priority of
/// `256 - component`, which overflows beyond 256 (found by the `trickle` fuzz target: a
/// panic where overflow is checked, a wrong priority elsewhere); one it cannot parse it
/// refuses itself.
pub(crate) fn valid_component(candidate: &str) -> bool {
    let value = candidate.trim();
    let value = value.strip_prefix("candidate:").unwrap_or(value);
    match value.split_whitespace().nth(1).map(str::parse::<u16>) {
        Some(Ok(component)) => (1..=256).contains(&component),
        _ => true,
    }
}

/// The direction the remote side may have, given its offered one and our role.
fn restricted(offered: &str, role: AnswerRole) -> &'static str {
    match (role, offered) {
        // The remote may only receive.
        (AnswerRole::Send, "sendrecv" | "recvonly") => "recvonly",
        // The remote may only send.
        (AnswerRole::Receive, "sendrecv" | "sendonly") => "sendonly",
        _ => "inactive",
    }
}

/// The direction a transceiver may keep in our answer, given its own and our role: what
/// the role forbids is taken away (a receiving `Send` transceiver only sends or is
/// inactive). webrtc-rs gives a section it has no transceiver for a *receiving* one unless
/// the offer asks only to receive (found by the `sdp_answer` fuzz target: a viewer's
/// `sendonly` or `inactive` section was answered `recvonly`), so the directions of the
/// offer alone do not keep the answer to the role. A transceiver whose section the offer
/// marks inactive (`mid` among [`inactive_mids`]) is inactive, as RFC 3264 §6.1 answers it.
pub(crate) fn role_direction(
    role: AnswerRole,
    current: rtc::rtp_transceiver::RTCRtpTransceiverDirection,
    mid: Option<&str>,
    inactive: &[String],
) -> rtc::rtp_transceiver::RTCRtpTransceiverDirection {
    use rtc::rtp_transceiver::RTCRtpTransceiverDirection as D;
    if mid.is_some_and(|m| inactive.iter().any(|i| i == m)) {
        return D::Inactive;
    }
    match (role, current) {
        (AnswerRole::Send, D::Sendrecv) => D::Sendonly,
        (AnswerRole::Send, D::Recvonly) => D::Inactive,
        (AnswerRole::Receive, D::Sendrecv) => D::Recvonly,
        (AnswerRole::Receive, D::Sendonly) => D::Inactive,
        (_, other) => other,
    }
}

/// The mids of the audio and video sections `offer` marks `inactive` (after
/// [`restrict_directions`], every such section says its direction): their transceivers are
/// made inactive too, as RFC 3264 §6.1 answers an inactive stream.
pub(crate) fn inactive_mids(offer: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut media, mut mid, mut inactive) = (false, None, false);
    let mut close = |media: bool, mid: Option<&str>, inactive: bool| {
        if let (true, Some(mid), true) = (media, mid, inactive) {
            out.push(mid.to_owned());
        }
    };
    for line in sdp_lines(offer) {
        if let Some(m) = line.strip_prefix("m=") {
            close(media, mid, inactive);
            media = m.starts_with("audio") || m.starts_with("video");
            (mid, inactive) = (None, false);
        } else if let Some(("mid", value)) = attribute(line) {
            mid = value.map(str::trim);
        } else if direction_of(line) == Some("inactive") {
            inactive = true;
        }
    }
    close(media, mid, inactive);
    out
}

/// Checks that an answer's audio and video sections keep to `role` (the last guard before
/// it is applied): a `Send` answer never says `recvonly`/`sendrecv`, a `Receive` answer
/// never `sendonly`/`sendrecv`. The error names the section.
pub fn check_answer_role(answer: &str, role: AnswerRole) -> Result<(), PeerError> {
    let forbidden: [&str; 2] = match role {
        AnswerRole::Send => ["recvonly", "sendrecv"],
        AnswerRole::Receive => ["sendonly", "sendrecv"],
    };
    let mut section: Option<&str> = None;
    for line in sdp_lines(answer) {
        if let Some(m) = line.strip_prefix("m=") {
            section = (m.starts_with("audio") || m.starts_with("video")).then_some(m);
            continue;
        }
        if let (Some(m), Some(dir)) = (section, direction_of(line)) {
            if forbidden.contains(&dir) {
                return Err(PeerError::Sdp(format!(
                    "our answer would be {dir} in the section \"m={m}\", which a {role:?} \
                     session may not be"
                )));
            }
        }
    }
    Ok(())
}

/// Refuses an offer with more than [`MAX_SECTIONS_PER_KIND`] audio or video m-sections.
pub fn check_sections(sdp: &str) -> Result<(), PeerError> {
    for kind in ["audio", "video"] {
        let n = sdp_lines(sdp)
            .filter(|l| l.strip_prefix("m=").is_some_and(|m| m.starts_with(kind)))
            .count();
        if n > MAX_SECTIONS_PER_KIND {
            return Err(PeerError::Sdp(format!(
                "the offer has {n} {kind} m-sections; at most {MAX_SECTIONS_PER_KIND} of \
                 each kind are accepted"
            )));
        }
    }
    Ok(())
}

/// The offer with every audio and video m-section's direction restricted to `role`
/// (explicitly, in each section: a session-level direction is folded in), so the answer
/// webrtc-rs makes to it never receives (`Send`) or never sends (`Receive`).
pub fn restrict_directions(sdp: &str, role: AnswerRole) -> String {
    let lines: Vec<&str> = sdp_lines(sdp).collect();
    let first_m = lines.iter().position(|l| l.starts_with("m="));
    let session_dir = lines[..first_m.unwrap_or(lines.len())]
        .iter()
        .find_map(|l| direction_of(l))
        .unwrap_or("sendrecv");
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 4);
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if !line.starts_with("m=") {
            // Session level (before the first section): its direction is folded in.
            if direction_of(line).is_none() {
                out.push(line.to_owned());
            }
            i += 1;
            continue;
        }
        let end = lines[i + 1..]
            .iter()
            .position(|l| l.starts_with("m="))
            .map_or(lines.len(), |n| i + 1 + n);
        let section = &lines[i..end];
        let media = line.starts_with("m=audio") || line.starts_with("m=video");
        if media {
            let offered = section
                .iter()
                .find_map(|l| direction_of(l))
                .unwrap_or(session_dir);
            let wanted = format!("a={}", restricted(offered, role));
            out.push(line.to_owned());
            out.extend(
                section[1..]
                    .iter()
                    .filter(|l| direction_of(l).is_none())
                    .map(|l| (*l).to_owned()),
            );
            out.push(wanted);
        } else {
            out.extend(section.iter().map(|l| (*l).to_owned()));
        }
        i = end;
    }
    let mut sdp = out.join("\r\n");
    sdp.push_str("\r\n");
    sdp
}

/// The description with at most `room` of its `a=candidate` lines (the first ones,
/// written `a=candidate:VALUE`), and how many were left out; a candidate with a component
/// outside 1 to 256 ([`valid_component`]) is left out too, uncounted.
pub(crate) fn cap_candidates(sdp: &str, room: usize) -> (String, usize) {
    let (mut kept, mut dropped) = (0, 0);
    let mut out = String::with_capacity(sdp.len());
    for line in sdp_lines(sdp) {
        if let Some(("candidate", value)) = attribute(line) {
            let value = value.unwrap_or_default();
            if !valid_component(value) {
                continue;
            }
            if kept == room {
                dropped += 1;
                continue;
            }
            kept += 1;
            out.push_str("a=candidate:");
            out.push_str(value);
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    (out, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1 2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendrecv\r\na=rtpmap:96 VP8/90000\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=rtpmap:96 VP8/90000\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:3\r\n";

    fn directions(sdp: &str) -> Vec<&str> {
        sdp.lines().filter_map(direction_of).collect()
    }

    #[test]
    fn inactive_sections_and_the_answers_role_are_read_as_webrtc_rs_reads_them() {
        let offer = restrict_directions(OFFER, AnswerRole::Send);
        assert_eq!(inactive_mids(&offer), ["1"]);
        assert_eq!(
            inactive_mids(&restrict_directions(OFFER, AnswerRole::Receive)),
            [] as [&str; 0]
        );
        let answer = "v=0\r\nm=video 9 X 96\r\na=mid:0\r\na=sendonly\r\n\
                      m=application 9 X webrtc-datachannel\r\na=sendrecv\r\n";
        assert!(check_answer_role(answer, AnswerRole::Send).is_ok());
        let refused = check_answer_role(answer, AnswerRole::Receive).unwrap_err();
        assert!(refused.to_string().contains("sendonly"), "{refused}");
        let receiving = answer.replace("a=sendonly", "a=recvonly ");
        assert!(check_answer_role(&receiving, AnswerRole::Send).is_err());
        use rtc::rtp_transceiver::RTCRtpTransceiverDirection as D;
        assert_eq!(
            role_direction(AnswerRole::Send, D::Recvonly, None, &[]),
            D::Inactive
        );
        assert_eq!(
            role_direction(AnswerRole::Send, D::Sendrecv, None, &[]),
            D::Sendonly
        );
        assert_eq!(
            role_direction(AnswerRole::Receive, D::Sendonly, None, &[]),
            D::Inactive
        );
        assert_eq!(
            role_direction(AnswerRole::Receive, D::Recvonly, None, &[]),
            D::Recvonly
        );
    }

    #[test]
    fn a_viewer_offer_may_only_receive_and_a_publisher_offer_only_send() {
        // Section 2 has no direction: sendrecv by default.
        let viewer = restrict_directions(OFFER, AnswerRole::Send);
        assert_eq!(directions(&viewer), ["recvonly", "inactive", "recvonly"]);
        let publisher = restrict_directions(OFFER, AnswerRole::Receive);
        assert_eq!(directions(&publisher), ["sendonly", "sendonly", "sendonly"]);
        // Everything else is kept, in order.
        for line in OFFER.lines().filter(|l| direction_of(l).is_none()) {
            assert!(viewer.contains(line), "{line}");
        }
        assert!(
            viewer.ends_with("a=mid:3\r\n"),
            "the data section untouched"
        );
        // A session-level direction is folded into the sections.
        let session = OFFER.replace("t=0 0\r\n", "t=0 0\r\na=recvonly\r\n");
        let publisher = restrict_directions(&session, AnswerRole::Receive);
        assert_eq!(directions(&publisher), ["sendonly", "sendonly", "inactive"]);
    }

    #[test]
    fn at_most_four_sections_of_each_kind() {
        assert!(check_sections(OFFER).is_ok());
        let video = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n";
        let four = format!("{OFFER}{video}{video}");
        assert!(check_sections(&four).is_ok());
        let five = format!("{four}{video}");
        let e = check_sections(&five).unwrap_err().to_string();
        assert!(
            e.contains("5 video m-sections") && e.contains("at most 4"),
            "{e}"
        );
    }

    /// Found by the `sdp_answer` fuzz target (`fuzz/regressions/sdp_answer/`): webrtc-rs
    /// took `a=sendrecv:AB:AB` for a direction, so a viewer's offer made us receive.
    #[test]
    fn directions_are_found_as_webrtc_rs_reads_them() {
        for disguised in [
            "a=sendrecv:AB:AB",
            "a=sendrecv ",
            "a= sendrecv",
            "\ra=sendrecv",
            "a=sendrecv\r\r",
        ] {
            let offer = OFFER.replace("a=sendonly\r\n", &format!("{disguised}\r\n"));
            let viewer = restrict_directions(&offer, AnswerRole::Send);
            assert_eq!(
                directions(&viewer),
                ["recvonly", "recvonly", "recvonly"],
                "{disguised:?}"
            );
            assert!(!viewer.contains("sendrecv"), "{disguised:?}: {viewer}");
        }
        let hidden = format!("{OFFER}{}", "\rm=audio 9 RTP/AVP 0\r\n".repeat(4));
        assert!(
            check_sections(&hidden).is_err(),
            "\\r before m= hides nothing"
        );
    }

    /// Found by the `trickle` fuzz target (`fuzz/regressions/trickle/`).
    #[test]
    fn candidates_of_a_component_over_256_are_left_out() {
        assert!(valid_component(
            "candidate:1 1 udp 1 127.0.0.1 5000 typ host"
        ));
        assert!(valid_component("1 256 udp 1 127.0.0.1 5000 typ host"));
        assert!(!valid_component(
            "candidate:6 431 udp 0 127.0.0.1 5002 typ host"
        ));
        assert!(!valid_component(
            "candidate:6 0 udp 0 127.0.0.1 5002 typ host"
        ));
        let sdp = "a=candidate:6 431 udp 0 127.0.0.1 5002 typ host\r\n\
                   a= candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n";
        let (kept, dropped) = cap_candidates(sdp, MAX_REMOTE_CANDIDATES);
        assert_eq!(kept, "a=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n");
        assert_eq!(dropped, 0);
    }

    #[test]
    fn candidates_are_capped() {
        let sdp: String = (0..40)
            .map(|n| {
                format!(
                    "a=candidate:{n} 1 udp 1 127.0.0.1 {} typ host\r\n",
                    1000 + n
                )
            })
            .collect();
        let (kept, dropped) = cap_candidates(&sdp, MAX_REMOTE_CANDIDATES);
        assert_eq!(dropped, 8);
        assert_eq!(kept.lines().count(), 32);
        assert!(kept.contains(" 1031 ") && !kept.contains(" 1032 "));
        assert_eq!(cap_candidates(&sdp, 0).1, 40);
    }
}
