//! Bearer tokens: one for every stream (`--token`) and per-stream ones (`--stream-token
//! NAME=TOKEN`, the token file). A token valid for another stream is `403`; a missing or
//! unknown token is `401`. Tokens are compared as SHA-256 digests in constant time, so
//! neither the content nor the length of a configured token leaks through timing.

use std::str::FromStr;

use axum::http::{header, HeaderMap};
use ring::digest::{digest, SHA256};
use subtle::{Choice, ConstantTimeEq};

use crate::http::ServerConfig;

/// A token valid for one stream only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamToken {
    pub stream: String,
    pub token: String,
}

impl FromStr for StreamToken {
    type Err = String;

    /// `NAME=TOKEN` (split at the first `=`; neither side empty, no `/` in the name).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (stream, token) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected STREAM=TOKEN"))?;
        check_stream_name(stream)?;
        if token.is_empty() {
            return Err(format!("{s:?}: the token is empty"));
        }
        Ok(StreamToken {
            stream: stream.to_owned(),
            token: token.to_owned(),
        })
    }
}

/// The rule stream names follow, as error messages state it.
pub const STREAM_NAME_RULE: &str = "1 to 64 of the characters A-Z a-z 0-9 . _ -";

/// Whether `stream` is a valid stream name: [`STREAM_NAME_RULE`]. Anything else is refused
/// (`400` over HTTP), so a name is always safe in a URL path, a header and a log line.
pub fn check_stream_name(stream: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&stream.len())
        && stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        let shown: String = stream.chars().take(80).collect();
        Err(format!(
            "stream name {shown:?} is not allowed: a stream name is {STREAM_NAME_RULE}"
        ))
    }
}

/// The tokens of a token file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFile {
    /// The line holding a single word: a token for every stream.
    pub token: Option<String>,
    /// The `STREAM TOKEN` lines.
    pub stream_tokens: Vec<StreamToken>,
}

/// A token file line that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct TokenFileError {
    pub line: usize,
    pub message: String,
}

impl TokenFile {
    /// Parses a token file: one entry per line, `TOKEN` (valid for every stream, at most
    /// one such line) or `STREAM TOKEN` (valid for that stream; a stream may have several).
    /// Blank lines and lines starting with `#` are skipped.
    pub fn parse(text: &str) -> Result<TokenFile, TokenFileError> {
        let mut file = TokenFile::default();
        let mut global_line = 0;
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |message: String| TokenFileError { line: n, message };
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [token] => {
                    if file.token.is_some() {
                        return Err(error(format!(
                            "a second token for every stream (the first is on line \
                             {global_line}); give per-stream tokens as STREAM TOKEN"
                        )));
                    }
                    global_line = n;
                    file.token = Some((*token).to_owned());
                }
                [stream, token] => {
                    check_stream_name(stream).map_err(error)?;
                    file.stream_tokens.push(StreamToken {
                        stream: (*stream).to_owned(),
                        token: (*token).to_owned(),
                    });
                }
                _ => {
                    return Err(error(format!(
                        "expected TOKEN or STREAM TOKEN, found {} words",
                        words.len()
                    )))
                }
            }
        }
        if file.token.is_none() && file.stream_tokens.is_empty() {
            return Err(TokenFileError {
                line: 0,
                message: "no token in the file".into(),
            });
        }
        Ok(file)
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// 401: no `Authorization: Bearer`.
    Missing,
    /// 401: a token valid for no stream.
    Unknown,
    /// 403: a token valid for other streams only.
    OtherStream,
    /// 403: a viewing token (`--view-token`) used to publish or touch a publisher.
    ViewOnly,
}

/// What a request does, for the token check: viewing tokens grant [`Role::View`] only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    View,
    Publish,
}

/// Whether any token for streams is configured (the status token guards /status alone);
/// without one, publishing and viewing need no token.
pub(crate) fn configured(config: &ServerConfig) -> bool {
    config.token.is_some() || !config.stream_tokens.is_empty() || !config.view_tokens.is_empty()
}

/// The bearer token of a request: `Authorization: Bearer`, or for WebSocket upgrades
/// (browsers cannot set headers there) `given_query`, the `?token=` parameter.
fn bearer<'a>(headers: &'a HeaderMap, given_query: Option<&'a str>) -> Option<&'a str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .or(given_query)
}

/// Whether `given` equals `token`, compared as SHA-256 digests in constant time.
fn same(given: &[u8], token: &str) -> Choice {
    digest(&SHA256, token.as_bytes()).as_ref().ct_eq(given)
}

/// Checks the operator's token (`/status`): `--status-token` or the all-streams `--token`.
/// Without any token configured, everyone is the operator (a trusted network).
pub(crate) fn check_operator(config: &ServerConfig, headers: &HeaderMap) -> Result<(), Denied> {
    // The status token guards /status alone: it does not close publishing or viewing.
    if !configured(config) && config.status_token.is_none() {
        return Ok(());
    }
    let given = bearer(headers, None).ok_or(Denied::Missing)?;
    let given = digest(&SHA256, given.as_bytes());
    let mut ok = Choice::from(0);
    for t in [&config.token, &config.status_token].into_iter().flatten() {
        ok |= same(given.as_ref(), t);
    }
    if bool::from(ok) {
        Ok(())
    } else {
        Err(Denied::Unknown)
    }
}

/// Checks the request's bearer token for publishing on `stream`.
pub(crate) fn check(
    config: &ServerConfig,
    headers: &HeaderMap,
    stream: &str,
) -> Result<(), Denied> {
    check_role(config, headers, None, stream, Role::Publish)
}

/// Checks the request's bearer token (the header, else `query_token`) for `role` on
/// `stream`: the all-streams token and the stream's tokens grant both roles, viewing
/// tokens only [`Role::View`].
pub(crate) fn check_role(
    config: &ServerConfig,
    headers: &HeaderMap,
    query_token: Option<&str>,
    stream: &str,
    role: Role,
) -> Result<(), Denied> {
    if !configured(config) {
        return Ok(());
    }
    let given = bearer(headers, query_token).ok_or(Denied::Missing)?;
    let given = digest(&SHA256, given.as_bytes());
    let matches = |token: &str| same(given.as_ref(), token);
    let mut view_here = Choice::from(0);
    let mut view_elsewhere = Choice::from(0);
    for t in &config.view_tokens {
        let m = matches(&t.token);
        if t.stream == stream {
            view_here |= m;
        } else {
            view_elsewhere |= m;
        }
    }
    // Every configured token is compared, whichever matches.
    let mut here = Choice::from(0);
    let mut elsewhere = Choice::from(0);
    if let Some(token) = &config.token {
        here |= matches(token);
    }
    for t in &config.stream_tokens {
        let m = matches(&t.token);
        if t.stream == stream {
            here |= m;
        } else {
            elsewhere |= m;
        }
    }
    let viewing = role == Role::View;
    if bool::from(here) || (viewing && bool::from(view_here)) {
        Ok(())
    } else if bool::from(elsewhere) || (viewing && bool::from(view_elsewhere)) {
        Err(Denied::OtherStream)
    } else if bool::from(view_here) || bool::from(view_elsewhere) {
        Err(Denied::ViewOnly)
    } else {
        Err(Denied::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn config() -> ServerConfig {
        ServerConfig {
            token: Some("all".into()),
            stream_tokens: vec![
                "a=ta".parse().unwrap(),
                "b=tb".parse().unwrap(),
                "a=ta2".parse().unwrap(),
            ],
            ..ServerConfig::default()
        }
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    #[test]
    fn global_stream_and_foreign_tokens() {
        let c = config();
        assert_eq!(check(&c, &bearer("all"), "a"), Ok(()));
        assert_eq!(check(&c, &bearer("all"), "zzz"), Ok(()));
        assert_eq!(check(&c, &bearer("ta"), "a"), Ok(()));
        assert_eq!(check(&c, &bearer("ta2"), "a"), Ok(()));
        assert_eq!(check(&c, &bearer("tb"), "a"), Err(Denied::OtherStream));
        assert_eq!(check(&c, &bearer("ta"), "b"), Err(Denied::OtherStream));
        assert_eq!(check(&c, &bearer("ta"), "c"), Err(Denied::OtherStream));
        assert_eq!(check(&c, &bearer("nope"), "a"), Err(Denied::Unknown));
        assert_eq!(
            check(&c, &bearer("t"), "a"),
            Err(Denied::Unknown),
            "a prefix"
        );
        assert_eq!(check(&c, &HeaderMap::new(), "a"), Err(Denied::Missing));
        let mut basic = HeaderMap::new();
        basic.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YTpi"),
        );
        assert_eq!(check(&c, &basic, "a"), Err(Denied::Missing));
    }

    #[test]
    fn per_stream_tokens_alone() {
        let c = ServerConfig {
            stream_tokens: vec!["a=ta".parse().unwrap()],
            ..ServerConfig::default()
        };
        assert_eq!(check(&c, &bearer("ta"), "a"), Ok(()));
        assert_eq!(check(&c, &bearer("ta"), "b"), Err(Denied::OtherStream));
        assert_eq!(check(&c, &HeaderMap::new(), "b"), Err(Denied::Missing));
        let open = ServerConfig::default();
        assert_eq!(check(&open, &HeaderMap::new(), "a"), Ok(()));
    }

    #[test]
    fn stream_token_flags() {
        assert_eq!(
            "cam=x=y".parse::<StreamToken>(),
            Ok(StreamToken {
                stream: "cam".into(),
                token: "x=y".into()
            })
        );
        assert!("cam".parse::<StreamToken>().is_err());
        assert!("=tok".parse::<StreamToken>().is_err());
        assert!("cam=".parse::<StreamToken>().is_err());
        assert!("a/b=tok".parse::<StreamToken>().is_err());
    }

    #[test]
    fn stream_names() {
        for ok in ["cam", "a.b_c-D9", &"x".repeat(64)] {
            assert_eq!(check_stream_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a b", "a\nb", "a/b", "é", "%2F", &"x".repeat(65)] {
            let e = check_stream_name(bad).unwrap_err();
            assert!(e.contains(STREAM_NAME_RULE), "{e}");
        }
    }

    #[test]
    fn viewing_tokens_and_the_operator() {
        let c = ServerConfig {
            token: Some("all".into()),
            stream_tokens: vec!["a=ta".parse().unwrap()],
            view_tokens: vec!["a=va".parse().unwrap()],
            status_token: Some("ops".into()),
            ..ServerConfig::default()
        };
        let view = |t: &str, s: &str| check_role(&c, &bearer(t), None, s, Role::View);
        let publish = |t: &str, s: &str| check_role(&c, &bearer(t), None, s, Role::Publish);
        assert_eq!(view("va", "a"), Ok(()));
        assert_eq!(publish("va", "a"), Err(Denied::ViewOnly));
        assert_eq!(view("va", "b"), Err(Denied::OtherStream));
        assert_eq!(publish("ta", "a"), Ok(()));
        assert_eq!(view("ta", "a"), Ok(()));
        assert_eq!(publish("ta", "b"), Err(Denied::OtherStream));
        assert_eq!(
            check_role(&c, &HeaderMap::new(), Some("va"), "a", Role::View),
            Ok(())
        );
        assert_eq!(check_operator(&c, &bearer("all")), Ok(()));
        assert_eq!(check_operator(&c, &bearer("ops")), Ok(()));
        assert_eq!(check_operator(&c, &bearer("ta")), Err(Denied::Unknown));
        assert_eq!(check_operator(&c, &bearer("va")), Err(Denied::Unknown));
        assert_eq!(check_operator(&c, &HeaderMap::new()), Err(Denied::Missing));
        let open = ServerConfig::default();
        assert_eq!(check_operator(&open, &HeaderMap::new()), Ok(()));
    }

    #[test]
    fn token_files() {
        let f =
            TokenFile::parse("# tokens\n\n  everything \ncam1 t1\ncam2\tt2\ncam1 t1b\n").unwrap();
        assert_eq!(f.token.as_deref(), Some("everything"));
        assert_eq!(f.stream_tokens.len(), 3);
        assert_eq!(f.stream_tokens[1].stream, "cam2");
        // The old format, a single token on the first line, still reads the same.
        assert_eq!(
            TokenFile::parse("s3cret\n").unwrap().token.as_deref(),
            Some("s3cret")
        );
        let e = TokenFile::parse("a\nb\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = TokenFile::parse("cam t extra\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.to_string().contains("3 words"), "{e}");
        assert!(TokenFile::parse("# nothing\n\n").is_err());
        assert!(TokenFile::parse("a/b tok\n").is_err());
    }
}
