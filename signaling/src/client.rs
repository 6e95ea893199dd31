//! The client side of WHIP and WHEP: POST an offer, get the answer and the session's
//! resource; trickle to it; DELETE it when done. Redirects (307/308) are followed with the
//! method and body kept; 4xx/5xx become errors carrying the status and the server's words.

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, LINK, LOCATION};
use reqwest::StatusCode;

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
}

/// A session created on a WHIP or WHEP server.
#[derive(Debug, Clone)]
pub struct HttpSession {
    client: reqwest::Client,
    token: Option<String>,
    /// The session's resource (absolute URL), for PATCH and DELETE.
    pub location: String,
    /// The server's answer SDP.
    pub answer: String,
    /// `Link: <url>; rel="ice-server"` entries the server offered (STUN/TURN URLs).
    pub ice_servers: Vec<String>,
}

fn transport(url: &str, e: reqwest::Error) -> ClientError {
    ClientError::Transport {
        url: url.to_owned(),
        message: e.to_string(),
    }
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

fn ice_servers(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|link| link.contains("rel=\"ice-server\""))
        .filter_map(|link| {
            let start = link.find('<')? + 1;
            let end = link.find('>')?;
            link.get(start..end).map(str::to_owned)
        })
        .collect()
}

/// POSTs `offer` (SDP) to a WHIP or WHEP endpoint and returns the session.
pub async fn post_offer(
    url: &str,
    token: Option<&str>,
    offer: &str,
) -> Result<HttpSession, ClientError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| ClientError::BadUrl(url.to_owned(), e.to_string()))?;
    if parsed.scheme() != "http" {
        return Err(ClientError::BadUrl(
            url.to_owned(),
            "only http:// is supported in this build (no TLS client yet)".into(),
        ));
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(|e| transport(url, e))?;
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
    let answer = response.text().await.map_err(|e| transport(url, e))?;
    Ok(HttpSession {
        client,
        token: token.map(str::to_owned),
        location: location.to_string(),
        answer,
        ice_servers: ice,
    })
}

impl HttpSession {
    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => request.header(AUTHORIZATION, format!("Bearer {t}")),
            None => request,
        }
    }

    /// Sends trickled candidates (`application/trickle-ice-sdpfrag`).
    pub async fn trickle(&self, fragment: &str) -> Result<(), ClientError> {
        let request = self
            .client
            .patch(&self.location)
            .header(CONTENT_TYPE, "application/trickle-ice-sdpfrag")
            .body(fragment.to_owned());
        self.send(request).await
    }

    /// Ends the session (DELETE).
    pub async fn end(&self) -> Result<(), ClientError> {
        self.send(self.client.delete(&self.location)).await
    }

    /// Sends a request on the session's resource, with the token; 4xx/5xx are errors.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(), ClientError> {
        let response = self
            .authorized(request)
            .send()
            .await
            .map_err(|e| transport(&self.location, e))?;
        check(&self.location, response).await.map(|_| ())
    }
}
