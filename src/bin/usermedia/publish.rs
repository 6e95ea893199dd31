//! `usermedia publish`: capture, publish to a WHIP endpoint (an SFU, another usermedia) or
//! into a Janus VideoRoom (`--janus`, see `janus.rs`) until Ctrl-C or --seconds, then end
//! the session (DELETE) and print the connection's stats.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;

use crate::args::{parse_seconds, ClientArgs, CodecArg};
use crate::client::{session_failure, Client};
use crate::exit::{self, CliError};
use crate::janus::JanusArgs;
use crate::print_json;

/// How long the connection may take to come up after the server's answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The exit codes of `publish`, in its `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  published until Ctrl-C or --seconds
  1  a media error (getUserMedia's), printed as {\"error\": ...} on stdout
  2  bad input: a bad flag, constraints that are not JSON, a bad devices or CA file, a bad
     URL, a token or URL the server refuses (HTTP 401, 403, 404), a --janus-room that does
     not exist (without --janus-create)
  3  a runtime or network failure: the server cannot be reached, refuses the session
     otherwise (409, 503, ...), or the connection fails or times out; Janus gone mid-call";

/// The allow-list context of publishing to `whip`: `stream:NAME`, NAME its URL's last
/// path segment (`None` when the path has none).
fn stream_context(whip: &str) -> Option<String> {
    let url = whip.split(['?', '#']).next().unwrap_or(whip);
    let path = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (_, path) = path.split_once('/')?;
    let name = path.trim_end_matches('/').rsplit('/').next()?;
    (!name.is_empty()).then(|| format!("stream:{name}"))
}

/// `usermedia publish`'s flags.
#[derive(clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct Options {
    /// The WHIP endpoint, e.g. http://127.0.0.1:8080/whip/cam.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "janus",
        conflicts_with = "janus"
    )]
    pub whip: Option<String>,
    /// Or publish into a Janus VideoRoom (see docs/interop.md#janus).
    #[command(flatten)]
    pub janus: JanusArgs,
    /// Bearer token for the endpoint.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Offer video only in this codec. Default: H.264 and VP8 (H.264 first); the server's
    /// answer picks.
    #[arg(long, value_enum, value_name = "CODEC")]
    pub video_codec: Option<CodecArg>,
    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long, value_name = "N", value_parser = parse_seconds)]
    pub seconds: Option<f64>,
}

/// `usermedia publish`: capture, publish through WHIP, DELETE on Ctrl-C (or after --seconds).
pub fn run(mut opts: Options) -> Result<ExitCode, CliError> {
    if let Some((url, room)) = opts.janus.target() {
        crate::janus::check_url(url)?;
        // The allow-list applies to the room published into: `room:N`.
        opts.client.device_args.context = Some(format!("room:{room}"));
        let Some(client) = Client::start(&opts.client)? else {
            return Ok(exit::media_error());
        };
        let codec = opts.video_codec.map(Into::into);
        return client.runtime.block_on(crate::janus::publish(
            &client,
            &opts.janus,
            codec,
            opts.seconds,
        ));
    }
    let whip = opts.whip.clone().unwrap_or_default();
    // The allow-list applies to the stream published: `stream:NAME`.
    opts.client.device_args.context = stream_context(&whip);
    let Some(client) = Client::start(&opts.client)? else {
        return Ok(exit::media_error());
    };
    let whip = whip.as_str();
    client.runtime.block_on(async {
        let encoded = client.encoders(opts.video_codec.map(Into::into))?;
        let session = usermedia::client::publish_whip_with(
            &client.http,
            &client.factory,
            whip,
            opts.token.as_deref(),
            &encoded,
        )
        .await
        .map_err(|e| session_failure(e, format!("publishing to {}", whip)))?;
        if let Err(e) = session.peer.wait_connected(CONNECT_TIMEOUT).await {
            let _ = session.end().await;
            // The server took the session but the connection did not come up.
            return Err(CliError::runtime(format!("publishing to {}: {e}", whip)));
        }
        println!(
            "usermedia: publishing to {} (session {})",
            whip, session.http.location
        );
        match opts.seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs_f64(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        let stats = session.peer.stats().await;
        let mut summary = json!({ "whip": whip, "session": session.http.location, "stats": stats });
        if let Some(impairment) = session.peer.impairment() {
            summary["impairment"] = json!(impairment);
        }
        print_json(&summary);
        if let Err(e) = session.end().await {
            tracing::warn!("ending the session: {e}");
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_the_context_of_the_allow_list() {
        assert_eq!(
            stream_context("http://h:8080/whip/cam").as_deref(),
            Some("stream:cam")
        );
        assert_eq!(
            stream_context("https://h/a/whip/cam/?x=1#f").as_deref(),
            Some("stream:cam")
        );
        assert_eq!(stream_context("http://h:8080/"), None);
        assert_eq!(stream_context("http://h:8080"), None);
    }
}
