//! Runs one open [`Source`] on its own thread and fans its frames out to the tracks
//! attached to it (a track and its clones). Each track hands frames to its subscribers over
//! bounded channels: a slow subscriber loses frames (counted), it never blocks capture or
//! the other subscribers. The thread ends — and the device is released — when no live
//! track is attached, or when the source ends (the tracks then end with it).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

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

/// Ids of workers, so a track output takes frames only from the worker now feeding it
/// (during a switch, the old worker may still be finishing a frame).
static NEXT_WORKER_ID: AtomicU64 = AtomicU64::new(1);

/// The per-track end of a worker: enabled flag, subscribers, counters, the track's
/// timeline and its end.
pub(crate) struct TrackOutput {
    enabled: AtomicBool,
    ended: Mutex<Option<String>>,
    /// Wakes [`TrackOutput::wait_ended`].
    ended_signal: Condvar,
    /// For async waiters ([`TrackOutput::ended_watch`]).
    ended_watch: tokio::sync::watch::Sender<Option<TrackEnded>>,
    subscribers: Mutex<Vec<Subscriber>>,
    delivered: AtomicU64,
    /// The worker whose frames this track takes (0: none yet).
    source: AtomicU64,
    /// The timestamp of the last frame delivered and when: a source opened later for this
    /// track (a reopen) continues the timeline from here instead of restarting at zero.
    /// Held for the whole of a delivery (the check of `source` included), so a handover
    /// ([`TrackOutput::take_over`]) sees either the old worker's frame complete or not at
    /// all: never a frame delivered after the timeline it continues from was read.
    last: Mutex<Option<Last>>,
}

/// The last frame a track delivered, as its source made it (not blanked), and when.
struct Last {
    timestamp: Duration,
    at: Instant,
    frame: MediaFrame,
}

impl TrackOutput {
    pub(crate) fn new(enabled: bool) -> Arc<Self> {
        Arc::new(TrackOutput {
            enabled: AtomicBool::new(enabled),
            ended: Mutex::new(None),
            ended_signal: Condvar::new(),
            ended_watch: tokio::sync::watch::Sender::new(None),
            subscribers: Mutex::new(Vec::new()),
            delivered: AtomicU64::new(0),
            source: AtomicU64::new(0),
            last: Mutex::new(None),
        })
    }

    /// Blocks until the track ends or `timeout` passes; the reason, if it ended.
    pub(crate) fn wait_ended(&self, timeout: Duration) -> Option<TrackEnded> {
        let ended = lock(&self.ended);
        let (ended, _) = self
            .ended_signal
            .wait_timeout_while(ended, timeout, |e| e.is_none())
            .unwrap_or_else(|p| p.into_inner());
        ended.clone().map(|reason| TrackEnded { reason })
    }

    /// A watch that holds the end reason once the track has ended.
    pub(crate) fn ended_watch(&self) -> tokio::sync::watch::Receiver<Option<TrackEnded>> {
        self.ended_watch.subscribe()
    }

    /// Where a new source for this track should continue the timeline: the last delivered
    /// timestamp and when it was delivered.
    #[cfg(test)]
    fn timeline(&self) -> Option<(Duration, Instant)> {
        lock(&self.last).as_ref().map(|l| (l.timestamp, l.at))
    }

    /// Makes worker `id` the one feeding this track and returns the worker that fed it
    /// before, where the new one must continue the timeline, and the last frame the track
    /// delivered (as its source made it, for [`Source::continue_after`]). One step under the
    /// delivery lock: the old worker cannot deliver a frame between the read and the swap,
    /// which would leave the new source continuing from a stale point (and, with a source
    /// clock running ahead of wall time, its first timestamp not after the last delivered).
    fn take_over(&self, id: u64) -> (u64, Option<(Duration, Instant)>, Option<MediaFrame>) {
        let last = lock(&self.last);
        let previous = self.source.swap(id, Ordering::AcqRel);
        match last.as_ref() {
            Some(l) => (previous, Some((l.timestamp, l.at)), Some(l.frame.clone())),
            None => (previous, None, None),
        }
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

    /// Ends the track: no more frames; subscribers see the end once they drain, and
    /// [`wait_ended`](Self::wait_ended) / [`ended_watch`](Self::ended_watch) waiters wake.
    pub(crate) fn end(&self, reason: &str) {
        let mut ended = lock(&self.ended);
        let first = ended.is_none();
        if first {
            *ended = Some(reason.to_owned());
        }
        drop(ended);
        lock(&self.subscribers).clear();
        if first {
            self.ended_signal.notify_all();
            self.ended_watch.send_replace(Some(TrackEnded {
                reason: reason.to_owned(),
            }));
        }
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

    /// Hands `frame` (`made`, or `made` blanked for a disabled track) from worker `from` to
    /// the subscribers, unless another worker now
    /// feeds this track (an old worker finishing its last frame during a switch). Frames
    /// are passed in the source's order: a remote track's may legitimately repeat or step
    /// back a timestamp (RTP reordering), so they are not filtered on it.
    fn deliver(&self, from: u64, frame: &MediaFrame, made: &MediaFrame) {
        // Held until the frame is queued (sends never block): see `last`.
        let mut last = lock(&self.last);
        if self.source.load(Ordering::Acquire) != from {
            return;
        }
        *last = Some(Last {
            timestamp: frame_timestamp(frame),
            at: Instant::now(),
            frame: made.clone(),
        });
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

fn frame_timestamp(frame: &MediaFrame) -> Duration {
    match frame {
        MediaFrame::Video(f) => f.timestamp,
        MediaFrame::Audio(a) => a.timestamp,
    }
}

/// Moves `frame` later on the timeline by `offset`. The worker holds the only reference
/// to a frame fresh from its source, so this normally writes in place (no pixel copy).
fn shift(frame: &mut MediaFrame, offset: Duration) {
    match frame {
        MediaFrame::Video(f) => Arc::make_mut(f).timestamp += offset,
        MediaFrame::Audio(a) => Arc::make_mut(a).timestamp += offset,
    }
}

/// Maps a source's timestamps onto a track's timeline. A new track's source starts the
/// timeline; a source opened for a running track (a reopen) continues it, so the track's
/// timestamps keep increasing and the gap in them is the real gap between the frames.
struct Timeline {
    /// The track's last timestamp and when it was delivered, until the first frame.
    continue_from: Option<(Duration, Instant)>,
    offset: Duration,
}

impl Timeline {
    fn new(continue_from: Option<(Duration, Instant)>) -> Self {
        Timeline {
            continue_from,
            offset: Duration::ZERO,
        }
    }

    fn place(&mut self, frame: &mut MediaFrame) {
        if let Some((last, at)) = self.continue_from.take() {
            let now = (last + at.elapsed()).max(last + Duration::from_micros(1));
            self.offset = now.saturating_sub(frame_timestamp(frame));
        }
        if !self.offset.is_zero() {
            shift(frame, self.offset);
        }
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
    id: u64,
    control: Mutex<mpsc::Sender<Control>>,
    outputs: Arc<Mutex<Vec<Weak<TrackOutput>>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Worker {
    /// Starts the worker thread for an open source, feeding `first` (attached before the
    /// thread starts, so it cannot find itself without tracks), which from now on takes
    /// frames only from this worker. If `first` has delivered frames before (its source is
    /// being replaced), its timeline continues. `label` names the thread.
    pub(crate) fn spawn(
        mut source: Box<dyn Source>,
        kind: MediaKind,
        label: &str,
        lease: DeviceLease,
        first: &Arc<TrackOutput>,
    ) -> Result<Arc<Worker>, SourceError> {
        let id = NEXT_WORKER_ID.fetch_add(1, Ordering::Relaxed);
        let (control_tx, control_rx) = mpsc::channel();
        let outputs = Arc::new(Mutex::new(vec![Arc::downgrade(first)]));
        let thread_outputs = Arc::clone(&outputs);
        // Swap first, then read: the last frame the old worker delivered is final.
        let (previous, continue_from, last_frame) = first.take_over(id);
        let timeline = Timeline::new(continue_from);
        if let Some(frame) = &last_frame {
            source.continue_after(frame);
        }
        let thread = std::thread::Builder::new()
            .name(format!("{kind} source {label}"))
            .spawn(move || run(id, source, control_rx, thread_outputs, lease, timeline))
            .map_err(|e| {
                first.source.store(previous, Ordering::Release);
                SourceError::Open(format!("cannot start the capture thread: {e}"))
            })?;
        Ok(Arc::new(Worker {
            id,
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

    /// Feeds `output` too (a clone), on this worker's timeline.
    pub(crate) fn attach(&self, output: &Arc<TrackOutput>) {
        output.source.store(self.id, Ordering::Release);
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
    id: u64,
    mut source: Box<dyn Source>,
    control: Receiver<Control>,
    outputs: Arc<Mutex<Vec<Weak<TrackOutput>>>>,
    lease: DeviceLease,
    mut timeline: Timeline,
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
            Ok(mut frame) => {
                timeline.place(&mut frame);
                let mut blank = None;
                for output in &live {
                    if output.enabled() {
                        output.deliver(id, &frame, &frame);
                    } else {
                        output.deliver(id, blank.get_or_insert_with(|| blanked(&frame)), &frame);
                    }
                }
            }
            Err(e) => {
                tracing::warn!("{e}; its tracks end");
                for output in &live {
                    // A track already moved to another source lives on there.
                    if output.source.load(Ordering::Acquire) == id {
                        output.end(&e.to_string());
                    }
                }
                break;
            }
        }
    }
    // The source closes its device (hardware sources wait for it) before the lease goes:
    // "devices in use" never reports a device free that is still open.
    drop(source);
    drop(lease);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::VideoFrame;

    fn video_at(ms: u64) -> MediaFrame {
        MediaFrame::Video(Arc::new(
            VideoFrame::black(16, 16).with_times(Duration::from_millis(ms), 0),
        ))
    }

    #[test]
    fn a_new_source_continues_the_timeline() {
        // A fresh track: the source's timeline is the track's.
        let mut t = Timeline::new(None);
        let mut f = video_at(0);
        t.place(&mut f);
        assert_eq!(frame_timestamp(&f), Duration::ZERO);
        // A reopen 50 ms after the track's last frame at 5 s: the new source's first frame
        // (its own time zero) lands 50 ms later, and the next ones follow it.
        let at = Instant::now() - Duration::from_millis(50);
        let mut t = Timeline::new(Some((Duration::from_secs(5), at)));
        let mut first = video_at(0);
        t.place(&mut first);
        let ts = frame_timestamp(&first);
        assert!(ts >= Duration::from_millis(5050), "{ts:?}");
        assert!(ts < Duration::from_secs(65), "{ts:?}");
        let mut next = video_at(33);
        t.place(&mut next);
        assert_eq!(frame_timestamp(&next), ts + Duration::from_millis(33));
    }

    #[test]
    fn an_output_takes_frames_only_from_its_worker() {
        let out = TrackOutput::new(true);
        let rx = out.subscribe(8);
        out.source.store(7, Ordering::Release);
        out.deliver(7, &video_at(10), &video_at(10));
        out.deliver(3, &video_at(20), &video_at(20)); // an old worker finishing a frame
        out.deliver(7, &video_at(30), &video_at(30));
        let got: Vec<Duration> = std::iter::from_fn(|| rx.try_recv())
            .map(|f| frame_timestamp(&f))
            .collect();
        assert_eq!(got, [Duration::from_millis(10), Duration::from_millis(30)]);
        assert_eq!(out.delivered(), 2);
        // The timeline a reopen continues from is the last frame taken.
        assert_eq!(
            out.timeline().map(|(t, _)| t),
            Some(Duration::from_millis(30))
        );
    }

    #[test]
    fn a_handover_continues_from_the_last_frame_the_old_worker_delivered() {
        let out = TrackOutput::new(true);
        let rx = out.subscribe(8);
        out.source.store(7, Ordering::Release);
        out.deliver(7, &video_at(10), &video_at(10));
        let (previous, from, frame) = out.take_over(8);
        assert_eq!(
            frame.map(|f| frame_timestamp(&f)),
            Some(Duration::from_millis(10))
        );
        assert_eq!(previous, 7);
        assert_eq!(from.map(|(t, _)| t), Some(Duration::from_millis(10)));
        // The old worker's next frame, after the swap, is not delivered.
        out.deliver(7, &video_at(20), &video_at(20));
        let got: Vec<Duration> = std::iter::from_fn(|| rx.try_recv())
            .map(|f| frame_timestamp(&f))
            .collect();
        assert_eq!(got, [Duration::from_millis(10)]);
    }

    #[test]
    fn a_handover_racing_the_old_worker_keeps_timestamps_increasing() {
        // The old source's clock runs far ahead of wall time (1 s per frame, delivered as
        // fast as possible) while the track moves to a new source whose clock starts at
        // zero: whatever the interleaving, the new source's first frame must come after
        // every frame the old one delivered.
        for round in 0..50 {
            let out = TrackOutput::new(true);
            let rx = out.subscribe(1 << 16);
            out.source.store(7, Ordering::Release);
            out.deliver(7, &video_at(0), &video_at(0));
            let old = Arc::clone(&out);
            let stop = Arc::new(AtomicBool::new(false));
            let stop_old = Arc::clone(&stop);
            let racer = std::thread::spawn(move || {
                let mut ms = 0;
                while !stop_old.load(Ordering::Relaxed) && ms < 10_000_000 {
                    ms += 1000;
                    old.deliver(7, &video_at(ms), &video_at(ms));
                }
            });
            std::thread::sleep(Duration::from_micros(200 * (round % 5)));
            let (_, from, _) = out.take_over(8);
            let mut timeline = Timeline::new(from);
            let mut first = video_at(0);
            timeline.place(&mut first);
            out.deliver(8, &first, &first);
            stop.store(true, Ordering::Relaxed);
            racer.join().unwrap();
            let got: Vec<Duration> = std::iter::from_fn(|| rx.try_recv())
                .map(|f| frame_timestamp(&f))
                .collect();
            assert!(
                got.windows(2).all(|w| w[0] < w[1]),
                "round {round}: timestamps step back at the handover: {:?}",
                &got[got.len().saturating_sub(3)..]
            );
            assert_eq!(got.last(), Some(&frame_timestamp(&first)));
        }
    }

    #[test]
    fn ending_wakes_blocking_and_async_waiters_with_the_reason() {
        let out = TrackOutput::new(true);
        let mut watch = out.ended_watch();
        assert_eq!(out.wait_ended(Duration::from_millis(20)), None);
        let ender = Arc::clone(&out);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            ender.end("source ended: gone");
            ender.end("stopped"); // the first reason stays
        });
        let ended = out.wait_ended(Duration::from_secs(30)).expect("ended");
        assert_eq!(ended.reason, "source ended: gone");
        t.join().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let reason = rt.block_on(async {
            let r = watch.wait_for(|e| e.is_some()).await.unwrap();
            r.clone().unwrap().reason
        });
        assert_eq!(reason, "source ended: gone");
    }
}
