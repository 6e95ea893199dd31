//! Reading which video codecs a session description lists, in its order, so a sender can
//! pick the codec before webrtc-rs applies the description (it starts sending as it does).

use crate::encode::VideoCodec;

/// One media section (`m=` line and its attributes) of an SDP.
struct Section<'a> {
    kind: &'a str,
    /// Payload types of the `m=` line, in order.
    formats: Vec<&'a str>,
    lines: Vec<&'a str>,
}

fn sections(sdp: &str) -> Vec<Section<'_>> {
    let mut out: Vec<Section<'_>> = Vec::new();
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut fields = m.split_ascii_whitespace();
            let kind = fields.next().unwrap_or_default();
            // port, protocol, then the formats
            let formats = fields.skip(2).collect();
            out.push(Section {
                kind,
                formats,
                lines: Vec::new(),
            });
        } else if let Some(section) = out.last_mut() {
            section.lines.push(line);
        }
    }
    out
}

impl Section<'_> {
    fn attribute(&self, name: &str) -> impl Iterator<Item = &str> + '_ {
        let prefix = format!("a={name}:");
        self.lines
            .iter()
            .filter_map(move |l| l.strip_prefix(prefix.as_str()))
    }

    fn mid(&self) -> Option<&str> {
        self.attribute("mid").next().map(str::trim)
    }

    /// The video codecs we can send that this section lists, in its order, once each.
    fn video_codecs(&self) -> Vec<VideoCodec> {
        let mut out = Vec::new();
        for pt in &self.formats {
            let Some(name) = self.attribute("rtpmap").find_map(|v| {
                let (p, rest) = v.split_once(' ')?;
                (p == *pt).then(|| rest.split('/').next().unwrap_or_default())
            }) else {
                continue;
            };
            let Some(codec) = VideoCodec::from_mime_type(&format!("video/{name}")) else {
                continue;
            };
            if codec == VideoCodec::H264 && !self.h264_mode_1(pt) {
                // Our payloader fragments with FU-A: packetization-mode 1 only.
                continue;
            }
            if !out.contains(&codec) {
                out.push(codec);
            }
        }
        out
    }

    fn h264_mode_1(&self, pt: &str) -> bool {
        self.attribute("fmtp").any(|v| {
            v.split_once(' ').is_some_and(|(p, params)| {
                p == pt
                    && params
                        .split(';')
                        .any(|kv| kv.trim().eq_ignore_ascii_case("packetization-mode=1"))
            })
        })
    }
}

/// The video codecs we support that the media section `mid` lists, in its order; `None`
/// when the description has no such section.
pub(crate) fn video_codecs_of_mid(sdp: &str, mid: &str) -> Option<Vec<VideoCodec>> {
    sections(sdp)
        .iter()
        .find(|s| s.kind == "video" && s.mid() == Some(mid))
        .map(Section::video_codecs)
}

/// The video codecs we support that the first video section of `sdp` lists, in its order
/// (H.264 only with packetization-mode 1). An answer's first entry is the codec its sender
/// of that section uses.
pub fn video_codecs(sdp: &str) -> Vec<VideoCodec> {
    sections(sdp)
        .iter()
        .find(|s| s.kind == "video")
        .map(Section::video_codecs)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIREFOX: &str = "v=0\r\no=- 1 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 109 0\r\na=mid:0\r\na=rtpmap:109 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 120 124 121 126 97\r\na=mid:1\r\n\
        a=fmtp:126 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1\r\n\
        a=fmtp:97 profile-level-id=42e01f;level-asymmetry-allowed=1\r\n\
        a=rtpmap:120 VP8/90000\r\na=rtpmap:124 rtx/90000\r\na=rtpmap:121 VP9/90000\r\n\
        a=rtpmap:126 H264/90000\r\na=rtpmap:97 H264/90000\r\n";

    #[test]
    fn codecs_in_the_sections_order_h264_only_in_mode_1() {
        assert_eq!(video_codecs(FIREFOX), [VideoCodec::Vp8, VideoCodec::H264]);
        assert_eq!(
            video_codecs_of_mid(FIREFOX, "1"),
            Some(vec![VideoCodec::Vp8, VideoCodec::H264])
        );
        assert_eq!(video_codecs_of_mid(FIREFOX, "0"), None, "audio section");
        assert_eq!(video_codecs_of_mid(FIREFOX, "7"), None);
        let mode_0_only = FIREFOX.replace(" 120 124 121 126 97", " 97");
        assert!(video_codecs(&mode_0_only).is_empty());
        assert!(video_codecs("garbage").is_empty());
    }
}
