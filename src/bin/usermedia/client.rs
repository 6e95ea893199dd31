//! What the commands that connect out (`publish`, `bot`) share: the capture, HTTP client,
//! peer factory and encoders started from [`ClientArgs`], and which of their connection
//! failures are the caller's input (exit 2) and which the network's or the server's (exit 3).

use std::sync::Arc;

use anyhow::Context;

use usermedia::client::SessionError;
use usermedia::devices::MediaDevices;
use usermedia::encode::pipeline::{BitrateLadder, TrackEncoders};
use usermedia::encode::VideoCodec;
use usermedia::peer::{PeerConfig, PeerFactory};
use usermedia::MediaStream;
use usermedia_signaling::{ClientError, HttpClient};

use crate::args::{video_rates, ClientArgs};
use crate::exit::{Classify, CliError};
use crate::media::capture;

/// What a client command works with once its flags are checked and capture started.
pub struct Client {
    pub http: HttpClient,
    pub stream: MediaStream,
    pub runtime: tokio::runtime::Runtime,
    pub factory: PeerFactory,
    ladder: BitrateLadder,
    _devices: Arc<MediaDevices>,
}

impl Client {
    /// Checks the flags and starts capturing; `None` when getUserMedia failed (the error
    /// was printed as JSON). A client sends to few receivers (one WHIP server, a call's
    /// handful): one encoder per codec following their estimates up to --video-bitrate does
    /// better than tiers restarting encoders as those estimates move.
    pub fn start(args: &ClientArgs) -> Result<Option<Client>, CliError> {
        let http = match HttpClient::with_ca_certs(&args.ca_certs) {
            Ok(http) => http,
            // A --ca-cert file that cannot be used.
            Err(e @ ClientError::Tls(_)) => return Err(CliError::BadInput(e.into())),
            Err(e) => return Err(CliError::Runtime(e.into())),
        };
        let (bounds, _) = video_rates(args.video_bitrate, args.min_video_bitrate, &[])?;
        let mut config = PeerConfig {
            video_bitrate: bounds,
            ..PeerConfig::default()
        };
        args.ice.configure(&mut config)?;
        args.impair.configure(&mut config)?;
        let Some((devices, stream, runtime)) =
            capture(&args.device_args, args.constraints.as_deref())?
        else {
            return Ok(None);
        };
        let factory = PeerFactory::new(config);
        Ok(Some(Client {
            http,
            stream,
            runtime,
            factory,
            ladder: BitrateLadder::Explicit(vec![args.video_bitrate]),
            _devices: devices,
        }))
    }

    /// The devices captured from (their indicator).
    pub fn devices(&self) -> Arc<MediaDevices> {
        Arc::clone(&self._devices)
    }

    /// The encoders of every captured track (video only in `codec` when given). Call
    /// inside the runtime. A track that ended under us is a runtime failure.
    pub fn encoders(&self, codec: Option<VideoCodec>) -> Result<Vec<TrackEncoders>, CliError> {
        let mut encoders = Vec::new();
        for t in self.stream.get_tracks() {
            let e = usermedia::server::encode_track_with(t, self.ladder.clone(), codec);
            encoders.push(e.context("cannot start the encoders").runtime()?);
        }
        Ok(encoders)
    }
}

/// A failed WHIP request or room join (`what` says which, e.g. "publishing to URL"),
/// classified: a bad URL, an unusable TLS trust setting, or a token or URL the server
/// refuses (HTTP 401, 403, 404) is bad input; an unreachable server, any other refusal
/// (409, 415, 503, …), a reply that is not WHIP, or a connection that fails is a runtime
/// failure.
pub fn session_failure(error: SessionError, what: String) -> CliError {
    let bad_input = matches!(
        &error,
        SessionError::Http(
            ClientError::BadUrl(..)
                | ClientError::Tls(_)
                | ClientError::Status {
                    status: 401 | 403 | 404,
                    ..
                }
        )
    );
    let error = anyhow::Error::new(error).context(what);
    if bad_input {
        CliError::BadInput(error)
    } else {
        CliError::Runtime(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_credentials_and_urls_are_bad_input_the_rest_runtime() {
        let url = || "http://127.0.0.1:1/whip/s".to_owned();
        let status = |status| {
            SessionError::Http(ClientError::Status {
                url: url(),
                status,
                message: String::new(),
            })
        };
        let class = |e| session_failure(e, "publishing".into()).code();
        for code in [401, 403, 404] {
            assert_eq!(class(status(code)), 2, "{code}");
        }
        for code in [400, 409, 415, 500, 503] {
            assert_eq!(class(status(code)), 3, "{code}");
        }
        assert_eq!(
            class(SessionError::Http(ClientError::BadUrl(
                url(),
                "no host".into()
            ))),
            2
        );
        let refused = ClientError::Transport {
            url: url(),
            message: "connection refused".into(),
        };
        assert_eq!(class(SessionError::Http(refused)), 3);
        assert_eq!(class(SessionError::Http(ClientError::NoLocation(url()))), 3);
        let e = session_failure(status(403), format!("publishing to {}", url()));
        assert!(e
            .to_string()
            .starts_with("publishing to http://127.0.0.1:1/whip/s: "));
        assert!(e.to_string().contains("403"), "{e}");
    }
}
