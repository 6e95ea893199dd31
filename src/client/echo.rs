//! Echoing a participant: the encoders that send a received track back out as it came —
//! its encoded units forwarded (no decode, no re-encode; the receivers' keyframe requests
//! passed on to the sender), as the WHIP relay does, with a transcode of the decoded
//! track only for a peer that negotiates another codec.

use crate::encode::pipeline::AUDIO_BITRATE;
use crate::encode::pipeline::{BitrateLadder, CodecConfig, EncodedTrack, TrackEncoders};
use crate::encode::EncodeError;
use crate::peer::RemoteTrack;

/// The top bitrate of an echo's transcode (a peer of another codec), bits/s.
const ECHO_TRANSCODE_BITRATE: u32 = 1_000_000;

/// Encoders sending `remote` back out: its units forwarded to peers of its codec.
pub fn echo_encoders(remote: &RemoteTrack) -> Result<TrackEncoders, EncodeError> {
    if remote.ended() {
        return Err(EncodeError::Mismatch(format!(
            "the {} track to echo has ended",
            remote.kind()
        )));
    }
    let codec = match remote.video_codec() {
        Some(c) => CodecConfig::video(c, ECHO_TRANSCODE_BITRATE),
        None => CodecConfig::Opus {
            bitrate: AUDIO_BITRATE,
        },
    };
    let (passthrough, feeder) = EncodedTrack::passthrough(codec, remote.keyframe_requester());
    let ladder = BitrateLadder::from(ECHO_TRANSCODE_BITRATE);
    let encoders = TrackEncoders::with_passthrough(remote.track(), ladder, None, passthrough)?;
    remote.forward_encoded(move |unit| feeder.push(unit));
    Ok(encoders)
}

/// [`echo_encoders`] for each of `tracks` (a participant's, `who` naming it in the log);
/// a track that cannot be echoed is left out, with a warning.
pub fn echo_encoders_of(tracks: &[RemoteTrack], who: &str) -> Vec<TrackEncoders> {
    tracks
        .iter()
        .filter_map(|t| match echo_encoders(t) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!("cannot echo {who}'s {}: {e}", t.kind());
                None
            }
        })
        .collect()
}
