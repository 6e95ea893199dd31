//! The structural SDP check every endpoint runs on a body before it reaches a peer
//! connection (which does the full parse).

/// Why an SDP body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("empty SDP")]
    Empty,
    #[error("SDP line {line}: {message}")]
    Malformed { line: usize, message: String },
    #[error("SDP has no media section (m=)")]
    NoMedia,
}

/// An SDP session description that passed the structural check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    text: String,
    media_sections: usize,
}

impl SessionDescription {
    /// Checks the structure every SDP must have (RFC 8866 §5): it starts with `v=0`, every
    /// line is `<letter>=<value>`, and it has at least one `m=` section. Browsers send CRLF;
    /// bare LF is accepted too.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        if text.trim().is_empty() {
            return Err(SdpError::Empty);
        }
        let mut media_sections = 0;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let bytes = line.as_bytes();
            if bytes.len() < 2 || !bytes[0].is_ascii_lowercase() || bytes[1] != b'=' {
                return Err(SdpError::Malformed {
                    line: i + 1,
                    message: format!("expected <letter>=<value>, got {line:?}"),
                });
            }
            if i == 0 && line != "v=0" {
                return Err(SdpError::Malformed {
                    line: 1,
                    message: format!("must be \"v=0\", got {line:?}"),
                });
            }
            if bytes[0] == b'm' {
                media_sections += 1;
            }
        }
        if media_sections == 0 {
            return Err(SdpError::NoMedia);
        }
        Ok(SessionDescription {
            text: text.to_owned(),
            media_sections,
        })
    }

    /// The SDP text as received.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// How many `m=` sections it has.
    pub fn media_sections(&self) -> usize {
        self.media_sections
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_minimal_offer() {
        let sdp =
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n";
        let d = SessionDescription::parse(sdp).unwrap();
        assert_eq!(d.media_sections(), 1);
        assert_eq!(d.as_str(), sdp);
    }

    #[test]
    fn rejects_garbage_naming_the_line() {
        assert_eq!(SessionDescription::parse("  "), Err(SdpError::Empty));
        assert!(matches!(
            SessionDescription::parse("hello"),
            Err(SdpError::Malformed { line: 1, .. })
        ));
        assert!(matches!(
            SessionDescription::parse("v=0\ns=-\nbad line\n"),
            Err(SdpError::Malformed { line: 3, .. })
        ));
        assert_eq!(
            SessionDescription::parse("v=0\ns=-\n"),
            Err(SdpError::NoMedia)
        );
    }
}
