//! A minimal HTTP/1.1 client for tests of a server on loopback: one request per connection
//! (`Connection: close`), the response read to its end, a chunked body decoded. Raw
//! sockets rather than the crate's `HttpClient`, so that a test sends exactly the headers
//! and bytes it names and sees every status as it is.
//!
//! One file for two packages: the signaling crate's tests reach it as `common::http`
//! (`tests/common/mod.rs`, as in the root package); the root package's `tests/common`
//! includes it by `#[path]`. It lives here, with the crate whose server it speaks to, so
//! that this crate stays self-contained and only the dependent package reaches across.

// Each test binary uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const SDP: (&str, &str) = ("Content-Type", "application/sdp");
pub const FRAG: (&str, &str) = ("Content-Type", "application/trickle-ice-sdpfrag");

pub struct Response {
    pub status: u16,
    /// Names lowercased.
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// One request on its own connection; the raw response text. A failed read (a server that
/// resets the connection after answering) ends the text where it stopped.
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl AsRef<[u8]>,
) -> String {
    let body = body.as_ref();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// One request on its own connection: status (0 when there is no status line), headers
/// and body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl AsRef<[u8]>,
) -> Response {
    parse(&raw(addr, method, path, headers, body).await)
}

pub async fn get(addr: SocketAddr, path: &str) -> Response {
    http(addr, "GET", path, &[], "").await
}

/// An SDP offer POSTed, with `Authorization: Bearer <token>` when there is a token.
pub async fn post_offer(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    offer: impl AsRef<[u8]>,
) -> Response {
    authorized(addr, "POST", path, &[SDP], token, offer).await
}

/// A trickle-ice-sdpfrag PATCH, with `If-Match` when there is a tag.
pub async fn patch_fragment(
    addr: SocketAddr,
    path: &str,
    if_match: Option<&str>,
    fragment: &str,
) -> Response {
    let mut headers = vec![FRAG];
    headers.extend(if_match.map(|tag| ("If-Match", tag)));
    http(addr, "PATCH", path, &headers, fragment).await
}

/// A DELETE, with `Authorization: Bearer <token>` when there is a token.
pub async fn delete(addr: SocketAddr, path: &str, token: Option<&str>) -> Response {
    authorized(addr, "DELETE", path, &[], token, "").await
}

/// [`http`] with `Authorization: Bearer <token>` after `headers` when there is a token.
pub async fn authorized(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    token: Option<&str>,
    body: impl AsRef<[u8]>,
) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = headers.to_vec();
    headers.extend(auth.as_deref().map(|a| ("Authorization", a)));
    http(addr, method, path, &headers, body).await
}

fn parse(text: &str) -> Response {
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Response {
        status,
        headers,
        body,
    }
}

/// A chunked body's data, up to the last chunk or the first that is cut short.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}
