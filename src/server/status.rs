//! The report `GET /status` serves: every stream with its tracks, encoders and viewers,
//! every session's peer statistics, the devices in use and the indicator.

use serde::Serialize;
use std::sync::Arc;

use usermedia_signaling::Direction;

use super::flip::{can_flip, StreamCamera};
use super::publisher::Sessions;
use super::stream::{Published, Streams};
use crate::constraints::{MediaKind, MediaTrackSettings};
use crate::devices::{DeviceInUse, Indicator, MediaDevices};
use crate::encode::pipeline::{EncodedTrack, EncoderStats};
use crate::peer::{ImpairReport, Peer, PeerStats, RemoteTrack, RemoteTrackStats};
use crate::sync::lock;
use crate::track::MediaStreamTrack;

/// `GET /status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub streams: Vec<StreamStatus>,
    /// One per session, viewer or publisher.
    pub peers: Vec<PeerStatus>,
    pub devices_in_use: Vec<DeviceInUse>,
    /// Per kind: off, live or muted, and since when (the badge of the served pages).
    pub indicator: Indicator,
}

/// A published stream.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStatus {
    pub name: String,
    /// WHEP sessions viewing it.
    pub viewers: usize,
    /// Published through WHIP rather than captured here.
    pub ingested: bool,
    pub tracks: Vec<TrackStatus>,
    /// Ingested: what arrives from the publisher, per track.
    pub received: Vec<ReceivedStatus>,
    /// The camera it sends now (none for an ingested stream or one without video).
    pub device: Option<StreamCamera>,
    /// Whether `POST /streams/{name}/flip` can switch it to a camera facing another way.
    pub can_flip: bool,
}

/// A track of a stream and the encoders running for it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackStatus {
    pub kind: MediaKind,
    pub label: String,
    pub settings: MediaTrackSettings,
    /// The encoders running: one per codec and bitrate tier viewers use.
    pub encoders: Vec<EncoderStatus>,
}

/// A running encoder: its counters (`tier` 0 is the highest; `bitrate` the target now,
/// `minBitrate`..`maxBitrate` the range it follows its viewers in: 0.9 × the tier's rung up
/// to the next higher rung (the top rung for tier 0); `passthrough`: an ingested track's
/// units forwarded as they came, not encoded here), then its codec.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EncoderStatus {
    #[serde(flatten)]
    pub stats: EncoderStats,
    pub codec: &'static str,
}

/// An ingested track as it arrives from the publisher (packets, bytes, decoded frames,
/// PLIs sent, drops).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedStatus {
    pub kind: MediaKind,
    pub mime_type: String,
    pub stats: RemoteTrackStats,
}

/// A session's peer connection.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatus {
    pub session: String,
    pub stream: String,
    pub role: Role,
    pub stats: PeerStats,
    /// What the impairment of its path did (`serve --impair-viewers`); absent when not
    /// impaired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impairment: Option<ImpairReport>,
}

/// Which side of a stream a session is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// WHEP: it views the stream.
    Viewer,
    /// WHIP: it publishes the stream.
    Publisher,
}

impl Status {
    /// The report on `streams`, `sessions` and `devices` as they are now.
    pub(super) async fn of(
        streams: &Streams,
        sessions: &Sessions,
        devices: Option<&MediaDevices>,
    ) -> Status {
        let streams: Vec<(String, Arc<Published>)> = lock(streams)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        let sessions: Vec<(String, String, Direction, Arc<Peer>)> = lock(sessions)
            .iter()
            .map(|(id, s)| {
                (
                    id.clone(),
                    s.stream.clone(),
                    s.direction,
                    Arc::clone(&s.peer),
                )
            })
            .collect();
        let mut peers = Vec::new();
        for (id, stream, direction, peer) in &sessions {
            peers.push(PeerStatus {
                session: id.clone(),
                stream: stream.clone(),
                role: Role::of(*direction),
                stats: peer.stats().await,
                impairment: peer.impairment(),
            });
        }
        let streams = streams
            .iter()
            .map(|(name, p)| {
                // Asked before the locks below are taken (they last the whole literal).
                let device = p.tracks().iter().find_map(StreamCamera::of);
                let can_flip = can_flip(p, devices);
                StreamStatus {
                    name: name.clone(),
                    viewers: sessions
                        .iter()
                        .filter(|(_, s, d, _)| s == name && *d == Direction::View)
                        .count(),
                    ingested: p.ingest.is_some(),
                    tracks: lock(&p.tracks)
                        .iter()
                        .map(|(t, e)| TrackStatus::of(t, &e.running()))
                        .collect(),
                    received: lock(&p.received).iter().map(ReceivedStatus::of).collect(),
                    device,
                    can_flip,
                }
            })
            .collect();
        let devices_in_use = devices.map(|d| d.devices_in_use()).unwrap_or_default();
        Status {
            streams,
            peers,
            indicator: Indicator::of(&devices_in_use),
            devices_in_use,
        }
    }
}

impl TrackStatus {
    fn of(track: &MediaStreamTrack, running: &[EncodedTrack]) -> Self {
        TrackStatus {
            kind: track.kind(),
            label: track.label().to_owned(),
            settings: track.get_settings(),
            encoders: running
                .iter()
                .map(|e| EncoderStatus {
                    stats: e.stats(),
                    codec: e.codec().name(),
                })
                .collect(),
        }
    }
}

impl ReceivedStatus {
    fn of(remote: &RemoteTrack) -> Self {
        ReceivedStatus {
            kind: remote.kind(),
            mime_type: remote.mime_type().to_owned(),
            stats: remote.stats(),
        }
    }
}

impl Role {
    fn of(direction: Direction) -> Self {
        match direction {
            Direction::View => Role::Viewer,
            Direction::Ingest => Role::Publisher,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::PermissionPolicy;
    use crate::peer::{PeerConfig, PeerFactory};
    use serde_json::{json, Value};
    use usermedia_signaling::Endpoint;

    #[test]
    fn an_encoder_is_its_stats_then_its_codec() {
        let stats = EncoderStats {
            frames_in: 3,
            bitrate: 1_000,
            tier: 1,
            passthrough: true,
            ..EncoderStats::default()
        };
        let typed = serde_json::to_string(&EncoderStatus {
            stats,
            codec: "VP8",
        })
        .unwrap();
        // As `/status` has always written it: the stats' object, "codec" appended.
        let mut as_ever = json!(stats);
        if let Some(o) = as_ever.as_object_mut() {
            o.insert("codec".into(), json!("VP8"));
        }
        assert_eq!(typed, as_ever.to_string());
    }

    #[tokio::test]
    async fn the_report_keeps_its_keys_and_their_order() {
        let devices = Arc::new(MediaDevices::builtin_virtual(PermissionPolicy::granted()));
        let stream = devices
            .get_user_media_json(r#"{"video": true, "audio": true}"#)
            .unwrap();
        let publisher = super::super::Publisher::new(PeerFactory::new(PeerConfig::default()))
            .with_devices(Arc::clone(&devices));
        publisher
            .publish("cam", stream.get_tracks().to_vec(), 1_000_000)
            .unwrap();
        let typed = serde_json::to_string(&publisher.status().await).unwrap();
        // The report as the hand-built JSON of earlier versions wrote it (no sessions, no
        // encoder running yet: they start with the first viewer).
        let tracks: Vec<Value> = stream
            .get_tracks()
            .iter()
            .map(|t| {
                json!({
                    "kind": t.kind(),
                    "label": t.label(),
                    "settings": t.get_settings(),
                    "encoders": Vec::<Value>::new(),
                })
            })
            .collect();
        let as_ever = json!({
            "streams": [{
                "name": "cam",
                "viewers": 0,
                "ingested": false,
                "tracks": tracks,
                "received": Vec::<Value>::new(),
                "device": {
                    "deviceId": "virtual-pattern",
                    "label": "Virtual camera (pattern)",
                    "width": 640,
                    "height": 480,
                },
                "canFlip": false,
            }],
            "peers": Vec::<Value>::new(),
            "devicesInUse": devices.devices_in_use(),
            "indicator": devices.indicator(),
        });
        assert_eq!(typed, as_ever.to_string());
        let role = |d| serde_json::to_string(&Role::of(d)).unwrap();
        assert_eq!(role(Direction::View), r#""viewer""#);
        assert_eq!(role(Direction::Ingest), r#""publisher""#);
    }
}
