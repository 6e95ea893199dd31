//! Serving the router over HTTP/1.1 with bounds: a header-read timeout (which also closes
//! idle keep-alive connections), a timeout on each request (its body and its handler), a
//! cap on open connections (one more gets a `503` and is closed, the others carry on), and
//! a shutdown that stops accepting, lets requests in flight finish for a short grace and
//! then drops every connection, whatever the clients hold open.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The bounds of [`serve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's headers must arrive within this, counted from when the connection is
    /// ready for one: a slow-loris socket, or an idle keep-alive one, is closed after it.
    pub header_read_timeout: Duration,
    /// A request's body and its handler must be done within this (`408` otherwise).
    pub request_timeout: Duration,
    /// Connections open at once (WebSocket ones included); one more gets `503`.
    pub max_connections: usize,
    /// On shutdown, how long requests in flight may take before every connection drops.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 512,
            shutdown_grace: Duration::from_secs(1),
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes; then returns
/// within [`HttpLimits::shutdown_grace`] (plus a few milliseconds). Each request carries
/// its client's address as [`ConnectInfo<SocketAddr>`].
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, close) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            (io, peer) = listener.accept() => {
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => {
                        let (app, limits, close) = (app.clone(), limits.clone(), close.clone());
                        connections.spawn(async move {
                            connection(io, peer, app, &limits, close).await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        tracing::warn!("{peer}: refused, {} connections open", limits.max_connections);
                        connections.spawn(refuse(io));
                    }
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = closing.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.shutdown_grace, drained)
        .await
        .is_err()
    {
        tracing::info!(
            "{} connections still open after the shutdown grace: dropped",
            connections.len()
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// One HTTP/1.1 connection until it ends, times out, or shutdown asks it to close.
async fn connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    limits: &HttpLimits,
    mut close: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let request_timeout = limits.request_timeout;
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            let request = request.map(axum::body::Body::new);
            match tokio::time::timeout(request_timeout, app.oneshot(request)).await {
                Ok(response) => response,
                Err(_) => Ok::<_, Infallible>(timed_out(request_timeout)),
            }
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("{peer}: {e}");
            }
        }
        true = async { close.wait_for(|closing| *closing).await.is_ok() } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

fn timed_out(after: Duration) -> axum::response::Response {
    let mut r = crate::http::problem(
        StatusCode::REQUEST_TIMEOUT,
        format!("the request took longer than {} s", after.as_secs()),
    );
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r.into_response()
}

/// A connection over the cap: a `503` with `Retry-After`, then closed (what the client
/// already sent is read and dropped first, for a second at most, so the reply is not
/// lost to a reset).
async fn refuse<I>(mut io: I)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    const BODY: &str = "too many connections; try again later\n";
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; \
         charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        io.write_all(reply.as_bytes()).await?;
        io.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            let n = io.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}
