//! `usermedia bot --say`: two bot processes in a call room of an in-process server greet
//! each other on the `chat` data channel (the one who joins first and the one who joins
//! later) and print what they receive as `{"event":"message",…}` lines; a message too
//! long to send is bad input (exit 2).

mod common;

use std::time::Instant;

use common::{example, exclusive, room_server, usermedia};
use serde_json::Value;

/// `usermedia bot --say TEXT` in `room` for `seconds`, sending a small pattern only.
fn bot(url: &str, say: &str, seconds: &str) -> tokio::process::Child {
    common::bot_in_room(url, seconds)
        .args(["--say", say])
        .arg("--devices")
        .arg(example("phone.json"))
        .args([
            "--constraints",
            r#"{"video": {"width": 320, "height": 240}}"#,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start usermedia bot")
}

/// The JSON lines a finished bot printed, and whether it exited 0.
async fn finish(child: tokio::process::Child) -> (bool, Vec<Value>) {
    let out = child.wait_with_output().await.unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (out.status.success(), lines)
}

fn messages(lines: &[Value]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter(|l| l["event"] == "message")
        .map(|l| {
            (
                l["from"].as_str().unwrap_or_default().to_owned(),
                l["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bots_in_a_room_say_hello_to_each_other() {
    let _serial = exclusive().await;
    let addr = room_server().await;
    let url = format!("ws://{addr}/ws?room=chat");
    let started = Instant::now();
    let first = bot(&url, "hello from the first", "5");
    // The second joins later: the first says its text to it as their channel opens.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let second = bot(&url, "héllo from the second ✓", "3");
    let (second_ok, second_lines) = finish(second).await;
    let (first_ok, first_lines) = finish(first).await;
    eprintln!("both bots done after {:?}", started.elapsed());
    assert!(first_ok && second_ok, "{first_lines:?} {second_lines:?}");
    let (to_first, to_second) = (messages(&first_lines), messages(&second_lines));
    assert_eq!(to_first.len(), 1, "{first_lines:?}");
    assert_eq!(to_first[0].1, "héllo from the second ✓");
    assert_eq!(to_second.len(), 1, "{second_lines:?}");
    assert_eq!(to_second[0].1, "hello from the first");
    // `from` is the other's participant id, the one its tracks came from.
    assert!(!to_first[0].0.is_empty() && to_first[0].0 != to_second[0].0);
}

#[test]
fn a_message_too_long_to_say_is_bad_input() {
    let long = "x".repeat(4097);
    let out = usermedia(&[
        "bot",
        "--room",
        "ws://127.0.0.1:9/ws?room=r",
        "--say",
        &long,
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--say") && stderr.contains("4096"),
        "{stderr}"
    );
}
