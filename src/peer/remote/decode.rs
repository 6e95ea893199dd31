//! Decoding a remote track on its own thread: depacketized units in (through a bounded
//! queue from the RTP reader), decoded frames out to the track's worker through
//! [`RemoteSource`], with the measured size, frame rate or channel count written to the
//! track's settings and every frame handed over fed to the track's analysis first (audio
//! held back first by `PeerConfig::audio_delay`, a test hook).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::depacketize::opus_channels;
use super::size_gate::{Admit, SizeGate};
use super::Inner;
use crate::constraints::MediaTrackSettings;
use crate::encode::h264::H264Decoder;
use crate::encode::opus::OpusDecoder;
use crate::encode::vp8::Vp8Decoder;
use crate::encode::{picture_limit, EncodeError, PictureLimit, VideoCodec};
use crate::frame::AudioFrame;
use crate::media::MediaFrame;
use crate::media::{Source, SourceError};
use crate::sync::lock;

/// Units waiting for the decoder; beyond this they are dropped (and a keyframe asked for).
const DECODE_QUEUE: usize = 64;

/// A depacketized unit and its RTP timestamp, on its way to the decoder.
pub(super) type Unit = (Bytes, u32);

/// Decoded frames of a remote track, as the track's source. Ends when the decoder does.
pub(super) struct RemoteSource {
    pub(super) frames: Receiver<MediaFrame>,
}

impl Source for RemoteSource {
    fn next_frame(&mut self) -> Result<MediaFrame, SourceError> {
        self.frames
            .recv()
            .map_err(|_| SourceError::Ended("the remote track ended".into()))
    }

    fn reconfigure(&mut self, _: &MediaTrackSettings) -> Result<(), SourceError> {
        Err(SourceError::Unsupported(
            "a remote track cannot be reconfigured".into(),
        ))
    }
}

/// Starts the decoder thread of `codec` (Opus for `None`), which hands its frames to
/// `frames` and ends when the returned queue's sender is dropped or the track is gone.
pub(super) fn spawn(
    inner: &Arc<Inner>,
    codec: Option<VideoCodec>,
    frames: SyncSender<MediaFrame>,
    max_picture: PictureLimit,
) -> std::io::Result<SyncSender<Unit>> {
    let (units_tx, units_rx) = sync_channel::<Unit>(DECODE_QUEUE);
    let inner = Arc::clone(inner);
    std::thread::Builder::new()
        .name(format!("{} decoder", inner.kind))
        .spawn(move || {
            match codec {
                Some(codec) => decode_video(units_rx, &inner, &frames, codec, max_picture),
                None => decode_audio(units_rx, &inner, &frames),
            }
            // The track has ended: its analysis stops its clock here.
            inner.analysis.end();
        })?;
    Ok(units_tx)
}

/// A video decoder of the negotiated codec.
pub(super) enum VideoDecoder {
    H264(H264Decoder),
    Vp8(Vp8Decoder),
}

impl VideoDecoder {
    pub(super) fn new(codec: VideoCodec) -> Result<Self, EncodeError> {
        Ok(match codec {
            VideoCodec::H264 => VideoDecoder::H264(H264Decoder::new()?),
            VideoCodec::Vp8 => VideoDecoder::Vp8(Vp8Decoder::new()?),
        })
    }

    pub(super) fn decode(
        &mut self,
        data: &[u8],
    ) -> Result<Option<crate::frame::VideoFrame>, EncodeError> {
        match self {
            VideoDecoder::H264(d) => d.decode(data),
            VideoDecoder::Vp8(d) => d.decode(data),
        }
    }

    /// The picture size a unit declares before decoding (a VP8 keyframe's header, an
    /// H.264 SPS), if it declares one.
    pub(super) fn declared_size(&self, data: &[u8]) -> Option<(u32, u32)> {
        match self {
            VideoDecoder::H264(_) => picture_limit::h264_declared_size(data),
            VideoDecoder::Vp8(_) => picture_limit::vp8_keyframe_size(data),
        }
    }

    fn is_keyframe(&self, data: &[u8]) -> bool {
        match self {
            VideoDecoder::H264(_) => crate::encode::h264::is_keyframe(data),
            VideoDecoder::Vp8(_) => crate::encode::vp8::is_keyframe(data),
        }
    }
}

/// Hands a decoded frame to its analysis and the track; a full queue drops it (counted).
fn hand_over(frames: &SyncSender<MediaFrame>, inner: &Inner, frame: MediaFrame) -> bool {
    inner.analysis.push(&frame);
    match frames.try_send(frame) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(TrySendError::Disconnected(_)) => false,
    }
}

/// Whether the size gate lets a unit (or a decoded picture) of `declared` through; a
/// refusal is logged once per size and every unit held back is counted.
fn admitted(gate: &mut SizeGate, declared: Option<(u32, u32)>, inner: &Inner) -> bool {
    match gate.admit(declared) {
        Admit::Decode => true,
        Admit::Drop => {
            inner.counters.refused.fetch_add(1, Ordering::Relaxed);
            false
        }
        Admit::Refuse { width, height } => {
            inner.counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "remote video: the stream declares a {width}x{height} picture, over the decode \
                 limit of {}; its units are dropped until it sends a picture within it",
                gate.limit()
            );
            false
        }
    }
}

fn decode_video(
    units: Receiver<Unit>,
    inner: &Inner,
    frames: &SyncSender<MediaFrame>,
    codec: VideoCodec,
    max_picture: PictureLimit,
) {
    let mut decoder = match VideoDecoder::new(codec) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("remote video: no decoder: {e}");
            return;
        }
    };
    let start = Instant::now();
    let mut last_ts: Option<u32> = None;
    // Exponential average of the frame interval in 90 kHz ticks.
    let mut interval: Option<f64> = None;
    let mut gate = SizeGate::new(max_picture);
    while let Ok((data, ts)) = units.recv() {
        if !admitted(&mut gate, decoder.declared_size(&data), inner) {
            continue;
        }
        match decoder.decode(&data) {
            // A size the unit did not declare in a way we read: checked again on the
            // picture (openh264 has allocated it, but it goes no further).
            Ok(Some(frame))
                if !admitted(&mut gate, Some((frame.width(), frame.height())), inner) => {}
            Ok(Some(frame)) => {
                let c = &inner.counters;
                c.frames_decoded.fetch_add(1, Ordering::Relaxed);
                if decoder.is_keyframe(&data) {
                    c.keyframes_decoded.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(prev) = last_ts {
                    let delta = ts.wrapping_sub(prev) as f64;
                    if delta > 0.0 && delta < 90_000.0 {
                        interval = Some(interval.map_or(delta, |i| i * 0.9 + delta * 0.1));
                    }
                }
                last_ts = Some(ts);
                {
                    let mut s = lock(&inner.settings);
                    s.width = Some(frame.width());
                    s.height = Some(frame.height());
                    s.aspect_ratio = Some(frame.width() as f64 / frame.height() as f64);
                    s.frame_rate = interval.map(|i| ((90_000.0 / i) * 100.0).round() / 100.0);
                }
                let frame = frame.with_times(start.elapsed(), crate::media::wall_clock_ms());
                if !hand_over(frames, inner, MediaFrame::Video(Arc::new(frame))) {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                inner.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("remote video: {e}; asking for a keyframe");
                inner.pli.notify_one();
            }
        }
    }
}

fn decode_audio(units: Receiver<Unit>, inner: &Inner, frames: &SyncSender<MediaFrame>) {
    // The decoder outputs the sender's channel count, learnt from the first packet (an
    // Opus decoder decodes either kind of packet to its own count).
    let mut decoder: Option<OpusDecoder> = None;
    let start = Instant::now();
    // Frames held by the test hook's delay, each with when it plays.
    let mut held: VecDeque<(Instant, AudioFrame)> = VecDeque::new();
    loop {
        let unit = match held.front() {
            None => match units.recv() {
                Ok(unit) => Some(unit),
                Err(_) => return,
            },
            Some((due, _)) => {
                match units.recv_timeout(due.saturating_duration_since(Instant::now())) {
                    Ok(unit) => Some(unit),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        };
        if !release_held(&mut held, frames, inner) {
            return;
        }
        let Some((data, _ts)) = unit else {
            continue;
        };
        let decoder = match &mut decoder {
            Some(d) => d,
            None => {
                let Some(channels) = opus_channels(&data) else {
                    continue;
                };
                match OpusDecoder::new(48_000, channels) {
                    Ok(d) => {
                        lock(&inner.settings).channel_count = Some(u32::from(channels));
                        decoder.insert(d)
                    }
                    Err(e) => {
                        tracing::warn!("remote audio: no decoder: {e}");
                        return;
                    }
                }
            }
        };
        match decoder.decode(&data, start.elapsed()) {
            Ok(mut frame) => {
                inner
                    .counters
                    .frames_decoded
                    .fetch_add(1, Ordering::Relaxed);
                if inner.audio_delay.is_zero() {
                    frame.capture_time_ms = crate::media::wall_clock_ms();
                    if !hand_over(frames, inner, MediaFrame::Audio(Arc::new(frame))) {
                        return;
                    }
                } else {
                    held.push_back((Instant::now() + inner.audio_delay, frame));
                }
            }
            Err(e) => {
                inner.counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("remote audio: {e}");
            }
        }
    }
}

/// Plays the held audio frames that are due (stamped with the time they play). `false`
/// when the track is gone.
fn release_held(
    held: &mut VecDeque<(Instant, AudioFrame)>,
    frames: &SyncSender<MediaFrame>,
    inner: &Inner,
) -> bool {
    while held.front().is_some_and(|(due, _)| *due <= Instant::now()) {
        if let Some((_, mut frame)) = held.pop_front() {
            frame.capture_time_ms = crate::media::wall_clock_ms();
            if !hand_over(frames, inner, MediaFrame::Audio(Arc::new(frame))) {
                return false;
            }
        }
    }
    true
}
