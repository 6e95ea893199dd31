//! Frame delivery to one track: its subscribers over bounded channels (a slow subscriber
//! loses frames, counted, and never blocks capture or the other subscribers), its enabled
//! flag, its `muted` state and events, its end and the reason, and which worker feeds it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::events::{Listeners, TrackEvent, TrackEventReceiver};
use super::source::MediaFrame;
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

/// The per-track end of a worker: enabled flag, subscribers, counters, the track's
/// timeline and its end.
pub(crate) struct TrackOutput {
    enabled: AtomicBool,
    /// The source cannot provide media now (a scripted `mute`): frames are blanked.
    muted: AtomicBool,
    /// Who hears `mute`, `unmute` and `ended`.
    events: Listeners,
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
            muted: AtomicBool::new(false),
            events: Listeners::default(),
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
    pub(super) fn take_over(
        &self,
        id: u64,
    ) -> (u64, Option<(Duration, Instant)>, Option<MediaFrame>) {
        let last = lock(&self.last);
        let previous = self.source.swap(id, Ordering::AcqRel);
        match last.as_ref() {
            Some(l) => (previous, Some((l.timestamp, l.at)), Some(l.frame.clone())),
            None => (previous, None, None),
        }
    }

    /// Makes worker `id` the one feeding this track (a clone attached to it, or the
    /// previous worker put back when a new one could not start).
    pub(super) fn set_source(&self, id: u64) {
        self.source.store(id, Ordering::Release);
    }

    /// Whether worker `id` is the one feeding this track now.
    pub(super) fn is_fed_by(&self, id: u64) -> bool {
        self.source.load(Ordering::Acquire) == id
    }

    pub(crate) fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub(crate) fn muted(&self) -> bool {
        self.muted.load(Ordering::Acquire)
    }

    /// Sets `muted`; a change is a `mute` or `unmute` event (none once ended).
    pub(crate) fn set_muted(&self, muted: bool) {
        // Under the end's lock: no `mute` after `ended`.
        let ended = lock(&self.ended);
        if ended.is_none() && self.muted.swap(muted, Ordering::AcqRel) != muted {
            self.events.send(if muted {
                TrackEvent::Mute
            } else {
                TrackEvent::Unmute
            });
        }
    }

    /// A listener of this track's events.
    pub(crate) fn listen(&self) -> TrackEventReceiver {
        let ended = lock(&self.ended);
        self.events.listen(ended.as_deref())
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
            self.events.send(TrackEvent::Ended {
                reason: reason.to_owned(),
            });
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
    pub(super) fn deliver(&self, from: u64, frame: &MediaFrame, made: &MediaFrame) {
        // Held until the frame is queued (sends never block): see `last`.
        let mut last = lock(&self.last);
        if self.source.load(Ordering::Acquire) != from {
            return;
        }
        *last = Some(Last {
            timestamp: frame.timestamp(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::testing::video_at;

    #[test]
    fn an_output_takes_frames_only_from_its_worker() {
        let out = TrackOutput::new(true);
        let rx = out.subscribe(8);
        out.source.store(7, Ordering::Release);
        out.deliver(7, &video_at(10), &video_at(10));
        out.deliver(3, &video_at(20), &video_at(20)); // an old worker finishing a frame
        out.deliver(7, &video_at(30), &video_at(30));
        let got: Vec<Duration> = std::iter::from_fn(|| rx.try_recv())
            .map(|f| f.timestamp())
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
            frame.map(|f| f.timestamp()),
            Some(Duration::from_millis(10))
        );
        assert_eq!(previous, 7);
        assert_eq!(from.map(|(t, _)| t), Some(Duration::from_millis(10)));
        // The old worker's next frame, after the swap, is not delivered.
        out.deliver(7, &video_at(20), &video_at(20));
        let got: Vec<Duration> = std::iter::from_fn(|| rx.try_recv())
            .map(|f| f.timestamp())
            .collect();
        assert_eq!(got, [Duration::from_millis(10)]);
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
