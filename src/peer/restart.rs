//! ICE restarts the WHIP/WHEP way (RFC 9725 section 4.3.3): no new offer/answer over HTTP,
//! only ICE credentials and candidates exchanged as `application/trickle-ice-sdpfrag`, and
//! both sides keep every other part of the negotiated session.
//!
//! webrtc-rs 0.21 restarts ICE through JSEP only: the offerer through `restart_ice()` and
//! its next offer; the answerer implicitly, when a re-offer carries new remote credentials
//! (`set_remote_description` stages and applies the restart, and the next answer carries
//! fresh local credentials). An answerer cannot start a restart on its own. So each side
//! turns the fragment it receives into the description JSEP expects — the last remote
//! description with the ICE credentials replaced and the old candidates dropped — and
//! turns its own new local description back into a fragment.

use std::time::Duration;

use webrtc::peer_connection::{RTCSdpType, RTCSessionDescription};

use super::{Peer, PeerError};

/// How long re-gathering after a restart may take before we answer with the candidates
/// the description holds (host candidates are kept across the restart).
const REGATHER_TIMEOUT: Duration = Duration::from_secs(3);

/// The `a=ice-ufrag` and `a=ice-pwd` values of an SDP or SDP fragment (the first of each).
pub fn ice_credentials(sdp: &str) -> Option<(String, String)> {
    let value = |name: &str| {
        sdp.lines()
            .map(|l| l.trim_end_matches('\r'))
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    Some((value("a=ice-ufrag:")?, value("a=ice-pwd:")?))
}

/// `sdp` with new ICE credentials everywhere, no candidates (the new generation's come
/// separately) and the `o=` session version moved on, as a changed description needs.
pub(crate) fn with_credentials(sdp: &str, ufrag: &str, pwd: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("a=ice-ufrag:") {
            out.push_str(&format!("a=ice-ufrag:{ufrag}"));
        } else if line.starts_with("a=ice-pwd:") {
            out.push_str(&format!("a=ice-pwd:{pwd}"));
        } else if line.starts_with("a=candidate:") || line == "a=end-of-candidates" {
            continue;
        } else if let Some(origin) = line.strip_prefix("o=") {
            let mut fields: Vec<String> = origin.split(' ').map(str::to_owned).collect();
            if let Some(version) = fields.get_mut(2) {
                if let Ok(v) = version.parse::<u64>() {
                    *version = v.wrapping_add(1).to_string();
                }
            }
            out.push_str("o=");
            out.push_str(&fields.join(" "));
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out
}

/// The fragment announcing a description's ICE generation (RFC 8840 / RFC 9725): its
/// credentials, then the first m-line with its mid and candidates (BUNDLE: the first
/// m-section carries the transport).
pub fn fragment_of(sdp: &str) -> Result<String, PeerError> {
    let (ufrag, pwd) = ice_credentials(sdp)
        .ok_or_else(|| PeerError::Sdp("the local description has no ICE credentials".into()))?;
    let mut out = format!("a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n");
    let mut sections = 0;
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("m=") {
            sections += 1;
            if sections > 1 {
                break;
            }
            out.push_str(line);
            out.push_str("\r\n");
        } else if sections == 1 && (line.starts_with("a=mid:") || line.starts_with("a=candidate:"))
        {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("a=end-of-candidates\r\n");
    Ok(out)
}

impl Peer {
    /// The remote side's current ICE username fragment.
    pub async fn remote_ice_ufrag(&self) -> Option<String> {
        let remote = self.pc.current_remote_description().await?;
        ice_credentials(&remote.sdp).map(|(ufrag, _)| ufrag)
    }

    /// Waits for the gathering that follows `set_local_description` after a restart and
    /// returns the local description.
    async fn regathered_description(&self) -> Result<String, PeerError> {
        match self.gathered_description(REGATHER_TIMEOUT).await {
            Err(PeerError::GatheringTimeout(_)) => {
                tracing::debug!(
                    "ICE restart: re-gathering still running; answering with the kept candidates"
                );
                self.pc
                    .local_description()
                    .await
                    .map(|d| self.finish.rewrite(d.sdp))
                    .ok_or(PeerError::NoLocalDescription)
            }
            other => other,
        }
    }

    fn expect_gathering(&self) {
        if let Ok(mut done) = self.events.gathering_complete.lock() {
            *done = false;
        }
    }

    /// Answers an ICE restart the remote offerer asked for with `fragment` (its new
    /// `a=ice-ufrag`, `a=ice-pwd` and candidates): our ICE agent restarts with fresh
    /// credentials, and the fragment returned carries them with our candidates. For the
    /// answering side of a session (a WHIP/WHEP server).
    pub async fn restart_ice_answer(&self, fragment: &str) -> Result<String, PeerError> {
        let (credentials, remote) = self
            .restart_inputs(fragment, "an ICE restart needs a=ice-ufrag and a=ice-pwd")
            .await?;
        if remote.sdp_type != RTCSdpType::Offer {
            return Err(PeerError::Sdp(
                "this side made the offer; it restarts ICE with restart_ice_offer".into(),
            ));
        }
        if ice_credentials(&remote.sdp).as_ref() == Some(&credentials) {
            return Err(PeerError::Sdp(
                "the fragment carries the current ICE credentials; a restart needs new ones".into(),
            ));
        }
        self.set_restarted_remote(RTCSdpType::Offer, &remote.sdp, &credentials, fragment)
            .await?;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(PeerError::setup("cannot answer the ICE restart"))?;
        self.set_restarted_local(answer).await
    }

    /// Starts an ICE restart from the offering side (a WHIP/WHEP client): new local
    /// credentials, gathered; returns the fragment to send (`PATCH` with `If-Match: *`).
    /// Media keeps flowing on the old pair until the answer's fragment is applied with
    /// [`Peer::accept_ice_restart`].
    pub async fn restart_ice_offer(&self) -> Result<String, PeerError> {
        self.pc
            .restart_ice()
            .await
            .map_err(PeerError::setup("cannot restart ICE"))?;
        let offer = self
            .pc
            .create_offer(None)
            .await
            .map_err(PeerError::setup("cannot create the restart offer"))?;
        self.set_restarted_local(offer).await
    }

    /// Applies the answering side's fragment to the restart [`Peer::restart_ice_offer`]
    /// started: its new credentials and candidates; connectivity checks start on them.
    pub async fn accept_ice_restart(&self, fragment: &str) -> Result<(), PeerError> {
        let (credentials, remote) = self
            .restart_inputs(
                fragment,
                "the restart answer lacks a=ice-ufrag or a=ice-pwd",
            )
            .await?;
        self.set_restarted_remote(RTCSdpType::Answer, &remote.sdp, &credentials, fragment)
            .await
    }

    /// The new ICE credentials `fragment` carries (`missing`: the error when it lacks
    /// them) and the negotiated remote description the restart starts from.
    async fn restart_inputs(
        &self,
        fragment: &str,
        missing: &str,
    ) -> Result<((String, String), RTCSessionDescription), PeerError> {
        let credentials =
            ice_credentials(fragment).ok_or_else(|| PeerError::Sdp(missing.to_owned()))?;
        let remote = self
            .pc
            .current_remote_description()
            .await
            .ok_or_else(|| PeerError::Sdp("no negotiated session to restart".into()))?;
        Ok((credentials, remote))
    }

    /// Sets the negotiated remote description `remote` again with the new `(ufrag, pwd)`
    /// and without the old generation's candidates — as an `Offer`, the re-offer JSEP
    /// expects of the remote offerer, or otherwise as the `Answer` to our own restart —
    /// then adds the fragment's candidates (up to
    /// [`MAX_REMOTE_CANDIDATES`](super::MAX_REMOTE_CANDIDATES) for the new generation).
    async fn set_restarted_remote(
        &self,
        sdp_type: RTCSdpType,
        remote: &str,
        (ufrag, pwd): &(String, String),
        fragment: &str,
    ) -> Result<(), PeerError> {
        let sdp = with_credentials(remote, ufrag, pwd);
        let (description, what) = match sdp_type {
            RTCSdpType::Offer => (RTCSessionDescription::offer(sdp), "re-offer"),
            _ => (RTCSessionDescription::answer(sdp), "answer"),
        };
        let description = description.map_err(PeerError::sdp(format!("cannot read the {what}")))?;
        self.pc
            .set_remote_description(description)
            .await
            .map_err(PeerError::sdp(format!("{what} with the new credentials")))?;
        // The old generation's candidates are gone: the new one has the whole allowance.
        self.remote_candidates
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.add_candidates(fragment).await.map(|_| ())
    }

    /// Sets our answer or offer of the restart (fresh credentials) as the local
    /// description and returns the fragment announcing it, once gathered.
    async fn set_restarted_local(
        &self,
        description: RTCSessionDescription,
    ) -> Result<String, PeerError> {
        self.expect_gathering();
        self.pc
            .set_local_description(description)
            .await
            .map_err(PeerError::setup("cannot apply our restarted description"))?;
        fragment_of(&self.regathered_description().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 123 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=ice-ufrag:old\r\na=ice-pwd:oldpwd\r\n\
        a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=ice-ufrag:old\r\na=ice-pwd:oldpwd\r\n\
        a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n";

    #[test]
    fn new_credentials_replace_the_old_and_drop_candidates() {
        let s = with_credentials(SDP, "nu", "npwd");
        assert!(!s.contains("old"), "{s}");
        assert_eq!(s.matches("a=ice-ufrag:nu\r\n").count(), 2);
        assert_eq!(s.matches("a=ice-pwd:npwd\r\n").count(), 2);
        assert!(!s.contains("a=candidate") && !s.contains("end-of-candidates"));
        assert!(s.contains("o=- 123 3 IN IP4"), "{s}");
        assert!(s.contains("m=audio 9") && s.contains("a=mid:1"));
    }

    #[test]
    fn the_fragment_holds_credentials_and_the_first_section() {
        let f = fragment_of(SDP).unwrap();
        assert_eq!(
            f,
            "a=ice-ufrag:old\r\na=ice-pwd:oldpwd\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\n\
             a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n"
        );
        assert_eq!(
            ice_credentials(&f),
            Some(("old".to_owned(), "oldpwd".to_owned()))
        );
        assert!(fragment_of("v=0\r\n").is_err());
    }
}
