//! [`TieredReceiver`]: one viewer's units from a [`TrackEncoders`], moving between tier
//! encoders as its bandwidth estimate changes. The async driver of the [`Splice`] state
//! machine: it owns the subscriptions, channels and timers, and the machine decides.

use std::time::Instant;

use super::encoded::EncodedTrack;
use super::fanout::AsyncEncodedReceiver;
use super::ladder::TierState;
use super::set::TrackEncoders;
use super::splice::{Output, Splice, SpliceConfig};
use crate::encode::{EncodeError, EncodedUnit, VideoCodec};

/// A sink on one tier's encoder.
struct Tap {
    encoder: EncodedTrack,
    rx: AsyncEncodedReceiver,
}

/// One viewer's units from a [`TrackEncoders`], moving between tier encoders as its
/// bandwidth estimate changes ([`update`](Self::update)). A move subscribes to the new
/// tier (whose first unit is a keyframe, forced at once), keeps taking the old tier's
/// units up to the frame before that keyframe, then continues on the new tier: the
/// receiver sees one unbroken stream, no frame twice and none missing. Dropping it
/// withdraws its votes and leaves both encoders.
pub struct TieredReceiver {
    set: TrackEncoders,
    codec: Option<VideoCodec>,
    capacity: usize,
    voter: u64,
    rungs: Vec<u32>,
    state: TierState,
    current: Tap,
    /// The tier being moved to, until its keyframe takes over.
    pending: Option<Tap>,
    splice: Splice,
}

impl TieredReceiver {
    /// A viewer of `set`'s `codec` spread over `rungs`, starting on the highest rung at or
    /// below `estimate`.
    pub(super) fn start(
        set: TrackEncoders,
        codec: Option<VideoCodec>,
        capacity: usize,
        rungs: Vec<u32>,
        estimate: f64,
        config: SpliceConfig,
    ) -> Result<Self, EncodeError> {
        let state = TierState::initial(&rungs, estimate);
        let (encoder, rx) = set.subscribe_tier(codec, state.tier(), capacity)?;
        let voter = rand::random();
        if estimate > 0.0 {
            encoder.vote_bitrate(voter, Some(estimate.min(u32::MAX as f64) as u32));
        }
        Ok(TieredReceiver {
            set,
            codec,
            capacity,
            voter,
            rungs,
            state,
            current: Tap { encoder, rx },
            pending: None,
            splice: Splice::new(state.tier(), config, Instant::now()),
        })
    }

    /// The tier whose units it is handing out now.
    pub fn tier(&self) -> usize {
        self.splice.tier()
    }

    /// The encoder it is receiving from (where keyframe requests go).
    pub fn encoder(&self) -> &EncodedTrack {
        &self.current.encoder
    }

    /// Completed moves between tiers.
    pub fn switches(&self) -> u64 {
        self.splice.switches()
    }

    /// Moves abandoned because the new tier gave no usable keyframe in time.
    pub fn abandoned_moves(&self) -> u64 {
        self.splice.abandoned()
    }

    /// Units lost on the current tier because this viewer fell behind.
    pub fn dropped(&self) -> u64 {
        self.current.rx.dropped()
    }

    /// Takes the viewer's bandwidth estimate (bits per second; once a second or so): votes
    /// it to its tier's encoder and, when the [`TierPolicy`](super::TierPolicy) says so,
    /// starts the move to another tier.
    pub fn update(&mut self, estimate: f64, now: Instant) {
        let policy = self.set.policy();
        let wanted = self.state.update(&self.rungs, &policy, estimate, now);
        if wanted != self.splice.heading() {
            if wanted == self.splice.tier() {
                // Back where it is: abandon the move.
                self.leave_pending();
                self.splice.cancel_move();
            } else {
                match self.set.subscribe_tier(self.codec, wanted, self.capacity) {
                    Ok((encoder, rx)) => {
                        tracing::debug!(
                            "viewer moving from tier {} to {wanted} (estimate {estimate:.0} bit/s)",
                            self.splice.tier()
                        );
                        self.leave_pending();
                        self.splice.start_move(wanted, Instant::now());
                        self.pending = Some(Tap { encoder, rx });
                    }
                    Err(e) => tracing::warn!("cannot move to tier {wanted}: {e}"),
                }
            }
        }
        if estimate > 0.0 {
            let tap = self.pending.as_ref().unwrap_or(&self.current);
            tap.encoder
                .vote_bitrate(self.voter, Some(estimate.min(u32::MAX as f64) as u32));
        }
    }

    /// Leaves the tier it was moving to, if any.
    fn leave_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            p.encoder.vote_bitrate(self.voter, None);
        }
    }

    /// The next unit; `None` once the track has ended.
    ///
    /// Cancel-safe (usable in `select!` beside a timer): it only awaits channel receives
    /// and timers, and a unit taken from a channel is given to the splice before the next
    /// await, so a cancelled call loses nothing; the next call hands out what the splice
    /// holds first, even if the move it was held for has been abandoned since.
    pub async fn recv(&mut self) -> Option<EncodedUnit> {
        // The time may have passed a deadline since the last call (a move to give up).
        self.splice.handle_timeout(Instant::now());
        loop {
            match self.splice.poll_output() {
                Output::Unit(unit) => return Some(unit),
                Output::End => return None,
                Output::RequestKeyframe => {
                    if let Some(p) = &self.pending {
                        p.encoder.request_keyframe();
                    }
                }
                Output::Switched { .. } => {
                    if let Some(new) = self.pending.take() {
                        let old = std::mem::replace(&mut self.current, new);
                        old.encoder.vote_bitrate(self.voter, None);
                    }
                }
                Output::Abandoned { from, to } => {
                    self.leave_pending();
                    // The tier state restarts where it is: a move down is tried again at
                    // the next estimate if still needed, a move up only after a new
                    // steady surplus.
                    self.state = TierState::settled(from);
                    tracing::info!(
                        "viewer abandoned its move from tier {from} to {to}: no usable \
                         keyframe within {:?} ({} abandoned so far)",
                        self.splice.config().give_up,
                        self.splice.abandoned()
                    );
                }
                Output::PendingEnded { .. } => self.pending = None,
                Output::Wait {
                    current,
                    pending,
                    until,
                } => self.wait(current, pending, until).await,
            }
        }
    }

    /// Waits for what the splice asked for and gives it what came.
    async fn wait(&mut self, current: bool, pending: bool, until: Option<Instant>) {
        enum Woke {
            Current(Option<EncodedUnit>),
            Pending(Option<EncodedUnit>),
            Timeout,
        }
        let current_rx = current.then_some(&mut self.current.rx);
        let pending_rx = self.pending.as_mut().filter(|_| pending).map(|p| &mut p.rx);
        let woke = tokio::select! {
            unit = recv_from(current_rx) => Woke::Current(unit),
            unit = recv_from(pending_rx) => Woke::Pending(unit),
            () = sleep_until(until) => Woke::Timeout,
        };
        let now = Instant::now();
        match woke {
            Woke::Current(unit) => self.splice.handle_unit(self.splice.tier(), unit, now),
            Woke::Pending(unit) => {
                if let Some(tier) = self.splice.pending_tier() {
                    self.splice.handle_unit(tier, unit, now);
                }
            }
            Woke::Timeout => self.splice.handle_timeout(now),
        }
    }
}

/// The next unit of `rx`; never, without one.
async fn recv_from(rx: Option<&mut AsyncEncodedReceiver>) -> Option<EncodedUnit> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`; forever, without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

impl Drop for TieredReceiver {
    fn drop(&mut self) {
        self.current.encoder.vote_bitrate(self.voter, None);
        if let Some(p) = &self.pending {
            p.encoder.vote_bitrate(self.voter, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::devices::pattern::read_strip;
    use crate::devices::{MediaDevices, PermissionPolicy};
    use crate::encode::h264::H264Decoder;
    use crate::encode::pipeline::testing::{camera, three_tier_camera, unit};
    use crate::encode::pipeline::{CodecConfig, PassthroughFeeder, TierPolicy};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_viewer_moving_between_tiers_decodes_every_frame() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let (_track, set) = three_tier_camera(&devices);
        let mut viewer = set.viewer(Some(VideoCodec::H264), 64, 2_000_000.0).unwrap();
        // Another viewer keeps the top tier busy, as in a real fan-out.
        let _other = set.viewer(Some(VideoCodec::H264), 64, 2_000_000.0).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let mut numbers = Vec::new();
        let mut tiers = Vec::new();
        let start = Instant::now();
        let mut step = 0;
        while start.elapsed() < Duration::from_millis(3500) {
            let t = start.elapsed();
            // Down at 0.5 s, then a steady surplus from 1.5 s: up after 0.3 s.
            let estimate = if t < Duration::from_millis(500) {
                2_000_000.0
            } else if t < Duration::from_millis(1500) {
                300_000.0
            } else {
                2_000_000.0
            };
            if t.as_millis() / 100 != step {
                step = t.as_millis() / 100;
                viewer.update(estimate, Instant::now());
            }
            let unit = tokio::time::timeout(Duration::from_secs(2), viewer.recv())
                .await
                .expect("a unit in time")
                .expect("the track runs");
            let frame = dec
                .decode(&unit.data)
                .expect("no decode error across moves");
            if let Some(frame) = frame {
                numbers.push(read_strip(&frame).unwrap().frame_number);
                tiers.push(viewer.tier());
            }
        }
        assert_eq!(viewer.switches(), 2, "down and back up: {tiers:?}");
        assert!(tiers.contains(&2) && tiers.first() == Some(&0) && tiers.last() == Some(&0));
        for pair in numbers.windows(2) {
            assert_eq!(
                pair[1],
                pair[0] + 1,
                "consecutive across moves: {numbers:?}"
            );
        }
        assert!(numbers.len() >= 60, "{}", numbers.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn receivers_see_the_end_when_the_track_ends() {
        let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
        let track = camera(&devices, r#"{"video": {"width": 320, "height": 240}}"#);
        let set = TrackEncoders::new(&track, 300_000, None);
        let codec = Some(VideoCodec::H264);
        let mut viewer = set.viewer(codec, 64, 0.0).unwrap();
        let sink = set.encoder(codec).unwrap().subscribe(64);
        let first = tokio::time::timeout(Duration::from_secs(2), viewer.recv()).await;
        assert!(first.unwrap().is_some());
        track.stop();
        // The set (its Running), the viewer's tap and this test all hold the encoder: the
        // receivers must still see the end, not wait on senders those handles keep.
        let ended = tokio::time::timeout(Duration::from_secs(3), async {
            while viewer.recv().await.is_some() {}
        })
        .await;
        assert!(ended.is_ok(), "the viewer's recv() gave None");
        let end = Instant::now();
        loop {
            match sink.recv_timeout(Duration::from_millis(100)) {
                Err(()) => break,
                Ok(_) => assert!(end.elapsed() < Duration::from_secs(3), "no end"),
            }
        }
        // A sink added afterwards ends at once.
        let late = set.encoder(codec).unwrap().subscribe(4);
        assert_eq!(late.recv_timeout(Duration::from_secs(1)), Err(()));
    }

    /// Two H.264 tiers (1 Mbit/s and 400 kbit/s) fed by hand and a viewer on the top one
    /// with `config`: the driver with no encoder timing in the way.
    fn fed_tiers(
        config: SpliceConfig,
    ) -> (
        TieredReceiver,
        PassthroughFeeder,
        PassthroughFeeder,
        EncodedTrack,
    ) {
        let codec = CodecConfig::H264 { bitrate: 1 };
        let (top, top_feeder) = EncodedTrack::passthrough_at(codec, 0, || {});
        let (low, low_feeder) = EncodedTrack::passthrough_at(codec, 1, || {});
        let policy = TierPolicy {
            up_after: Duration::ZERO,
            ..TierPolicy::default()
        };
        let rungs = vec![1_000_000, 400_000];
        let set = TrackEncoders::fixed_tiers(&[top, low.clone()], rungs.clone(), policy);
        let viewer =
            TieredReceiver::start(set, Some(VideoCodec::H264), 32, rungs, 1_000_000.0, config)
                .unwrap();
        assert_eq!(viewer.tier(), 0);
        (viewer, top_feeder, low_feeder, low)
    }

    async fn next(viewer: &mut TieredReceiver, within: Duration) -> (u8, u8, bool) {
        let unit = tokio::time::timeout(within, viewer.recv())
            .await
            .expect("a unit in time")
            .expect("not ended");
        (unit.data[0], unit.data[1], unit.keyframe)
    }

    #[tokio::test]
    async fn a_recv_cancelled_mid_hold_loses_nothing_when_the_move_is_abandoned() {
        // A hold far longer than the test: nothing may wait it out.
        let (mut viewer, top, _low, _) = fed_tiers(SpliceConfig {
            hold: Duration::from_secs(30),
            give_up: Duration::from_secs(60),
            ..SpliceConfig::default()
        });
        top.push(unit(0, 0, true));
        let within = Duration::from_secs(5);
        assert_eq!(next(&mut viewer, within).await, (0, 0, true));
        // Down a tier: the move is pending, the next old-tier unit is held for it.
        viewer.update(300_000.0, Instant::now());
        top.push(unit(0, 1, false));
        // The estimate tick cancels recv() during the hold (as send_loop's select! does).
        let cancelled = tokio::time::timeout(Duration::from_millis(100), viewer.recv()).await;
        assert!(cancelled.is_err(), "held, not handed out");
        // The estimate went back: the move is abandoned.
        viewer.update(1_000_000.0, Instant::now());
        viewer.update(1_000_000.0, Instant::now());
        top.push(unit(0, 2, false));
        assert_eq!(
            next(&mut viewer, within).await,
            (0, 1, false),
            "the held delta"
        );
        assert_eq!(next(&mut viewer, within).await, (0, 2, false));
        assert_eq!((viewer.tier(), viewer.switches()), (0, 0));
    }

    #[tokio::test]
    async fn a_move_lands_on_a_keyframe_and_one_without_is_abandoned_in_time() {
        let give_up = Duration::from_millis(300);
        let (mut viewer, top, low, low_encoder) = fed_tiers(SpliceConfig {
            give_up,
            ..SpliceConfig::default()
        });
        top.push(unit(0, 0, true));
        let within = Duration::from_secs(5);
        assert_eq!(next(&mut viewer, within).await, (0, 0, true));
        viewer.update(300_000.0, Instant::now());
        assert_eq!(low_encoder.stats().sinks, 1, "the move is under way");
        // The new tier never delivers: the viewer is held up at most until the give-up.
        let start = Instant::now();
        for n in 1..=10 {
            top.push(unit(0, n, false));
            assert_eq!(next(&mut viewer, within).await, (0, n, false));
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(viewer.abandoned_moves(), 1);
        assert_eq!((viewer.tier(), viewer.switches()), (0, 0));
        assert_eq!(low_encoder.stats().sinks, 0, "left the abandoned tier");
        // Down again: this time the new tier's keyframe of the next frame takes over.
        viewer.update(300_000.0, Instant::now());
        top.push(unit(0, 11, false));
        low.push(unit(1, 11, true));
        assert_eq!(next(&mut viewer, within).await, (1, 11, true));
        low.push(unit(1, 12, false));
        assert_eq!(next(&mut viewer, within).await, (1, 12, false));
        assert_eq!((viewer.tier(), viewer.switches()), (1, 1));
        assert!(viewer.encoder().same(&low_encoder));
    }
}
