//! The encoders a track is sent with: one per codec its peers negotiate, started by the
//! first peer of that codec (used by [`super::Publisher`], WHIP publishing and call rooms).

use crate::encode::pipeline::{BitrateLadder, TrackEncoders};
use crate::encode::{EncodeError, VideoCodec};
use crate::track::{MediaStreamTrack, TrackState};

/// The encoders usermedia uses for a track it sends: video in H.264 or VP8, whichever each
/// peer negotiates (H.264 preferred when we offer), at the tiers of `video_bitrate` (a
/// bitrate: the ladder derived from it; or a [`BitrateLadder`]); audio in Opus at 64
/// kbit/s. Each encoder starts when the first peer needs it.
pub fn encode_track(
    track: &MediaStreamTrack,
    video_bitrate: impl Into<BitrateLadder>,
) -> Result<TrackEncoders, EncodeError> {
    encode_track_with(track, video_bitrate, None)
}

/// [`encode_track`] with the video codecs limited: `Some(codec)` sends only that codec,
/// `None` either.
pub fn encode_track_with(
    track: &MediaStreamTrack,
    video_bitrate: impl Into<BitrateLadder>,
    video_codec: Option<VideoCodec>,
) -> Result<TrackEncoders, EncodeError> {
    if track.ready_state() == TrackState::Ended {
        return Err(EncodeError::Mismatch(format!(
            "the {} track {:?} has ended",
            track.kind(),
            track.label()
        )));
    }
    Ok(TrackEncoders::new(track, video_bitrate, video_codec))
}
