//! Which peer a datagram on the shared UDP port belongs to (ICE-UDP muxing by ufrag, as
//! MediaMTX and LiveKit do): a STUN request by the local ufrag in its USERNAME, a STUN
//! response by the transaction it answers, anything else (DTLS, SRTP, indications) by the
//! remote address the peer last talked with. Pure bookkeeping, bounded everywhere.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// A peer on the shared port.
pub(super) type PeerId = u64;

/// Most remote addresses remembered per peer (the oldest go first).
const MAX_ADDRS_PER_PEER: usize = 64;
/// Most local ufrags per peer (one per ICE generation; the oldest go first).
const MAX_UFRAGS_PER_PEER: usize = 4;
/// Most outstanding STUN transactions remembered, all peers together.
const MAX_TRANSACTIONS: usize = 8192;

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const USERNAME: u16 = 0x0006;

/// What a datagram is, as far as routing cares.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Kind<'a> {
    /// A STUN request; its USERNAME if it has one.
    Request {
        txid: [u8; 12],
        username: Option<&'a str>,
    },
    /// A STUN success or error response.
    Response { txid: [u8; 12] },
    /// A STUN indication, or not STUN at all.
    Other,
}

/// Classifies `packet` (RFC 5389 header; RFC 7983 demultiplexing: STUN starts with 0-3).
pub(super) fn classify(packet: &[u8]) -> Kind<'_> {
    if packet.len() < 20 || packet[0] > 3 || packet[4..8] != MAGIC_COOKIE {
        return Kind::Other;
    }
    let kind = u16::from_be_bytes([packet[0], packet[1]]);
    let mut txid = [0u8; 12];
    txid.copy_from_slice(&packet[8..20]);
    match kind & 0x0110 {
        0x0000 => Kind::Request {
            txid,
            username: username(packet),
        },
        0x0100 | 0x0110 => Kind::Response { txid },
        _ => Kind::Other,
    }
}

/// The USERNAME attribute of a STUN message, if it is there and UTF-8.
fn username(packet: &[u8]) -> Option<&str> {
    let len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let body = packet.get(20..20 + len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let n = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + n)?;
        if kind == USERNAME {
            return std::str::from_utf8(value).ok();
        }
        at += 4 + n.div_ceil(4) * 4;
    }
    None
}

/// The routing table of one shared port.
#[derive(Debug, Default)]
pub(super) struct Routes {
    ufrags: HashMap<String, PeerId>,
    addrs: HashMap<SocketAddr, PeerId>,
    transactions: HashMap<[u8; 12], PeerId>,
    transaction_order: VecDeque<[u8; 12]>,
    /// Per peer, what it owns (to bound and to forget).
    owned: HashMap<PeerId, Owned>,
}

#[derive(Debug, Default)]
struct Owned {
    ufrags: VecDeque<String>,
    addrs: VecDeque<SocketAddr>,
}

impl Routes {
    /// `ufrag` (from our local description) is `peer`'s.
    pub(super) fn register_ufrag(&mut self, peer: PeerId, ufrag: &str) {
        if self.ufrags.get(ufrag) == Some(&peer) {
            return;
        }
        self.ufrags.insert(ufrag.to_owned(), peer);
        let owned = self.owned.entry(peer).or_default();
        owned.ufrags.push_back(ufrag.to_owned());
        if owned.ufrags.len() > MAX_UFRAGS_PER_PEER {
            if let Some(old) = owned.ufrags.pop_front() {
                if self.ufrags.get(&old) == Some(&peer) {
                    self.ufrags.remove(&old);
                }
            }
        }
    }

    /// `peer` talks with `addr`: what comes from there is its.
    fn learn_addr(&mut self, peer: PeerId, addr: SocketAddr) {
        if self.addrs.insert(addr, peer) == Some(peer) {
            return;
        }
        let owned = self.owned.entry(peer).or_default();
        owned.addrs.retain(|a| *a != addr);
        owned.addrs.push_back(addr);
        if owned.addrs.len() > MAX_ADDRS_PER_PEER {
            if let Some(old) = owned.addrs.pop_front() {
                if self.addrs.get(&old) == Some(&peer) {
                    self.addrs.remove(&old);
                }
            }
        }
    }

    /// `peer` sends `packet` to `to`: its replies will be routed back to it.
    pub(super) fn outgoing(&mut self, peer: PeerId, to: SocketAddr, packet: &[u8]) {
        if let Kind::Request { txid, username } = classify(packet) {
            // Our checks carry `remote:local`; the local half is ours.
            if let Some(local) = username.and_then(|u| u.split_once(':')).map(|(_, l)| l) {
                self.register_ufrag(peer, local);
            }
            if self.transactions.insert(txid, peer).is_none() {
                self.transaction_order.push_back(txid);
                if self.transaction_order.len() > MAX_TRANSACTIONS {
                    if let Some(old) = self.transaction_order.pop_front() {
                        self.transactions.remove(&old);
                    }
                }
            }
        }
        self.learn_addr(peer, to);
    }

    /// The peer `packet` from `from` is for, if any.
    pub(super) fn incoming(&mut self, from: SocketAddr, packet: &[u8]) -> Option<PeerId> {
        match classify(packet) {
            Kind::Request {
                username: Some(u), ..
            } => {
                let local = u.split_once(':').map_or(u, |(l, _)| l);
                let peer = *self.ufrags.get(local)?;
                self.learn_addr(peer, from);
                Some(peer)
            }
            Kind::Response { txid } => match self.transactions.get(&txid) {
                Some(&peer) => Some(peer),
                None => self.addrs.get(&from).copied(),
            },
            _ => self.addrs.get(&from).copied(),
        }
    }

    /// Forgets `peer` (it closed).
    pub(super) fn remove(&mut self, peer: PeerId) {
        if let Some(owned) = self.owned.remove(&peer) {
            for u in owned.ufrags {
                if self.ufrags.get(&u) == Some(&peer) {
                    self.ufrags.remove(&u);
                }
            }
            for a in owned.addrs {
                if self.addrs.get(&a) == Some(&peer) {
                    self.addrs.remove(&a);
                }
            }
        }
        self.transactions.retain(|_, p| *p != peer);
        let live = &self.transactions;
        self.transaction_order.retain(|t| live.contains_key(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A STUN message of `kind` with transaction `tx` and, optionally, a USERNAME.
    fn stun(kind: u16, tx: u8, username: Option<&str>) -> Vec<u8> {
        let mut attrs = Vec::new();
        if let Some(u) = username {
            attrs.extend_from_slice(&USERNAME.to_be_bytes());
            attrs.extend_from_slice(&(u.len() as u16).to_be_bytes());
            attrs.extend_from_slice(u.as_bytes());
            while attrs.len() % 4 != 0 {
                attrs.push(0);
            }
        }
        let mut p = kind.to_be_bytes().to_vec();
        p.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        p.extend_from_slice(&MAGIC_COOKIE);
        p.extend_from_slice(&[tx; 12]);
        p.extend_from_slice(&attrs);
        p
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn requests_go_by_ufrag_responses_by_transaction_the_rest_by_address() {
        let mut r = Routes::default();
        r.register_ufrag(1, "aaaa");
        r.register_ufrag(2, "bbbb");
        let check = stun(0x0001, 7, Some("bbbb:remote"));
        assert_eq!(
            classify(&check),
            Kind::Request {
                txid: [7; 12],
                username: Some("bbbb:remote")
            }
        );
        assert_eq!(r.incoming(addr(5000), &check), Some(2));
        // DTLS from that address now goes to peer 2; from elsewhere, nowhere.
        assert_eq!(r.incoming(addr(5000), &[22, 254, 253]), Some(2));
        assert_eq!(r.incoming(addr(5001), &[22, 254, 253]), None);
        assert_eq!(
            r.incoming(addr(5001), &stun(0x0001, 8, Some("zzzz:x"))),
            None
        );
        // Peer 1 asks a STUN server; the answer comes back to it, not to peer 2.
        r.outgoing(1, addr(3478), &stun(0x0001, 9, None));
        r.outgoing(2, addr(3478), &stun(0x0001, 10, None));
        assert_eq!(r.incoming(addr(3478), &stun(0x0101, 9, None)), Some(1));
        assert_eq!(r.incoming(addr(3478), &stun(0x0101, 10, None)), Some(2));
        // Our own checks teach us our ufrag (after an ICE restart, say).
        r.outgoing(1, addr(6000), &stun(0x0001, 11, Some("theirs:cccc")));
        assert_eq!(
            r.incoming(addr(6001), &stun(0x0001, 12, Some("cccc:theirs"))),
            Some(1)
        );
        r.remove(1);
        assert_eq!(r.incoming(addr(6001), &[0x80, 0]), None);
        assert_eq!(
            r.incoming(addr(3478), &stun(0x0101, 9, None)),
            Some(2),
            "by address"
        );
        assert_eq!(r.incoming(addr(5000), &check), Some(2));
    }

    #[test]
    fn the_tables_are_bounded() {
        let mut r = Routes::default();
        for port in 0..1000 {
            r.outgoing(1, addr(port), &stun(0x0001, (port % 256) as u8, None));
        }
        assert_eq!(r.addrs.len(), MAX_ADDRS_PER_PEER);
        for g in 0..10 {
            r.register_ufrag(1, &format!("u{g}"));
        }
        assert_eq!(r.ufrags.len(), MAX_UFRAGS_PER_PEER);
        assert!(r.ufrags.contains_key("u9") && !r.ufrags.contains_key("u0"));
        let mut p = stun(0x0001, 1, None);
        for i in 0..(MAX_TRANSACTIONS + 10) {
            p[8..16].copy_from_slice(&(i as u64).to_be_bytes());
            r.outgoing(2, addr(1), &p);
        }
        assert_eq!(r.transactions.len(), MAX_TRANSACTIONS);
        // A truncated or lying STUN header is not read past its end.
        let mut lying = stun(0x0001, 1, Some("abcd:efgh"));
        lying[3] = 200;
        assert_eq!(
            classify(&lying),
            Kind::Request {
                txid: [1; 12],
                username: None
            }
        );
        assert_eq!(classify(&lying[..10]), Kind::Other);
    }
}
