//! Entry points for the fuzz targets (`fuzz/`, cargo-fuzz): each takes outside input
//! through the code the library runs it through, reaching what is not public as thin
//! wrappers. Hidden from the docs; not an API.

use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodecParameters, RtpCodecKind};
use rtc::shared::marshal::Unmarshal;

use crate::encode::{EncodeError, PictureLimit, VideoCodec};
use crate::peer::replay::replay_video;
use crate::peer::{
    cap_candidates, check_answer_role, check_sections, fragment_candidates, fragment_of,
    ice_credentials, inactive_mids, opus_codec, restrict_directions, role_direction,
    video_codec_parameters, video_codecs, video_codecs_of_mid, with_credentials, AnswerRole,
    MAX_REMOTE_CANDIDATES, OPUS_PAYLOAD_TYPE,
};

pub use crate::peer::replay::Replayed;

/// The picture limit the RTP targets decode within: smaller than the default so a
/// mutated SPS or keyframe header does not spend the run decoding 4K pictures.
pub const FUZZ_PICTURE_LIMIT: PictureLimit = PictureLimit {
    width: 640,
    height: 480,
};

/// The packets of `data` in the format of `tests/fixtures/rtp/*.rtp` (each a big-endian
/// `u16` length and the marshalled RTP packet); a packet that does not unmarshal is
/// skipped, as the RTP layer drops it.
pub fn rtp_packets(mut data: &[u8]) -> Vec<rtc::rtp::Packet> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
        data = &data[2..];
        let take = len.min(data.len());
        let mut packet = Bytes::copy_from_slice(&data[..take]);
        data = &data[take..];
        if let Ok(p) = rtc::rtp::Packet::unmarshal(&mut packet) {
            out.push(p);
        }
        packet.advance(packet.remaining());
    }
    out
}

/// RTP packets of a remote `codec` track (framed as [`rtp_packets`] reads them) through
/// depacketizing, the unit maker, the size gate of [`FUZZ_PICTURE_LIMIT`] and decoding.
pub fn rtp_video(codec: VideoCodec, data: &[u8]) -> Result<Replayed, EncodeError> {
    replay_video(
        codec,
        rtp_packets(data),
        Duration::from_millis(5),
        FUZZ_PICTURE_LIMIT,
    )
}

/// A sans-I/O webrtc-rs peer connection (the core `Peer`'s async one drives) with our
/// codecs registered.
fn sans_io_peer() -> Result<RTCPeerConnection, String> {
    let mut media = MediaEngine::default();
    for codec in VideoCodec::ALL {
        media
            .register_codec(video_codec_parameters(codec), RtpCodecKind::Video)
            .map_err(|e| e.to_string())?;
    }
    let opus = RTCRtpCodecParameters {
        rtp_codec: opus_codec(),
        payload_type: OPUS_PAYLOAD_TYPE,
    };
    media
        .register_codec(opus, RtpCodecKind::Audio)
        .map_err(|e| e.to_string())?;
    RTCPeerConnectionBuilder::new()
        .with_media_engine(media)
        .build(Instant::now())
        .map_err(|e| e.to_string())
}

/// A remote offer through our answer path (`Peer::answer_as`): the m-section limit, the
/// directions restricted to `role`, the remote candidates capped, each section's video
/// codecs read, then set as the remote description of a webrtc-rs core and answered.
/// The error says where it was refused.
pub fn answer_offer(sdp: &str, role: AnswerRole) -> Result<String, String> {
    check_sections(sdp).map_err(|e| e.to_string())?;
    let offer = restrict_directions(sdp, role);
    let (offer, _dropped) = cap_candidates(&offer, MAX_REMOTE_CANDIDATES);
    let _ = video_codecs(&offer);
    for mid in offer.lines().filter_map(|l| l.strip_prefix("a=mid:")) {
        let _ = video_codecs_of_mid(&offer, mid.trim_end_matches('\r'));
    }
    let inactive = inactive_mids(&offer);
    let description = RTCSessionDescription::offer(offer).map_err(|e| e.to_string())?;
    let mut pc = sans_io_peer()?;
    pc.set_remote_description(Instant::now(), description)
        .map_err(|e| format!("set_remote_description: {e}"))?;
    let ids: Vec<_> = pc.get_transceivers().collect();
    for id in ids {
        if let Some(mut transceiver) = pc.rtp_transceiver(id) {
            let mid = transceiver.mid().clone();
            let kept = role_direction(role, transceiver.direction(), mid.as_deref(), &inactive);
            if kept != transceiver.direction() {
                transceiver.set_direction(kept);
            }
        }
    }
    let answer = pc.create_answer(None).map_err(|e| e.to_string())?;
    check_answer_role(&answer.sdp, role).map_err(|e| e.to_string())?;
    Ok(answer.sdp)
}

/// The offer a trickle-ICE fragment is applied to: one video section (ours answered it).
pub const TRICKLE_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    a=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\n\
    a=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
    a=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\n\
    a=setup:actpass\r\na=sendonly\r\na=rtcp-mux\r\na=rtpmap:102 H264/90000\r\n\
    a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

/// A trickle-ICE fragment (`PATCH` body) as a session takes it: its credentials (an ICE
/// restart re-offers the negotiated description with them), the fragment we would answer
/// with, and its candidates (at most [`MAX_REMOTE_CANDIDATES`]) added to a webrtc-rs core
/// that answered [`TRICKLE_OFFER`]. Returns how many candidates were added.
pub fn trickle(fragment: &str) -> Result<usize, String> {
    let _ = fragment_of(fragment);
    let mut pc = sans_io_peer()?;
    let offer =
        RTCSessionDescription::offer(TRICKLE_OFFER.to_owned()).map_err(|e| e.to_string())?;
    pc.set_remote_description(Instant::now(), offer)
        .map_err(|e| e.to_string())?;
    if let Some((ufrag, pwd)) = ice_credentials(fragment) {
        let restarted = with_credentials(TRICKLE_OFFER, &ufrag, &pwd);
        if let Ok(offer) = RTCSessionDescription::offer(restarted) {
            let _ = pc.set_remote_description(Instant::now(), offer);
        }
    }
    let mut added = 0;
    for init in fragment_candidates(fragment)
        .into_iter()
        .take(MAX_REMOTE_CANDIDATES)
    {
        if pc.add_remote_candidate(init).is_ok() {
            added += 1;
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(direction: &str) -> String {
        TRICKLE_OFFER.replace("a=sendonly", direction)
    }

    #[test]
    fn an_offer_is_answered_within_the_role() {
        let answer = answer_offer(&offer("a=sendrecv"), AnswerRole::Receive).unwrap();
        assert!(answer.contains("a=recvonly"), "{answer}");
        let answer = answer_offer(&offer("a=sendrecv"), AnswerRole::Send).unwrap();
        assert!(
            answer.contains("a=sendonly") || answer.contains("a=inactive"),
            "{answer}"
        );
        assert!(!answer.contains("a=recvonly"), "{answer}");
        // A direction with a value is a direction to webrtc-rs (found by fuzzing).
        let answer = answer_offer(&offer("a=sendrecv:AB:AB"), AnswerRole::Send).unwrap();
        assert!(!answer.contains("a=recvonly"), "{answer}");
        // A section webrtc-rs has no transceiver for is given a receiving one unless the
        // offer only receives (found by fuzzing: a viewer's sendonly or inactive section
        // was answered recvonly); a publisher's recvonly section, likewise, sendonly.
        for (dir, role) in [
            ("a=sendonly", AnswerRole::Send),
            ("a=inactive", AnswerRole::Send),
            ("a=recvonly", AnswerRole::Receive),
            ("a=inactive", AnswerRole::Receive),
        ] {
            let answer = answer_offer(&offer(dir), role).unwrap();
            assert!(answer.contains("a=inactive"), "{dir} {role:?}: {answer}");
        }
        let too_many = format!("{}{}", TRICKLE_OFFER, "m=audio 9 RTP/AVP 0\r\n".repeat(5));
        let refused = answer_offer(&too_many, AnswerRole::Send).unwrap_err();
        assert!(refused.contains("5 audio m-sections"), "{refused}");
        assert!(answer_offer("v=0\r\nm=video\r\n", AnswerRole::Send).is_err());
    }

    #[test]
    fn trickled_candidates_are_added_up_to_the_cap() {
        let line = "a=candidate:1 1 UDP 2130706431 127.0.0.1 5000 typ host\r\n";
        let fragment = format!("a=ice-ufrag:abcd\r\na=mid:0\r\n{}", line.repeat(40));
        assert_eq!(trickle(&fragment), Ok(MAX_REMOTE_CANDIDATES));
        assert_eq!(trickle("a=candidate:garbage\r\n"), Ok(0));
        // A component over 256 overflowed webrtc-rs's priority (found by fuzzing).
        let fragment = "a=candidate:6 431 udp 0 127.0.0.1 5002 typ host\r\n";
        assert_eq!(trickle(fragment), Ok(0));
    }

    #[test]
    fn rtp_is_read_in_the_fixture_framing() {
        let file = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rtp/vp8.rtp"),
        )
        .unwrap();
        let packets = rtp_packets(&file);
        assert!(packets.len() > 60, "{}", packets.len());
        assert!(rtp_packets(&[0, 200, 1, 2]).is_empty(), "a short packet");
        let replayed = rtp_video(VideoCodec::Vp8, &file).unwrap();
        assert!(replayed.frames_decoded > 50, "{replayed:?}");
    }
}
