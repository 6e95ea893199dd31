//! usermedia in a Janus VideoRoom (Debian's Janus 1.1.x): `publish --janus` into a room
//! and a `bot --janus` that subscribes and decodes; a library participant that sees a
//! publisher join later (decoding its pattern frame by frame) and leave; a missing room
//! without `--janus-create` as a clear error (exit 2), and created with it; leaving on
//! Ctrl-C leaves no participant behind (Janus's `listparticipants`); bad Janus flags are
//! exit 2 and an unreachable Janus exit 3 (those two need no Janus); Janus killed
//! mid-call, the bot and the publisher exit 3 within 10 s, saying so; a 640×480 publisher's
//! bandwidth estimate ramps above the floor and the bot decodes ≥ 27 fps; participants
//! sharing an `OwnFeeds` (a bot and its echoes) never subscribe to one another.
//!
//! Each case re-executes its test binary in a private network namespace with an `ifb`
//! device at 192.0.2.1 (Janus does not gather on loopback), starts its own `janus` there
//! with `tests/janus_support/conf`, and stops it by its PID. A missing Janus, `unshare` or
//! `ip` is a failure, not a skip: CI installs them.

mod common;
mod janus_support;
mod netns;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{example, track_frame_numbers};
use janus_support::{usermedia_at, Janus, ICE_ADDR, ROOM, URL};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use usermedia::client::{join_janus, JanusEvent, JanusOptions, JanusParticipant, OwnFeeds};
use usermedia::peer::{PeerConfig, PeerFactory};
use usermedia::{MediaKind, MediaStreamConstraints};
use usermedia_signaling::janus::{JanusSession, RoomParticipant, VideoRoomHandle};
use usermedia_signaling::HttpClient;

const CASE_LIMIT: Duration = Duration::from_secs(40);
/// Small video: the machine is shared.
const CONSTRAINTS: &str = r#"{"video": {"width": 320, "height": 240}, "audio": true}"#;

fn in_netns<F, Fut>(name: &str, case: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    netns::run(name, janus_support::NETNS_SETUP, CASE_LIMIT, case);
}

/// `usermedia ARGS… --janus URL --ice-addr 192.0.2.1` on the built-in devices at 320×240.
fn usermedia(args: &[&str]) -> tokio::process::Child {
    usermedia_at(env!("CARGO_BIN_EXE_usermedia"), args, CONSTRAINTS)
}

/// Reads `child`'s stdout until a line starting with `prefix`; the lines read.
async fn wait_for_line(child: &mut tokio::process::Child, prefix: &str) -> Vec<String> {
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let done = line.starts_with(prefix);
            seen.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "no line {prefix:?} in {seen:?}");
    seen
}

/// The JSON lines a finished process printed (after those read already), its status and
/// stderr.
async fn finish(child: tokio::process::Child) -> (std::process::ExitStatus, Vec<Value>, String) {
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the process ends")
        .expect("its output");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (
        out.status,
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Who is in `room`, as Janus says (`listparticipants` on a session of its own).
async fn participants(room: u64) -> Vec<RoomParticipant> {
    let client = HttpClient::new().unwrap();
    let (session, _events) = JanusSession::create(&client, URL).await.unwrap();
    let session = Arc::new(session);
    let handle = VideoRoomHandle::attach(&session).await.unwrap();
    let list = handle.list_participants(room).await.unwrap();
    session.destroy().await.unwrap();
    list
}

fn factory() -> PeerFactory {
    PeerFactory::new(PeerConfig {
        ice_addrs: vec![ICE_ADDR.parse().unwrap()],
        ..PeerConfig::default()
    })
}

#[test]
fn a_bot_decodes_what_usermedia_publishes_into_janus() {
    in_netns(
        "a_bot_decodes_what_usermedia_publishes_into_janus",
        || async {
            let janus = Janus::start();
            let room = ROOM.to_string();
            let mut publisher = usermedia(&["publish", "--janus-room", &room, "--seconds", "7"]);
            let started = wait_for_line(&mut publisher, "usermedia: publishing into").await;
            let bot = usermedia(&["bot", "--janus-room", &room, "--seconds", "4"]);
            let (status, lines, stderr) = finish(bot).await;
            assert!(status.success(), "{stderr}\n{}", janus.log());
            let feed: u64 = started[0]
                .rsplit("feed ")
                .next()
                .and_then(|s| s.trim_end_matches(')').parse().ok())
                .expect("the publisher's feed id");
            let publishers: Vec<&Value> =
                lines.iter().filter(|l| l["event"] == "publisher").collect();
            assert_eq!(publishers.len(), 1, "{lines:?}");
            assert_eq!(publishers[0]["feed"], feed);
            let left = lines
                .iter()
                .find(|l| l["event"] == "left")
                .expect("a summary");
            assert_eq!(left["room"], ROOM);
            let tracks = left["tracks"].as_array().unwrap();
            let video = tracks.iter().find(|t| t["kind"] == "video").expect("video");
            let audio = tracks.iter().find(|t| t["kind"] == "audio").expect("audio");
            assert_eq!(video["feed"], feed);
            assert_eq!(video["settings"]["width"], 320, "{video}");
            assert!(video["settings"].get("facingMode").is_none(), "{video}");
            // About 3.5 s of 30 fps once subscribed.
            let decoded = video["stats"]["framesDecoded"].as_u64().unwrap();
            assert!(decoded >= 75, "{video}");
            // Joining mid-stream through an SFU, the units before the first keyframe do
            // not decode (the decoder asks for one by PLI); nothing fails after it.
            assert!(
                video["stats"]["decodeErrors"].as_u64().unwrap() <= 10,
                "{video}"
            );
            assert!(
                video["stats"]["keyFramesDecoded"].as_u64().unwrap() >= 1,
                "{video}"
            );
            // What arrived, read from the pattern's strip (as in our own rooms).
            assert_eq!(video["quality"]["source"], "strip", "{video}");
            assert!(
                video["quality"]["frames"].as_u64().unwrap() >= 75,
                "{video}"
            );
            assert!(
                video["quality"]["frames_skipped"].as_u64().unwrap() <= 3,
                "{video}"
            );
            println!("bot: video quality {}", video["quality"]);
            assert!(
                audio["stats"]["framesDecoded"].as_u64().unwrap() >= 100,
                "{audio}"
            );
            for up in lines.iter().filter(|l| l["event"] == "webrtcup") {
                println!("bot: webrtcup {up}");
            }
            let (status, lines, stderr) = finish(publisher).await;
            assert!(status.success(), "{stderr}");
            let summary = lines.last().expect("the publisher's summary");
            println!("publisher: publish → webrtcup {} ms", summary["webrtcupMs"]);
            assert!(summary["webrtcupMs"].as_u64().is_some(), "{summary}");
            // Both left cleanly: nobody is in the room.
            assert_eq!(participants(ROOM).await, [], "{}", janus.log());
        },
    );
}

/// 640×480 into room 1234 (`bitrate 2000000`: Janus REMBs it; it acknowledges video by
/// transport-cc, audio not at all): after a 2 s ramp the publisher's estimate is well above
/// the `--min-video-bitrate` floor (150 kbit/s) and the subscriber decodes every frame.
/// Before the fix: the estimate stuck at the floor, ~21 fps decoded, p50 latency ~1 s.
#[test]
fn a_publisher_into_janus_ramps_to_the_rooms_bitrate() {
    in_netns(
        "a_publisher_into_janus_ramps_to_the_rooms_bitrate",
        || async {
            let janus = Janus::start();
            let room = ROOM.to_string();
            let vga = r#"{"video": {"width": 640, "height": 480}, "audio": true}"#;
            let mut publisher = usermedia_at(
                env!("CARGO_BIN_EXE_usermedia"),
                &["publish", "--janus-room", &room, "--seconds", "8"],
                vga,
            );
            wait_for_line(&mut publisher, "usermedia: publishing into").await;
            // The ramp: a browser's estimate reaches the room's rate within about 2 s.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let bot = usermedia(&["bot", "--janus-room", &room, "--seconds", "4"]);
            let (status, lines, stderr) = finish(bot).await;
            assert!(status.success(), "{stderr}\n{}", janus.log());
            let left = lines
                .iter()
                .find(|l| l["event"] == "left")
                .expect("a summary");
            let tracks = left["tracks"].as_array().unwrap();
            let video = tracks.iter().find(|t| t["kind"] == "video").expect("video");
            println!("bot: video quality {}", video["quality"]);
            let (pstatus, plines, pstderr) = finish(publisher).await;
            assert_eq!(video["settings"]["width"], 640, "{video}");
            let fps = video["quality"]["fps"].as_f64().unwrap();
            assert!(fps >= 27.0, "decoded {fps} fps: {video}\n{pstderr}");
            assert!(
                video["quality"]["frames"].as_u64().unwrap() >= 90,
                "{video}"
            );
            // openh264 skipping frames to hold a low target shows as skipped frame numbers.
            assert!(
                video["quality"]["frames_skipped"].as_u64().unwrap() <= 3,
                "{video}"
            );
            assert!(pstatus.success(), "{pstderr}");
            let summary = plines.last().expect("the publisher's summary");
            let estimate = summary["stats"]["bandwidthEstimate"].as_f64().unwrap();
            println!("publisher: bandwidth estimate {estimate} bit/s");
            assert!(estimate >= 600_000.0, "{summary}");
        },
    );
}

#[test]
fn a_participant_follows_a_later_publisher_until_it_leaves() {
    in_netns(
        "a_participant_follows_a_later_publisher_until_it_leaves",
        || async {
            let _janus = Janus::start();
            let devices = Arc::new(usermedia::devices::MediaDevices::builtin_virtual(
                usermedia::devices::PermissionPolicy::granted(),
            ));
            // The library participant publishes audio only and subscribes to everyone.
            let stream = devices
                .get_user_media(&MediaStreamConstraints::kinds(true, false))
                .unwrap();
            let mut encoders = Vec::new();
            for t in stream.get_tracks() {
                let e = usermedia::server::encode_track_with(
                    t,
                    usermedia::encode::pipeline::BitrateLadder::from(1_000_000),
                    None,
                );
                encoders.push(e.unwrap());
            }
            let options = JanusOptions {
                room: ROOM,
                display: Some("watcher".into()),
                create: None,
                subscribe: true,
                own_feeds: OwnFeeds::default(),
            };
            let client = HttpClient::new().unwrap();
            let mut bot = join_janus(&client, &factory(), URL, options, encoders)
                .await
                .unwrap();
            // A publisher joins later, for 4 s.
            let room = ROOM.to_string();
            let joined_at = Instant::now();
            let publisher = usermedia(&[
                "publish",
                "--janus-room",
                &room,
                "--janus-display",
                "late",
                "--seconds",
                "4",
            ]);
            let mut feed = None;
            let mut seen_at = joined_at;
            let video = loop {
                let event = tokio::time::timeout(Duration::from_secs(10), bot.next_event())
                    .await
                    .expect("an event in time")
                    .expect("the participant is in");
                match event {
                    JanusEvent::Published { feed: f, display } => {
                        assert_eq!(display.as_deref(), Some("late"));
                        feed = Some(f);
                        seen_at = Instant::now();
                    }
                    JanusEvent::Track { feed: f, track, .. }
                        if track.kind() == MediaKind::Video =>
                    {
                        assert_eq!(Some(f), feed);
                        break track;
                    }
                    JanusEvent::Failed(e) => panic!("{e}"),
                    _ => {}
                }
            };
            let rx = video.subscribe(8);
            let first =
                tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(5)))
                    .await
                    .unwrap();
            assert!(matches!(first, Ok(Some(_))), "no decoded frame");
            println!(
                "later publisher: process start → first decoded frame {} ms, of which \
                 its publishers event → first decoded frame {} ms",
                joined_at.elapsed().as_millis(),
                seen_at.elapsed().as_millis()
            );
            // The pattern's frames arrive in order, none skipped.
            let numbers = track_frame_numbers(&video, Duration::from_secs(2)).await;
            assert!(numbers.len() >= 45, "{} frames: {numbers:?}", numbers.len());
            let gaps = numbers.windows(2).filter(|w| w[1] != w[0] + 1).count();
            assert!(gaps <= 2, "{numbers:?}");
            // It leaves: the participant is told, without restarting anything.
            let gone = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    match bot.next_event().await {
                        Some(JanusEvent::Unpublished { feed: f }) => return f,
                        Some(JanusEvent::Failed(e)) => panic!("{e}"),
                        Some(_) => {}
                        None => panic!("the participant ended"),
                    }
                }
            })
            .await
            .expect("told of the leaving");
            assert_eq!(Some(gone), feed);
            let (status, _, stderr) = finish(publisher).await;
            assert!(status.success(), "{stderr}");
            bot.leave().await;
            assert_eq!(participants(ROOM).await, []);
        },
    );
}

/// Audio-only tracks of the built-in virtual devices, for library participants.
fn audio_encoders() -> Vec<usermedia::encode::pipeline::TrackEncoders> {
    let devices = usermedia::devices::MediaDevices::builtin_virtual(
        usermedia::devices::PermissionPolicy::granted(),
    );
    let stream = devices
        .get_user_media(&MediaStreamConstraints::kinds(true, false))
        .unwrap();
    stream
        .get_tracks()
        .iter()
        .map(|t| {
            let ladder = usermedia::encode::pipeline::BitrateLadder::from(64_000);
            usermedia::server::encode_track_with(t, ladder, None).unwrap()
        })
        .collect()
}

/// The feeds a participant hears published until `until` is one of them (10 s at most).
async fn published_until(p: &mut JanusParticipant, until: &str) -> Vec<(u64, Option<String>)> {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match p.next_event().await {
                Some(JanusEvent::Published { feed, display }) => {
                    let done = display.as_deref() == Some(until);
                    seen.push((feed, display));
                    if done {
                        return;
                    }
                }
                Some(JanusEvent::Track { feed, .. })
                | Some(JanusEvent::SubscriberUp { feed, .. }) => {
                    seen.push((feed, Some("a subscription".into())))
                }
                Some(JanusEvent::Failed(e)) => panic!("{e}"),
                Some(_) => {}
                None => panic!("the participant ended"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{until:?} not published in time; heard {seen:?}"));
    seen
}

/// A bot's echoes are sessions of its own: participants sharing an `OwnFeeds` never
/// subscribe to, announce or count one another's feeds, while a participant outside the
/// set hears them all (so Janus did announce them).
#[test]
fn participants_sharing_own_feeds_never_subscribe_to_one_another() {
    in_netns(
        "participants_sharing_own_feeds_never_subscribe_to_one_another",
        || async {
            let _janus = Janus::start();
            let client = HttpClient::new().unwrap();
            let options = |display: &str, subscribe: bool, own_feeds: &OwnFeeds| JanusOptions {
                room: ROOM,
                display: Some(display.into()),
                create: None,
                subscribe,
                own_feeds: own_feeds.clone(),
            };
            let own = OwnFeeds::default();
            // The stranger and the other are on their own (a set each).
            let (alone, alone_too) = (OwnFeeds::default(), OwnFeeds::default());
            let join = |o: JanusOptions| {
                let client = client.clone();
                async move {
                    join_janus(&client, &factory(), URL, o, audio_encoders())
                        .await
                        .unwrap()
                }
            };
            let mut stranger = join(options("stranger", true, &alone)).await;
            let mut bot = join(options("bot", true, &own)).await;
            let echo = join(options("echo", false, &own)).await;
            let other = join(options("other", false, &alone_too)).await;
            assert!(own.contains(bot.feed) && own.contains(echo.feed));
            assert!(!own.contains(other.feed) && !own.contains(stranger.feed));
            // The bot hears of the other publisher (joined after its echo) and nothing
            // of its echo; the stranger hears of both.
            let heard = published_until(&mut bot, "other").await;
            assert!(heard.iter().all(|(f, _)| *f != echo.feed), "{heard:?}");
            assert!(heard.iter().any(|(f, _)| *f == other.feed), "{heard:?}");
            let heard = published_until(&mut stranger, "other").await;
            assert!(heard.iter().any(|(f, _)| *f == echo.feed), "{heard:?}");
            // Nor later: the bot's next events are the other's subscription only.
            let later = tokio::time::timeout(Duration::from_secs(2), async {
                let mut feeds = Vec::new();
                while let Some(e) = bot.next_event().await {
                    match e {
                        JanusEvent::Published { feed, .. }
                        | JanusEvent::SubscriberUp { feed, .. }
                        | JanusEvent::Track { feed, .. } => feeds.push(feed),
                        JanusEvent::Failed(e) => panic!("{e}"),
                        _ => {}
                    }
                }
                feeds
            })
            .await
            .unwrap_or_default();
            assert!(!later.contains(&echo.feed), "{later:?}");
            for p in [bot, echo, other, stranger] {
                p.leave().await;
            }
            assert_eq!(participants(ROOM).await, []);
        },
    );
}

#[test]
fn a_missing_room_is_a_clear_error_unless_created() {
    in_netns("a_missing_room_is_a_clear_error_unless_created", || async {
        let _janus = Janus::start();
        let publisher = usermedia(&["publish", "--janus-room", "4321", "--seconds", "1"]);
        let (status, _, stderr) = finish(publisher).await;
        assert_eq!(status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("room 4321"), "{stderr}");
        assert!(stderr.contains("does not exist"), "{stderr}");
        assert!(stderr.contains("426"), "{stderr}");
        assert!(stderr.contains("--janus-create"), "{stderr}");
        let mut publisher = usermedia(&[
            "publish",
            "--janus-room",
            "4321",
            "--janus-create",
            "--seconds",
            "2",
        ]);
        wait_for_line(&mut publisher, "usermedia: publishing into").await;
        let inside = participants(4321).await;
        assert_eq!(inside.len(), 1, "{inside:?}");
        assert!(inside[0].publisher, "{inside:?}");
        let (status, _, stderr) = finish(publisher).await;
        assert!(status.success(), "{stderr}");
    });
}

#[test]
fn ctrl_c_leaves_no_participant_in_janus() {
    in_netns("ctrl_c_leaves_no_participant_in_janus", || async {
        let _janus = Janus::start();
        let room = ROOM.to_string();
        let mut bot = usermedia(&["bot", "--janus-room", &room, "--janus-display", "b1"]);
        wait_for_line(&mut bot, "usermedia: in Janus room").await;
        let inside = participants(ROOM).await;
        assert_eq!(inside.len(), 1, "{inside:?}");
        assert_eq!(inside[0].display.as_deref(), Some("b1"));
        let pid = bot.id().expect("the bot's pid");
        // Our own child, by its PID.
        let interrupted = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap();
        assert!(interrupted.success());
        let (status, lines, stderr) = finish(bot).await;
        assert!(status.success(), "{stderr}");
        assert!(lines.iter().any(|l| l["event"] == "left"), "{lines:?}");
        assert_eq!(participants(ROOM).await, []);
        // Leaving while (or right after) joining leaves nothing behind either.
        let early = usermedia(&["bot", "--janus-room", &room, "--seconds", "0.001"]);
        let (status, _, stderr) = finish(early).await;
        assert!(status.success(), "{stderr}");
        println!(
            "a bot leaving at once: left before joining: {}",
            stderr.contains("left before joining")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(participants(ROOM).await, [], "{stderr}");
    });
}

#[test]
fn janus_killed_mid_call_is_a_clear_failure() {
    in_netns("janus_killed_mid_call_is_a_clear_failure", || async {
        let mut janus = Janus::start();
        let room = ROOM.to_string();
        let mut publisher = usermedia(&["publish", "--janus-room", &room, "--seconds", "30"]);
        wait_for_line(&mut publisher, "usermedia: publishing into").await;
        let mut bot = usermedia(&["bot", "--janus-room", &room, "--seconds", "30"]);
        wait_for_line(&mut bot, "{\"event\":\"track\"").await;
        janus.kill();
        let killed = Instant::now();
        for (what, child) in [("bot", bot), ("publisher", publisher)] {
            let (status, _, stderr) = finish(child).await;
            assert_eq!(status.code(), Some(3), "{what}: {stderr}");
            assert!(
                stderr.contains("the Janus session ended"),
                "{what}: {stderr}"
            );
        }
        let after = killed.elapsed();
        println!(
            "Janus killed: both exited 3 within {} ms",
            after.as_millis()
        );
        assert!(after < Duration::from_secs(10), "{after:?}");
    });
}

#[test]
fn janus_flags_are_checked_before_capturing() {
    // --janus needs --janus-room, and is not --whip or --room as well.
    for args in [
        &["publish", "--janus", "http://127.0.0.1:1/janus"][..],
        &["bot", "--janus-room", "5"],
        &[
            "publish",
            "--whip",
            "http://h/whip/x",
            "--janus",
            "http://h/janus",
            "--janus-room",
            "1",
        ],
        &[
            "bot",
            "--room",
            "ws://h/ws?room=r",
            "--janus",
            "http://h/janus",
            "--janus-room",
            "1",
        ],
        &[
            "publish",
            "--janus",
            "http://h/janus",
            "--janus-room",
            "room",
        ],
    ] {
        let out = common::usermedia(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let out = common::usermedia(&["bot", "--janus", "ws://h/janus", "--janus-room", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--janus") && stderr.contains("http://"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_janus_is_a_network_failure() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let builtin = example("builtin.json");
    let url = format!("http://127.0.0.1:{port}/janus");
    let out = common::usermedia(&[
        "publish",
        "--janus",
        &url,
        "--janus-room",
        "1234",
        "--devices",
        builtin.to_str().unwrap(),
        "--seconds",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("joining Janus room 1234 at http://127.0.0.1"),
        "{stderr}"
    );
}

/// The feed id in a `usermedia: … (feed F)` first line.
fn feed_of(first_lines: &[String]) -> u64 {
    first_lines
        .iter()
        .find_map(|l| {
            l.rsplit("feed ")
                .next()
                .and_then(|s| s.trim_end_matches(')').parse().ok())
        })
        .expect("a feed id")
}

/// The feeds whose video a bot decoded (its `left` line), with the frames of each.
fn decoded_video_feeds(lines: &[Value]) -> Vec<(u64, u64)> {
    let left = lines
        .iter()
        .find(|l| l["event"] == "left")
        .expect("a left line");
    left["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .filter(|t| t["kind"] == "video")
        .map(|t| {
            (
                t["feed"].as_u64().unwrap_or_default(),
                t["stats"]["framesDecoded"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn three_participants_follow_each_other() {
    in_netns("three_participants_follow_each_other", || async {
        let janus = Janus::start();
        let room = ROOM.to_string();
        let started = Instant::now();
        let mut first = usermedia(&["bot", "--janus-room", &room, "--seconds", "10"]);
        let first_feed = feed_of(&wait_for_line(&mut first, "usermedia: in Janus room").await);
        let mut second = usermedia(&["bot", "--janus-room", &room, "--seconds", "8"]);
        let second_feed = feed_of(&wait_for_line(&mut second, "usermedia: in Janus room").await);
        // A publisher joins late and leaves early; nothing is restarted.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut late = usermedia(&["publish", "--janus-room", &room, "--seconds", "3"]);
        let late_feed = feed_of(&wait_for_line(&mut late, "usermedia: publishing into").await);
        let (late_status, _, late_err) = finish(late).await;
        assert!(late_status.success(), "{late_err}");
        let (second_status, second_lines, second_err) = finish(second).await;
        let (first_status, first_lines, first_err) = finish(first).await;
        eprintln!("three participants done after {:?}", started.elapsed());
        assert!(first_status.success(), "{first_err}\n{}", janus.log());
        assert!(second_status.success(), "{second_err}");
        for (name, lines, others) in [
            ("first", &first_lines, [second_feed, late_feed]),
            ("second", &second_lines, [first_feed, late_feed]),
        ] {
            let decoded = decoded_video_feeds(lines);
            eprintln!("{name} bot decoded (feed, frames): {decoded:?}");
            for feed in others {
                let frames = decoded
                    .iter()
                    .find(|(f, _)| *f == feed)
                    .map(|(_, n)| *n)
                    .unwrap_or(0);
                assert!(
                    frames >= 15,
                    "the {name} bot decoded {frames} frames of feed {feed}: {lines:?}"
                );
            }
            // The late publisher's leave is followed.
            assert!(
                lines
                    .iter()
                    .any(|l| l["event"] == "unpublished" && l["feed"] == late_feed),
                "the {name} bot did not see feed {late_feed} leave: {lines:?}"
            );
        }
    });
}

/// Two bots say hello to each other through Janus's data channels: each publication
/// carries a `chat` channel, Janus relays what is said on it to every subscription (on a
/// channel labelled with the feed's id) once that subscription's own channel is up.
#[test]
fn bots_chat_through_janus_data_channels() {
    in_netns("bots_chat_through_janus_data_channels", || async {
        let janus = Janus::start();
        let room = ROOM.to_string();
        let started = Instant::now();
        let mut first = usermedia(&[
            "bot",
            "--janus-room",
            &room,
            "--seconds",
            "8",
            "--say",
            "hello from the first",
        ]);
        let first_feed = feed_of(&wait_for_line(&mut first, "usermedia: in Janus room").await);
        let mut second = usermedia(&[
            "bot",
            "--janus-room",
            &room,
            "--seconds",
            "6",
            "--say",
            "hello from the second",
        ]);
        let second_feed = feed_of(&wait_for_line(&mut second, "usermedia: in Janus room").await);
        let (second_status, second_lines, second_err) = finish(second).await;
        let (first_status, first_lines, first_err) = finish(first).await;
        eprintln!("both bots done after {:?}", started.elapsed());
        let log = janus.log();
        assert!(first_status.success(), "{first_err}\n{log}");
        assert!(second_status.success(), "{second_err}");
        for (name, lines, from, text, err) in [
            (
                "first",
                &first_lines,
                second_feed,
                "hello from the second",
                &first_err,
            ),
            (
                "second",
                &second_lines,
                first_feed,
                "hello from the first",
                &second_err,
            ),
        ] {
            let messages: Vec<&Value> = lines.iter().filter(|l| l["event"] == "message").collect();
            eprintln!("the {name} bot got {} messages", messages.len());
            assert!(
                messages
                    .iter()
                    .any(|m| m["text"] == text
                        && m["from"].as_str() == Some(from.to_string().as_str())),
                "the {name} bot did not get {text:?} from feed {from}: {lines:?}\n{err}\n{}",
                log.lines()
                    .filter(|l| l.contains("ata channel") || l.contains("DataChannel"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    });
}

/// `bot --janus --echo`: a participant (our library, sending the pattern at 320×240) sees
/// its own video come back through the echoing bot (which sends 160×120 itself): a feed
/// displayed `echo of <its feed>`, at its size, its strip counters consecutive. The bot
/// prints the echo and reports neither its echo's feed nor its tracks.
#[test]
fn an_echoing_bot_sends_a_janus_participant_its_own_video_back() {
    in_netns(
        "an_echoing_bot_sends_a_janus_participant_its_own_video_back",
        || async {
            let _janus = Janus::start();
            let room = ROOM.to_string();
            let small = r#"{"video": {"width": 160, "height": 120}, "audio": true}"#;
            let mut bot = usermedia_at(
                env!("CARGO_BIN_EXE_usermedia"),
                &["bot", "--janus-room", &room, "--seconds", "9", "--echo"],
                small,
            );
            wait_for_line(&mut bot, "usermedia: in Janus room").await;
            let devices = usermedia::devices::MediaDevices::builtin_virtual(
                usermedia::devices::PermissionPolicy::granted(),
            );
            let stream = devices
                .get_user_media_json(r#"{"video": {"width": 320, "height": 240}}"#)
                .unwrap();
            let encoders = stream
                .get_tracks()
                .iter()
                .map(|t| {
                    let ladder = usermedia::encode::pipeline::BitrateLadder::from(1_000_000);
                    usermedia::server::encode_track_with(t, ladder, None).unwrap()
                })
                .collect();
            let options = JanusOptions {
                room: ROOM,
                display: Some("me".into()),
                create: None,
                subscribe: true,
                own_feeds: OwnFeeds::default(),
            };
            let client = HttpClient::new().unwrap();
            let joined_at = Instant::now();
            let mut me = join_janus(&client, &factory(), URL, options, encoders)
                .await
                .unwrap();
            let echo_of_me = format!("echo of {}", me.feed);
            let video = tokio::time::timeout(Duration::from_secs(15), async {
                loop {
                    match me.next_event().await {
                        Some(JanusEvent::Track { display, track, .. })
                            if track.kind() == MediaKind::Video
                                && display.as_deref() == Some(echo_of_me.as_str()) =>
                        {
                            return track;
                        }
                        Some(JanusEvent::Failed(e)) => panic!("{e}"),
                        Some(_) => {}
                        None => panic!("the participant ended"),
                    }
                }
            })
            .await
            .expect("our echo's video in time");
            let echo_after = joined_at.elapsed();
            let numbers = track_frame_numbers(&video, Duration::from_secs(2)).await;
            let settings = video.get_settings();
            eprintln!(
                "echo through Janus: joined → echo's track {} ms; {} frames read back in 2 s \
                 at {:?}x{:?}",
                echo_after.as_millis(),
                numbers.len(),
                settings.width,
                settings.height
            );
            assert!(numbers.len() >= 40, "{} frames: {numbers:?}", numbers.len());
            let gaps = numbers.windows(2).filter(|w| w[1] != w[0] + 1).count();
            assert!(gaps <= 2, "{numbers:?}");
            assert_eq!((settings.width, settings.height), (Some(320), Some(240)));
            me.leave().await;
            let (status, lines, stderr) = finish(bot).await;
            assert!(status.success(), "{stderr}");
            let echo_feed = lines
                .iter()
                .find(|l| l["event"] == "echo")
                .and_then(|l| l["echoFeed"].as_u64())
                .unwrap_or_else(|| panic!("no echo line: {lines:?}"));
            let left = lines.iter().find(|l| l["event"] == "left").expect("left");
            let reported: Vec<u64> = left["tracks"]
                .as_array()
                .expect("tracks")
                .iter()
                .filter_map(|t| t["feed"].as_u64())
                .collect();
            assert!(!reported.is_empty(), "{left}");
            assert!(!reported.contains(&echo_feed), "{left}");
        },
    );
}
