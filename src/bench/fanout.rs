//! One capture and one encode fanned out to N viewers, the viewers in a separate process
//! that counts what arrives without decoding ([`receivers`](super::receivers)): what the
//! publisher pays per media second, per viewer and in memory, and what each viewer got.
//!
//! The steady window starts once every viewer has its first frame and a warm-up has passed;
//! CPU is user + system seconds of a process over the window divided by the window's media
//! seconds (its wall-clock length: the source is live).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::percentile::percentile;
use super::process::ProcessUsage;
use super::receivers::{ReceiverProcess, ViewerCount};
use super::{loopback_factory, BenchError};
use crate::encode::pipeline::{CodecConfig, EncodedTrack};
use crate::encode::VideoCodec;
use crate::media::wall_clock_ms;
use crate::peer::Peer;
use crate::track::MediaStreamTrack;

/// Offers made before their answers are awaited.
const CONNECT_BATCH: usize = 4;
/// How long a viewer's connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long every viewer may take to get its first frame once connected.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(20);

/// What to measure.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// Receiving peers (at least 1).
    pub viewers: usize,
    pub codec: VideoCodec,
    /// The encoder's bitrate, bits per second (congestion control is held there).
    pub bitrate: u32,
    /// Between the last viewer's first frame and the window.
    pub warmup: Duration,
    /// The steady window measured.
    pub window: Duration,
}

/// What was measured; the JSON of `usermedia bench fanout --json` (a stable interface:
/// docs/cli.md).
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    pub viewers: usize,
    pub codec: &'static str,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub bitrate: u32,
    /// The steady window's length, seconds.
    pub seconds: f64,
    /// Publisher process CPU seconds per media second over the window.
    pub publisher_cpu_per_media_s: f64,
    /// Receiving process CPU seconds per media second over the window (all viewers).
    pub receiver_cpu_per_media_s: f64,
    /// Frames per second each viewer received over the window: the lowest, the median.
    pub fps_per_viewer_min: f64,
    pub fps_per_viewer_median: f64,
    /// Kilobits per second each viewer received (RTP payload and headers), median.
    pub kbps_per_viewer_median: f64,
    /// RTP packets per second each viewer received, median.
    pub packets_per_viewer_s_median: f64,
    /// What the encoder produced over the window, kilobits per second.
    pub encoder_kbps: f64,
    /// Frames the encoder took from the track per second over the window (below the
    /// capture rate: the source or the hand-over lost frames).
    pub source_fps: f64,
    /// Frames the encoder produced per second over the window (below `source_fps`: the
    /// encoder's rate control skipped frames).
    pub encoder_fps: f64,
    /// Frames each viewer received over the whole run: the lowest.
    pub frames_per_viewer_min: u64,
    /// The publisher's resident memory at the end of the window.
    pub publisher_rss_bytes: u64,
    /// The publisher's memory per viewer: per additional viewer after the first (its RSS
    /// at the end less its RSS once the first viewer had its first frame, over N − 1);
    /// with one viewer, what the publisher grew by for it.
    pub rss_per_viewer_bytes: u64,
    /// The receiving process's resident memory at the end.
    pub receiver_rss_bytes: u64,
    /// From starting a viewer's offer to its first complete frame at the receiver, ms.
    pub first_frame_ms_p50: f64,
    pub first_frame_ms_p95: f64,
}

/// Runs the measurement on `track` (a live video track), the viewers in the process
/// `receivers` starts (a program running [`receivers::serve`](super::receivers::serve)).
pub async fn run(
    config: &FanoutConfig,
    track: &MediaStreamTrack,
    receivers: std::process::Command,
) -> Result<FanoutReport, BenchError> {
    let viewers = config.viewers.max(1);
    let rss_before = ProcessUsage::of_self()?.rss_bytes;
    let video = EncodedTrack::start(track, CodecConfig::video(config.codec, config.bitrate))?;
    let factory = loopback_factory(false, viewers, config.bitrate);
    let mut receivers = ReceiverProcess::spawn(receivers)?;
    let mut peers: Vec<Peer> = Vec::with_capacity(viewers);
    let mut offered_ms = Vec::with_capacity(viewers);
    let result = async {
        // The first viewer alone, so the memory of the others is measured from there.
        connect(
            &mut receivers,
            &factory,
            &video,
            &mut peers,
            &mut offered_ms,
            1,
        )
        .await?;
        wait_first_frames(&mut receivers, 1).await?;
        let rss_one = ProcessUsage::of_self()?.rss_bytes;
        while peers.len() < viewers {
            let batch = CONNECT_BATCH.min(viewers - peers.len());
            connect(
                &mut receivers,
                &factory,
                &video,
                &mut peers,
                &mut offered_ms,
                batch,
            )
            .await?;
        }
        let counts = wait_first_frames(&mut receivers, viewers).await?;
        let first_frames: Vec<f64> = counts
            .iter()
            .zip(&offered_ms)
            .filter_map(|(c, &at)| c.first_frame_ms.map(|f| f.saturating_sub(at) as f64))
            .collect();
        tokio::time::sleep(config.warmup).await;
        let pid = receivers
            .pid()
            .ok_or_else(|| BenchError::Receivers("it exited".into()))?;
        let (me0, them0) = (ProcessUsage::of_self()?, ProcessUsage::of(pid)?);
        let (counts0, encoded0, t0) = (receivers.report().await?, video.stats(), Instant::now());
        tokio::time::sleep(config.window).await;
        let counts1 = receivers.report().await?;
        let wall = t0.elapsed().as_secs_f64();
        // Per-viewer rates over the receiving process's own clock: under load this
        // process may read a reply long after the counts were taken.
        let window = counts1
            .at
            .saturating_sub(counts0.at)
            .as_secs_f64()
            .max(1e-3);
        let (counts0, counts1) = (counts0.viewers, counts1.viewers);
        let (me1, them1) = (ProcessUsage::of_self()?, ProcessUsage::of(pid)?);
        let encoded1 = video.stats();
        let encoded = encoded1.bytes.saturating_sub(encoded0.bytes);
        let encoded_frames = encoded1
            .frames_encoded
            .saturating_sub(encoded0.frames_encoded);
        let frames_in = encoded1.frames_in.saturating_sub(encoded0.frames_in);
        let per_viewer = |f: fn(&ViewerCount) -> u64| -> Vec<f64> {
            counts1
                .iter()
                .map(|c1| {
                    let c0 = counts0
                        .iter()
                        .find(|c| c.id == c1.id)
                        .copied()
                        .unwrap_or_default();
                    f(c1).saturating_sub(f(&c0)) as f64 / window
                })
                .collect()
        };
        let fps = per_viewer(|c| c.frames);
        let kbps: Vec<f64> = per_viewer(|c| c.bytes)
            .iter()
            .map(|b| b * 8.0 / 1000.0)
            .collect();
        let packets = per_viewer(|c| c.packets);
        let settings = track.get_settings();
        let median = |v: &[f64]| percentile(v, 50.0).unwrap_or(0.0);
        let rss_per_viewer = if viewers > 1 {
            me1.rss_bytes.saturating_sub(rss_one) / (viewers as u64 - 1)
        } else {
            me1.rss_bytes.saturating_sub(rss_before)
        };
        Ok(FanoutReport {
            viewers,
            codec: config.codec.as_str(),
            width: settings.width.unwrap_or_default(),
            height: settings.height.unwrap_or_default(),
            fps: settings.frame_rate.unwrap_or_default(),
            bitrate: config.bitrate,
            seconds: round(wall, 3),
            publisher_cpu_per_media_s: round((me1.cpu_seconds - me0.cpu_seconds) / wall, 4),
            receiver_cpu_per_media_s: round((them1.cpu_seconds - them0.cpu_seconds) / wall, 4),
            fps_per_viewer_min: round(fps.iter().copied().fold(f64::INFINITY, f64::min), 2),
            fps_per_viewer_median: round(median(&fps), 2),
            kbps_per_viewer_median: round(median(&kbps), 1),
            packets_per_viewer_s_median: round(median(&packets), 1),
            encoder_kbps: round(encoded as f64 * 8.0 / 1000.0 / wall, 1),
            source_fps: round(frames_in as f64 / wall, 2),
            encoder_fps: round(encoded_frames as f64 / wall, 2),
            frames_per_viewer_min: counts1.iter().map(|c| c.frames).min().unwrap_or(0),
            publisher_rss_bytes: me1.rss_bytes,
            rss_per_viewer_bytes: rss_per_viewer,
            receiver_rss_bytes: them1.rss_bytes,
            first_frame_ms_p50: percentile(&first_frames, 50.0).unwrap_or(0.0),
            first_frame_ms_p95: percentile(&first_frames, 95.0).unwrap_or(0.0),
        })
    }
    .await;
    for p in &peers {
        p.close().await;
    }
    receivers.finish().await;
    result
}

fn round(v: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (v * scale).round() / scale
}

/// Connects `count` more viewers: their offers sent together, then each answer applied
/// and each connection awaited. Each viewer's offer start goes to `offered_ms`.
async fn connect(
    receivers: &mut ReceiverProcess,
    factory: &crate::peer::PeerFactory,
    video: &EncodedTrack,
    peers: &mut Vec<Peer>,
    offered_ms: &mut Vec<u64>,
    count: usize,
) -> Result<(), BenchError> {
    let first = peers.len();
    for id in first..first + count {
        let peer = factory.create().await?;
        peer.add_track(video).await?;
        offered_ms.push(wall_clock_ms());
        let offer = peer.create_offer().await?;
        peers.push(peer);
        receivers.offer(id, offer).await?;
    }
    for _ in 0..count {
        let (id, answer) = receivers.next_answer().await?;
        let peer = peers.get(id).ok_or_else(|| {
            BenchError::Receivers(format!("an answer for viewer {id}, who is not"))
        })?;
        peer.accept_answer(&answer).await?;
    }
    for peer in &peers[first..] {
        peer.wait_connected(CONNECT_TIMEOUT).await?;
    }
    Ok(())
}

/// Waits until the first `viewers` viewers have each had a frame; their counts.
async fn wait_first_frames(
    receivers: &mut ReceiverProcess,
    viewers: usize,
) -> Result<Vec<ViewerCount>, BenchError> {
    let deadline = Instant::now() + FIRST_FRAME_TIMEOUT;
    loop {
        let counts = receivers.report().await?.viewers;
        let waiting: Vec<usize> = (0..viewers)
            .filter(|id| {
                !counts
                    .iter()
                    .any(|c| c.id == *id && c.first_frame_ms.is_some())
            })
            .collect();
        if waiting.is_empty() {
            return Ok(counts);
        }
        if Instant::now() > deadline {
            return Err(BenchError::Timeout(format!(
                "{} of {viewers} viewers had no frame within {FIRST_FRAME_TIMEOUT:?} (the first: viewer {})",
                waiting.len(),
                waiting[0]
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
