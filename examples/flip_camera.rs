//! Switching cameras mid-call, as a phone's front/back button does: a second getUserMedia
//! with the other `facingMode`, then `replace_track` on the sender — no renegotiation,
//! and the receiver's track goes on (same SSRC, sequence numbers and timestamps running
//! on), showing the new camera from its first keyframe at its own size.
//!
//! `cargo run --release --example flip_camera`: two peers on loopback; the sender starts
//! on the front camera (640×480, a pattern), flips to the back one (320×240) after two
//! seconds, and the receiver prints what it decodes. The two virtual cameras come from a
//! devices file written here (the built-in virtual set has only one camera).
//!
//! To flip every viewer of a published stream at once, replace the track of its
//! `TrackEncoders` instead (`encoders.replace_track(&back)`), or, under `serve`, POST
//! `/streams/{name}/flip`.

use std::time::{Duration, Instant};

use anyhow::Context;
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::encode::pipeline::TrackEncoders;
use usermedia::peer::{PeerConfig, PeerFactory};
use usermedia::{MediaFrame, MediaKind};

/// A phone's two cameras, as a devices file (docs/devices-file.md).
const PHONE: &str = r#"{"devices": [
  {"kind": "videoinput", "deviceId": "front", "label": "Front camera", "facingMode": "user",
   "source": "pattern", "modes": [{"width": 640, "height": 480, "frameRate": 30}]},
  {"kind": "videoinput", "deviceId": "back", "label": "Back camera",
   "facingMode": "environment", "source": "pattern",
   "modes": [{"width": 320, "height": 240, "frameRate": 30}]}
]}"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("phone.json");
    std::fs::write(&path, PHONE)?;
    let devices = MediaDevices::from_devices_file(&path, PermissionPolicy::granted())?;

    let front = devices
        .get_user_media_json(r#"{"video": {"facingMode": "user"}}"#)
        .context("the front camera")?
        .get_video_tracks()
        .remove(0);
    println!(
        "sending {:?}: {}",
        front.label(),
        serde_json::to_string(&front.get_settings())?
    );

    // Two peers on loopback: `a` sends the front camera, `b` receives.
    let factory = PeerFactory::new(PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse()?],
        ..PeerConfig::default()
    });
    let (a, b) = (factory.create().await?, factory.create().await?);
    a.add_track(&TrackEncoders::new(&front, 1_000_000, None))
        .await?;
    let answer = b.answer(&a.create_offer().await?).await?;
    a.accept_answer(&answer).await?;
    a.wait_connected(Duration::from_secs(10)).await?;
    let remote = b
        .next_remote_track(Duration::from_secs(10))
        .await
        .context("no remote track")?;

    // The receiver: one line per second of what it decoded.
    let frames = remote.subscribe(64);
    let receiver = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let (mut count, mut size, mut second) = (0, (0, 0), 1);
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(MediaFrame::Video(f))) = frames.recv_timeout(Duration::from_millis(100))
            {
                count += 1;
                size = (f.width(), f.height());
            }
            if start.elapsed() >= Duration::from_secs(second) {
                println!(
                    "  received: {count} frames in second {second}, now {}×{}",
                    size.0, size.1
                );
                (count, second) = (0, second + 1);
            }
        }
    });

    tokio::time::sleep(Duration::from_secs(2)).await;
    // The flip: a second getUserMedia for the camera facing the other way, then
    // replaceTrack on the video sender, then the old camera stopped.
    let back = devices
        .get_user_media_json(r#"{"video": {"facingMode": {"exact": "environment"}}}"#)
        .context("the back camera")?
        .get_video_tracks()
        .remove(0);
    let sender = a
        .get_senders()
        .into_iter()
        .find(|s| s.kind() == MediaKind::Video)
        .context("no video sender")?;
    sender.replace_track(TrackEncoders::new(&back, 1_000_000, None))?;
    front.stop();
    println!(
        "flipped to {:?}: {}",
        back.label(),
        serde_json::to_string(&back.get_settings())?
    );

    receiver.await?;
    // The remote track never says where the camera faces: RTP does not carry it.
    println!(
        "the remote track: {} (ended: {})",
        serde_json::to_string(&remote.get_settings())?,
        remote.ended()
    );
    a.close().await;
    b.close().await;
    back.stop();
    Ok(())
}
