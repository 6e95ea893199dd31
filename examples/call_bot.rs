//! A video-call bot: join a call room, send the built-in pattern camera and tone, and
//! process what the others send — here, print each remote video's size, frame rate and
//! mean brightness once a second (a bot could as well record or analyse the frames).
//!
//! Start a room server with `usermedia serve`, open `http://127.0.0.1:8080/call?room=r1`
//! in a browser and join, then:
//! `cargo run --release --example call_bot ws://127.0.0.1:8080/ws?room=r1`

use std::time::{Duration, Instant};

use anyhow::Context;
use usermedia::client::join_room;
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::peer::{PeerConfig, PeerFactory};
use usermedia::server::encode_track;
use usermedia::MediaFrame;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let room = std::env::args()
        .nth(1)
        .context("usage: call_bot ws://HOST:PORT/ws?room=NAME")?;
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let stream = devices
        .get_user_media_json(r#"{"video": {"width": 640, "height": 480}, "audio": true}"#)?;
    let encoders = stream
        .get_tracks()
        .iter()
        .map(|t| encode_track(t, 1_000_000))
        .collect::<Result<Vec<_>, _>>()?;
    let mut bot = join_room(&room, PeerFactory::new(PeerConfig::default()), encoders).await?;
    println!("in the call at {room}; Ctrl-C leaves");

    loop {
        let track = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            track = bot.next_remote_track(Duration::from_secs(3600)) => track,
        };
        let Some(track) = track else { break };
        println!(
            "{} track from a participant ({})",
            track.kind(),
            track.mime_type()
        );
        // Frames arrive on a thread of our own: decoding never waits for us, and a slow
        // consumer only loses frames (counted by the track).
        let frames = track.subscribe(8);
        std::thread::spawn(move || {
            let (mut count, mut luma, mut since) = (0u32, 0u64, Instant::now());
            while let Ok(frame) = frames.recv() {
                let MediaFrame::Video(f) = frame else {
                    continue;
                };
                count += 1;
                let y = f.y();
                luma += y.iter().map(|&v| u64::from(v)).sum::<u64>() / y.len().max(1) as u64;
                if since.elapsed() >= Duration::from_secs(1) {
                    println!(
                        "{}x{}: {count} frames/s, mean luma {}",
                        f.width(),
                        f.height(),
                        luma / u64::from(count)
                    );
                    (count, luma, since) = (0, 0, Instant::now());
                }
            }
            println!("the track ended");
        });
    }
    bot.leave();
    Ok(())
}
