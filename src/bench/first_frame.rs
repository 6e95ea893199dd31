//! How fast the first frame appears: from starting the offer to the first decoded frame at
//! a second peer on loopback, and from getUserMedia to that frame. Both peers in this
//! process; each run captures, encodes and connects afresh.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::percentile::percentile;
use super::{loopback_factory, BenchError};
use crate::devices::MediaDevices;
use crate::encode::pipeline::{CodecConfig, EncodedTrack};
use crate::encode::VideoCodec;

/// How long the remote track and its first frame may take.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// One run's times, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FirstFrameRun {
    /// From starting the offer to the first decoded frame.
    pub offer_ms: f64,
    /// From calling getUserMedia to the first decoded frame.
    pub get_user_media_ms: f64,
}

/// Runs' percentiles; the JSON of `usermedia bench first-frame --json`.
#[derive(Debug, Clone, Serialize)]
pub struct FirstFrameReport {
    pub runs: usize,
    pub codec: &'static str,
    pub width: u32,
    pub height: u32,
    pub offer_to_frame_ms_p50: f64,
    pub offer_to_frame_ms_p95: f64,
    pub get_user_media_to_frame_ms_p50: f64,
    pub get_user_media_to_frame_ms_p95: f64,
}

impl FirstFrameReport {
    /// The percentiles of `runs` of a `width`×`height` `codec` video.
    pub fn of(runs: &[FirstFrameRun], codec: VideoCodec, width: u32, height: u32) -> Self {
        let offer: Vec<f64> = runs.iter().map(|r| r.offer_ms).collect();
        let gum: Vec<f64> = runs.iter().map(|r| r.get_user_media_ms).collect();
        let at = |v: &[f64], p| (percentile(v, p).unwrap_or(0.0) * 10.0).round() / 10.0;
        FirstFrameReport {
            runs: runs.len(),
            codec: codec.as_str(),
            width,
            height,
            offer_to_frame_ms_p50: at(&offer, 50.0),
            offer_to_frame_ms_p95: at(&offer, 95.0),
            get_user_media_to_frame_ms_p50: at(&gum, 50.0),
            get_user_media_to_frame_ms_p95: at(&gum, 95.0),
        }
    }
}

/// One run: getUserMedia with `constraints` (video) on `devices`, an encoder, two peers,
/// the first decoded frame. The tracks are stopped and the peers closed after.
pub async fn run_once(
    devices: &MediaDevices,
    constraints: &str,
    codec: VideoCodec,
    bitrate: u32,
) -> Result<FirstFrameRun, BenchError> {
    let start = Instant::now();
    let stream = devices.get_user_media_json(constraints)?;
    let tracks = stream.get_tracks().to_vec();
    let result = async {
        let track = stream
            .get_video_tracks()
            .into_iter()
            .next()
            .ok_or_else(|| BenchError::Timeout("getUserMedia gave no video track".into()))?;
        let video = EncodedTrack::start(&track, CodecConfig::video(codec, bitrate))?;
        let factory = loopback_factory(true, 2, bitrate);
        let (a, b) = (factory.create().await?, factory.create().await?);
        let frame = async {
            a.add_track(&video).await?;
            let offered = Instant::now();
            let offer = a.create_offer().await?;
            let answer = b.answer(&offer).await?;
            a.accept_answer(&answer).await?;
            let remote = b.next_remote_track(FRAME_TIMEOUT).await.ok_or_else(|| {
                BenchError::Timeout(format!("no remote track within {FRAME_TIMEOUT:?}"))
            })?;
            let rx = remote.subscribe(8);
            let first = tokio::task::spawn_blocking(move || rx.recv_timeout(FRAME_TIMEOUT))
                .await
                .map_err(|e| BenchError::Timeout(format!("the frame wait failed: {e}")))?;
            match first {
                Ok(Some(_)) => Ok(FirstFrameRun {
                    offer_ms: offered.elapsed().as_secs_f64() * 1000.0,
                    get_user_media_ms: start.elapsed().as_secs_f64() * 1000.0,
                }),
                Ok(None) => Err(BenchError::Timeout(format!(
                    "no decoded frame within {FRAME_TIMEOUT:?}"
                ))),
                Err(e) => Err(BenchError::Timeout(format!("the remote track ended: {e}"))),
            }
        }
        .await;
        a.close().await;
        b.close().await;
        frame
    }
    .await;
    for t in &tracks {
        t.stop();
    }
    result
}
