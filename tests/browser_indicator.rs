//! The privacy badge of the shipped viewer page in headless Chromium (in its own network
//! namespace, as every browser test): "camera in use" while the camera is open and live,
//! "camera muted" once its track is disabled, nothing once it stops.

#[allow(dead_code)]
mod browser_support;
mod netns;

use std::sync::Arc;
use std::time::Duration;

use browser_support::{in_netns, loopback_peers};
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::server::Publisher;
use usermedia_signaling::{router, ServerConfig};

/// The viewer page at `url` as Chromium renders it after its scripts ran (virtual time
/// lets the page's poll of `/indicator` complete): the `#indicator` paragraph.
async fn rendered_indicator(url: &str) -> String {
    let profile = tempfile::tempdir().expect("a profile directory");
    let out = tokio::process::Command::new("/usr/bin/chromium")
        .env_clear()
        .env("HOME", profile.path())
        .env("PATH", "/usr/bin:/bin")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=3000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .expect("chromium is installed (scripts/setup.sh)");
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom
        .find("<p id=\"indicator\"")
        .unwrap_or_else(|| panic!("no indicator in the page: {dom}"));
    let end = dom[start..].find("</p>").map_or(dom.len(), |e| start + e);
    dom[start..end].to_owned()
}

async fn shows_the_badge() {
    let devices = Arc::new(MediaDevices::builtin_virtual(PermissionPolicy::granted()));
    let stream = devices.get_user_media_json(r#"{"video": true}"#).unwrap();
    let publisher = Arc::new(Publisher::new(loopback_peers()).with_devices(Arc::clone(&devices)));
    publisher
        .publish("default", stream.get_tracks().to_vec(), 1_000_000)
        .unwrap();
    let app = router(publisher, ServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let live = rendered_indicator(&url).await;
    assert!(live.contains("badge live"), "{live}");
    assert!(live.contains(">camera in use<"), "{live}");
    assert!(!live.contains("microphone"), "{live}");

    let video = &stream.get_tracks()[0];
    video.set_enabled(false);
    let muted = rendered_indicator(&url).await;
    assert!(muted.contains("badge muted"), "{muted}");
    assert!(muted.contains(">camera muted<"), "{muted}");

    video.stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while devices.indicator().any_open() {
        assert!(
            std::time::Instant::now() < deadline,
            "the camera stays open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let off = rendered_indicator(&url).await;
    assert!(!off.contains("badge"), "{off}");
}

#[test]
fn chromium_shows_the_indicator_badge() {
    in_netns("chromium_shows_the_indicator_badge", shows_the_badge);
}
