//! The client side of WHIP and WHEP: POST an offer, get the answer and the session's
//! resource; trickle to it; DELETE it when done. Redirects (307/308) are followed with the
//! method and body kept; 4xx/5xx become errors carrying the status and the server's words.
//! `http://` and `https://` (rustls on ring; the system's trust roots plus any CA files
//! given, for private or self-signed servers). Every request has a deadline
//! ([`REQUEST_TIMEOUT`]), and the bearer token goes only to the origin (scheme, host,
//! port) it was given for: not across a redirect to another origin, nor to a `Location`
//! on another origin.

use std::path::PathBuf;
use std::sync::Arc;

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, ETAG, IF_MATCH, LINK, LOCATION};
use reqwest::StatusCode;

use crate::link::LinkIceServer;
use crate::tls::TlsError;

const SDPFRAG: &str = "application/trickle-ice-sdpfrag";

/// How long a request may take, connecting and reading the answer included.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a WHIP/WHEP request failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    #[error("bad URL {0:?}: {1}")]
    BadUrl(String, String),
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{0}: the 201 response has no Location header")]
    NoLocation(String),
    /// A CA file that cannot be used, or https:// with nothing to trust.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A WHIP/WHEP client: one connection pool and one TLS trust setting for many sessions.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    /// Why https:// cannot work here (no trust roots at all), if it cannot.
    tls_unusable: Option<String>,
    /// The same trust for `wss://` call rooms (HTTP/1.1 only: a WebSocket upgrade).
    websocket_tls: Arc<rustls::ClientConfig>,
}

impl HttpClient {
    /// A client trusting the operating system's roots.
    pub fn new() -> Result<Self, ClientError> {
        Self::with_ca_certs(&[])
    }

    /// A client trusting the operating system's roots and every certificate in the PEM
    /// files `ca_files` (a private CA, or a self-signed server's own certificate).
    pub fn with_ca_certs(ca_files: &[PathBuf]) -> Result<Self, ClientError> {
        let tls = crate::tls::client_tls(ca_files)?;
        let mut websocket_tls = tls.config.clone();
        websocket_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client = reqwest::Client::builder()
            // reqwest drops Authorization when a redirect leaves the origin.
            .redirect(reqwest::redirect::Policy::limited(5))
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .tls_backend_preconfigured(tls.config)
            .build()
            .map_err(|e| transport("(client set-up)", e))?;
        Ok(HttpClient {
            client,
            tls_unusable: tls.unusable,
            websocket_tls: Arc::new(websocket_tls),
        })
    }

    /// TLS for a `wss://` connection to `url` (a call room) with this client's trust: the
    /// system's roots plus its CA files. An error when there is nothing to trust.
    pub fn websocket_tls(&self, url: &str) -> Result<Arc<rustls::ClientConfig>, ClientError> {
        match &self.tls_unusable {
            None => Ok(Arc::clone(&self.websocket_tls)),
            Some(why) => Err(ClientError::Tls(TlsError::Config(format!("{url}: {why}")))),
        }
    }

    /// The ICE servers a WHIP or WHEP endpoint offers before any session (RFC 9725
    /// section 4.6: `OPTIONS` on the endpoint, `Link` headers in the reply), with the
    /// credentials the server gives this token. A server that answers `OPTIONS` with an
    /// error or no `Link` headers offers none; only an unusable URL or an unreachable
    /// server is an error.
    pub async fn ice_servers(
        &self,
        url: &str,
        token: Option<&str>,
    ) -> Result<Vec<LinkIceServer>, ClientError> {
        let parsed = self.endpoint_url(url)?;
        let mut request = self.client.request(reqwest::Method::OPTIONS, parsed);
        if let Some(t) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let response = request.send().await.map_err(|e| transport(url, e))?;
        if !response.status().is_success() {
            return Ok(Vec::new());
        }
        Ok(ice_servers(response.headers()))
    }

    /// The underlying HTTP client (the Janus client's transport shares its pool and trust).
    pub(crate) fn reqwest(&self) -> &reqwest::Client {
        &self.client
    }

    /// `url` parsed, when it is http:// or https:// that this client can reach.
    pub(crate) fn endpoint_url(&self, url: &str) -> Result<reqwest::Url, ClientError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| ClientError::BadUrl(url.to_owned(), e.to_string()))?;
        match (parsed.scheme(), &self.tls_unusable) {
            ("http", _) | ("https", None) => Ok(parsed),
            ("https", Some(why)) => {
                Err(ClientError::Tls(TlsError::Config(format!("{url}: {why}"))))
            }
            (other, _) => Err(ClientError::BadUrl(
                url.to_owned(),
                format!("unsupported scheme {other:?} (http or https)"),
            )),
        }
    }

    /// POSTs `offer` (SDP) to a WHIP or WHEP endpoint and returns the session.
    pub async fn post_offer(
        &self,
        url: &str,
        token: Option<&str>,
        offer: &str,
    ) -> Result<HttpSession, ClientError> {
        let parsed = self.endpoint_url(url)?;
        let client = self.client.clone();
        let mut request = client
            .post(parsed.clone())
            .header(CONTENT_TYPE, "application/sdp")
            .body(offer.to_owned());
        if let Some(t) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let response = check(url, request.send().await.map_err(|e| transport(url, e))?).await?;
        if response.status() != StatusCode::CREATED {
            return Err(ClientError::Status {
                url: url.to_owned(),
                status: response.status().as_u16(),
                message: "expected 201 Created".into(),
            });
        }
        // Location is relative to the URL that answered (after redirects).
        let base = response.url().clone();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| base.join(l).ok())
            .ok_or_else(|| ClientError::NoLocation(url.to_owned()))?;
        let ice = ice_servers(response.headers());
        let etag = etag(response.headers());
        let answer = response.text().await.map_err(|e| transport(url, e))?;
        // The session's resource never moves: decide once whether it may see the token,
        // which was given for the endpoint's origin only.
        let token = token.filter(|_| {
            let same = location.origin() == parsed.origin();
            if !same {
                tracing::warn!(
                    "{location}: not sending the bearer token to another origin than {}",
                    parsed.origin().ascii_serialization()
                );
            }
            same
        });
        Ok(HttpSession {
            client,
            token: token.map(str::to_owned),
            location: location.to_string(),
            answer,
            ice_servers: ice,
            etag,
        })
    }
}

fn etag(headers: &HeaderMap) -> Option<String> {
    headers
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A session created on a WHIP or WHEP server.
#[derive(Debug, Clone)]
pub struct HttpSession {
    client: reqwest::Client,
    /// The bearer token, kept only when the session's resource is on the origin it was
    /// given for (the endpoint's).
    token: Option<String>,
    /// The session's resource (absolute URL), for PATCH and DELETE.
    pub location: String,
    /// The server's answer SDP.
    pub answer: String,
    /// The ICE servers the server offered in its `Link: <url>; rel="ice-server"` headers
    /// (RFC 9725 section 4.6), with their credentials.
    pub ice_servers: Vec<LinkIceServer>,
    /// The session's entity tag (`ETag`, quotes included), sent as `If-Match` with
    /// trickled candidates; an ICE restart replaces it.
    pub etag: Option<String>,
}

/// A transport failure with its causes (reqwest's own message is only "error sending
/// request"; the reason, e.g. an untrusted certificate, is further down the chain).
fn transport(url: &str, e: reqwest::Error) -> ClientError {
    ClientError::Transport {
        url: url.to_owned(),
        message: with_causes(&e),
    }
}

/// An error's message followed by each of its causes (`a: b: c`).
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

async fn check(url: &str, response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        let message = response.text().await.unwrap_or_default().trim().to_owned();
        return Err(ClientError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            message,
        });
    }
    Ok(response)
}

fn ice_servers(headers: &HeaderMap) -> Vec<LinkIceServer> {
    LinkIceServer::parse_all(headers.get_all(LINK).iter().filter_map(|v| v.to_str().ok()))
}

/// POSTs `offer` (SDP) to a WHIP or WHEP endpoint and returns the session, trusting the
/// operating system's roots for https:// (see [`HttpClient`] for more).
pub async fn post_offer(
    url: &str,
    token: Option<&str>,
    offer: &str,
) -> Result<HttpSession, ClientError> {
    HttpClient::new()?.post_offer(url, token, offer).await
}

impl HttpSession {
    /// `request` to the session's resource with the token, if that is on the token's
    /// origin (a server may name a resource anywhere; the token is not for elsewhere).
    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => request.header(AUTHORIZATION, format!("Bearer {t}")),
            None => request,
        }
    }

    /// Sends trickled candidates (`application/trickle-ice-sdpfrag`), with `If-Match`
    /// naming the session's entity tag when the server gave one.
    pub async fn trickle(&self, fragment: &str) -> Result<(), ClientError> {
        let mut request = self
            .client
            .patch(&self.location)
            .header(CONTENT_TYPE, SDPFRAG)
            .body(fragment.to_owned());
        if let Some(tag) = &self.etag {
            request = request.header(IF_MATCH, tag);
        }
        self.send(request).await.map(|_| ())
    }

    /// Restarts ICE (RFC 9725 section 4.3.3): PATCHes our new `a=ice-ufrag`/`a=ice-pwd`
    /// (and candidates) with `If-Match: *` and returns the server's fragment — its new
    /// credentials and candidates. The session's entity tag becomes the one in the answer.
    pub async fn restart_ice(&mut self, fragment: &str) -> Result<String, ClientError> {
        let request = self
            .client
            .patch(&self.location)
            .header(CONTENT_TYPE, SDPFRAG)
            .header(IF_MATCH, "*")
            .body(fragment.to_owned());
        let response = self.send(request).await?;
        if response.status() != StatusCode::OK {
            return Err(ClientError::Status {
                url: self.location.clone(),
                status: response.status().as_u16(),
                message: "expected 200 OK with the server's ICE fragment".into(),
            });
        }
        if let Some(tag) = etag(response.headers()) {
            self.etag = Some(tag);
        }
        response
            .text()
            .await
            .map_err(|e| transport(&self.location, e))
    }

    /// Ends the session (DELETE).
    pub async fn end(&self) -> Result<(), ClientError> {
        self.send(self.client.delete(&self.location))
            .await
            .map(|_| ())
    }

    /// Sends a request on the session's resource, with the token; 4xx/5xx are errors.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = self
            .authorized(request)
            .send()
            .await
            .map_err(|e| transport(&self.location, e))?;
        check(&self.location, response).await
    }
}
