//! A headless camera publisher in a page of Rust: capture the camera (or, on a machine
//! without one, the built-in pattern and tone), publish it as the stream `default`, and
//! serve WHEP plus the viewer page, so any browser can watch it.
//!
//! `cargo run --release --example headless_publisher [ADDR]` (default 127.0.0.1:8080),
//! then open `http://ADDR/`. Ctrl-C stops it.

use std::sync::Arc;

use anyhow::Context;
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::peer::{PeerConfig, PeerFactory};
use usermedia::server::Publisher;
use usermedia_signaling::{router, HttpLimits, ServerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    // The machine's devices; the built-in virtual pair when it has none.
    let devices = Arc::new(MediaDevices::system(PermissionPolicy::granted()));
    let stream = devices
        .get_user_media_json(r#"{"video": {"width": 1280, "height": 720}, "audio": true}"#)
        .context("getUserMedia")?;
    for track in stream.get_tracks() {
        println!(
            "{} {}",
            track.kind(),
            serde_json::to_string(&track.get_settings())?
        );
    }

    // One encoder per track, codec and bitrate tier, shared by every viewer.
    let publisher =
        Arc::new(Publisher::new(PeerFactory::new(PeerConfig::default())).with_devices(devices));
    publisher.publish("default", stream.get_tracks().to_vec(), 2_000_000)?;

    let app = router(publisher, ServerConfig::default());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!(
        "open http://{}/ (WHEP: /whep/default)",
        listener.local_addr()?
    );
    // The bounded server (header and request timeouts, a connection cap), as `usermedia
    // serve` runs it; Ctrl-C ends it within its grace.
    usermedia_signaling::serve(listener, app, HttpLimits::default(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
