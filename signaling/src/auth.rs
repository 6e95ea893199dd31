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

fn check_stream_name(stream: &str) -> Result<(), String> {
    if stream.is_empty() {
        return Err("the stream name is empty".into());
    }
    if stream.contains('/') {
        return Err(format!("stream name {stream:?} contains '/'"));
    }
    Ok(())
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
}

/// Whether any token is configured at all (without one, nothing needs a token).
pub(crate) fn configured(config: &ServerConfig) -> bool {
    config.token.is_some() || !config.stream_tokens.is_empty()
}

/// Checks the request's bearer token for `stream`.
pub(crate) fn check(
    config: &ServerConfig,
    headers: &HeaderMap,
    stream: &str,
) -> Result<(), Denied> {
    if !configured(config) {
        return Ok(());
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(Denied::Missing)?;
    let given = digest(&SHA256, given.as_bytes());
    let matches = |token: &str| {
        digest(&SHA256, token.as_bytes())
            .as_ref()
            .ct_eq(given.as_ref())
    };
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
    if bool::from(here) {
        Ok(())
    } else if bool::from(elsewhere) {
        Err(Denied::OtherStream)
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
