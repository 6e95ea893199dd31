//! Offer/answer on a [`Peer`]: our offer or answer with every candidate in it, the remote
//! description applied (each sent track's codec picked from it first), trickled candidates.

use std::time::Duration;

use webrtc::peer_connection::{RTCIceCandidateInit, RTCSessionDescription};

use super::shape::{self, AnswerRole, MAX_REMOTE_CANDIDATES};
use super::{local, Peer, PeerError};
use crate::encode::pipeline::TrackEncoders;

impl Peer {
    pub(super) async fn gathered_description(
        &self,
        timeout: Duration,
    ) -> Result<String, PeerError> {
        let wait = async {
            loop {
                let notified = self.events.gathered.notified();
                if self
                    .events
                    .gathering_complete
                    .lock()
                    .map(|d| *d)
                    .unwrap_or(false)
                {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| PeerError::GatheringTimeout(timeout))?;
        let sdp = self
            .pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or(PeerError::NoLocalDescription)?;
        self.finish.apply(sdp)
    }

    /// Creates an offer and returns it with every candidate in it (no trickle needed).
    pub async fn create_offer(&self) -> Result<String, PeerError> {
        for sender in self.senders() {
            sender.prepare_offer(&self.pc).await?;
        }
        let offer = self
            .pc
            .create_offer(None)
            .await
            .map_err(PeerError::setup("cannot create the offer"))?;
        self.pc
            .set_local_description(offer)
            .await
            .map_err(PeerError::setup("cannot apply our offer"))?;
        self.gathered_description(Duration::from_secs(5)).await
    }

    /// Applies the remote answer to our offer; each track sends the first codec the answer
    /// lists for it.
    pub async fn accept_answer(&self, sdp: &str) -> Result<(), PeerError> {
        let sdp = &self.capped_candidates(sdp);
        for sender in self.senders() {
            sender
                .negotiate(&self.pc, sdp, local::Remote::Answer)
                .await?;
        }
        let answer = RTCSessionDescription::answer(sdp.to_owned())
            .map_err(PeerError::sdp("cannot read the answer"))?;
        self.note_capture_ext(sdp);
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(PeerError::sdp("cannot apply the answer"))
    }

    /// Answers a remote offer; returns the answer with every candidate in it.
    pub async fn answer(&self, offer_sdp: &str) -> Result<String, PeerError> {
        self.answer_with(offer_sdp, std::iter::empty::<TrackEncoders>())
            .await
    }

    /// Answers a remote offer in `role` only, whatever the offer asks: [`AnswerRole::Send`]
    /// answers every audio and video m-section `sendonly` or `inactive` (nothing the
    /// remote sends is received, so nothing is decoded), [`AnswerRole::Receive`]
    /// `recvonly` or `inactive`. An offer of more than
    /// [`MAX_SECTIONS_PER_KIND`](shape::MAX_SECTIONS_PER_KIND) audio or video m-sections
    /// is a [`PeerError::Sdp`] naming the limit. `tracks` as in [`Peer::answer_with`].
    pub async fn answer_as(
        &self,
        offer_sdp: &str,
        role: AnswerRole,
        tracks: impl IntoIterator<Item = impl Into<TrackEncoders>>,
    ) -> Result<String, PeerError> {
        shape::check_sections(offer_sdp)?;
        let offer = shape::restrict_directions(offer_sdp, role);
        self.answer_keeping(&offer, tracks, Some(role)).await
    }

    /// Remembers the id `sdp` gives abs-capture-time (0: none) for the remote tracks.
    fn note_capture_ext(&self, sdp: &str) {
        let id = super::capture_time::extmap_id(sdp).unwrap_or(0);
        self.events
            .capture_ext
            .store(id, std::sync::atomic::Ordering::Relaxed);
    }

    /// The description with the remote candidates beyond this session's room left out
    /// (logged); those kept are counted.
    fn capped_candidates(&self, sdp: &str) -> String {
        use std::sync::atomic::Ordering;
        let taken = self.remote_candidates.load(Ordering::Relaxed);
        let room = MAX_REMOTE_CANDIDATES.saturating_sub(taken);
        let (sdp, dropped) = shape::cap_candidates(sdp, room);
        let kept = sdp.matches("a=candidate:").count();
        self.remote_candidates.fetch_add(kept, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                "{dropped} remote candidates ignored: at most {MAX_REMOTE_CANDIDATES} per session"
            );
        }
        sdp
    }

    /// Answers a remote offer, sending `tracks` on it (a viewer's recvonly offer): the
    /// tracks (`&EncodedTrack`s or `&TrackEncoders`) are added after the offer is applied,
    /// so they take its m-lines. Each video track sends the first codec of its m-line, in
    /// the offer's order, that it may send, and the answer lists that codec first; an
    /// m-line offering none of them is a [`PeerError::Sdp`].
    pub async fn answer_with(
        &self,
        offer_sdp: &str,
        tracks: impl IntoIterator<Item = impl Into<TrackEncoders>>,
    ) -> Result<String, PeerError> {
        self.answer_keeping(offer_sdp, tracks, None).await
    }

    /// [`Peer::answer_with`], the transceivers' directions kept to `role` when one is
    /// given (webrtc-rs makes a receiving transceiver for an offered `sendonly` or
    /// `inactive` section it has none for), and the answer checked against it.
    async fn answer_keeping(
        &self,
        offer_sdp: &str,
        tracks: impl IntoIterator<Item = impl Into<TrackEncoders>>,
        role: Option<AnswerRole>,
    ) -> Result<String, PeerError> {
        let offer_sdp = &self.capped_candidates(offer_sdp);
        let offer = RTCSessionDescription::offer(offer_sdp.to_owned())
            .map_err(PeerError::sdp("cannot read the offer"))?;
        // Our answer keeps the offer's ids.
        self.note_capture_ext(offer_sdp);
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(PeerError::sdp("cannot apply the offer"))?;
        for track in tracks {
            self.add_track(track).await?;
        }
        for sender in self.senders() {
            sender
                .negotiate(&self.pc, offer_sdp, local::Remote::Offer)
                .await?;
        }
        if let Some(role) = role {
            self.keep_to_role(role, &shape::inactive_mids(offer_sdp))
                .await?;
        }
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(PeerError::sdp("cannot answer the offer"))?;
        if let Some(role) = role {
            shape::check_answer_role(&answer.sdp, role)?;
        }
        self.pc
            .set_local_description(answer)
            .await
            .map_err(PeerError::setup("cannot apply our answer"))?;
        self.gathered_description(Duration::from_secs(5)).await
    }

    /// Each transceiver's direction with what `role` forbids taken away
    /// ([`shape::role_direction`]); those of the offer's `inactive` sections inactive.
    async fn keep_to_role(&self, role: AnswerRole, inactive: &[String]) -> Result<(), PeerError> {
        for transceiver in self.pc.get_transceivers().await {
            let current = transceiver
                .direction()
                .await
                .map_err(PeerError::setup("cannot read a transceiver's direction"))?;
            let mid = transceiver.mid().await.ok().flatten();
            let kept = shape::role_direction(role, current, mid.as_deref(), inactive);
            if kept != current {
                transceiver
                    .set_direction(kept)
                    .await
                    .map_err(PeerError::setup("cannot set a transceiver's direction"))?;
            }
        }
        Ok(())
    }

    /// Adds trickled remote candidates from an SDP fragment
    /// (`application/trickle-ice-sdpfrag`: `a=ice-ufrag`, `a=mid`, `a=candidate` lines).
    /// A session takes at most [`MAX_REMOTE_CANDIDATES`] remote candidates in all; the
    /// rest are ignored (logged, not an error). Returns how many were added.
    pub async fn add_candidates(&self, fragment: &str) -> Result<usize, PeerError> {
        use std::sync::atomic::Ordering;
        let (mut added, mut ignored) = (0, 0);
        for init in fragment_candidates(fragment) {
            let taken = self.remote_candidates.fetch_add(1, Ordering::Relaxed);
            if taken >= MAX_REMOTE_CANDIDATES {
                self.remote_candidates.fetch_sub(1, Ordering::Relaxed);
                ignored += 1;
                continue;
            }
            let context = format!("candidate {:?}", init.candidate);
            self.pc
                .add_ice_candidate(init)
                .await
                .map_err(|source| PeerError::SdpRejected { context, source })?;
            added += 1;
        }
        if ignored > 0 {
            tracing::warn!(
                "{ignored} trickled candidates ignored: at most {MAX_REMOTE_CANDIDATES} per session"
            );
        }
        Ok(added)
    }
}

/// The candidates of an SDP fragment (`application/trickle-ice-sdpfrag`), in order: each
/// `a=candidate` line with the `a=mid` and `a=ice-ufrag` before it (m-line 0 without a mid);
/// one naming a component over 256 is left out ([`shape::valid_component`]).
pub(crate) fn fragment_candidates(fragment: &str) -> Vec<RTCIceCandidateInit> {
    let (mut mid, mut ufrag, mut out) = (None, None, Vec::new());
    for line in fragment.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(v) = line.strip_prefix("a=mid:") {
            mid = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
            ufrag = Some(v.to_owned());
        } else if let Some(c) = line.strip_prefix("a=") {
            if c.starts_with("candidate:") {
                if !shape::valid_component(c) {
                    continue;
                }
                out.push(RTCIceCandidateInit {
                    candidate: c.to_owned(),
                    sdp_mid: mid.clone(),
                    sdp_mline_index: if mid.is_none() { Some(0) } else { None },
                    username_fragment: ufrag.clone(),
                    ..Default::default()
                });
            }
        }
    }
    out
}
