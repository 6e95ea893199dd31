//! A captured stream whose device is unplugged, with a replug scripted: the stream is
//! withdrawn as for a failure (its viewers' sessions end), its name is held *vacant* — a
//! new viewer gets `503` with `Retry-After` instead of `404` — and at the replug it is
//! captured again from the same constraints and published under the same name, so viewers
//! who retry get media.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::encoders::encode_track_with;
use super::publisher::Sessions;
use super::stream::{Published, Streams};
use super::track_end::watch_track;
use crate::constraints::{MediaKind, MediaStreamConstraints};
use crate::devices::MediaDevices;
use crate::encode::pipeline::BitrateLadder;
use crate::encode::VideoCodec;
use crate::sync::lock;
use crate::track::MediaStreamTrack;

/// How to capture and publish a stream again: its devices, the constraints its tracks
/// were opened with, its bitrates and codec.
pub(super) struct Reopen {
    devices: Arc<MediaDevices>,
    constraints: MediaStreamConstraints,
    ladder: BitrateLadder,
    video_codec: Option<VideoCodec>,
}

impl Reopen {
    /// How to capture `tracks` again from `devices` (`None` if one of them is remote).
    pub(super) fn of(
        devices: &Arc<MediaDevices>,
        tracks: &[MediaStreamTrack],
        ladder: &BitrateLadder,
        video_codec: Option<VideoCodec>,
    ) -> Option<Arc<Self>> {
        let mut constraints = MediaStreamConstraints {
            audio: None,
            video: None,
        };
        for t in tracks {
            if t.is_remote() {
                return None;
            }
            let slot = match t.kind() {
                MediaKind::Audio => &mut constraints.audio,
                MediaKind::Video => &mut constraints.video,
            };
            *slot = Some(t.get_constraints());
        }
        Some(Arc::new(Reopen {
            devices: Arc::clone(devices),
            constraints,
            ladder: ladder.clone(),
            video_codec,
        }))
    }

    /// How long until `track`'s device, unplugged now, is replugged (`None`: it is not
    /// unplugged, or no replug is scripted).
    pub(super) fn replug_in(&self, track: &MediaStreamTrack) -> Option<Duration> {
        let device = track.get_settings().device_id?;
        self.devices.replug_in(&device)
    }
}

/// Waits `wait` (until the replug), then captures stream `name` again by `reopen` and
/// publishes it in place of `vacancy`, if the name still holds that vacancy (a WHIP
/// publisher may have taken it meanwhile). On failure the vacancy is removed (`404`).
pub(super) fn reopen_after(
    streams: &Arc<Streams>,
    sessions: &Arc<Sessions>,
    name: &str,
    vacancy: Arc<Published>,
    reopen: Arc<Reopen>,
    wait: Duration,
) {
    let (streams, sessions, name) = (Arc::clone(streams), Arc::clone(sessions), name.to_owned());
    tokio::spawn(async move {
        // A hair past the replug: the device is listed again from its time on.
        tokio::time::sleep(wait + Duration::from_millis(10)).await;
        let still_ours = |streams: &Streams| {
            lock(streams)
                .get(&name)
                .is_some_and(|p| Arc::ptr_eq(p, &vacancy))
        };
        if !still_ours(&streams) {
            return;
        }
        let capture = Arc::clone(&reopen);
        let captured = tokio::task::spawn_blocking(move || {
            let stream = capture
                .devices
                .get_user_media(&capture.constraints)
                .map_err(|e| e.to_string())?;
            let mut list = Vec::new();
            for t in stream.get_tracks() {
                match encode_track_with(t, capture.ladder.clone(), capture.video_codec) {
                    Ok(e) => list.push((t.clone(), e)),
                    Err(e) => {
                        for t in stream.get_tracks() {
                            t.stop();
                        }
                        return Err(e.to_string());
                    }
                }
            }
            Ok(list)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        let list = match captured {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!("stream {name:?}: its device is back but capture failed: {e}; the stream is withdrawn");
                let mut streams = lock(&streams);
                if streams.get(&name).is_some_and(|p| Arc::ptr_eq(p, &vacancy)) {
                    streams.remove(&name);
                }
                return;
            }
        };
        let tracks: Vec<MediaStreamTrack> = list.iter().map(|(t, _)| t.clone()).collect();
        let mut published = Published::captured(list);
        published.reopen = Some(reopen);
        let placed = {
            let mut streams = lock(&streams);
            let ours = streams.get(&name).is_some_and(|p| Arc::ptr_eq(p, &vacancy));
            if ours {
                streams.insert(name.clone(), Arc::new(published));
            }
            ours
        };
        if !placed {
            for t in &tracks {
                t.stop();
            }
            return;
        }
        tracing::info!("stream {name:?}: its device is back; published again");
        for t in &tracks {
            watch_track(&streams, &sessions, &name, t);
        }
    });
}

/// The vacancy that holds a captured stream's name while its device is unplugged.
pub(super) fn vacancy(reopen: &Arc<Reopen>) -> Arc<Published> {
    Arc::new(Published {
        vacated: Some(Instant::now()),
        reopen: Some(Arc::clone(reopen)),
        ..Published::default()
    })
}
