//! Capture → decoded at a loopback peer: the pattern's strip says when each frame was
//! captured (wall clock), the receiving peer decodes it and the analysis
//! ([`VideoAnalysis`]) reads the strip as each frame is handed over. Both peers in this
//! process; a warm-up after the first frame is left out.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{loopback_factory, BenchError};
use crate::analysis::VideoAnalysis;
use crate::encode::pipeline::{CodecConfig, EncodedTrack};
use crate::encode::VideoCodec;
use crate::media::{wall_clock_ms, MediaFrame};
use crate::track::MediaStreamTrack;

/// How long the connection and the first frame may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to measure.
#[derive(Debug, Clone)]
pub struct LatencyConfig {
    pub codec: VideoCodec,
    pub bitrate: u32,
    /// After the first decoded frame, before the window.
    pub warmup: Duration,
    /// The window measured.
    pub window: Duration,
}

/// What was measured; the JSON of `usermedia bench latency --json`.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    pub codec: &'static str,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// The window's length, seconds.
    pub seconds: f64,
    /// Frames decoded in the window, and those whose strip read.
    pub frames: u64,
    pub frames_with_strip: u64,
    pub frames_skipped: u64,
    pub freezes: u64,
    /// Capture (the strip's time) to decoded, ms (nearest rank; the strip has 1 ms steps).
    pub latency_ms_p50: u32,
    pub latency_ms_p95: u32,
    pub latency_ms_p99: u32,
}

/// Runs the measurement on `track`, a live track of the pattern (its strip carries the
/// capture time).
pub async fn run(
    config: &LatencyConfig,
    track: &MediaStreamTrack,
) -> Result<LatencyReport, BenchError> {
    let video = EncodedTrack::start(track, CodecConfig::video(config.codec, config.bitrate))?;
    let factory = loopback_factory(true, 2, config.bitrate);
    let (a, b) = (factory.create().await?, factory.create().await?);
    let result = async {
        a.add_track(&video).await?;
        let offer = a.create_offer().await?;
        let answer = b.answer(&offer).await?;
        a.accept_answer(&answer).await?;
        let remote = b.next_remote_track(CONNECT_TIMEOUT).await.ok_or_else(|| {
            BenchError::Timeout(format!("no remote track within {CONNECT_TIMEOUT:?}"))
        })?;
        let rx = remote.subscribe(64);
        let (warmup, window) = (config.warmup, config.window);
        let measured = tokio::task::spawn_blocking(move || -> Result<_, BenchError> {
            let ended = |e: crate::media::TrackEnded| {
                BenchError::Timeout(format!("the received track ended: {e}"))
            };
            rx.recv_timeout(CONNECT_TIMEOUT)
                .map_err(ended)?
                .ok_or_else(|| {
                    BenchError::Timeout(format!("no decoded frame within {CONNECT_TIMEOUT:?}"))
                })?;
            let warm = Instant::now() + warmup;
            while Instant::now() < warm {
                rx.recv_timeout(Duration::from_millis(100)).map_err(ended)?;
            }
            let mut analysis = VideoAnalysis::new();
            let start = Instant::now();
            while start.elapsed() < window {
                if let Some(MediaFrame::Video(f)) =
                    rx.recv_timeout(Duration::from_millis(100)).map_err(ended)?
                {
                    analysis.push(f.y(), f.width(), f.height(), wall_clock_ms());
                }
            }
            Ok((
                analysis.report(wall_clock_ms()),
                start.elapsed().as_secs_f64(),
            ))
        })
        .await
        .map_err(|e| BenchError::Timeout(format!("the frame reader failed: {e}")))??;
        Ok::<_, BenchError>(measured)
    }
    .await;
    a.close().await;
    b.close().await;
    let (report, seconds) = result?;
    let latency = report.latency_ms.ok_or_else(|| {
        BenchError::Timeout("no frame carried a readable strip: latency needs the pattern".into())
    })?;
    let settings = track.get_settings();
    Ok(LatencyReport {
        codec: config.codec.as_str(),
        width: settings.width.unwrap_or_default(),
        height: settings.height.unwrap_or_default(),
        fps: settings.frame_rate.unwrap_or_default(),
        seconds: (seconds * 1000.0).round() / 1000.0,
        frames: report.frames,
        frames_with_strip: report.frames_with_strip.unwrap_or(0),
        frames_skipped: report.frames_skipped.unwrap_or(0),
        freezes: report.freezes.count,
        latency_ms_p50: latency.p50,
        latency_ms_p95: latency.p95,
        latency_ms_p99: latency.p99,
    })
}
