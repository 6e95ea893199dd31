//! Publishing into a Janus VideoRoom (an SFU that fans the stream out to many viewers):
//! the built-in pattern camera and tone, offered as H.264 and VP8 with Opus, Janus's
//! answer picks — what `usermedia publish --janus URL --janus-room N` does.
//!
//! With Debian's Janus running (its demo room 1234), then Ctrl-C leaves cleanly:
//! `cargo run --release --example janus_publisher http://127.0.0.1:8088/janus 1234`
//!
//! As a test (`cargo test --example janus_publisher`) it starts Janus itself in a private
//! network namespace (as tests/janus.rs does), publishes for two seconds and checks that
//! Janus reports the connection up (its `webrtcup`).

use anyhow::Context;
use usermedia::client::{join_janus, JanusEvent, JanusOptions};
use usermedia::devices::{MediaDevices, PermissionPolicy};
use usermedia::peer::{PeerConfig, PeerFactory};
use usermedia::server::encode_track;
use usermedia_signaling::HttpClient;

/// Publishes into room `room` of the Janus at `url` until `until` completes; whether
/// Janus said the published connection was up.
async fn publish(
    url: &str,
    room: u64,
    factory: PeerFactory,
    until: impl std::future::Future<Output = ()>,
) -> anyhow::Result<bool> {
    let devices = MediaDevices::builtin_virtual(PermissionPolicy::granted());
    let stream = devices
        .get_user_media_json(r#"{"video": {"width": 320, "height": 240}, "audio": true}"#)?;
    let encoders = stream
        .get_tracks()
        .iter()
        .map(|t| encode_track(t, 500_000))
        .collect::<Result<Vec<_>, _>>()?;
    let options = JanusOptions {
        room,
        display: Some("janus_publisher example".into()),
        create: None,
        subscribe: false,
        own_feeds: Default::default(),
    };
    let mut participant = join_janus(&HttpClient::new()?, &factory, url, options, encoders)
        .await
        .with_context(|| format!("publishing into room {room} at {url}"))?;
    println!("publishing into room {room} as feed {}", participant.feed);
    let mut up = false;
    tokio::pin!(until);
    let failure = loop {
        let event = tokio::select! {
            _ = &mut until => break None,
            event = participant.next_event() => event,
        };
        match event {
            Some(JanusEvent::PublisherUp { after }) => {
                println!(
                    "Janus has our media ({} ms after publishing)",
                    after.as_millis()
                );
                up = true;
            }
            Some(JanusEvent::Failed(e)) => break Some(e),
            Some(_) => {}
            None => break None,
        }
    };
    // Unpublish, leave, detach and destroy the session.
    participant.leave().await;
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(up),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: janus_publisher http://HOST:8088/janus ROOM";
    let url = args.next().context(usage)?;
    let room: u64 = args.next().context(usage)?.parse().context(usage)?;
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    publish(&url, room, PeerFactory::new(PeerConfig::default()), ctrl_c).await?;
    Ok(())
}

// The harness of tests/janus.rs: Janus in a private network namespace.
#[cfg(test)]
#[path = "../tests/janus_support/mod.rs"]
#[allow(dead_code)]
mod janus_support;
#[cfg(test)]
#[path = "../tests/netns/mod.rs"]
mod netns;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn publishes_into_a_janus_started_for_the_test() {
        let name = "tests::publishes_into_a_janus_started_for_the_test";
        netns::run(
            name,
            janus_support::NETNS_SETUP,
            Duration::from_secs(30),
            || async {
                let janus = janus_support::Janus::start();
                let factory = PeerFactory::new(PeerConfig {
                    ice_addrs: vec![janus_support::ICE_ADDR.parse().unwrap()],
                    ..PeerConfig::default()
                });
                let until = tokio::time::sleep(Duration::from_secs(3));
                let up = publish(janus_support::URL, janus_support::ROOM, factory, until)
                    .await
                    .unwrap_or_else(|e| panic!("{e:#}\n{}", janus.log()));
                assert!(up, "Janus never said webrtcup: {}", janus.log());
            },
        );
    }
}
