//! A peer's impaired UDP path, in process and below SRTP: a webrtc-rs [`Runtime`] whose
//! UDP sockets are wrapped so that every datagram sent goes through the outbound
//! [`Impairment`] and every datagram received through the inbound one — STUN, DTLS, SRTP
//! and SRTCP alike, as on a real network. One async driver task per impaired peer lets the
//! packets out when the models say (honouring their `poll_timeout`) and applies the
//! schedule's changes; the wrapped socket reads its real one into the inbound model
//! whenever webrtc-rs polls it. Bounded: the models hold at most
//! [`MAX_IN_FLIGHT`](super::impair::MAX_IN_FLIGHT) packets each, each socket's inbox
//! [`INBOX`].

use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, Notify};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    Transmit,
};

use super::impair::{derive_seed, ImpairCounters, ImpairSchedule, ImpairSpec, Impairment};
use crate::sync::lock;

/// Datagrams let in and waiting for webrtc-rs to read them, per socket; more are dropped.
pub const INBOX: usize = 1024;
/// The first packets lost by the loss model are remembered by their place in arrival
/// order (the determinism check), at most this many per direction.
pub const FIRST_LOSSES: usize = 64;
/// Datagrams read from a real socket in one poll before yielding.
const READ_BURST: usize = 64;
/// The largest datagram (or GRO segment) read.
const SEGMENT: usize = 2048;

/// A datagram inside a model: which socket of the peer it crosses, the other end's
/// address, its bytes.
#[derive(Debug)]
struct Datagram {
    socket: usize,
    addr: SocketAddr,
    data: Vec<u8>,
}

impl AsRef<[u8]> for Datagram {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// One direction: its model and the first losses it decided.
#[derive(Debug)]
struct Direction {
    model: Impairment<Datagram>,
    seed: u64,
    first_losses: Vec<u64>,
}

impl Direction {
    fn new(spec: &ImpairSpec, seed: u64) -> Self {
        Direction {
            model: Impairment::new(ImpairSpec {
                seed,
                ..spec.clone()
            }),
            seed,
            first_losses: Vec::new(),
        }
    }

    fn push(&mut self, datagram: Datagram, now: Instant) {
        let before = self.model.counters();
        self.model.push(datagram, now);
        let after = self.model.counters();
        if after.dropped_loss > before.dropped_loss && self.first_losses.len() < FIRST_LOSSES {
            self.first_losses.push(before.received);
        }
    }

    fn report(&self) -> DirectionReport {
        let counters = self.model.counters();
        DirectionReport {
            counters,
            dropped: counters.dropped(),
            seed: self.seed,
            first_losses: self.first_losses.clone(),
        }
    }
}

/// What one direction of an impaired peer's path did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectionReport {
    /// Packets in, dropped by reason, delayed, reordered, delivered.
    #[serde(flatten)]
    pub counters: ImpairCounters,
    /// Every packet dropped, whatever the reason.
    pub dropped: u64,
    /// The seed of this direction's draws (derived from the spec's).
    pub seed: u64,
    /// Where the first packets the loss model dropped came in the arrival order (0 is the
    /// first packet), at most [`FIRST_LOSSES`]: the same seed gives the same list.
    pub first_losses: Vec<u64>,
}

/// What an impaired peer's path did so far (`Peer::impairment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImpairReport {
    /// The conditions now, in the spec's syntax (the schedule's current step, with the seed
    /// given; each direction's own is below).
    pub spec: String,
    /// The peer's place among the impaired peers of its factory (seeds derive from it).
    pub peer_index: u64,
    /// Packets we sent.
    pub outbound: DirectionReport,
    /// Packets sent to us.
    pub inbound: DirectionReport,
}

/// What the driver, the sockets and the peer share.
struct State {
    outbound: Direction,
    inbound: Direction,
    schedule: ImpairSchedule,
    /// The next step of the schedule to apply.
    next_step: usize,
    /// The peer's sockets, by index.
    sockets: Vec<Weak<SocketEntry>>,
    driver: Option<tokio::task::JoinHandle<()>>,
    stopped: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the driver: a packet went in, a socket came or went, the link stopped.
    wake: Arc<Notify>,
    start: Instant,
    peer_index: u64,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

/// A peer's impaired path (cheap to clone; the counters stay readable after the peer closes).
#[derive(Clone)]
pub struct ImpairLink {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ImpairLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImpairLink")
            .field("peer_index", &self.shared.peer_index)
            .finish_non_exhaustive()
    }
}

impl ImpairLink {
    /// The path of the `peer_index`-th impaired peer, under `schedule` from now.
    pub(crate) fn new(schedule: ImpairSchedule, peer_index: u64) -> Self {
        let seed = schedule.seed();
        let first = schedule.first().clone();
        let state = State {
            outbound: Direction::new(&first, derive_seed(seed, peer_index, 0)),
            inbound: Direction::new(&first, derive_seed(seed, peer_index, 1)),
            schedule,
            next_step: 1,
            sockets: Vec::new(),
            driver: None,
            stopped: false,
        };
        ImpairLink {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                wake: Arc::new(Notify::new()),
                start: Instant::now(),
                peer_index,
            }),
        }
    }

    /// What it did so far.
    pub fn report(&self) -> ImpairReport {
        let s = lock(&self.shared.state);
        let spec = ImpairSpec {
            seed: s.schedule.seed(),
            ..s.outbound.model.spec().clone()
        };
        ImpairReport {
            spec: spec.to_string(),
            peer_index: self.shared.peer_index,
            outbound: s.outbound.report(),
            inbound: s.inbound.report(),
        }
    }

    /// Stops the driver (the peer closed); packets still inside are dropped.
    pub(crate) fn stop(&self) {
        let mut s = lock(&self.shared.state);
        s.stopped = true;
        if let Some(driver) = s.driver.take() {
            driver.abort();
        }
    }

    /// A runtime as `inner`, except that its UDP sockets cross this path.
    pub(crate) fn runtime(&self, inner: Arc<dyn Runtime>) -> Arc<dyn Runtime> {
        Arc::new(ImpairRuntime {
            inner,
            link: self.clone(),
        })
    }

    fn wrap(&self, inner: Arc<dyn AsyncUdpSocket>) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let local = inner.local_addr()?;
        let segments = inner.max_gro_segments().clamp(1, 64);
        let (tx, rx) = mpsc::channel(INBOX);
        let entry = Arc::new(SocketEntry { inner, inbox: tx });
        let index = {
            let mut s = lock(&self.shared.state);
            s.sockets.push(Arc::downgrade(&entry));
            let running = s.driver.as_ref().is_some_and(|d| !d.is_finished());
            if !running && !s.stopped {
                let handle = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
                s.driver = Some(handle.spawn(drive(
                    Arc::downgrade(&self.shared),
                    Arc::clone(&self.shared.wake),
                )));
            }
            s.sockets.len() - 1
        };
        Ok(Arc::new(ImpairedSocket {
            entry,
            inbox: Mutex::new(rx),
            link: self.clone(),
            index,
            local,
            buf: Mutex::new(vec![0; segments.max(1) * SEGMENT]),
        }))
    }
}

impl State {
    /// Applies the schedule's steps due at `elapsed`; when the next one is due.
    fn follow_schedule(&mut self, elapsed: Duration) -> Option<Duration> {
        let steps = self.schedule.steps();
        while let Some((at, spec)) = steps.get(self.next_step) {
            if *at > elapsed {
                return Some(*at);
            }
            self.outbound.model.set_spec(spec.clone());
            self.inbound.model.set_spec(spec.clone());
            self.next_step += 1;
        }
        None
    }
}

/// Datagrams due, each with the socket it crosses.
type Due = Vec<(Arc<SocketEntry>, Datagram)>;

impl Shared {
    /// What is due at `now` each way, and when to look again; `None` once stopped.
    fn due(&self, now: Instant) -> Option<(Due, Due, Option<Instant>)> {
        let mut s = lock(&self.state);
        if s.stopped {
            return None;
        }
        let change = s.follow_schedule(now - self.start);
        let mut out = Vec::new();
        while let Some(d) = s.outbound.model.poll_output(now) {
            out.push(d);
        }
        let mut into = Vec::new();
        while let Some(d) = s.inbound.model.poll_output(now) {
            into.push(d);
        }
        let with_socket = |list: Vec<Datagram>| -> Due {
            list.into_iter()
                .filter_map(|d| Some((s.sockets.get(d.socket)?.upgrade()?, d)))
                .collect()
        };
        let (out, into) = (with_socket(out), with_socket(into));
        let next = [
            s.outbound.model.poll_timeout(),
            s.inbound.model.poll_timeout(),
            change.map(|at| self.start + at),
        ]
        .into_iter()
        .flatten()
        .min();
        Some((out, into, next))
    }
}

/// The driver of one impaired peer: lets packets out when due, until the peer goes.
async fn drive(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let Some(link) = shared.upgrade() else { return };
        let Some((out, into, next)) = link.due(Instant::now()) else {
            return;
        };
        drop(link);
        for (entry, d) in into {
            // A full inbox drops the datagram, as a full socket buffer would.
            let _ = entry.inbox.try_send((d.data, d.addr));
        }
        for (entry, d) in out {
            if let Err(e) = entry.inner.send_to(&d.data, d.addr).await {
                tracing::debug!("impaired send to {}: {e}", d.addr);
            }
        }
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

/// A real socket and the inbox of what the inbound model let through for it.
struct SocketEntry {
    inner: Arc<dyn AsyncUdpSocket>,
    inbox: mpsc::Sender<(Vec<u8>, SocketAddr)>,
}

/// A socket as webrtc-rs sees it: sends go into the outbound model, receives come out of
/// the inbound one.
struct ImpairedSocket {
    entry: Arc<SocketEntry>,
    inbox: Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    link: ImpairLink,
    index: usize,
    local: SocketAddr,
    buf: Mutex<Vec<u8>>,
}

impl std::fmt::Debug for ImpairedSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImpairedSocket")
            .field("local", &self.local)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Drop for ImpairedSocket {
    fn drop(&mut self) {
        self.link.shared.wake.notify_one();
    }
}

impl ImpairedSocket {
    /// Reads what the real socket has into the inbound model; an error it reports.
    fn read_inner(&self, cx: &mut Context<'_>) -> Option<io::Error> {
        let mut buf = lock(&self.buf);
        let mut read = Vec::new();
        let mut error = None;
        for _ in 0..READ_BURST {
            let mut meta = [RecvMeta::default()];
            let mut bufs = [IoSliceMut::new(&mut buf)];
            match self.entry.inner.poll_recv(cx, &mut bufs, &mut meta) {
                Poll::Ready(Ok(n)) if n > 0 => {
                    let m = meta[0];
                    let len = m.len.min(buf.len());
                    for chunk in buf[..len].chunks(m.stride.max(1)) {
                        read.push((chunk.to_vec(), m.addr));
                    }
                }
                Poll::Ready(Ok(_)) | Poll::Pending => break,
                Poll::Ready(Err(e)) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if read.len() >= READ_BURST {
            // More may be waiting: come back after the others had a turn.
            cx.waker().wake_by_ref();
        }
        drop(buf);
        if !read.is_empty() {
            let now = Instant::now();
            let mut s = lock(&self.link.shared.state);
            for (data, addr) in read {
                let d = Datagram {
                    socket: self.index,
                    addr,
                    data,
                };
                s.inbound.push(d, now);
            }
            drop(s);
            self.link.shared.wake.notify_one();
        }
        error
    }
}

impl AsyncUdpSocket for ImpairedSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// Never waits: the datagram goes into the outbound model (which drops what it cannot
    /// hold), the driver sends it when due.
    fn poll_send(&self, _cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let contents = transmit.contents;
        let segment = transmit.segment_size.unwrap_or(contents.len()).max(1);
        let now = Instant::now();
        {
            let mut s = lock(&self.link.shared.state);
            for chunk in contents.chunks(segment) {
                let d = Datagram {
                    socket: self.index,
                    addr: transmit.destination,
                    data: chunk.to_vec(),
                };
                s.outbound.push(d, now);
            }
        }
        self.link.shared.wake.notify_one();
        Poll::Ready(Ok(contents.len()))
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.read_inner(cx) {
            return Poll::Ready(Err(e));
        }
        let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        match lock(&self.inbox).poll_recv(cx) {
            Poll::Ready(Some((data, from))) => {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                *m = RecvMeta::default();
                m.len = n;
                m.stride = n.max(1);
                m.addr = from;
                Poll::Ready(Ok(1))
            }
            _ => Poll::Pending,
        }
    }
}

/// `inner`, except that its UDP sockets are impaired.
#[derive(Debug)]
struct ImpairRuntime {
    inner: Arc<dyn Runtime>,
    link: ImpairLink,
}

impl Runtime for ImpairRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(
        &self,
        size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let inner = self.inner.wrap_udp_socket(socket)?;
        self.link.wrap(inner)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.inner.connect_tcp(remote)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.inner.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.yield_now()
    }

    fn name(&self) -> &'static str {
        "impaired"
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("peer_index", &self.peer_index)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc::runtime::TokioRuntime;

    /// Two real sockets on loopback, `a` impaired by `spec`.
    async fn pair(spec: &str) -> (ImpairLink, Arc<dyn AsyncUdpSocket>, tokio::net::UdpSocket) {
        let link = ImpairLink::new(ImpairSchedule::from_arg(spec).unwrap(), 0);
        let rt = link.runtime(Arc::new(TokioRuntime));
        let a = rt
            .wrap_udp_socket(std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .unwrap();
        let b = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        (link, a, b)
    }

    #[tokio::test]
    async fn both_directions_cross_the_models() {
        let (link, a, b) = pair("loss=50%,seed=1").await;
        let a_addr = a.local_addr().unwrap();
        let b_addr = b.local_addr().unwrap();
        for i in 0..200u8 {
            a.send_to(&[i; 20], b_addr).await.unwrap();
            b.send_to(&[i; 30], a_addr).await.unwrap();
        }
        let mut got_b = 0;
        let mut buf = [0u8; 64];
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(300), b.recv_from(&mut buf)).await
        {
            got_b += 1;
        }
        let mut got_a = 0;
        while let Ok(Ok((n, from))) =
            tokio::time::timeout(Duration::from_millis(300), a.recv_from(&mut buf)).await
        {
            assert_eq!((n, from), (30, b_addr));
            got_a += 1;
        }
        let r = link.report();
        assert_eq!(r.outbound.counters.received, 200);
        assert_eq!(r.inbound.counters.received, 200);
        assert_eq!(r.outbound.counters.delivered, got_b);
        assert_eq!(r.inbound.counters.delivered, got_a);
        assert_eq!(r.outbound.dropped + got_b, 200);
        assert!(
            (60..140).contains(&got_a) && (60..140).contains(&got_b),
            "{r:?}"
        );
        assert_ne!(
            r.outbound.first_losses, r.inbound.first_losses,
            "distinct seeds"
        );
        assert_eq!(r.outbound.first_losses.len(), FIRST_LOSSES);
        // The same seed, the same losses.
        let (again, a2, _b2) = pair("loss=50%,seed=1").await;
        for i in 0..200u8 {
            a2.send_to(&[i; 20], b_addr).await.unwrap();
        }
        assert_eq!(
            again.report().outbound.first_losses,
            r.outbound.first_losses
        );
        link.stop();
        again.stop();
    }

    #[tokio::test]
    async fn delay_holds_packets_and_the_schedule_changes_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.json");
        std::fs::write(
            &file,
            r#"[{"at_s":0,"delay":"100ms"},{"at_s":0.5,"delay":"0ms"}]"#,
        )
        .unwrap();
        let (link, a, b) = pair(&format!("@{}", file.display())).await;
        let b_addr = b.local_addr().unwrap();
        let mut buf = [0u8; 64];
        let sent = Instant::now();
        a.send_to(b"x", b_addr).await.unwrap();
        b.recv_from(&mut buf).await.unwrap();
        let first = sent.elapsed();
        assert!(first >= Duration::from_millis(95), "{first:?}");
        tokio::time::sleep(Duration::from_millis(600)).await;
        let sent = Instant::now();
        a.send_to(b"y", b_addr).await.unwrap();
        b.recv_from(&mut buf).await.unwrap();
        let second = sent.elapsed();
        assert!(second < Duration::from_millis(50), "{second:?}");
        let r = link.report();
        assert_eq!(
            (r.outbound.counters.delayed, r.outbound.counters.delivered),
            (1, 2)
        );
        assert!(r.spec.contains("delay=0ms"), "{}", r.spec);
        link.stop();
    }
}
