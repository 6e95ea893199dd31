//! TURN messages on a byte stream, sans I/O: cutting what a TURN server sends over TCP or
//! TLS back into datagrams, and writing datagrams onto the stream (RFC 8656 §12.5, as
//! RFC 6062 and browsers frame it). A STUN message is delimited by its 20-byte header and
//! length; a ChannelData message (first byte 0x40–0x7F) by its 4-byte header and length,
//! padded to a multiple of 4 bytes on the stream (never in the datagram). Also the STUN
//! error answers the bridge gives a TURN client whose server cannot be reached.

use thiserror::Error;

/// The largest message carried either way, header included: a TURN message or a
/// ChannelData message around one media datagram fits well under it. Anything larger
/// from the server ends the connection; from our client it is dropped.
pub(crate) const MAX_FRAME: usize = 4096;

const STUN_HEADER: usize = 20;
const CHANNEL_HEADER: usize = 4;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// Why a stream cannot be cut into TURN messages (the connection is then closed).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum FrameError {
    #[error("a {0}-byte message, over the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("neither STUN nor ChannelData (first byte {0:#04x})")]
    NotTurn(u8),
}

/// A message's length as a datagram and as written on the stream, from its first four
/// bytes.
fn lengths(header: [u8; 4]) -> Result<(usize, usize), FrameError> {
    let body = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let (datagram, stream) = match header[0] {
        0x00..=0x3f => (STUN_HEADER + body, STUN_HEADER + body),
        0x40..=0x7f => (
            CHANNEL_HEADER + body,
            (CHANNEL_HEADER + body).next_multiple_of(4),
        ),
        other => return Err(FrameError::NotTurn(other)),
    };
    if stream > MAX_FRAME {
        return Err(FrameError::TooLarge(stream));
    }
    Ok((datagram, stream))
}

/// Cuts the bytes read from a TURN server's stream into the datagrams they carry; keeps
/// at most one unfinished message.
#[derive(Debug, Default)]
pub(crate) struct Deframer {
    buf: Vec<u8>,
}

impl Deframer {
    /// Takes bytes as read (any amount, any boundary).
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message as a datagram (ChannelData without its stream padding),
    /// `None` until one has arrived whole. An error is final: the stream is out of step.
    pub(crate) fn next_datagram(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let Some(header) = self.buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let (datagram, stream) = lengths(*header)?;
        if self.buf.len() < stream {
            return Ok(None);
        }
        let out = self.buf[..datagram].to_vec();
        self.buf.drain(..stream);
        Ok(Some(out))
    }
}

/// `datagram` (from our TURN client) as written on the stream: a STUN message whole, a
/// ChannelData message cut to its length and padded to 4 bytes. An error for anything
/// else, or a message longer than the datagram holds.
pub(crate) fn to_stream(datagram: &[u8]) -> Result<Vec<u8>, FrameError> {
    let header = datagram
        .first_chunk::<4>()
        .ok_or(FrameError::NotTurn(datagram.first().copied().unwrap_or(0)))?;
    let (length, stream) = lengths(*header)?;
    if datagram.len() < length {
        return Err(FrameError::TooLarge(length));
    }
    let mut out = Vec::with_capacity(stream);
    out.extend_from_slice(&datagram[..length]);
    out.resize(stream, 0);
    Ok(out)
}

/// For a STUN request (`datagram`) our TURN client sent to a server that cannot be
/// reached: an error response with the same transaction, so that the client gives up at
/// once instead of retransmitting for seconds. webrtc-rs 0.21's relayer only counts a
/// failure of its second, authenticated Allocate as the end of gathering, so an Allocate
/// without MESSAGE-INTEGRITY gets a `401` with a realm and a nonce (the client then sends
/// the authenticated one) and every other request a `500` whose reason says what failed.
/// `None` for anything that is not a request.
pub(crate) fn unreachable_answer(datagram: &[u8]) -> Option<Vec<u8>> {
    if datagram.len() < STUN_HEADER || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let typ = u16::from_be_bytes([datagram[0], datagram[1]]);
    // Class bits 0x0110: 00 is a request.
    if typ & 0xc000 != 0 || typ & 0x0110 != 0 {
        return None;
    }
    let method = typ & !0x0110;
    let allocate = method == 0x0003;
    let authenticated = has_attribute(datagram, 0x0008);
    let mut attrs = Vec::new();
    if allocate && !authenticated {
        push_attr(&mut attrs, 0x0009, &error_code(401, "Unauthorized"));
        push_attr(&mut attrs, 0x0014, b"usermedia-bridge");
        push_attr(&mut attrs, 0x0015, b"unreachable");
    } else {
        push_attr(
            &mut attrs,
            0x0009,
            &error_code(500, "TURN server unreachable over TCP/TLS"),
        );
    }
    let mut out = Vec::with_capacity(STUN_HEADER + attrs.len());
    out.extend_from_slice(&(method | 0x0110).to_be_bytes());
    out.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    out.extend_from_slice(&datagram[4..STUN_HEADER]);
    out.extend_from_slice(&attrs);
    Some(out)
}

fn error_code(code: u16, reason: &str) -> Vec<u8> {
    let mut v = vec![0, 0, (code / 100) as u8, (code % 100) as u8];
    v.extend_from_slice(reason.as_bytes());
    v
}

fn push_attr(out: &mut Vec<u8>, typ: u16, value: &[u8]) {
    out.extend_from_slice(&typ.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// Whether the STUN message `m` holds an attribute of type `wanted`.
fn has_attribute(m: &[u8], wanted: u16) -> bool {
    let end = (STUN_HEADER + usize::from(u16::from_be_bytes([m[2], m[3]]))).min(m.len());
    let mut at = STUN_HEADER;
    while at + 4 <= end {
        let typ = u16::from_be_bytes([m[at], m[at + 1]]);
        if typ == wanted {
            return true;
        }
        let len = usize::from(u16::from_be_bytes([m[at + 2], m[at + 3]]));
        at += 4 + len.next_multiple_of(4);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A STUN message of `method` and class bits `class` with `body` as attributes.
    fn stun(typ: u16, body: &[u8]) -> Vec<u8> {
        let mut m = typ.to_be_bytes().to_vec();
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(b"transaction1");
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn messages_are_cut_out_of_partial_reads() {
        let binding = stun(0x0101, &[0, 0x20, 0, 4, 1, 2, 3, 4]);
        let channel = vec![0x40, 0x01, 0, 5, b'h', b'e', b'l', b'l', b'o'];
        let mut wire = to_stream(&binding).unwrap();
        assert_eq!(wire.len(), 28);
        let padded = to_stream(&channel).unwrap();
        assert_eq!(padded, [&channel[..], &[0, 0, 0]].concat(), "padded to 12");
        wire.extend_from_slice(&padded);
        wire.extend_from_slice(&to_stream(&binding).unwrap());
        // Fed one byte at a time, then all at once: the same three datagrams.
        for chunk in [1, wire.len()] {
            let mut d = Deframer::default();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                d.push(piece);
                while let Some(m) = d.next_datagram().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, [binding.clone(), channel.clone(), binding.clone()]);
            assert_eq!(d.next_datagram(), Ok(None));
        }
        // A ChannelData datagram longer than its length (UDP padding) is cut to it.
        let mut long = channel.clone();
        long.extend_from_slice(&[0, 0, 0]);
        assert_eq!(to_stream(&long).unwrap(), padded);
        // Shorter than its length: refused.
        assert!(to_stream(&channel[..6]).is_err());
    }

    #[test]
    fn oversize_and_foreign_messages_are_refused() {
        let mut d = Deframer::default();
        d.push(&[0x40, 0x00, 0xff, 0xff]);
        assert_eq!(d.next_datagram(), Err(FrameError::TooLarge(65540)));
        let mut d = Deframer::default();
        d.push(&[0x00, 0x01, 0x10, 0x00]);
        assert_eq!(d.next_datagram(), Err(FrameError::TooLarge(4116)));
        let mut d = Deframer::default();
        d.push(&[0x16, 0x03]);
        assert_eq!(d.next_datagram(), Ok(None), "not yet four bytes");
        let mut d = Deframer::default();
        d.push(&[0x80, 0, 0, 0]);
        assert_eq!(d.next_datagram(), Err(FrameError::NotTurn(0x80)));
        assert_eq!(to_stream(&[0xc0, 0, 0, 0]), Err(FrameError::NotTurn(0xc0)));
        assert!(to_stream(&[]).is_err());
        // The largest allowed ChannelData passes.
        let most = [&[0x40u8, 0, 0x0f, 0xfc][..], &[7u8; 4092]].concat();
        assert_eq!(to_stream(&most).unwrap().len(), MAX_FRAME);
    }

    #[test]
    fn an_unreachable_server_answers_requests_with_errors() {
        // Allocate without integrity: 401 with a realm and a nonce, same transaction.
        let attempt = stun(0x0003, &[0, 0x19, 0, 4, 17, 0, 0, 0]);
        let answer = unreachable_answer(&attempt).unwrap();
        assert_eq!(answer[0..2], [0x01, 0x13]);
        assert_eq!(answer[4..20], attempt[4..20]);
        assert_eq!(
            answer.len(),
            20 + usize::from(u16::from_be_bytes([answer[2], answer[3]]))
        );
        assert_eq!(answer.len() % 4, 0);
        assert!(has_attribute(&answer, 0x0014) && has_attribute(&answer, 0x0015));
        assert_eq!(answer[24..28], [0, 0, 4, 1]);
        // With MESSAGE-INTEGRITY (0x0008): 500 naming the failure.
        let signed = stun(0x0003, &[0, 0x08, 0, 4, 1, 2, 3, 4]);
        let answer = unreachable_answer(&signed).unwrap();
        assert_eq!(answer[24..28], [0, 0, 5, 0]);
        assert!(String::from_utf8_lossy(&answer).contains("unreachable over TCP/TLS"));
        assert!(!has_attribute(&answer, 0x0015));
        // A Refresh request: 500 too. Responses, indications, ChannelData: nothing.
        assert_eq!(
            unreachable_answer(&stun(0x0004, &[])).unwrap()[0..2],
            [0x01, 0x14]
        );
        assert_eq!(unreachable_answer(&stun(0x0113, &[])), None);
        assert_eq!(unreachable_answer(&stun(0x0016, &[])), None);
        assert_eq!(unreachable_answer(&[0x40, 0, 0, 0]), None);
    }
}
