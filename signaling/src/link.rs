//! ICE servers in WHIP/WHEP `Link` headers (RFC 9725 section 4.6): one STUN or TURN URL
//! per header with `rel="ice-server"` and, for TURN, `username`, `credential` and
//! `credential-type="password"` — written by our server, read by our client.

use std::fmt;

/// One ICE server as a `Link` header carries it. `Debug` never shows the credential.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct LinkIceServer {
    /// `stun:…`, `turn:…` or `turns:…`.
    pub url: String,
    pub username: Option<String>,
    pub credential: Option<String>,
}

impl fmt::Debug for LinkIceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkIceServer")
            .field("url", &self.url)
            .field("username", &self.username)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Most ICE servers read from one response (the rest are ignored).
const MAX_LINKS: usize = 16;
/// Longest parameter value read (a URL, a username, a credential).
const MAX_VALUE: usize = 512;

impl LinkIceServer {
    /// Whether it is a TURN server (which needs the credentials).
    pub fn is_turn(&self) -> bool {
        let scheme = self.url.split(':').next().unwrap_or("");
        scheme.eq_ignore_ascii_case("turn") || scheme.eq_ignore_ascii_case("turns")
    }

    /// The header value; `None` when a value cannot be quoted (a `"`, `\` or control
    /// character in it, `<`/`>` in the URL).
    pub fn header_value(&self, with_credentials: bool) -> Option<String> {
        let plain = |s: &str| !s.chars().any(|c| c == '"' || c == '\\' || c.is_control());
        if !plain(&self.url) || self.url.contains(['<', '>', ',', ' ']) {
            return None;
        }
        let mut v = format!("<{}>; rel=\"ice-server\"", self.url);
        if with_credentials {
            if let (Some(u), Some(c)) = (&self.username, &self.credential) {
                if !plain(u) || !plain(c) {
                    return None;
                }
                v.push_str(&format!(
                    "; username=\"{u}\"; credential=\"{c}\"; credential-type=\"password\""
                ));
            }
        }
        Some(v)
    }

    /// The ICE servers in the `Link` header values `values` (several per value,
    /// comma-separated, are allowed); other links and malformed ones are skipped.
    pub fn parse_all<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<LinkIceServer> {
        values
            .into_iter()
            .flat_map(split_links)
            .filter_map(parse_one)
            .take(MAX_LINKS)
            .collect()
    }
}

/// Splits a header value into links at the commas outside `<…>` and quotes.
fn split_links(value: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted, mut in_url) = (Vec::new(), 0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' if !in_url => quoted = !quoted,
            '<' if !quoted => in_url = true,
            '>' if !quoted => in_url = false,
            ',' if !quoted && !in_url => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

fn parse_one(link: &str) -> Option<LinkIceServer> {
    let link = link.trim();
    let rest = link.strip_prefix('<')?;
    let (url, params) = rest.split_once('>')?;
    if url.len() > MAX_VALUE {
        return None;
    }
    let mut server = LinkIceServer {
        url: url.trim().to_owned(),
        ..LinkIceServer::default()
    };
    let mut is_ice = false;
    for param in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        if value.len() > MAX_VALUE {
            return None;
        }
        match name.trim().to_ascii_lowercase().as_str() {
            "rel" => is_ice = value.split_whitespace().any(|r| r == "ice-server"),
            "username" => server.username = Some(value.to_owned()),
            "credential" => server.credential = Some(value.to_owned()),
            _ => {}
        }
    }
    is_ice.then_some(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_written_and_read_back() {
        let turn = LinkIceServer {
            url: "turn:127.0.0.1:3478?transport=udp".into(),
            username: Some("user".into()),
            credential: Some("pass word".into()),
        };
        let with = turn.header_value(true).unwrap();
        assert_eq!(
            with,
            "<turn:127.0.0.1:3478?transport=udp>; rel=\"ice-server\"; username=\"user\"; \
             credential=\"pass word\"; credential-type=\"password\""
        );
        let without = turn.header_value(false).unwrap();
        assert!(!without.contains("pass"), "{without}");
        let stun = "<stun:127.0.0.1:3478>; rel=\"ice-server\"";
        let other = "<https://example.net/>; rel=\"next\"";
        let both = format!("{stun}, {other}, {with}");
        let read = LinkIceServer::parse_all([both.as_str()]);
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].url, "stun:127.0.0.1:3478");
        assert_eq!(read[0].credential, None);
        assert_eq!(read[1], turn);
        assert!(read[1].is_turn() && !read[0].is_turn());
        assert!(!format!("{:?}", read[1]).contains("pass word"));
        // Unquotable values are not written; garbage is skipped, not an error.
        let bad = LinkIceServer {
            credential: Some("a\"b".into()),
            ..turn.clone()
        };
        assert_eq!(bad.header_value(true), None);
        assert!(LinkIceServer::parse_all(["nonsense", "<x", ""]).is_empty());
        let many = vec![stun; 100].join(", ");
        assert_eq!(LinkIceServer::parse_all([many.as_str()]).len(), MAX_LINKS);
    }
}
