//! Runs one open [`Source`] on its own thread and fans its frames out to the tracks
//! attached to it (a track and its clones). Each track hands frames to its subscribers over
//! bounded channels: a slow subscriber loses frames (counted), it never blocks capture or
//! the other subscribers. The thread ends — and the device is released — when no live
//! track is attached, or when the source ends (the tracks then end with it).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::source::{MediaFrame, Source, SourceError};
use crate::constraints::{MediaKind, MediaTrackSettings};
use crate::frame::VideoFrame;
use crate::sync::lock;

/// Why a track's frames stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("track ended: {reason}")]
pub struct TrackEnded {
    pub reason: String,
}

/// The receiving end of a subscription to a track.
pub struct FrameReceiver {
    rx: Receiver<MediaFrame>,
    dropped: Arc<AtomicU64>,
    output: Arc<TrackOutput>,
}

impl FrameReceiver {
    /// The next frame; `Err` once the track has ended (stopped, or its source is gone).
    pub fn recv(&self) -> Result<MediaFrame, TrackEnded> {
        self.rx.recv().map_err(|_| self.output.end_reason())
    }

    /// The next frame within `timeout`; `Ok(None)` on timeout.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<MediaFrame>, TrackEnded> {
        match self.rx.recv_timeout(timeout) {
            Ok(f) => Ok(Some(f)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(self.output.end_reason()),
        }
    }

    /// A frame if one is waiting.
    pub fn try_recv(&self) -> Option<MediaFrame> {
        self.rx.try_recv().ok()
    }

    /// Frames this subscriber lost because its queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

struct Subscriber {
    tx: SyncSender<MediaFrame>,
    dropped: Arc<AtomicU64>,
}

/// The per-track end of a worker: enabled flag, subscribers, counters.
pub(crate) struct TrackOutput {
    enabled: AtomicBool,
    ended: Mutex<Option<String>>,
    subscribers: Mutex<Vec<Subscriber>>,
    delivered: AtomicU64,
}

impl TrackOutput {
    pub(crate) fn new(enabled: bool) -> Arc<Self> {
        Arc::new(TrackOutput {
            enabled: AtomicBool::new(enabled),
            ended: Mutex::new(None),
            subscribers: Mutex::new(Vec::new()),
            delivered: AtomicU64::new(0),
        })
    }

    pub(crate) fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub(crate) fn is_ended(&self) -> bool {
        lock(&self.ended).is_some()
    }

    /// Frames handed to this track's subscribers so far (before per-subscriber drops).
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    fn end_reason(&self) -> TrackEnded {
        TrackEnded {
            reason: lock(&self.ended).clone().unwrap_or_else(|| "ended".into()),
        }
    }

    /// Ends the track: no more frames; subscribers see the end once they drain.
    pub(crate) fn end(&self, reason: &str) {
        let mut ended = lock(&self.ended);
        if ended.is_none() {
            *ended = Some(reason.to_owned());
        }
        drop(ended);
        lock(&self.subscribers).clear();
    }

    pub(crate) fn subscribe(self: &Arc<Self>, capacity: usize) -> FrameReceiver {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        if !self.is_ended() {
            lock(&self.subscribers).push(Subscriber {
                tx,
                dropped: Arc::clone(&dropped),
            });
        }
        FrameReceiver {
            rx,
            dropped,
            output: Arc::clone(self),
        }
    }

    fn deliver(&self, frame: &MediaFrame) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        lock(&self.subscribers).retain(|s| match s.tx.try_send(frame.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }
}

/// The same frame made black or silent, for disabled tracks.
fn blanked(frame: &MediaFrame) -> MediaFrame {
    match frame {
        MediaFrame::Video(f) => MediaFrame::Video(Arc::new(
            VideoFrame::black(f.width(), f.height()).with_times(f.timestamp, f.capture_time_ms),
        )),
        MediaFrame::Audio(a) => MediaFrame::Audio(Arc::new(a.silenced())),
    }
}

/// Which devices have open sources, and how many: the "devices in use" report.
#[derive(Debug, Default)]
pub(crate) struct UsageRegistry {
    open: Mutex<BTreeMap<String, usize>>,
}

impl UsageRegistry {
    pub(crate) fn lease(self: &Arc<Self>, device_id: &str) -> DeviceLease {
        *lock(&self.open).entry(device_id.to_owned()).or_insert(0) += 1;
        DeviceLease {
            registry: Arc::clone(self),
            device_id: device_id.to_owned(),
        }
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<String, usize> {
        lock(&self.open).clone()
    }
}

/// Counts one open source of a device for as long as it lives.
pub(crate) struct DeviceLease {
    registry: Arc<UsageRegistry>,
    device_id: String,
}

impl Drop for DeviceLease {
    fn drop(&mut self) {
        let mut open = lock(&self.registry.open);
        if let Some(n) = open.get_mut(&self.device_id) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.device_id);
            }
        }
        tracing::info!("device released: {:?}", self.device_id);
    }
}

type Reply = SyncSender<Result<(), SourceError>>;

enum Control {
    Reconfigure(MediaTrackSettings, Reply),
}

/// A handle on a running worker.
pub(crate) struct Worker {
    control: Mutex<mpsc::Sender<Control>>,
    outputs: Arc<Mutex<Vec<Weak<TrackOutput>>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Worker {
    /// Starts the worker thread for an open source, feeding `first` (attached before the
    /// thread starts, so it cannot find itself without tracks). `label` names the thread.
    pub(crate) fn spawn(
        source: Box<dyn Source>,
        kind: MediaKind,
        label: &str,
        lease: DeviceLease,
        first: &Arc<TrackOutput>,
    ) -> Result<Arc<Worker>, SourceError> {
        let (control_tx, control_rx) = mpsc::channel();
        let outputs = Arc::new(Mutex::new(vec![Arc::downgrade(first)]));
        let thread_outputs = Arc::clone(&outputs);
        let thread = std::thread::Builder::new()
            .name(format!("{kind} source {label}"))
            .spawn(move || run(source, control_rx, thread_outputs, lease))
            .map_err(|e| SourceError::Open(format!("cannot start the capture thread: {e}")))?;
        Ok(Arc::new(Worker {
            control: Mutex::new(control_tx),
            outputs,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Waits up to `timeout` for the thread to finish (after its last track left), so the
    /// device it held is closed. Returns whether it finished.
    pub(crate) fn wait_finished(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut thread = lock(&self.thread);
        loop {
            match thread.as_ref() {
                None => return true,
                Some(t) if t.is_finished() => {
                    if let Some(t) = thread.take() {
                        let _ = t.join();
                    }
                    return true;
                }
                Some(_) if std::time::Instant::now() >= deadline => return false,
                Some(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }

    pub(crate) fn attach(&self, output: &Arc<TrackOutput>) {
        lock(&self.outputs).push(Arc::downgrade(output));
    }

    pub(crate) fn detach(&self, output: &Arc<TrackOutput>) {
        let target = Arc::as_ptr(output);
        lock(&self.outputs).retain(|w| w.as_ptr() != target);
    }

    /// Live tracks attached.
    pub(crate) fn attached(&self) -> usize {
        lock(&self.outputs)
            .iter()
            .filter(|w| w.upgrade().is_some_and(|o| !o.is_ended()))
            .count()
    }

    /// Asks the source to switch settings; waits up to `timeout` for it to happen (it
    /// happens before the next frame).
    pub(crate) fn reconfigure(
        &self,
        settings: &MediaTrackSettings,
        timeout: Duration,
    ) -> Result<(), SourceError> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        lock(&self.control)
            .send(Control::Reconfigure(settings.clone(), reply_tx))
            .map_err(|_| SourceError::Ended("the source has stopped".into()))?;
        match reply_rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(SourceError::Unsupported(
                "the source did not switch in time".into(),
            )),
            Err(RecvTimeoutError::Disconnected) => {
                Err(SourceError::Ended("the source has stopped".into()))
            }
        }
    }
}

fn run(
    mut source: Box<dyn Source>,
    control: Receiver<Control>,
    outputs: Arc<Mutex<Vec<Weak<TrackOutput>>>>,
    lease: DeviceLease,
) {
    loop {
        while let Ok(msg) = control.try_recv() {
            match msg {
                Control::Reconfigure(settings, reply) => {
                    let _ = reply.send(source.reconfigure(&settings));
                }
            }
        }
        let live: Vec<Arc<TrackOutput>> = {
            let mut list = lock(&outputs);
            list.retain(|w| w.upgrade().is_some_and(|o| !o.is_ended()));
            list.iter().filter_map(Weak::upgrade).collect()
        };
        if live.is_empty() {
            break;
        }
        match source.next_frame() {
            Ok(frame) => {
                let mut blank = None;
                for output in &live {
                    if output.enabled() {
                        output.deliver(&frame);
                    } else {
                        output.deliver(blank.get_or_insert_with(|| blanked(&frame)));
                    }
                }
            }
            Err(e) => {
                tracing::warn!("{e}; its tracks end");
                for output in &live {
                    output.end(&e.to_string());
                }
                break;
            }
        }
    }
    drop(source);
    drop(lease);
}
