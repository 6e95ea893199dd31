//! `usermedia bot --echo` with a headless Chromium in one of our call rooms: the page
//! sends a canvas on which it draws the pattern's strip (its own frame counter and clock)
//! and decodes its own strip back from the bot's echo — the counters it sent, in order,
//! at its own 640×480, a moment after it drew them.

#[allow(dead_code)]
mod browser_support;
#[path = "../signaling/tests/common/http.rs"]
mod http;
mod netns;

use browser_support::{in_netns, serve, Browser};

/// The echoing bot, in `url`'s room for `seconds`, on the built-in devices.
fn echoing_bot(url: &str, seconds: &str) -> tokio::process::Child {
    let devices = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/devices/builtin.json");
    tokio::process::Command::new(env!("CARGO_BIN_EXE_usermedia"))
        .args(["bot", "--echo", "--room", url, "--ice-addr", "127.0.0.1"])
        .args(["--seconds", seconds, "--devices", devices])
        .args([
            "--constraints",
            r#"{"video": {"width": 320, "height": 240}, "audio": true}"#,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start usermedia bot --echo")
}

async fn chromium_gets_its_own_pattern_back() {
    let served = serve(None).await;
    let url = format!("ws://{}/ws?room=echo", served.addr);
    let bot = echoing_bot(&url, "25");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (result, browser) = served
        .run_page(Browser::Chromium, "case=echo&room=echo")
        .await;
    drop(browser);
    let back: Vec<u64> = result["back"]
        .as_array()
        .expect("the frame numbers read back")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let drawn = result["drawn"].as_u64().unwrap();
    println!(
        "Chromium drew {drawn} frames and read {} of them back from the echo ({} unreadable); latencies {:?}",
        back.len(),
        result["unreadable"],
        result["latenciesMs"]
    );
    // Its own counters: from 0 up, fewer than it drew, always increasing, about 30 a second.
    assert!(back.len() >= 45, "{result}");
    assert!(back.iter().all(|&f| f < drawn), "{result}");
    assert!(back.windows(2).all(|w| w[0] < w[1]), "{result}");
    // At the size it sent (not the bot's 320×240 camera).
    assert_eq!(
        (result["width"].as_u64(), result["height"].as_u64()),
        (Some(640), Some(480))
    );
    // Its own clock: drawn a moment before it came back.
    let latencies = result["latenciesMs"].as_array().unwrap();
    assert!(
        latencies.iter().all(|l| l.as_f64().unwrap() < 2000.0),
        "{result}"
    );
    let mut bot = bot;
    let _ = bot.kill().await;
}

#[test]
fn chromium_decodes_its_own_pattern_back_from_an_echoing_bot() {
    in_netns(
        "chromium_decodes_its_own_pattern_back_from_an_echoing_bot",
        chromium_gets_its_own_pattern_back,
    );
}
