//! A Janus session over the HTTP long-poll transport: create it, keep one long poll open
//! (events routed by the [`Matcher`]), a keepalive every 25 s, attach handles, send
//! requests and wait for their results, destroy it. Everything from the network is
//! bounded: each reply's size, the events per poll and unread, every wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};

use super::matcher::{Matcher, Route};
use super::protocol::{bounded, Incoming, JanusError, Jsep, PluginData};
use crate::HttpClient;

/// The largest reply read from Janus (a long poll brings up to [`MAX_EVENTS_PER_POLL`]
/// events, an SDP each at most).
pub const MAX_REPLY_BYTES: usize = 512 * 1024;
/// Events one long poll asks for (`maxev`).
pub const MAX_EVENTS_PER_POLL: usize = 10;
/// Events received and not yet read, at most; beyond, the session fails
/// ([`JanusError::TooManyEvents`]) rather than grow.
pub const MAX_UNREAD_EVENTS: usize = 256;
/// How long a request's reply, or an asynchronous request's event, may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Janus holds a long poll up to 30 s; ours gives up after this.
const POLL_TIMEOUT: Duration = Duration::from_secs(40);
/// How often a keepalive is sent (Janus's default session timeout is 60 s).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(25);
/// Consecutive failed long polls before the session counts as lost.
const POLL_RETRIES: u32 = 2;

/// A plugin's answer to a request: its data, and the JSEP that came with it.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginReply {
    pub data: Value,
    pub jsep: Option<Jsep>,
}

/// Something that happened on a handle, unasked.
#[derive(Debug, Clone, PartialEq)]
pub struct HandleEvent {
    pub handle: u64,
    pub message: Incoming,
}

struct Inner {
    http: reqwest::Client,
    /// `…/janus/SESSION`.
    session_url: String,
    id: u64,
    matcher: std::sync::Mutex<Matcher<oneshot::Sender<Incoming>>>,
    next_transaction: AtomicU64,
    /// Why the session ended, once it has.
    ended: watch::Sender<Option<JanusError>>,
}

/// A Janus session: requests and handles on it. [`destroy`](Self::destroy) ends it;
/// dropping it stops its long poll and keepalive and sends the destroy in the background.
pub struct JanusSession {
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The session's unasked events, in order, and its end.
pub struct JanusEvents {
    events: mpsc::Receiver<HandleEvent>,
    ended: watch::Receiver<Option<JanusError>>,
}

impl JanusEvents {
    /// The next event on any handle; the reason once the session ended.
    pub async fn next(&mut self) -> Result<HandleEvent, JanusError> {
        let (events, ended) = (&mut self.events, &mut self.ended);
        let next = tokio::select! {
            biased;
            event = events.recv() => event,
            _ = ended.wait_for(Option::is_some) => None,
        };
        next.ok_or_else(|| self.reason())
    }

    fn reason(&self) -> JanusError {
        self.ended
            .borrow()
            .clone()
            .unwrap_or_else(|| JanusError::SessionEnded("closed".into()))
    }
}

impl JanusSession {
    /// Creates a session on the Janus HTTP API at `url` (e.g. `http://127.0.0.1:8088/janus`)
    /// through `client` (its TLS trust for https://) and starts its long poll and keepalive.
    pub async fn create(
        client: &HttpClient,
        url: &str,
    ) -> Result<(JanusSession, JanusEvents), JanusError> {
        let parsed = client
            .endpoint_url(url)
            .map_err(|e| JanusError::BadUrl(url.to_owned(), e.to_string()))?;
        let base = parsed.as_str().trim_end_matches('/').to_owned();
        let http = client.reqwest().clone();
        let body = json!({"janus": "create", "transaction": "create"});
        let id = match post(&http, &base, &body, "create").await? {
            Incoming::Success { data: Some(d), .. } => d.id,
            other => return Err(unexpected("create", &other)),
        };
        let (ended, ended_rx) = watch::channel(None);
        let inner = Arc::new(Inner {
            http,
            session_url: format!("{base}/{id}"),
            id,
            matcher: std::sync::Mutex::new(Matcher::default()),
            next_transaction: AtomicU64::new(1),
            ended,
        });
        let (tx, events) = mpsc::channel(MAX_UNREAD_EVENTS);
        let tasks = vec![
            tokio::spawn(long_poll(Arc::clone(&inner), tx)),
            tokio::spawn(keepalive(Arc::clone(&inner))),
        ];
        let events = JanusEvents {
            events,
            ended: ended_rx,
        };
        Ok((JanusSession { inner, tasks }, events))
    }

    /// The session's id.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Attaches a handle to `plugin` (e.g. `janus.plugin.videoroom`); returns its id.
    pub async fn attach(&self, plugin: &str) -> Result<u64, JanusError> {
        let body = json!({"janus": "attach", "plugin": plugin});
        match self.inner.request(None, body, "attach").await? {
            Incoming::Success { data: Some(d), .. } => Ok(d.id),
            other => Err(unexpected("attach", &other)),
        }
    }

    /// Sends a plugin message on `handle` and returns the plugin's reply: at once for a
    /// synchronous request, or the event that follows the `ack` for an asynchronous one.
    pub async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Jsep>,
        request: &'static str,
    ) -> Result<PluginReply, JanusError> {
        let mut message = json!({"janus": "message", "body": body});
        if let Some(j) = jsep {
            message["jsep"] = serde_json::to_value(j).unwrap_or(Value::Null);
        }
        match self.inner.request(Some(handle), message, request).await? {
            Incoming::Success {
                plugindata: Some(PluginData { data, .. }),
                ..
            } => Ok(PluginReply { data, jsep: None }),
            Incoming::Event {
                plugindata: Some(PluginData { data, .. }),
                jsep,
                ..
            } => Ok(PluginReply { data, jsep }),
            other => Err(unexpected(request, &other)),
        }
    }

    /// Detaches `handle` (its PeerConnection closes on the server).
    pub async fn detach(&self, handle: u64) -> Result<(), JanusError> {
        let body = json!({"janus": "detach"});
        self.inner.request(Some(handle), body, "detach").await?;
        Ok(())
    }

    /// Ends the session on the server (its handles with it) and stops polling.
    pub async fn destroy(&self) -> Result<(), JanusError> {
        let body = json!({"janus": "destroy"});
        let result = self.inner.request(None, body, "destroy").await.map(|_| ());
        self.stop("destroyed");
        result
    }

    /// Whether the session has ended (destroyed, lost, timed out on the server).
    pub fn ended(&self) -> Option<JanusError> {
        self.inner.ended.borrow().clone()
    }

    fn stop(&self, why: &str) {
        for t in &self.tasks {
            t.abort();
        }
        self.inner.end(JanusError::SessionEnded(why.into()));
    }
}

impl Drop for JanusSession {
    /// A session dropped while live is destroyed on the server in the background, when a
    /// runtime is there to do it (best effort: Janus's session timeout is the fallback).
    fn drop(&mut self) {
        let live = self.inner.ended.borrow().is_none();
        self.stop("dropped");
        if let (true, Ok(runtime)) = (live, tokio::runtime::Handle::try_current()) {
            let inner = Arc::clone(&self.inner);
            runtime.spawn(async move {
                let body = json!({"janus": "destroy", "transaction": inner.transaction()});
                let _ = post(&inner.http, &inner.session_url, &body, "destroy").await;
            });
        }
    }
}

impl Inner {
    fn transaction(&self) -> String {
        let n = self.next_transaction.fetch_add(1, Ordering::Relaxed);
        format!("um{}-{n}", self.id % 100_000)
    }

    /// Records why the session ended (the first reason stays) and fails every waiter.
    fn end(&self, why: JanusError) {
        self.ended.send_if_modified(|e| {
            if e.is_none() {
                *e = Some(why);
                true
            } else {
                false
            }
        });
        crate::sync_lock(&self.matcher).drain();
    }

    fn ended_reason(&self) -> JanusError {
        self.ended
            .borrow()
            .clone()
            .unwrap_or_else(|| JanusError::SessionEnded("closed".into()))
    }

    /// POSTs `body` to the session (`handle` None) or a handle, with a fresh transaction
    /// registered first; an `ack` is followed by waiting for the matching event.
    async fn request(
        &self,
        handle: Option<u64>,
        mut body: Value,
        request: &'static str,
    ) -> Result<Incoming, JanusError> {
        if let Some(e) = self.ended.borrow().clone() {
            return Err(e);
        }
        let tx = self.transaction();
        body["transaction"] = Value::String(tx.clone());
        let (waiter, result) = oneshot::channel();
        crate::sync_lock(&self.matcher)
            .register(tx.clone(), handle, waiter)
            .map_err(|_| JanusError::Unexpected {
                request,
                got: format!("{} requests already waiting", super::matcher::MAX_PENDING),
            })?;
        let url = match handle {
            Some(h) => format!("{}/{h}", self.session_url),
            None => self.session_url.clone(),
        };
        let reply = post(&self.http, &url, &body, request).await;
        match reply {
            Ok(Incoming::Ack { .. }) => {
                let waited = tokio::time::timeout(REQUEST_TIMEOUT, result).await;
                crate::sync_lock(&self.matcher).cancel(&tx);
                match waited {
                    Ok(Ok(Incoming::Error { error, .. })) => Err(JanusError::Janus {
                        request,
                        code: error.code,
                        reason: bounded(error.reason),
                    }),
                    Ok(Ok(event)) => Ok(event),
                    Ok(Err(_)) => Err(self.ended_reason()),
                    Err(_) => Err(JanusError::Timeout {
                        request,
                        after: REQUEST_TIMEOUT,
                    }),
                }
            }
            other => {
                crate::sync_lock(&self.matcher).cancel(&tx);
                other
            }
        }
    }
}

fn unexpected(request: &'static str, got: &Incoming) -> JanusError {
    let got = format!("{got:?}");
    JanusError::Unexpected {
        request,
        got: got.chars().take(200).collect(),
    }
}

fn transport(url: &str, e: reqwest::Error) -> JanusError {
    JanusError::Transport {
        url: url.to_owned(),
        message: crate::client::with_causes(&e),
    }
}

/// Reads a reply of at most [`MAX_REPLY_BYTES`].
async fn read_bounded(url: &str, mut response: reqwest::Response) -> Result<Vec<u8>, JanusError> {
    let status = response.status();
    if !status.is_success() {
        return Err(JanusError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    let too_large = || JanusError::TooLarge {
        url: url.to_owned(),
        limit: MAX_REPLY_BYTES,
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_REPLY_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(url, e))? {
        if body.len() + chunk.len() > MAX_REPLY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// POSTs a request; a `{"janus":"error"}` reply is an error naming its code and reason.
async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    request: &'static str,
) -> Result<Incoming, JanusError> {
    let response = http
        .post(url)
        .timeout(REQUEST_TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| transport(url, e))?;
    let bytes = read_bounded(url, response).await?;
    let reply: Incoming = serde_json::from_slice(&bytes).map_err(|e| JanusError::Malformed {
        url: url.to_owned(),
        message: e.to_string(),
    })?;
    match reply {
        Incoming::Error { error, .. } => Err(JanusError::Janus {
            request,
            code: error.code,
            reason: bounded(error.reason),
        }),
        other => Ok(other),
    }
}

/// The messages of one long-poll reply: an array (with `maxev`) or one object; at most
/// [`MAX_EVENTS_PER_POLL`].
pub(crate) fn poll_messages(url: &str, bytes: &[u8]) -> Result<Vec<Incoming>, JanusError> {
    let malformed = |message: String| JanusError::Malformed {
        url: url.to_owned(),
        message,
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
    let items = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    if items.len() > MAX_EVENTS_PER_POLL {
        return Err(malformed(format!(
            "{} events in one poll, asked for at most {MAX_EVENTS_PER_POLL}",
            items.len()
        )));
    }
    items
        .into_iter()
        .map(|v| serde_json::from_value(v).map_err(|e| malformed(e.to_string())))
        .collect()
}

/// The long poll: one GET open at all times, its events routed; ends the session when
/// Janus says it is gone or cannot be reached.
async fn long_poll(inner: Arc<Inner>, events: mpsc::Sender<HandleEvent>) {
    let url = format!("{}?maxev={MAX_EVENTS_PER_POLL}", inner.session_url);
    let mut failures = 0;
    loop {
        let reply = async {
            let response = inner
                .http
                .get(&url)
                .timeout(POLL_TIMEOUT)
                .send()
                .await
                .map_err(|e| transport(&url, e))?;
            let bytes = read_bounded(&url, response).await?;
            poll_messages(&url, &bytes)
        }
        .await;
        let messages = match reply {
            Ok(m) => {
                failures = 0;
                m
            }
            Err(e) => {
                failures += 1;
                if failures > POLL_RETRIES || matches!(e, JanusError::Status { .. }) {
                    inner.end(JanusError::SessionEnded(format!(
                        "the long poll failed: {e}"
                    )));
                    return;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
        };
        for message in messages {
            if let Incoming::Error { error, .. } = &message {
                if message.transaction().is_none() {
                    inner.end(JanusError::SessionEnded(format!(
                        "Janus error {}: {}",
                        error.code,
                        bounded(error.reason.clone())
                    )));
                    return;
                }
            }
            let route = crate::sync_lock(&inner.matcher).route(&message);
            match route {
                Route::Waiter(w) => {
                    let _ = w.send(message);
                }
                Route::Handle(handle) => {
                    if events.try_send(HandleEvent { handle, message }).is_err() {
                        inner.end(JanusError::TooManyEvents(MAX_UNREAD_EVENTS));
                        return;
                    }
                }
                Route::Session => {
                    if message == Incoming::Timeout {
                        inner.end(JanusError::SessionEnded("timed out on the server".into()));
                        return;
                    }
                }
            }
        }
    }
}

/// A keepalive every [`KEEPALIVE_INTERVAL`]; a refused one ends the session.
async fn keepalive(inner: Arc<Inner>) {
    loop {
        tokio::time::sleep(KEEPALIVE_INTERVAL).await;
        let body = json!({"janus": "keepalive", "transaction": inner.transaction()});
        if let Err(e) = post(&inner.http, &inner.session_url, &body, "keepalive").await {
            if matches!(e, JanusError::Janus { .. }) {
                inner.end(JanusError::SessionEnded(format!("keepalive refused: {e}")));
                return;
            }
            tracing::warn!("Janus keepalive: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_reply_is_an_array_or_one_object_and_bounded() {
        let one = poll_messages("u", br#"{"janus":"keepalive"}"#).unwrap();
        assert_eq!(one, vec![Incoming::Keepalive]);
        let two = poll_messages(
            "u",
            br#"[{"janus":"webrtcup","sender":3},{"janus":"hangup","sender":3,"reason":"x"}]"#,
        )
        .unwrap();
        assert_eq!(two.len(), 2);
        let many = format!("[{}]", [r#"{"janus":"keepalive"}"#; 11].join(","));
        let e = poll_messages("u", many.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("11 events"), "{e}");
        assert!(poll_messages("u", b"<html>").is_err());
    }
}
