//! TURN over TCP and TLS for our peers, through a local bridge. webrtc-rs 0.21's TURN
//! relayer speaks to its servers over UDP only (it skips `?transport=tcp` and `turns:`
//! URLs), and its runtime hook gives no way to hand it a stream; no crate does TURN-over-
//! TCP framing for webrtc-rs. So each such URL gets a UDP socket on loopback that the
//! peer's connection is pointed at as `turn:127.0.0.1:PORT?transport=udp` (same username
//! and credential): each UDP client address (one per local address the peer gathers on)
//! gets its own TCP or TLS connection to the real server, and the messages are carried
//! across with the stream framing of [`turn_frame`](super::turn_frame). The server sees a
//! TURN client over TCP; its allocation lives as long as that connection.
//!
//! Bounded: at most [`MAX_CLIENTS`] connections per bridge, [`CONNECT_TIMEOUT`] for the
//! connection and the TLS handshake, a frame size cap, an idle timeout. A server that
//! cannot be reached is logged naming it, and the client's requests are answered with
//! STUN errors so that gathering ends at once. Everything stops when the bridge is
//! dropped (with its peer).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::ice::{IceServer, IceUrl};
use super::turn_frame::{to_stream, unreachable_answer, Deframer, MAX_FRAME};
use super::PeerError;
use crate::sync::lock;

/// Connecting and (for TLS) the handshake must be done by then.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A connection with nothing either way for this long is closed (above the 300 s a TURN
/// client waits between Refreshes of an idle allocation with the default 600 s lifetime;
/// a connected peer's consent checks cross it every few seconds).
const IDLE_TIMEOUT: Duration = Duration::from_secs(360);
/// After a failed connection, requests are answered with errors until the client has
/// been quiet this long.
const FAILED_GRACE: Duration = Duration::from_secs(2);
/// Connections per bridge (one per local address the peer gathers on).
pub(crate) const MAX_CLIENTS: usize = 16;
/// Datagrams queued for a connection before the newest are dropped.
const QUEUE: usize = 256;
/// A write to the server that takes longer ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a server could not be used, shared with the errors that name it.
pub(crate) type Failure = Arc<Mutex<Option<String>>>;

/// The real server behind one bridge.
struct Target {
    url: String,
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    failure: Failure,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Target {
    async fn connect(&self) -> Result<Box<dyn Stream>, String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect over TCP: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let Some(config) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| format!("not a TLS server name: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        Ok(Box::new(tls))
    }

    fn failed(&self, why: String) {
        tracing::warn!("TURN server {}: {why}", self.url);
        *lock(&self.failure) = Some(why);
    }
}

/// One TCP or TLS TURN server reached through a loopback UDP socket.
struct TurnBridge {
    url: String,
    local: SocketAddr,
    failure: Failure,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TurnBridge {
    fn drop(&mut self) {
        // The task owns the socket and every connection task (a JoinSet aborts them).
        self.task.abort();
    }
}

/// A peer's bridges, one per TURN URL over TCP or TLS; dropped with the peer.
#[derive(Default)]
pub(crate) struct TurnBridges(Vec<TurnBridge>);

impl TurnBridges {
    /// A bridge for every `turn:…?transport=tcp` and `turns:` URL of `servers`; `tls` is
    /// asked for the TLS configuration only when a `turns:` URL is there.
    pub(crate) async fn start<F, Fut>(
        servers: &[IceServer],
        tls: F,
    ) -> Result<TurnBridges, PeerError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Arc<rustls::ClientConfig>, PeerError>>,
    {
        let mut wanted = Vec::new();
        for server in servers {
            for url in &server.urls {
                let parsed = IceUrl::parse(url).map_err(PeerError::IceConfig)?;
                if parsed.is_turn() && parsed.tcp && !wanted.iter().any(|(u, _)| u == url) {
                    wanted.push((url.clone(), parsed));
                }
            }
        }
        let config = if wanted
            .iter()
            .any(|(_, u)| u.scheme == super::IceScheme::Turns)
        {
            Some(tls().await?)
        } else {
            None
        };
        let mut bridges = Vec::new();
        for (url, parsed) in wanted {
            let bind = |source| PeerError::TurnBridge { source };
            let socket = UdpSocket::bind(("127.0.0.1", 0)).await.map_err(bind)?;
            let local = socket.local_addr().map_err(bind)?;
            let failure = Failure::default();
            let target = Target {
                url: url.clone(),
                host: parsed.host,
                port: parsed.port,
                tls: (parsed.scheme == super::IceScheme::Turns)
                    .then(|| config.clone())
                    .flatten(),
                failure: Arc::clone(&failure),
            };
            let task = tokio::spawn(run(Arc::new(socket), Arc::new(target)));
            bridges.push(TurnBridge {
                url,
                local,
                failure,
                task,
            });
        }
        Ok(TurnBridges(bridges))
    }

    /// The loopback address standing for `url`, if it is bridged.
    pub(crate) fn local_for(&self, url: &str) -> Option<SocketAddr> {
        self.0.iter().find(|b| b.url == url).map(|b| b.local)
    }

    /// Every bridge's loopback address.
    pub(crate) fn local_addrs(&self) -> Vec<SocketAddr> {
        self.0.iter().map(|b| b.local).collect()
    }

    /// Each bridged URL and where its failure (if any) is written.
    pub(crate) fn failures(&self) -> Vec<(String, Failure)> {
        self.0
            .iter()
            .map(|b| (b.url.clone(), Arc::clone(&b.failure)))
            .collect()
    }
}

/// Reads the loopback socket and hands each datagram to its client's connection, started
/// on the client's first datagram.
async fn run(socket: Arc<UdpSocket>, target: Arc<Target>) {
    let mut clients: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut tasks: JoinSet<SocketAddr> = JoinSet::new();
    let mut buf = vec![0u8; MAX_FRAME];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                // ICMP errors surface here on Linux; the socket is still good.
                let Ok((n, from)) = received else { continue };
                if !clients.contains_key(&from) {
                    // A connection that ended without reporting (it panicked) frees its place.
                    clients.retain(|_, tx| !tx.is_closed());
                    if clients.len() >= MAX_CLIENTS {
                        tracing::debug!("TURN bridge for {}: too many clients", target.url);
                        continue;
                    }
                    let (tx, rx) = mpsc::channel(QUEUE);
                    let (socket, target) = (Arc::clone(&socket), Arc::clone(&target));
                    tasks.spawn(connection(target, from, socket, rx));
                    clients.insert(from, tx);
                }
                if let Some(tx) = clients.get(&from) {
                    let _ = tx.try_send(buf[..n].to_vec());
                }
            }
            Some(Ok(done)) = tasks.join_next() => {
                clients.remove(&done);
            }
        }
    }
}

/// One client's connection to the server, until either side stops or it goes idle;
/// returns the client's address.
async fn connection(
    target: Arc<Target>,
    client: SocketAddr,
    socket: Arc<UdpSocket>,
    mut rx: mpsc::Receiver<Vec<u8>>,
) -> SocketAddr {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, target.connect()).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(why)) => return refuse(&target, why, client, &socket, rx).await,
        Err(_) => {
            let why = format!("no connection within {CONNECT_TIMEOUT:?}");
            return refuse(&target, why, client, &socket, rx).await;
        }
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut deframer = Deframer::default();
    let mut buf = vec![0u8; MAX_FRAME];
    let mut last = Instant::now();
    loop {
        tokio::select! {
            datagram = rx.recv() => {
                let Some(datagram) = datagram else { break };
                last = Instant::now();
                // Anything that is not a TURN message is not sent (UDP may drop).
                let Ok(bytes) = to_stream(&datagram) else { continue };
                match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&bytes)).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
            read = reader.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                last = Instant::now();
                deframer.push(&buf[..n]);
                loop {
                    match deframer.next_datagram() {
                        Ok(Some(datagram)) => {
                            let _ = socket.send_to(&datagram, client).await;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!("TURN server {}: {e}; closing the connection", target.url);
                            return client;
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(last + IDLE_TIMEOUT) => break,
        }
    }
    client
}

/// The server could not be reached: records why, and answers the client's requests with
/// STUN errors until it has been quiet for [`FAILED_GRACE`].
async fn refuse(
    target: &Target,
    why: String,
    client: SocketAddr,
    socket: &UdpSocket,
    mut rx: mpsc::Receiver<Vec<u8>>,
) -> SocketAddr {
    target.failed(why);
    while let Ok(Some(datagram)) = tokio::time::timeout(FAILED_GRACE, rx.recv()).await {
        if let Some(answer) = unreachable_answer(&datagram) {
            let _ = socket.send_to(&answer, client).await;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn server(url: &str) -> IceServer {
        IceServer {
            urls: vec![url.to_owned(), "turn:127.0.0.1:9".to_owned()],
            username: "u".into(),
            credential: "p".into(),
        }
    }

    async fn no_tls() -> Result<Arc<rustls::ClientConfig>, PeerError> {
        Err(PeerError::IceConfig("not asked".into()))
    }

    #[tokio::test]
    async fn datagrams_cross_to_the_stream_and_back_per_client() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("turn:{}?transport=tcp", listener.local_addr().unwrap());
        let bridges = TurnBridges::start(&[server(&url)], no_tls).await.unwrap();
        assert_eq!(bridges.local_addrs().len(), 1, "the UDP URL is not bridged");
        let bridge = bridges.local_for(&url).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // A STUN request, then ChannelData that the stream pads to 8 bytes.
        let mut request = vec![0, 3, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(b"transaction1");
        client.send_to(&request, bridge).await.unwrap();
        client.send_to(&[0x40, 0, 0, 1, 9], bridge).await.unwrap();
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut got = vec![0u8; 28];
        tcp.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [&request[..], &[0x40, 0, 0, 1, 9, 0, 0, 0]].concat());
        // The server's answer, in two writes cutting a message, comes back as datagrams.
        tcp.write_all(&[0x40, 1, 0, 2, 7]).await.unwrap();
        tcp.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        tcp.write_all(&[8, 0, 0]).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&[0x40, 1, 0, 2, 7, 8][..], bridge));
        // Out-of-step bytes from the server close the connection.
        tcp.write_all(&[0xff, 0, 0, 0]).await.unwrap();
        let mut end = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut end)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        // Dropping the bridges closes everything.
        client.send_to(&request, bridge).await.unwrap();
        let (mut second, _) = listener.accept().await.unwrap();
        second.read_exact(&mut got[..20]).await.unwrap();
        drop(bridges);
        let read = tokio::time::timeout(Duration::from_secs(2), second.read(&mut end)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    }

    #[tokio::test]
    async fn connections_are_capped_per_bridge() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("turn:{}?transport=tcp", listener.local_addr().unwrap());
        let bridges = TurnBridges::start(&[server(&url)], no_tls).await.unwrap();
        let bridge = bridges.local_for(&url).unwrap();
        let mut clients = Vec::new();
        for _ in 0..MAX_CLIENTS + 4 {
            let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            client.send_to(&[0x40, 0, 0, 0], bridge).await.unwrap();
            clients.push(client);
        }
        let mut accepted = Vec::new();
        while let Ok(Ok((tcp, _))) =
            tokio::time::timeout(Duration::from_millis(300), listener.accept()).await
        {
            accepted.push(tcp);
        }
        assert_eq!(accepted.len(), MAX_CLIENTS);
    }

    #[tokio::test]
    async fn an_unreachable_server_is_answered_with_errors_and_named() {
        // A port nothing listens on: connection refused.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("turn:{}?transport=tcp", closed.local_addr().unwrap());
        drop(closed);
        let bridges = TurnBridges::start(&[server(&url)], no_tls).await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut request = vec![0, 3, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(b"transaction1");
        client
            .send_to(&request, bridges.local_for(&url).unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf))
            .await
            .expect("an answer at once")
            .unwrap();
        assert_eq!(buf[0..2], [0x01, 0x13], "an Allocate error response");
        assert_eq!(buf[8..20], request[8..20]);
        assert!(n > 20);
        let failures = bridges.failures();
        let why = lock(&failures[0].1).clone().unwrap();
        assert!(why.contains("cannot connect over TCP"), "{why}");
    }

    #[tokio::test]
    async fn turns_asks_for_tls_and_its_error_stops_the_start() {
        let e = TurnBridges::start(&[server("turns:127.0.0.1:5349")], no_tls).await;
        assert!(matches!(e, Err(PeerError::IceConfig(m)) if m == "not asked"));
    }
}
