//! WHIP and WHEP sessions we open on another server: publishing tracks to it, viewing a
//! stream from it, restarting ICE and ending the session.

use usermedia_signaling::{ClientError, HttpClient, HttpSession, LinkIceServer};

use crate::constraints::MediaKind;
use crate::encode::pipeline::TrackEncoders;
use crate::peer::{IceServer, Peer, PeerError, PeerFactory};

/// Why publishing to or viewing from a WHIP/WHEP server, or joining a call room or a
/// Janus VideoRoom, failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Our side of the connection.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// The HTTP exchange with the server (its status and message, the transport, TLS).
    #[error(transparent)]
    Http(#[from] ClientError),
    /// The Janus API: its error code and reason, the transport, a timeout.
    #[error(transparent)]
    Janus(#[from] usermedia_signaling::janus::JanusError),
    /// The call room's WebSocket at `url`: cannot connect, or the socket failed.
    #[error("{url}: {source}")]
    WebSocket {
        url: String,
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
}

/// A session we opened on another WHIP or WHEP server.
pub struct RemoteSession {
    pub peer: Peer,
    pub http: HttpSession,
}

impl RemoteSession {
    /// Restarts ICE (RFC 9725 section 4.3.3): new local credentials and candidates sent
    /// with `PATCH` + `If-Match: *`, the server's new ones applied from its `200`. Media
    /// keeps its negotiated codecs and DTLS session.
    pub async fn restart_ice(&mut self) -> Result<(), SessionError> {
        let ours = self.peer.restart_ice_offer().await?;
        let theirs = self.http.restart_ice(&ours).await?;
        self.peer.accept_ice_restart(&theirs).await?;
        Ok(())
    }

    /// Ends it: DELETE on the server, then the connection closes.
    pub async fn end(self) -> Result<(), SessionError> {
        let deleted = self.http.end().await;
        self.peer.close().await;
        deleted.map_err(SessionError::from)
    }
}

/// Publishes `tracks` (`&EncodedTrack`s or `&TrackEncoders`: the offer lists each video
/// track's codecs, most preferred first, and the answer's choice decides which encoder
/// feeds the session) to a WHIP endpoint (`url`, e.g. `http://sfu/whip/room1`), trusting
/// the system's roots for https://.
pub async fn publish_whip(
    factory: &PeerFactory,
    url: &str,
    token: Option<&str>,
    tracks: impl IntoIterator<Item = impl Into<TrackEncoders>>,
) -> Result<RemoteSession, SessionError> {
    let client = HttpClient::new()?;
    publish_whip_with(&client, factory, url, token, tracks).await
}

/// [`publish_whip`] through `client` (e.g. one trusting a private CA for https://).
pub async fn publish_whip_with(
    client: &HttpClient,
    factory: &PeerFactory,
    url: &str,
    token: Option<&str>,
    tracks: impl IntoIterator<Item = impl Into<TrackEncoders>>,
) -> Result<RemoteSession, SessionError> {
    let peer = peer_for(client, factory, url, token).await?;
    for t in tracks {
        peer.add_track(t).await?;
    }
    let offer = peer.create_offer().await?;
    let http = client.post_offer(url, token, &offer).await?;
    peer.accept_answer(&http.answer).await?;
    Ok(RemoteSession { peer, http })
}

/// Views a stream from a WHEP endpoint; its tracks arrive as [`Peer::next_remote_track`].
pub async fn view_whep(
    factory: &PeerFactory,
    url: &str,
    token: Option<&str>,
) -> Result<RemoteSession, SessionError> {
    let client = HttpClient::new()?;
    view_whep_with(&client, factory, url, token).await
}

/// [`view_whep`] through `client` (e.g. one trusting a private CA for https://).
pub async fn view_whep_with(
    client: &HttpClient,
    factory: &PeerFactory,
    url: &str,
    token: Option<&str>,
) -> Result<RemoteSession, SessionError> {
    let peer = peer_for(client, factory, url, token).await?;
    peer.add_receiver(MediaKind::Video).await?;
    peer.add_receiver(MediaKind::Audio).await?;
    let offer = peer.create_offer().await?;
    let http = client.post_offer(url, token, &offer).await?;
    peer.accept_answer(&http.answer).await?;
    Ok(RemoteSession { peer, http })
}

/// A peer for a session at `url`, using the ICE servers the server advertises (RFC 9725
/// section 4.6, asked with `OPTIONS` before the offer so that they are gathered from) as
/// well as our own. A server that advertises none, or does not answer `OPTIONS`, gets the
/// configured ones; an advertised server that is unusable (a bad URL, TURN without
/// credentials) is skipped with a warning.
async fn peer_for(
    client: &HttpClient,
    factory: &PeerFactory,
    url: &str,
    token: Option<&str>,
) -> Result<Peer, SessionError> {
    let advertised = client.ice_servers(url, token).await.unwrap_or_else(|e| {
        tracing::debug!("{url}: no ICE servers advertised: {e}");
        Vec::new()
    });
    Ok(factory
        .create_with_ice_servers(usable_ice_servers(url, advertised))
        .await?)
}

/// The advertised servers our peers can be configured with.
fn usable_ice_servers(url: &str, links: Vec<LinkIceServer>) -> Vec<IceServer> {
    links
        .into_iter()
        .map(|l| IceServer {
            urls: vec![l.url],
            username: l.username.unwrap_or_default(),
            credential: l.credential.unwrap_or_default(),
        })
        .filter(|s| match s.check() {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!("{url}: advertised ICE server skipped: {e}");
                false
            }
        })
        .collect()
}
