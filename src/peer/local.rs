//! Sending one encoded track to one peer: the samples of the shared encoder written with
//! the negotiated payload type, keyframe requests passed back to the encoder, and the
//! peer's bandwidth estimate voted into the encoder's bitrate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack as RtcTrack;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::RtpSender;

use super::setup::{h264_codec, opus_codec, BandwidthTarget};
use super::{PeerError, PeerState, SendCounters};
use crate::constraints::MediaKind;
use crate::encode::pipeline::EncodedTrack;

/// The tasks that feed one track to one peer; stopped on close or drop.
pub(super) struct LocalSender {
    tasks: Vec<JoinHandle<()>>,
}

impl LocalSender {
    pub(super) async fn start(
        pc: &Arc<dyn PeerConnection>,
        encoded: &EncodedTrack,
        state: watch::Receiver<PeerState>,
        bandwidth: BandwidthTarget,
        counters: Arc<SendCounters>,
    ) -> Result<Self, PeerError> {
        let (kind, codec) = match encoded.kind() {
            MediaKind::Video => (RtpCodecKind::Video, h264_codec()),
            MediaKind::Audio => (RtpCodecKind::Audio, opus_codec()),
        };
        let ssrc: u32 = rand::random();
        let id = uuid::Uuid::new_v4().to_string();
        let track = RtcTrack::new(
            "usermedia".to_owned(),
            id.clone(),
            id,
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec.clone(),
                ..Default::default()
            }],
        );
        let track = Arc::new(
            TrackLocalStaticSample::new(Instant::now(), track)
                .map_err(|e| PeerError::Track(e.to_string()))?,
        );
        let sender = pc
            .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await
            .map_err(|e| PeerError::Track(e.to_string()))?;

        let rtcp_track = Arc::clone(&track);
        let rtcp_encoder = encoded.clone();
        let rtcp_counters = Arc::clone(&counters);
        let rtcp = tokio::spawn(async move {
            while let Some(event) = rtcp_track.poll().await {
                if let TrackLocalEvent::OnRtcpPacket(packets) = event {
                    let wants_keyframe = packets.iter().any(|p| {
                        let any = p.as_any();
                        any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                    });
                    if wants_keyframe {
                        rtcp_counters
                            .keyframe_requests
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        rtcp_encoder.request_keyframe();
                    }
                }
            }
        });
        let send = tokio::spawn(send_loop(SendContext {
            track,
            sender,
            bandwidth,
            counters,
            encoded: encoded.clone(),
            ssrc,
            mime: codec.mime_type,
            state,
        }));
        Ok(LocalSender {
            tasks: vec![rtcp, send],
        })
    }

    pub(super) fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for LocalSender {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Clears this peer's bitrate vote when the send loop ends, however it ends.
struct Vote<'a> {
    encoded: &'a EncodedTrack,
    voter: u64,
}

impl Drop for Vote<'_> {
    fn drop(&mut self) {
        self.encoded.vote_bitrate(self.voter, None);
    }
}

/// Everything one send loop works with.
struct SendContext {
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    bandwidth: BandwidthTarget,
    counters: Arc<SendCounters>,
    encoded: EncodedTrack,
    ssrc: u32,
    mime: String,
    state: watch::Receiver<PeerState>,
}

async fn send_loop(ctx: SendContext) {
    let SendContext {
        track,
        sender,
        bandwidth,
        counters,
        encoded,
        ssrc,
        mime,
        mut state,
    } = ctx;
    // Samples written before the connection is up would be lost.
    loop {
        match *state.borrow_and_update() {
            PeerState::Connected => break,
            PeerState::Failed | PeerState::Closed => return,
            _ => {}
        }
        if state.changed().await.is_err() {
            return;
        }
    }
    let payload_type = match sender.get_parameters().await {
        Ok(params) => params
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(&mime))
            .map(|c| c.payload_type),
        Err(e) => {
            tracing::warn!("sender parameters: {e}");
            None
        }
    };
    let Some(payload_type) = payload_type else {
        tracing::warn!("{mime} was not negotiated; not sending it");
        return;
    };
    let video = encoded.kind() == MediaKind::Video;
    let mut units = encoded.subscribe_async(if video { 30 } else { 50 });
    let _vote = Vote {
        encoded: &encoded,
        voter: rand::random(),
    };
    let mut estimate = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            unit = units.recv() => {
                let Some(unit) = unit else { break };
                let keyframe = video && unit.keyframe;
                let sample = Sample {
                    data: unit.data,
                    duration: unit.duration,
                    ..Sample::new(Instant::now())
                };
                if let Err(e) = track.write_sample(ssrc, payload_type, &sample, &[]).await {
                    tracing::debug!("write sample: {e}");
                    break;
                }
                counters.frames_sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if keyframe {
                    counters.keyframes_sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            _ = estimate.tick(), if video => {
                let target = bandwidth.bits_per_second();
                if target > 0.0 {
                    encoded.vote_bitrate(_vote.voter, Some(target as u32));
                }
            }
            changed = state.changed() => {
                if changed.is_err() || matches!(*state.borrow(), PeerState::Failed | PeerState::Closed) {
                    break;
                }
            }
        }
    }
}
