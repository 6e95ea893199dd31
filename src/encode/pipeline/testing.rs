//! What the pipeline's tests share: cameras and hand-made units.

use std::time::Duration;

use bytes::Bytes;

use super::TierPolicy;
use super::TrackEncoders;
use crate::devices::MediaDevices;
use crate::encode::EncodedUnit;
use crate::track::MediaStreamTrack;

pub(super) fn camera(devices: &MediaDevices, json: &str) -> MediaStreamTrack {
    devices
        .get_user_media_json(json)
        .unwrap()
        .get_video_tracks()
        .remove(0)
}

fn fast_policy() -> TierPolicy {
    TierPolicy {
        up_after: Duration::from_millis(300),
        ..TierPolicy::default()
    }
}

/// A 640×480 pattern camera with a three-rung ladder (1.5M, 700k, 350k) that moves
/// viewers up quickly.
pub(super) fn three_tier_camera(devices: &MediaDevices) -> (MediaStreamTrack, TrackEncoders) {
    let track = camera(devices, r#"{"video": {"width": 640, "height": 480}}"#);
    let set = TrackEncoders::with_policy(
        &track,
        vec![1_500_000, 700_000, 350_000],
        None,
        fast_policy(),
    );
    (track, set)
}

/// Unit `n` of tier `tier`: its data says which, 33 ms a frame.
pub(super) fn unit(tier: u8, n: u8, keyframe: bool) -> EncodedUnit {
    EncodedUnit {
        data: Bytes::from(vec![tier, n]),
        keyframe,
        timestamp: Duration::from_millis(33 * u64::from(n)),
        duration: Duration::from_millis(33),
        capture_time_ms: 0,
    }
}
