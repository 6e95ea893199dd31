//! One UDP port for every peer: a shared socket whose datagrams are handed to the peer
//! they belong to ([`mux_routes`](super::mux_routes)). webrtc-rs 0.21 has no UDP mux
//! (its `SettingEngine::with_udp_network` is commented out); each connection binds its
//! own sockets through its [`Runtime`]. So each muxed peer gets a runtime whose
//! `wrap_udp_socket` lets go of the socket the driver bound and hands back a virtual one
//! on the shared port; our descriptions then name the shared port (see
//! [`ice::Finish`](super::ice)). TURN traffic goes through a socket of the peer's own:
//! a TURN server keeps one allocation per 5-tuple.

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit,
};

use super::mux_routes::{classify, Kind, PeerId, Routes};
use crate::sync::lock;

/// Datagrams queued for one peer before the newest are dropped (UDP may drop).
const INBOX: usize = 1024;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 2048;

type Datagram = (Vec<u8>, SocketAddr);

/// The shared socket and who is behind it.
pub(crate) struct UdpMux {
    socket: Arc<tokio::net::UdpSocket>,
    local: SocketAddr,
    routes: Mutex<Routes>,
    inboxes: Mutex<HashMap<PeerId, mpsc::Sender<Datagram>>>,
    next: AtomicU64,
    /// The reader task, stopped with the mux (it holds the socket: the port is freed).
    reader: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for UdpMux {
    fn drop(&mut self) {
        if let Some(reader) = lock(&self.reader).take() {
            reader.abort();
        }
    }
}

impl UdpMux {
    /// Binds `addr` and starts reading it (inside a tokio runtime). The reader stops, and
    /// the port is freed, when the last handle on the mux goes.
    pub(crate) fn bind(addr: SocketAddr) -> io::Result<Arc<UdpMux>> {
        let std = std::net::UdpSocket::bind(addr)?;
        std.set_nonblocking(true)?;
        let socket = Arc::new(tokio::net::UdpSocket::from_std(std)?);
        let mux = Arc::new(UdpMux {
            local: socket.local_addr()?,
            socket: Arc::clone(&socket),
            routes: Mutex::default(),
            inboxes: Mutex::default(),
            next: AtomicU64::new(1),
            reader: Mutex::new(None),
        });
        let reader = tokio::spawn(read(socket, Arc::downgrade(&mux)));
        *lock(&mux.reader) = Some(reader);
        Ok(mux)
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// A new peer's place on the port; `turn` are the TURN servers' addresses, reached
    /// through a socket of the peer's own.
    pub(crate) fn port(self: &Arc<Self>, turn: Vec<SocketAddr>) -> Arc<PeerPort> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(INBOX);
        lock(&self.inboxes).insert(id, tx);
        let port = Arc::new(PeerPort {
            mux: Arc::clone(self),
            id,
            inbox: Mutex::new(rx),
            turn,
            aux: OnceLock::new(),
        });
        // Bound before the connection polls for its first datagram, so that the poll
        // watches it too (a failure shows on the first TURN send).
        if !port.turn.is_empty() {
            let _ = port.aux();
        }
        port
    }
}

/// Reads the shared socket and hands each datagram to its peer; unroutable ones are dropped.
async fn read(socket: Arc<tokio::net::UdpSocket>, mux: Weak<UdpMux>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            // ICMP errors surface here on Linux; the socket is still good.
            if mux.strong_count() == 0 {
                return;
            }
            continue;
        };
        let Some(mux) = mux.upgrade() else {
            return;
        };
        let packet = &buf[..n];
        let Some(peer) = lock(&mux.routes).incoming(from, packet) else {
            continue;
        };
        // try_send never waits: handing over under the lock spares a Sender clone per
        // datagram.
        let inboxes = lock(&mux.inboxes);
        if let Some(inbox) = inboxes.get(&peer) {
            let _ = inbox.try_send((packet.to_vec(), from));
        }
    }
}

/// One peer's place on the shared port: its inbox, its TURN socket.
pub(crate) struct PeerPort {
    mux: Arc<UdpMux>,
    id: PeerId,
    inbox: Mutex<mpsc::Receiver<Datagram>>,
    turn: Vec<SocketAddr>,
    aux: OnceLock<io::Result<Arc<tokio::net::UdpSocket>>>,
}

impl std::fmt::Debug for PeerPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerPort")
            .field("port", &self.mux.local)
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for PeerPort {
    fn drop(&mut self) {
        lock(&self.mux.inboxes).remove(&self.id);
        lock(&self.mux.routes).remove(self.id);
    }
}

impl PeerPort {
    /// The shared port's address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.mux.local
    }

    /// Checks arriving for `ufrag` (our local one) are this peer's.
    pub(crate) fn register_ufrag(&self, ufrag: &str) {
        lock(&self.mux.routes).register_ufrag(self.id, ufrag);
    }

    /// The peer's own socket for TURN (bound on first use, on the mux's address family).
    fn aux(&self) -> io::Result<&Arc<tokio::net::UdpSocket>> {
        let made = self.aux.get_or_init(|| {
            let ip = self.mux.local.ip();
            let std = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
            std.set_nonblocking(true)?;
            Ok(Arc::new(tokio::net::UdpSocket::from_std(std)?))
        });
        made.as_ref()
            .map_err(|e| io::Error::new(e.kind(), e.to_string()))
    }

    /// Whether `packet` to `to` goes through the peer's own socket: TURN traffic (a STUN
    /// Binding request to the same server still goes through the shared port, so that
    /// the server-reflexive address is the shared port's).
    fn via_aux(&self, to: SocketAddr, packet: &[u8]) -> bool {
        self.turn.contains(&to)
            && !matches!(classify(packet), Kind::Request { .. } if packet[0..2] == [0, 1])
    }
}

/// A peer's view of the shared port, handed to its connection in place of a socket.
#[derive(Debug)]
struct MuxSocket {
    port: Arc<PeerPort>,
    /// The address the driver bound (and keys its candidates by).
    local: SocketAddr,
}

impl AsyncUdpSocket for MuxSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let (to, packet) = (transmit.destination, transmit.contents);
        if self.port.via_aux(to, packet) {
            return self.port.aux()?.poll_send_to(cx, packet, to);
        }
        lock(&self.port.mux.routes).outgoing(self.port.id, to, packet);
        self.port.mux.socket.poll_send_to(cx, packet, to)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        let mut deliver = |data: &[u8], from: SocketAddr| {
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            *m = RecvMeta::default();
            m.len = n;
            m.stride = n.max(1);
            m.addr = from;
            Poll::Ready(Ok(1))
        };
        if let Poll::Ready(Some((data, from))) = lock(&self.port.inbox).poll_recv(cx) {
            return deliver(&data, from);
        }
        if let Some(Ok(aux)) = self.port.aux.get() {
            let mut tmp = [0u8; MAX_DATAGRAM];
            let mut read = tokio::io::ReadBuf::new(&mut tmp);
            if let Poll::Ready(Ok(from)) = aux.poll_recv_from(cx, &mut read) {
                return deliver(read.filled(), from);
            }
        }
        Poll::Pending
    }
}

/// tokio, except that the connection's UDP sockets are views of the shared port.
#[derive(Debug)]
pub(crate) struct MuxRuntime {
    pub(crate) port: Arc<PeerPort>,
}

impl Runtime for MuxRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn(future)
    }

    fn spawn_reactor(
        &self,
        size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn_reactor(size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let local = socket.local_addr()?;
        drop(socket);
        Ok(Arc::new(MuxSocket {
            port: Arc::clone(&self.port),
            local,
        }))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        TokioRuntime.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        Box::pin(async move { TokioRuntime.connect_tcp(remote).await })
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move { TokioRuntime.resolve_host(host).await })
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        TokioRuntime.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        TokioRuntime.block_on(future)
    }

    fn name(&self) -> &'static str {
        "tokio+udp-mux"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_port_is_freed_with_the_mux() {
        let mux = UdpMux::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = mux.local_addr();
        assert!(UdpMux::bind(addr).is_err(), "in use");
        drop(mux);
        tokio::task::yield_now().await;
        let again = UdpMux::bind(addr);
        assert!(again.is_ok(), "{:?}", again.err());
    }

    #[tokio::test]
    async fn datagrams_reach_the_peer_whose_ufrag_they_name() {
        let mux = UdpMux::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let (a, b) = (mux.port(vec![]), mux.port(vec![]));
        a.register_ufrag("aaaa");
        b.register_ufrag("bbbb");
        let remote = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // A STUN Binding request with USERNAME "bbbb:rrrr".
        let mut check = vec![0, 1, 0, 16, 0x21, 0x12, 0xa4, 0x42];
        check.extend_from_slice(&[7; 12]);
        check.extend_from_slice(&[0, 6, 0, 9]);
        check.extend_from_slice(b"bbbb:rrrr\0\0\0");
        remote.send_to(&check, mux.local_addr()).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), async {
            std::future::poll_fn(|cx| lock(&b.inbox).poll_recv(cx)).await
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(got, (check, remote.local_addr().unwrap()));
        assert!(lock(&a.inbox).try_recv().is_err(), "not the other peer's");
    }
}
