//! The receiving side of a fan-out benchmark, in a process of its own so that its CPU is
//! not the publisher's: it answers the offers it is sent, one peer each, and counts what
//! each peer receives — RTP packets and bytes, and frames (depacketized units, never
//! decoded). The two processes speak JSON lines: the publisher writes a [`Request`] a
//! line to the receiving process's stdin, which writes a [`Reply`] a line to its stdout.
//! [`serve`] is the receiving process's loop; [`ReceiverProcess`] the publisher's handle.

use std::io::{BufRead, Write};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::BenchError;
use crate::media::wall_clock_ms;
use crate::peer::{Peer, PeerFactory, RemoteTrack};
use crate::sync::lock;

/// How long a reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a viewer's track may take to appear after its answer.
const TRACK_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest request line read (an SDP offer is a few kB).
const MAX_LINE: usize = 1 << 20;

/// What the publisher asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Answer this offer with a new peer, known as `id`.
    Offer { id: usize, sdp: String },
    /// Report every viewer's counts.
    Report,
}

/// What the receiving process answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Answer {
        id: usize,
        sdp: String,
    },
    Failed {
        id: usize,
        error: String,
    },
    /// The counts, and when they were taken on the receiving process's clock (µs since
    /// it started serving): rates are taken over that clock, since a busy publisher may
    /// read the reply long after it was written.
    Report {
        viewers: Vec<ViewerCount>,
        at_us: u64,
    },
}

/// One report: every viewer's counts, taken at once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Sorted by id.
    pub viewers: Vec<ViewerCount>,
    /// When they were taken (the receiving process's clock).
    pub at: Duration,
}

/// What one viewer has received so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ViewerCount {
    pub id: usize,
    pub packets: u64,
    pub bytes: u64,
    /// Complete frames (depacketized units).
    pub frames: u64,
    /// When its first frame was complete: wall-clock ms since the UNIX epoch.
    pub first_frame_ms: Option<u64>,
}

/// One viewer in the receiving process.
struct Viewer {
    id: usize,
    peer: Arc<Peer>,
    track: Arc<Mutex<Option<RemoteTrack>>>,
    frames: Arc<AtomicU64>,
    first_frame_ms: Arc<AtomicU64>,
}

impl Viewer {
    fn count(&self) -> ViewerCount {
        let stats = lock(&self.track).as_ref().map(RemoteTrack::stats);
        let first = self.first_frame_ms.load(Ordering::Relaxed);
        ViewerCount {
            id: self.id,
            packets: stats.map_or(0, |s| s.packets_received),
            bytes: stats.map_or(0, |s| s.bytes_received),
            frames: self.frames.load(Ordering::Relaxed),
            first_frame_ms: (first > 0).then_some(first),
        }
    }
}

type Output = Arc<Mutex<Box<dyn Write + Send>>>;

fn send(output: &Output, reply: &Reply) {
    // A Reply always serializes; a closed stdout means the publisher has gone.
    let line = serde_json::to_string(reply).unwrap_or_default();
    let mut out = lock(output);
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        tracing::debug!("the publisher has gone");
    }
}

/// The receiving process's loop: reads [`Request`]s from `input` until it closes, answers
/// each offer with a peer of `factory` (which should not decode) and writes the
/// [`Reply`]s to `output`; then closes every peer.
pub async fn serve(
    input: impl BufRead + Send + 'static,
    output: impl Write + Send + 'static,
    factory: PeerFactory,
) -> Result<(), BenchError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(64);
    std::thread::Builder::new()
        .name("bench requests".into())
        .spawn(move || {
            for line in input.lines() {
                let Ok(line) = line else { break };
                if line.len() > MAX_LINE || tx.blocking_send(line).is_err() {
                    break;
                }
            }
        })
        .map_err(BenchError::io("starting the request reader"))?;
    let output: Output = Arc::new(Mutex::new(Box::new(output)));
    let factory = Arc::new(factory);
    let viewers: Arc<Mutex<Vec<Viewer>>> = Arc::default();
    let started = Instant::now();
    while let Some(line) = rx.recv().await {
        let request: Request = serde_json::from_str(&line)
            .map_err(|e| BenchError::Receivers(format!("a request that is not ours: {e}")))?;
        match request {
            Request::Report => {
                let counts = lock(&viewers).iter().map(Viewer::count).collect();
                let at_us = started.elapsed().as_micros() as u64;
                send(
                    &output,
                    &Reply::Report {
                        viewers: counts,
                        at_us,
                    },
                );
            }
            Request::Offer { id, sdp } => {
                let (factory, output, viewers) = (
                    Arc::clone(&factory),
                    Arc::clone(&output),
                    Arc::clone(&viewers),
                );
                tokio::spawn(async move { answer(id, &sdp, &factory, &output, &viewers).await });
            }
        }
    }
    let peers: Vec<Arc<Peer>> = lock(&viewers).iter().map(|v| Arc::clone(&v.peer)).collect();
    for p in peers {
        p.close().await;
    }
    Ok(())
}

/// Answers one offer and starts counting what its peer receives.
async fn answer(
    id: usize,
    sdp: &str,
    factory: &PeerFactory,
    output: &Output,
    viewers: &Mutex<Vec<Viewer>>,
) {
    let peer = match factory.create().await {
        Ok(p) => Arc::new(p),
        Err(e) => {
            return send(
                output,
                &Reply::Failed {
                    id,
                    error: e.to_string(),
                },
            )
        }
    };
    let answer = match peer.answer(sdp).await {
        Ok(a) => a,
        Err(e) => {
            peer.close().await;
            return send(
                output,
                &Reply::Failed {
                    id,
                    error: e.to_string(),
                },
            );
        }
    };
    let viewer = Viewer {
        id,
        peer: Arc::clone(&peer),
        track: Arc::default(),
        frames: Arc::default(),
        first_frame_ms: Arc::default(),
    };
    let (track, frames, first) = (
        Arc::clone(&viewer.track),
        Arc::clone(&viewer.frames),
        Arc::clone(&viewer.first_frame_ms),
    );
    lock(viewers).push(viewer);
    send(output, &Reply::Answer { id, sdp: answer });
    let Some(remote) = peer.next_remote_track(TRACK_TIMEOUT).await else {
        tracing::warn!("viewer {id}: no track within {TRACK_TIMEOUT:?}");
        return;
    };
    remote.forward_encoded(move |_unit| {
        if frames.fetch_add(1, Ordering::Relaxed) == 0 {
            first.store(wall_clock_ms(), Ordering::Relaxed);
        }
    });
    *lock(&track) = Some(remote);
}

/// The publisher's handle on the receiving process.
pub struct ReceiverProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl ReceiverProcess {
    /// Starts `command` (a program that runs [`serve`] on its stdin and stdout) with its
    /// stdin and stdout piped; its stderr is ours. It is killed if the handle is dropped.
    pub fn spawn(mut command: std::process::Command) -> Result<ReceiverProcess, BenchError> {
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = tokio::process::Command::from(command)
            .kill_on_drop(true)
            .spawn()
            .map_err(BenchError::io("starting the receiving process"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(BenchError::Receivers("its pipes are missing".into()));
        };
        Ok(ReceiverProcess {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout).lines(),
        })
    }

    /// Its process id (for its CPU and memory); `None` once it has exited.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn request(&mut self, request: &Request) -> Result<(), BenchError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| BenchError::Receivers("already finished".into()))?;
        let mut line =
            serde_json::to_string(request).map_err(|e| BenchError::Receivers(e.to_string()))?;
        line.push('\n');
        stdin
            .write_all(line.as_bytes())
            .await
            .map_err(BenchError::io("writing to the receiving process"))?;
        stdin
            .flush()
            .await
            .map_err(BenchError::io("writing to the receiving process"))
    }

    async fn reply(&mut self) -> Result<Reply, BenchError> {
        let line = tokio::time::timeout(REPLY_TIMEOUT, self.stdout.next_line())
            .await
            .map_err(|_| {
                BenchError::Timeout(format!(
                    "the receiving process did not reply within {REPLY_TIMEOUT:?}"
                ))
            })?
            .map_err(BenchError::io("reading from the receiving process"))?
            .ok_or_else(|| BenchError::Receivers("it exited".into()))?;
        serde_json::from_str(&line).map_err(|e| {
            BenchError::Receivers(format!("a reply that is not ours ({e}): {line:.200}"))
        })
    }

    /// Sends an offer for viewer `id` (answered by [`next_answer`](Self::next_answer)).
    pub async fn offer(&mut self, id: usize, sdp: String) -> Result<(), BenchError> {
        self.request(&Request::Offer { id, sdp }).await
    }

    /// The next answer: (viewer id, SDP). A failed answer is an error naming the viewer.
    pub async fn next_answer(&mut self) -> Result<(usize, String), BenchError> {
        match self.reply().await? {
            Reply::Answer { id, sdp } => Ok((id, sdp)),
            Reply::Failed { id, error } => {
                Err(BenchError::Receivers(format!("viewer {id}: {error}")))
            }
            Reply::Report { .. } => Err(BenchError::Receivers(
                "a report where an answer was due".into(),
            )),
        }
    }

    /// Every viewer's counts now, in viewer order. Call between answers, not while
    /// offers are unanswered.
    pub async fn report(&mut self) -> Result<Report, BenchError> {
        self.request(&Request::Report).await?;
        match self.reply().await? {
            Reply::Report { mut viewers, at_us } => {
                viewers.sort_by_key(|v| v.id);
                Ok(Report {
                    viewers,
                    at: Duration::from_micros(at_us),
                })
            }
            other => Err(BenchError::Receivers(format!(
                "{other:?} where a report was due"
            ))),
        }
    }

    /// Closes its stdin (it closes its peers and exits) and waits up to 10 s for it to
    /// exit, then kills it.
    pub async fn finish(mut self) {
        self.stdin = None;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
