//! ICE servers (STUN and TURN) for peer connections: their URLs checked, the list webrtc-rs
//! is given (TURN over TCP or TLS pointed at its local bridge), and the SDP work around ICE
//! that webrtc-rs 0.21 leaves to us (public addresses added to our candidates, candidates
//! on the shared UDP port, a relay-only description with no relay).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use webrtc::peer_connection::RTCIceServer;

use super::mux::PeerPort;
use super::turn_bridge::{Failure, TurnBridges};
use super::PeerError;
use crate::sync::lock;

/// One STUN or TURN server, as `RTCIceServer` has it: its URLs and, for TURN, the long-term
/// credentials. `Debug` never shows the credential.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct IceServer {
    /// `stun:host[:port]`, `turn:host[:port][?transport=udp|tcp]`, `turns:host[:port]`.
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

impl fmt::Debug for IceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &"<redacted>")
            .finish()
    }
}

/// A URL's scheme: STUN, TURN or TURN over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceScheme {
    Stun,
    Turn,
    Turns,
}

/// A checked ICE server URL (RFC 7064, RFC 7065).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceUrl {
    pub scheme: IceScheme,
    pub host: String,
    pub port: u16,
    /// `udp` or `tcp` (TURN); `turns:` is TCP (TLS), STUN is UDP.
    pub tcp: bool,
}

impl IceUrl {
    /// Parses `url`; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<IceUrl, String> {
        let bad = |why: &str| format!("ICE server URL {url:?}: {why}");
        let (scheme, rest) = url
            .split_once(':')
            .ok_or_else(|| bad("expected stun:, turn: or turns:"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "stun" => IceScheme::Stun,
            "turn" => IceScheme::Turn,
            "turns" => IceScheme::Turns,
            _ => return Err(bad("expected stun:, turn: or turns:")),
        };
        let (hostport, query) = match rest.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (rest, None),
        };
        let tcp = match (scheme, query) {
            (_, None) => scheme == IceScheme::Turns,
            (IceScheme::Stun, Some(_)) => return Err(bad("a stun: URL takes no ?transport")),
            (_, Some("transport=udp")) if scheme == IceScheme::Turn => false,
            (_, Some("transport=tcp")) => true,
            (_, Some(_)) => return Err(bad("expected ?transport=udp or ?transport=tcp")),
        };
        let default_port = if scheme == IceScheme::Turns {
            5349
        } else {
            3478
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in the host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("bad port"))?,
                None if after.is_empty() => default_port,
                None => return Err(bad("bad host")),
            };
            (h.to_owned(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad("bad port"))?),
                None => (hostport.to_owned(), default_port),
            }
        };
        if host.is_empty() || host.contains(['/', '@', ' ']) || port == 0 {
            return Err(bad("expected host[:port]"));
        }
        Ok(IceUrl {
            scheme,
            host,
            port,
            tcp,
        })
    }

    pub fn is_turn(&self) -> bool {
        self.scheme != IceScheme::Stun
    }
}

impl IceServer {
    /// Checks every URL, and that TURN has credentials.
    pub fn check(&self) -> Result<Vec<IceUrl>, String> {
        if self.urls.is_empty() {
            return Err("an ICE server without a URL".into());
        }
        let urls = self
            .urls
            .iter()
            .map(|u| IceUrl::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some((u, _)) = self
            .urls
            .iter()
            .zip(&urls)
            .find(|(_, p)| p.is_turn())
            .filter(|_| self.username.is_empty() || self.credential.is_empty())
        {
            return Err(format!(
                "TURN server {u}: needs a username and a credential"
            ));
        }
        Ok(urls)
    }
}

/// The servers as webrtc-rs takes them (checked first: a bad URL is an error naming it).
/// webrtc-rs 0.21 speaks to TURN servers over UDP only, so a TURN URL over TCP or TLS
/// becomes its bridge's `turn:127.0.0.1:PORT?transport=udp` (one without a bridge is
/// left out).
pub(super) fn rtc_servers(
    servers: &[IceServer],
    bridges: &TurnBridges,
) -> Result<Vec<RTCIceServer>, PeerError> {
    let mut out = Vec::new();
    for server in servers {
        let parsed = server.check().map_err(PeerError::IceConfig)?;
        let urls: Vec<String> = server
            .urls
            .iter()
            .zip(&parsed)
            .filter_map(|(u, p)| match p.tcp {
                false => Some(u.clone()),
                true => bridges
                    .local_for(u)
                    .map(|a| format!("turn:{a}?transport=udp")),
            })
            .collect();
        if !urls.is_empty() {
            out.push(RTCIceServer {
                urls,
                username: server.username.clone(),
                credential: server.credential.clone(),
            });
        }
    }
    Ok(out)
}

/// The TURN URLs our peers allocate on (named in errors).
pub(super) fn turn_urls(servers: &[IceServer]) -> Vec<String> {
    servers
        .iter()
        .flat_map(|s| s.urls.iter())
        .filter(|u| IceUrl::parse(u).is_ok_and(|p| p.is_turn()))
        .cloned()
        .collect()
}

/// What is done to our gathered description before it leaves: public addresses added,
/// and under a relay-only policy, no relay candidate is an error naming the TURN servers.
#[derive(Debug, Clone, Default)]
pub(super) struct Finish {
    relay_only: bool,
    turn: Vec<String>,
    /// Why a bridged (TCP or TLS) TURN server could not be used, by URL.
    failures: Vec<(String, Failure)>,
    public_ips: Vec<IpAddr>,
    /// On the shared UDP port: the port and the addresses it is reached at.
    mux: Option<(Arc<PeerPort>, Vec<IpAddr>)>,
}

impl Finish {
    /// From the configuration; relay-only without a TURN server our peers can use is an
    /// error.
    pub(super) fn new(
        config: &super::PeerConfig,
        port: Option<Arc<PeerPort>>,
        bridges: &TurnBridges,
    ) -> Result<Finish, PeerError> {
        let turn = turn_urls(&config.ice_servers);
        if config.ice_relay_only && turn.is_empty() {
            return Err(PeerError::IceConfig(
                "relay-only needs a TURN server (turn:host:port or turns:host:port)".into(),
            ));
        }
        let mux = port.map(|port| {
            let bound = port.local_addr().ip();
            let ips = if bound.is_unspecified() {
                super::setup::ice_addresses(config)
                    .into_iter()
                    .filter(|ip| ip.is_ipv4() == bound.is_ipv4())
                    .collect()
            } else {
                vec![bound]
            };
            (port, ips)
        });
        Ok(Finish {
            relay_only: config.ice_relay_only,
            turn,
            failures: bridges.failures(),
            public_ips: config.public_ips.clone(),
            mux,
        })
    }

    pub(super) fn apply(&self, sdp: String) -> Result<String, PeerError> {
        if self.relay_only && !has_relay_candidate(&sdp) {
            return Err(PeerError::NoRelayCandidate {
                servers: self.named_servers(),
            });
        }
        if let Some(warning) = self.missing_relay(&sdp) {
            tracing::warn!("{warning}");
        }
        Ok(self.rewrite(sdp))
    }

    /// Without relay-only, TURN servers configured and no relay candidate gathered: the
    /// warning naming the servers' URLs (never the credential). The connection may still
    /// work directly, so this is not an error.
    pub(super) fn missing_relay(&self, sdp: &str) -> Option<String> {
        if self.relay_only || self.turn.is_empty() || has_relay_candidate(sdp) {
            return None;
        }
        Some(format!(
            "no relay candidate from the TURN server(s) {}: check their address and credentials \
             (connecting without TURN)",
            self.named_servers()
        ))
    }

    /// The TURN servers' URLs, each TCP or TLS one that could not be reached with why.
    fn named_servers(&self) -> String {
        let named: Vec<String> = self
            .turn
            .iter()
            .map(|url| {
                let why = self
                    .failures
                    .iter()
                    .find(|(u, _)| u == url)
                    .and_then(|(_, f)| lock(f).clone());
                match why {
                    Some(why) => format!("{url} ({why})"),
                    None => url.clone(),
                }
            })
            .collect();
        named.join(", ")
    }

    /// Our description as it leaves: on the shared port, with the public addresses.
    pub(super) fn rewrite(&self, sdp: String) -> String {
        let sdp = match &self.mux {
            Some((port, ips)) => {
                for ufrag in local_ufrags(&sdp) {
                    port.register_ufrag(ufrag);
                }
                on_shared_port(&sdp, ips, port.local_addr().port())
            }
            None => sdp,
        };
        with_public_ips(&sdp, &self.public_ips)
    }
}

/// The `a=ice-ufrag` values of `sdp`.
fn local_ufrags(sdp: &str) -> impl Iterator<Item = &str> {
    sdp.lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("a=ice-ufrag:"))
}

/// `sdp` with each UDP host candidate replaced by one per address in `ips`, all on the
/// shared `port` (the connection's own local candidate is a socket it never uses).
pub(super) fn on_shared_port(sdp: &str, ips: &[IpAddr], port: u16) -> String {
    let mut out = String::with_capacity(sdp.len() + 96 * ips.len());
    for line in sdp.split_inclusive('\n') {
        let fields: Option<Vec<&str>> = line
            .trim_end()
            .strip_prefix("a=candidate:")
            .map(|c| c.split_whitespace().collect());
        match fields {
            Some(f) if f.len() >= 8 && f[2].eq_ignore_ascii_case("udp") && f[7] == "host" => {
                let priority = f[3].parse::<u32>().unwrap_or(1);
                for (n, ip) in ips.iter().enumerate() {
                    let foundation = if n == 0 {
                        f[0].to_owned()
                    } else {
                        format!("{}{n}", f[0])
                    };
                    out.push_str(&format!(
                        "a=candidate:{foundation} {} udp {} {ip} {port} typ host\r\n",
                        f[1],
                        priority.saturating_sub(n as u32)
                    ));
                }
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// The addresses of the TURN servers our peers use over UDP, the bridges' for TCP and TLS
/// (they go through a peer's own socket when the peers share a port); a name that does
/// not resolve is left out.
pub(super) async fn turn_addrs(servers: &[IceServer], bridges: &TurnBridges) -> Vec<SocketAddr> {
    let mut out = bridges.local_addrs();
    for url in turn_urls(servers) {
        if let Ok(u) = IceUrl::parse(&url) {
            if u.tcp {
                continue;
            }
            if let Ok(found) = tokio::net::lookup_host((u.host.as_str(), u.port)).await {
                out.extend(found);
            }
        }
    }
    out
}

/// The candidate lines of `sdp` (without `a=`).
fn candidates(sdp: &str) -> impl Iterator<Item = &str> {
    sdp.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter_map(|l| l.strip_prefix("a=candidate:"))
}

/// Whether `sdp` holds a relay candidate.
pub(super) fn has_relay_candidate(sdp: &str) -> bool {
    candidates(sdp).any(|c| c.split_whitespace().nth(7) == Some("relay"))
}

/// `sdp` with, after each UDP host candidate of the same address family, one more host
/// candidate per public IP with the same port (the 1:1 NAT and Docker case: the socket is
/// reached at that address). webrtc-rs 0.21 has `with_nat_1to1_ips` but never reads it.
pub(super) fn with_public_ips(sdp: &str, ips: &[IpAddr]) -> String {
    if ips.is_empty() {
        return sdp.to_owned();
    }
    let mut out = String::with_capacity(sdp.len() + 128 * ips.len());
    let mut added: Vec<(IpAddr, String)> = Vec::new();
    for line in sdp.split_inclusive('\n') {
        out.push_str(line);
        let Some(c) = line.trim_end().strip_prefix("a=candidate:") else {
            continue;
        };
        let f: Vec<&str> = c.split_whitespace().collect();
        // foundation component transport priority address port typ host …
        if f.len() < 8 || !f[2].eq_ignore_ascii_case("udp") || f[7] != "host" {
            continue;
        }
        let (Ok(local), Ok(priority)) = (f[4].parse::<IpAddr>(), f[3].parse::<u32>()) else {
            continue;
        };
        for ip in ips.iter().filter(|ip| ip.is_ipv4() == local.is_ipv4()) {
            // One candidate per public address and port (several local addresses share
            // the port only by chance, and then one line is enough).
            if added.iter().any(|(a, p)| a == ip && p == f[5]) || *ip == local {
                continue;
            }
            added.push((*ip, f[5].to_owned()));
            let n = added.len();
            out.push_str(&format!(
                "a=candidate:{}{n} {} udp {} {ip} {} typ host\r\n",
                f[0],
                f[1],
                priority.saturating_sub(n as u32),
                f[5]
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_relay_candidate_from_configured_turn_is_a_warning_naming_the_urls() {
        let config = super::super::PeerConfig {
            ice_servers: vec![IceServer {
                urls: vec!["turn:192.0.2.1:3478".into(), "stun:192.0.2.1".into()],
                username: "user".into(),
                credential: "s3cret-credential".into(),
            }],
            ..Default::default()
        };
        let finish = Finish::new(&config, None, &TurnBridges::default()).unwrap();
        let host = "v=0\r\na=candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host\r\n";
        let relay =
            "a=candidate:2 1 udp 16777215 192.0.2.1 6000 typ relay raddr 0.0.0.0 rport 0\r\n";
        assert_eq!(finish.missing_relay(&format!("{host}{relay}")), None);
        // The warning is logged as the description leaves.
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = std::sync::Arc::clone(&logs);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Sink(std::sync::Arc::clone(&sink)))
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || finish.apply(host.into()).unwrap());
        let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("WARN"), "{logs}");
        assert!(
            logs.contains("no relay candidate from the TURN server(s) turn:192.0.2.1:3478"),
            "{logs}"
        );
        assert!(!logs.contains("s3cret"), "{logs}");
        // Without TURN servers there is nothing to warn about; relay-only is an error instead.
        let plain = Finish::new(&Default::default(), None, &TurnBridges::default()).unwrap();
        assert_eq!(plain.missing_relay(host), None);
        let relay_only = Finish::new(
            &super::super::PeerConfig {
                ice_relay_only: true,
                ..config
            },
            None,
            &TurnBridges::default(),
        )
        .unwrap();
        assert_eq!(relay_only.missing_relay(host), None);
        assert!(relay_only.apply(host.into()).is_err());
    }

    /// A log writer into a shared buffer.
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn urls_are_checked_with_clear_errors() {
        let u = IceUrl::parse("turn:127.0.0.1:3478?transport=tcp").unwrap();
        assert_eq!((u.scheme, u.port, u.tcp), (IceScheme::Turn, 3478, true));
        let u = IceUrl::parse("stun:example.net").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.tcp),
            ("example.net", 3478, false)
        );
        assert_eq!(IceUrl::parse("turns:[::1]").unwrap().port, 5349);
        assert!(IceUrl::parse("turns:[::1]").unwrap().tcp);
        for bad in [
            "http://x",
            "stun:",
            "stun:x:0",
            "stun:x?transport=udp",
            "turn:x?transport=sctp",
            "turn:x:port",
        ] {
            let e = IceUrl::parse(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        let turn = IceServer {
            urls: vec!["turn:127.0.0.1".into()],
            ..IceServer::default()
        };
        assert!(turn.check().unwrap_err().contains("username"));
        assert!(!format!(
            "{:?}",
            IceServer {
                credential: "s3cret".into(),
                ..turn
            }
        )
        .contains("s3cret"));
    }

    #[tokio::test]
    async fn turn_over_tcp_goes_to_webrtc_rs_as_its_bridge_over_udp() {
        let servers = [IceServer {
            urls: vec![
                "stun:127.0.0.1:3478".into(),
                "turn:127.0.0.1:3478?transport=tcp".into(),
                "turn:127.0.0.1:3478".into(),
            ],
            username: "u".into(),
            credential: "p".into(),
        }];
        // Without a bridge, a TCP URL is left out.
        let rtc = rtc_servers(&servers, &TurnBridges::default()).unwrap();
        assert_eq!(rtc[0].urls, ["stun:127.0.0.1:3478", "turn:127.0.0.1:3478"]);
        let bridges = TurnBridges::start(&servers, || async {
            Err(PeerError::IceConfig("no turns: here".into()))
        })
        .await
        .unwrap();
        let bridge = bridges.local_for(&servers[0].urls[1]).unwrap();
        let rtc = rtc_servers(&servers, &bridges).unwrap();
        assert_eq!(
            rtc[0].urls,
            [
                "stun:127.0.0.1:3478".to_owned(),
                format!("turn:{bridge}?transport=udp"),
                "turn:127.0.0.1:3478".to_owned()
            ]
        );
        assert_eq!(
            (rtc[0].username.as_str(), rtc[0].credential.as_str()),
            ("u", "p")
        );
        assert_eq!(
            turn_urls(&servers),
            ["turn:127.0.0.1:3478?transport=tcp", "turn:127.0.0.1:3478"]
        );
        let addrs = turn_addrs(&servers, &bridges).await;
        assert_eq!(addrs, [bridge, "127.0.0.1:3478".parse().unwrap()]);
        // A bridged server that failed is named with why.
        let config = super::super::PeerConfig {
            ice_servers: servers.to_vec(),
            ice_relay_only: true,
            ..Default::default()
        };
        let finish = Finish::new(&config, None, &bridges).unwrap();
        *lock(&bridges.failures()[0].1) = Some("cannot connect over TCP: refused".into());
        let e = finish.apply("v=0\r\n".into()).unwrap_err().to_string();
        assert!(
            e.contains("turn:127.0.0.1:3478?transport=tcp (cannot connect over TCP: refused), turn:127.0.0.1:3478"),
            "{e}"
        );
    }

    #[test]
    fn public_ips_add_host_candidates_on_the_same_port() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 10.0.0.5 50000 typ host\r\n\
                   a=candidate:2 1 udp 2130706431 127.0.0.1 50001 typ host\r\n\
                   a=candidate:3 1 udp 1694498815 1.2.3.4 50000 typ srflx raddr 10.0.0.5 rport 50000\r\n\
                   a=end-of-candidates\r\n";
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        let out = with_public_ips(sdp, &[ip, "2001:db8::1".parse().unwrap()]);
        assert!(out.contains("a=candidate:11 1 udp 2130706430 192.0.2.10 50000 typ host\r\n"));
        assert!(out.contains("192.0.2.10 50001 typ host"));
        assert!(!out.contains("2001:db8"), "no IPv6 host candidate to copy");
        assert_eq!(out.matches("192.0.2.10").count(), 2);
        assert!(has_relay_candidate(
            "a=candidate:9 1 udp 5 10.9.9.9 4000 typ relay raddr 0.0.0.0 rport 0\r\n"
        ));
        assert!(!has_relay_candidate(sdp));
        assert_eq!(with_public_ips(sdp, &[]), sdp);
    }

    #[test]
    fn on_the_shared_port_host_candidates_name_it_once_per_address() {
        let sdp = "a=ice-ufrag:abcd\r\na=candidate:1 1 udp 2130706431 10.0.0.5 50000 typ host\r\n\
                   a=candidate:3 1 udp 1694498815 1.2.3.4 40000 typ srflx raddr 10.0.0.5 rport 50000\r\n";
        let ips = ["10.0.0.5".parse().unwrap(), "127.0.0.1".parse().unwrap()];
        let out = on_shared_port(sdp, &ips, 8189);
        assert!(out.contains("a=candidate:1 1 udp 2130706431 10.0.0.5 8189 typ host\r\n"));
        assert!(out.contains("a=candidate:11 1 udp 2130706430 127.0.0.1 8189 typ host\r\n"));
        assert!(!out.contains("50000 typ host"));
        assert!(out.contains("1.2.3.4 40000 typ srflx"), "others stay");
        assert_eq!(local_ufrags(sdp).collect::<Vec<_>>(), ["abcd"]);
    }
}
