//! Runs one open [`Source`] on its own thread and fans its frames out to the tracks
//! attached to it (a track and its clones). Each track hands frames to its subscribers over
//! bounded channels: a slow subscriber loses frames (counted), it never blocks capture or
//! the other subscribers. The thread ends — and the device is released — when no live
//! track is attached, or when the source ends (the tracks then end with it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::delivery::TrackOutput;
use super::source::{MediaFrame, Source, SourceError};
use super::timeline::Timeline;
use super::usage::DeviceLease;
use crate::constraints::{MediaKind, MediaTrackSettings};
use crate::frame::VideoFrame;
use crate::sync::lock;

/// Ids of workers, so a track output takes frames only from the worker now feeding it
/// (during a switch, the old worker may still be finishing a frame).
static NEXT_WORKER_ID: AtomicU64 = AtomicU64::new(1);

/// The same frame made black or silent, for disabled or muted tracks.
fn blanked(frame: &MediaFrame) -> MediaFrame {
    match frame {
        MediaFrame::Video(f) => MediaFrame::Video(Arc::new(
            VideoFrame::black(f.width(), f.height()).with_times(f.timestamp, f.capture_time_ms),
        )),
        MediaFrame::Audio(a) => MediaFrame::Audio(Arc::new(a.silenced())),
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
        lease.watch(&outputs);
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
                first.set_source(previous);
                SourceError::cannot_open("cannot start the capture thread", e)
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
        output.set_source(self.id);
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
    // The outputs still live, refilled each frame (one upgrade each, no allocation once
    // the list has its size).
    let mut live: Vec<Arc<TrackOutput>> = Vec::new();
    loop {
        while let Ok(msg) = control.try_recv() {
            match msg {
                Control::Reconfigure(settings, reply) => {
                    let _ = reply.send(source.reconfigure(&settings));
                }
            }
        }
        live.clear();
        lock(&outputs).retain(|w| match w.upgrade() {
            Some(o) if !o.is_ended() => {
                live.push(o);
                true
            }
            _ => false,
        });
        if live.is_empty() {
            break;
        }
        match source.next_frame() {
            Ok(mut frame) => {
                timeline.place(&mut frame);
                let muted = source.muted();
                let mut blank = None;
                for output in &live {
                    output.set_muted(muted);
                    if output.enabled() && !muted {
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
                    if output.is_fed_by(id) {
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
    use crate::media::testing::video_at;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn a_handover_racing_the_old_worker_keeps_timestamps_increasing() {
        // The old source's clock runs far ahead of wall time (1 s per frame, delivered as
        // fast as possible) while the track moves to a new source whose clock starts at
        // zero: whatever the interleaving, the new source's first frame must come after
        // every frame the old one delivered.
        for round in 0..50 {
            let out = TrackOutput::new(true);
            let rx = out.subscribe(1 << 16);
            out.set_source(7);
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
                .map(|f| f.timestamp())
                .collect();
            assert!(
                got.windows(2).all(|w| w[0] < w[1]),
                "round {round}: timestamps step back at the handover: {:?}",
                &got[got.len().saturating_sub(3)..]
            );
            assert_eq!(got.last(), Some(&first.timestamp()));
        }
    }
}
