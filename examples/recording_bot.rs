//! A recording bot: join a call room, send the built-in pattern camera and tone, and
//! record every other participant into an MP4 file of its own, the received H.264/VP8 and
//! Opus written as they came (no re-encoding) — what `usermedia bot --record DIR` does.
//!
//! Start a room server with `usermedia serve`, open `http://127.0.0.1:8080/call?room=r1`
//! in a browser and join, then (Ctrl-C finalizes the files):
//! `cargo run --release --example recording_bot ws://127.0.0.1:8080/ws?room=r1 out/`
//!
//! As a test (`cargo test --example recording_bot`) it records a second participant of an
//! in-process room server for two seconds and checks the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use usermedia::client::{join_room, CallEvent};
use usermedia::constraints::MediaKind;
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::encode::pipeline::TrackEncoders;
use usermedia::peer::{PeerConfig, PeerFactory};
use usermedia::record::{RecordCodec, Recorded, Recorder};
use usermedia::server::encode_track;

/// The built-in camera (640×480 pattern) and tone, ready to send.
fn capture() -> anyhow::Result<Vec<TrackEncoders>> {
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let stream = devices
        .get_user_media_json(r#"{"video": {"width": 640, "height": 480}, "audio": true}"#)?;
    Ok(stream
        .get_tracks()
        .iter()
        .map(|t| encode_track(t, 1_000_000))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Records everyone in `room` into `dir` until `until` completes; the finished files.
async fn record(
    room: &str,
    factory: PeerFactory,
    dir: &Path,
    until: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Vec<Recorded>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut bot = join_room(room, factory, capture()?).await?;
    let mut recorders: Vec<(String, Recorder)> = Vec::new();
    let mut done = Vec::new();
    tokio::pin!(until);
    loop {
        let event = tokio::select! {
            _ = &mut until => break,
            event = bot.next_event(Duration::from_secs(3600)) => event,
        };
        match event {
            None => break,
            Some(CallEvent::Track { from, track }) => {
                let codec = match track.kind() {
                    MediaKind::Video => track.video_codec().map(RecordCodec::Video),
                    MediaKind::Audio => Some(RecordCodec::Opus),
                };
                let Some(codec) = codec else { continue };
                if !recorders.iter().any(|(id, _)| *id == from) {
                    let path = dir.join(format!("{from}.mp4"));
                    recorders.push((from.clone(), Recorder::create(&path)?));
                    println!("recording {from} into {}", path.display());
                }
                if let Some((_, r)) = recorders.iter().find(|(id, _)| *id == from) {
                    // Units wait in a queue of 256; a recorder that falls behind drops some.
                    r.record(codec, track.subscribe_encoded(256))?;
                }
            }
            // A participant left: its file is complete from now on.
            Some(CallEvent::Left { from }) => {
                if let Some(i) = recorders.iter().position(|(id, _)| *id == from) {
                    done.push(recorders.swap_remove(i).1.finish()?);
                }
            }
            // Chat messages (only with a chat: `join_room_saying`).
            Some(CallEvent::Message(_)) => {}
        }
    }
    for (_, r) in recorders {
        done.push(r.finish()?);
    }
    bot.leave();
    Ok(done)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: recording_bot ws://HOST:PORT/ws?room=NAME DIR";
    let room = args.next().context(usage)?;
    let dir = PathBuf::from(args.next().context(usage)?);
    println!("in the call at {room}; Ctrl-C leaves");
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let factory = PeerFactory::new(PeerConfig::default());
    for r in record(&room, factory, &dir, ctrl_c).await? {
        println!("{}: {} samples", r.path.display(), r.samples);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use usermedia::server::Publisher;
    use usermedia_signaling::{router, ServerConfig};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_a_participant_of_a_room_into_a_complete_mp4() {
        let loopback = || {
            PeerFactory::new(PeerConfig {
                ice_addrs: vec!["127.0.0.1".parse().unwrap()],
                ..PeerConfig::default()
            })
        };
        let app = router(
            Arc::new(Publisher::new(loopback())),
            ServerConfig::default(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let room = format!("ws://{}/ws?room=r", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let dir = tempfile::tempdir().unwrap();
        let other_room = room.clone();
        let other = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let other = join_room(&other_room, loopback(), capture().unwrap())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
            other.leave();
        });
        let until = tokio::time::sleep(Duration::from_secs(5));
        let files = record(&room, loopback(), dir.path(), until).await.unwrap();
        other.await.unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
        // About 2.5 s of 30 fps video and 50 Opus packets a second.
        assert!(files[0].samples > 150, "{files:?}");
        let bytes = std::fs::read(&files[0].path).unwrap();
        let has = |tag: &[u8]| bytes.windows(4).any(|w| w == tag);
        assert!(has(b"moov") && has(b"Opus"), "an incomplete file");
        assert!(has(b"avc1") || has(b"vp08"), "no video track");
    }
}
