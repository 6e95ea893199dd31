//! RTCP feedback a receiver sends about a remote track: PLI, FIR and NACK written on
//! request ([`Feedback`]), and the rate-limited PLI task that turns keyframe wants (loss,
//! decode errors, a full decoder queue, [`super::RemoteTrack::request_keyframe`]) into at
//! most one PLI per [`PLI_INTERVAL`].

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    nack_pairs_from_sequence_numbers, TransportLayerNack,
};
use webrtc::media_stream::track_remote::TrackRemote;

use super::Inner;
use crate::peer::PeerError;

/// Least time between two PLIs we send.
const PLI_INTERVAL: Duration = Duration::from_millis(300);

/// RTCP feedback a receiver sends about a track: what browsers send on loss or when they
/// need a picture. Scripted peers and interop tests send it on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// Picture Loss Indication (RFC 4585).
    Pli,
    /// Full Intra Request (RFC 5104).
    Fir,
    /// Generic NACK (RFC 4585) for these RTP sequence numbers.
    Nack(Vec<u16>),
}

/// Writes feedback about one remote track (its SSRC) to the peer.
pub(super) struct FeedbackWriter {
    /// The webrtc-rs track the feedback is about.
    rtcp: Arc<dyn TrackRemote>,
    ssrc: u32,
    /// FIR sequence number (RFC 5104 §4.3.1.1: one more per new request).
    fir_sequence: AtomicU8,
}

impl FeedbackWriter {
    pub(super) fn new(rtcp: Arc<dyn TrackRemote>, ssrc: u32) -> Self {
        FeedbackWriter {
            rtcp,
            ssrc,
            fir_sequence: AtomicU8::new(0),
        }
    }

    /// Writes `feedback` about this track to the peer now.
    pub(super) async fn send(&self, feedback: Feedback) -> Result<(), PeerError> {
        let packet = self.packet(feedback);
        self.rtcp
            .write_rtcp(vec![packet])
            .await
            .map_err(PeerError::Feedback)
    }

    /// The RTCP packet for `feedback` (the next FIR sequence number for a FIR).
    fn packet(&self, feedback: Feedback) -> Box<dyn rtc::rtcp::Packet> {
        let media_ssrc = self.ssrc;
        match feedback {
            Feedback::Pli => Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            }),
            Feedback::Fir => Box::new(FullIntraRequest {
                sender_ssrc: 0,
                media_ssrc,
                fir: vec![FirEntry {
                    ssrc: media_ssrc,
                    sequence_number: self.fir_sequence.fetch_add(1, Ordering::Relaxed),
                }],
            }),
            Feedback::Nack(sequence_numbers) => Box::new(TransportLayerNack {
                sender_ssrc: 0,
                media_ssrc,
                nacks: nack_pairs_from_sequence_numbers(&sequence_numbers),
            }),
        }
    }
}

/// Starts the task that sends the PLIs `inner.pli` asks for, at most one per
/// [`PLI_INTERVAL`]; it ends with the connection (a write fails) or when the track is gone.
pub(super) fn spawn_pli_task(inner: &Arc<Inner>) {
    let pli = Arc::clone(&inner.pli);
    let alive = Arc::downgrade(inner);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = pli.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    if alive.strong_count() == 0 {
                        break;
                    }
                    continue;
                }
            }
            let Some(inner) = alive.upgrade() else { break };
            if inner.feedback.send(Feedback::Pli).await.is_err() {
                break;
            }
            inner.counters.plis_sent.fetch_add(1, Ordering::Relaxed);
            drop(inner);
            tokio::time::sleep(PLI_INTERVAL).await;
        }
    });
}
