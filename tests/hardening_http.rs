//! Hardening of `serve`'s HTTP side from outside, with the real media side: a WHIP offer
//! cancelled at each of its awaits leaves nothing stuck (the next publisher gets its
//! session), and the `serve` binary exits 0 within 2 s on SIGTERM and on SIGINT with a
//! half-sent request and a viewer's offer open.

mod common;

use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use common::exclusive;
use tokio::io::AsyncWriteExt;
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::peer::{PeerConfig, PeerFactory};
use usermedia::server::Publisher;
use usermedia_signaling::{Direction, Endpoint, EndpointError, SessionDescription};

fn factory() -> PeerFactory {
    PeerFactory::new(PeerConfig {
        ice_addrs: vec!["127.0.0.1".parse().unwrap()],
        max_peers: 8,
        ..PeerConfig::default()
    })
}

/// A WHIP publisher's offer: the pattern camera, H.264.
async fn publisher_offer() -> (usermedia::peer::Peer, SessionDescription) {
    use usermedia::encode::pipeline::{CodecConfig, EncodedTrack};
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let camera = devices
        .get_user_media_json(r#"{"video": {"width": 320, "height": 240}}"#)
        .unwrap()
        .get_video_tracks()
        .remove(0);
    let encoded = EncodedTrack::start(&camera, CodecConfig::H264 { bitrate: 300_000 }).unwrap();
    let sender = factory().create().await.unwrap();
    sender.add_track(&encoded).await.unwrap();
    let offer = sender.create_offer().await.unwrap();
    (sender, SessionDescription::parse(&offer).unwrap())
}

/// Polls `future` `polls` times (yielding to the runtime in between, so that the tasks it
/// waits on progress), then drops it: a client hanging up at that await. `true` if it
/// completed first.
async fn cancel_after<F: std::future::Future>(future: F, polls: usize) -> Option<F::Output> {
    let mut future = pin!(future);
    for _ in 0..polls {
        let polled = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
        if let Poll::Ready(out) = polled {
            return Some(out);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_offer_cancelled_at_any_await_leaves_the_stream_free() {
    let _serial = exclusive().await;
    let publisher = Arc::new(Publisher::new(factory()));
    let (_sender, offer) = publisher_offer().await;
    let mut cancelled = 0;
    for polls in 0..400 {
        let done = cancel_after(
            publisher.offer(Direction::Ingest, "cam", offer.clone()),
            polls,
        )
        .await;
        match done {
            None => cancelled += 1,
            // Completed before the hang-up: a whole session, ended like any other.
            Some(answer) => {
                let answer = answer.unwrap();
                publisher.end(&answer.session).await.unwrap();
                break;
            }
        }
        // Whatever the cancelled request had created is gone: a new publisher gets in.
        let answer = match publisher
            .offer(Direction::Ingest, "cam", offer.clone())
            .await
        {
            Ok(a) => a,
            Err(EndpointError::Conflict(s)) => {
                panic!("stream {s:?} left published by a request cancelled after {polls} polls")
            }
            Err(e) => panic!("{e}"),
        };
        // And a viewer beside it is told to wait for media, not that the name is stuck.
        assert_eq!(publisher.session_count(), 1, "after {polls} polls");
        publisher.end(&answer.session).await.unwrap();
    }
    assert!(cancelled >= 2, "cancelled at {cancelled} points only");
    assert_eq!(publisher.session_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exits_within_2_s_on_sigterm_and_sigint_whatever_clients_hold_open() {
    let _serial = exclusive().await;
    for signal in ["-TERM", "-INT"] {
        let (mut child, addr) =
            common::spawn_serve(r#"{"video": {"width": 320, "height": 240}}"#).await;
        // A request whose headers never finish, and one whose body never comes.
        let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
        half.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        let mut body = tokio::net::TcpStream::connect(addr).await.unwrap();
        body.write_all(
            b"POST /whep/default HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\n\
              Content-Length: 5000\r\n\r\nv=0\r\n",
        )
        .await
        .unwrap();
        // And a viewer's session that never connects.
        let viewer = factory().create().await.unwrap();
        viewer
            .add_receiver(usermedia::MediaKind::Video)
            .await
            .unwrap();
        let offer = viewer.create_offer().await.unwrap();
        let r = common::http::post_offer(addr, "/whep/default", None, offer.as_bytes()).await;
        assert_eq!(r.status, 201, "{}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let pid = child.id().unwrap().to_string();
        let killed = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(2), child.wait())
            .await
            .unwrap_or_else(|_| panic!("serve still running 2 s after kill {signal}"))
            .unwrap();
        assert_eq!(status.code(), Some(0), "after kill {signal}");
        assert!(started.elapsed() < Duration::from_secs(2));
        viewer.close().await;
    }
}
