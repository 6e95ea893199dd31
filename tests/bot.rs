//! `usermedia bot`: two bot processes meet in a call room of an in-process server and
//! decode each other over real UDP on loopback; bad arguments are clear errors (exit 2), an
//! unreachable room a network failure (exit 3).

mod common;

use common::{example, exclusive, room_server};
use serde_json::Value;

/// Starts `usermedia bot` in `room` for `seconds`, sending a camera of `width`×`height`
/// (the phone example's `facing` camera) and the tone.
fn bot(url: &str, facing: &str, width: u32, seconds: &str) -> tokio::process::Child {
    let devices = example("phone.json");
    tokio::process::Command::new(env!("CARGO_BIN_EXE_usermedia"))
        .args(["bot", "--room", url, "--ice-addr", "127.0.0.1", "--seconds", seconds])
        .arg("--devices")
        .arg(&devices)
        .arg("--constraints")
        .arg(format!(
            r#"{{"video": {{"deviceId": {{"exact": "{facing}"}}, "width": {width}, "height": {}}}, "audio": true}}"#,
            width * 3 / 4
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start usermedia bot")
}

/// The JSON lines a finished bot printed, and its exit status.
async fn finish(child: tokio::process::Child) -> (std::process::ExitStatus, Vec<Value>) {
    let out = child.wait_with_output().await.unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (out.status, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bots_in_a_room_decode_each_other() {
    let _serial = exclusive().await;
    let addr = room_server().await;
    let url = format!("ws://{addr}/ws?room=bots");
    let first = bot(&url, "front", 640, "7");
    // The second joins a moment later and offers to the first.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let second = bot(&url, "back", 320, "5");
    let (second_status, second_lines) = finish(second).await;
    let (first_status, first_lines) = finish(first).await;
    assert!(first_status.success() && second_status.success());
    // Each reports the other's tracks: as they arrive, then with their counters.
    for (lines, sent_width) in [(&first_lines, 320), (&second_lines, 640)] {
        let arrivals = lines.iter().filter(|l| l["event"] == "track").count();
        assert_eq!(arrivals, 2, "{lines:?}");
        let left = lines
            .iter()
            .find(|l| l["event"] == "left")
            .expect("a summary");
        let tracks = left["tracks"].as_array().unwrap();
        let video = tracks.iter().find(|t| t["kind"] == "video").unwrap();
        let audio = tracks.iter().find(|t| t["kind"] == "audio").unwrap();
        assert_eq!(video["settings"]["width"], sent_width, "{video}");
        assert_eq!(video["settings"]["height"], sent_width * 3 / 4, "{video}");
        // The sender's camera faces the user or the environment; that does not cross RTP.
        assert!(video["settings"].get("facingMode").is_none(), "{video}");
        assert!(
            video["stats"]["framesDecoded"].as_u64().unwrap() >= 60,
            "{video}"
        );
        assert_eq!(video["stats"]["decodeErrors"], 0, "{video}");
        // What arrived, read from the pattern's strip (as `view` reports it).
        assert_eq!(video["quality"]["source"], "strip", "{video}");
        assert!(
            video["quality"]["frames"].as_u64().unwrap() >= 60,
            "{video}"
        );
        assert!(
            audio["stats"]["framesDecoded"].as_u64().unwrap() >= 100,
            "{audio}"
        );
        assert!(audio["mimeType"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("audio/opus"));
    }
}

#[test]
fn a_room_that_is_not_a_websocket_url_is_refused() {
    let out = common::usermedia(&["bot", "--room", "http://127.0.0.1:1/ws?room=r"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ws://"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_room_is_a_clear_error() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let builtin = example("builtin.json");
    let out = common::usermedia(&[
        "bot",
        "--room",
        &format!("ws://127.0.0.1:{port}/ws?room=r"),
        "--devices",
        builtin.to_str().unwrap(),
        "--seconds",
        "1",
    ]);
    // A network failure, not bad input: exit 3 (it was 2 before the exit codes were
    // mapped explicitly).
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("joining ws://127.0.0.1"), "{stderr}");
}

#[test]
fn a_room_url_without_a_host_is_refused_before_capturing() {
    for room in ["ws://", "ws:///ws?room=r", "ws://bad host/ws"] {
        let out = common::usermedia(&["bot", "--room", room]);
        assert_eq!(out.status.code(), Some(2), "{room}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--room"), "{room}: {stderr}");
    }
}
