//! The flags several commands share — the devices, the connection of a client command,
//! ICE servers and addresses, the video codec — and what they parse into (seconds, bitrate
//! bounds, a permission policy with its prompt and allow-list, the peer configuration's ICE
//! part).

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use usermedia::devices::{AllowList, MediaDevices, Permission, PermissionPolicy, Prompter};
use usermedia::encode::pipeline::BitrateLadder;
use usermedia::encode::{PictureLimit, VideoCodec};
use usermedia::peer::impair::ImpairSchedule;
use usermedia::peer::{BitrateBounds, IceServer, PeerConfig};
use usermedia::MediaKind;

use crate::exit::{Classify, CliError};

/// Default of --min-video-bitrate.
pub const DEFAULT_MIN_VIDEO_BITRATE: u32 = 150_000;

/// Where a client's congestion control starts when the bounds allow: high enough for a
/// sharp first picture, low enough not to flood a poor link before the first feedback.
/// (`serve` starts at its top rung instead: see `serve::serve_rates`.)
const START_VIDEO_BITRATE: u32 = 1_000_000;

/// Default of --prompt-timeout, seconds.
pub const DEFAULT_PROMPT_TIMEOUT: f64 = 30.0;

/// Where the devices come from and who may use them.
#[derive(clap::Args, Clone)]
pub struct DeviceArgs {
    /// Virtual devices file (JSON, see docs/devices-file.md). Without it: the machine's devices.
    #[arg(long, value_name = "FILE")]
    pub devices: Option<PathBuf>,
    /// Refuse access, as a denied permission would: `camera`, `microphone` or a deviceId.
    /// Repeatable; wins over --camera and --microphone.
    #[arg(long, value_name = "WHAT")]
    pub deny: Vec<String>,
    /// The camera's permission: allow, deny, or prompt (ask the operator on the terminal
    /// or over HTTP at each getUserMedia and wait; see --prompt-timeout).
    #[arg(long, value_name = "MODE", default_value = "allow")]
    pub camera: Permission,
    /// The microphone's permission: allow, deny or prompt.
    #[arg(long, value_name = "MODE", default_value = "allow")]
    pub microphone: Permission,
    /// How long a prompt waits for an answer before getUserMedia fails with
    /// NotAllowedError, seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_PROMPT_TIMEOUT,
          value_parser = parse_seconds)]
    pub prompt_timeout: f64,
    /// Remember a prompt's grant for the rest of the process (per context and kind)
    /// instead of asking at every getUserMedia.
    #[arg(long)]
    pub remember_grants: bool,
    /// Which contexts may use which devices, as Permissions-Policy: CONTEXT=FEATURES, e.g.
    /// `room:r1=camera`, `stream:cam=camera,microphone`, `*=camera` (every other
    /// context, and `capture`'s top level). Repeatable. A context not listed (and no `*`)
    /// may use everything.
    #[arg(long = "allow", value_name = "CONTEXT=FEATURES")]
    pub allow: Vec<String>,
    /// The context the command captures for (`stream:NAME` for serve and publish,
    /// `room:NAME` for bot; none for capture), set by the command, not a flag.
    #[arg(skip)]
    pub context: Option<String>,
}

impl DeviceArgs {
    /// The devices: the file's (an unreadable or invalid file is bad input) or the
    /// machine's, with the policy of --camera, --microphone, --deny and --allow, in the
    /// command's context; with a `prompt` mode, a prompt answered on the terminal when
    /// stdin is one (and over HTTP by `serve`). A --deny naming no device is warned about.
    pub fn load(&self) -> Result<MediaDevices, CliError> {
        let policy = self.policy()?;
        let prompting =
            policy.camera == Permission::Prompt || policy.microphone == Permission::Prompt;
        let devices = match &self.devices {
            Some(path) => MediaDevices::from_devices_file(path, policy).bad_input()?,
            None => MediaDevices::system(policy),
        };
        let mut devices = match &self.context {
            Some(context) => devices.with_context(context.clone()),
            None => devices,
        };
        if prompting {
            let prompter = Arc::new(Prompter::new(
                Duration::from_secs_f64(self.prompt_timeout),
                self.remember_grants,
            ));
            if std::io::stdin().is_terminal() {
                crate::prompt::answer_on_terminal(Arc::clone(&prompter));
            }
            devices = devices.with_prompter(prompter);
        }
        for id in &self.deny {
            let known = matches!(id.as_str(), "camera" | "microphone")
                || devices.devices().iter().any(|d| d.device_id() == id);
            if !known {
                tracing::warn!(
                    "--deny {id:?}: no such device (expected camera, microphone or a deviceId)"
                );
            }
        }
        Ok(devices)
    }

    /// The policy of the flags: --camera and --microphone, then --deny (which wins), and
    /// --allow (a bad entry is bad input).
    pub fn policy(&self) -> Result<PermissionPolicy, CliError> {
        let mut policy = policy_from(&self.deny);
        for (kind, mode) in [
            (MediaKind::Video, self.camera),
            (MediaKind::Audio, self.microphone),
        ] {
            if policy.for_kind(kind) != Permission::Denied {
                policy.set_kind(kind, mode);
            }
        }
        let mut allow = AllowList::default();
        for entry in &self.allow {
            allow
                .add_entry(entry)
                .map_err(|e| CliError::bad_input(format!("--allow {e}")))?;
        }
        policy.allow = allow;
        Ok(policy)
    }
}

fn policy_from(deny: &[String]) -> PermissionPolicy {
    let mut policy = PermissionPolicy::granted();
    for what in deny {
        match what.as_str() {
            "camera" => policy.set_kind(MediaKind::Video, Permission::Denied),
            "microphone" => policy.set_kind(MediaKind::Audio, Permission::Denied),
            id => {
                policy.devices.insert(id.to_owned(), Permission::Denied);
            }
        }
    }
    policy
}

/// The flags of the commands that capture and connect out to a server (`publish`, `bot`).
#[derive(clap::Args)]
pub struct ClientArgs {
    /// Also trust the certificates in this PEM file for https:// and wss:// (a private CA,
    /// or a self-signed server's certificate); the system's roots stay trusted. Repeatable.
    #[arg(long = "ca-cert", value_name = "PEM")]
    pub ca_certs: Vec<PathBuf>,
    #[command(flatten)]
    pub device_args: DeviceArgs,
    /// getUserMedia constraints, or @FILE [default: video and audio, each only if a device
    /// of that kind exists]
    #[arg(long, value_name = "JSON")]
    pub constraints: Option<String>,
    #[command(flatten)]
    pub ice: IceArgs,
    /// Highest video bitrate, bits per second (also the ceiling of congestion control).
    #[arg(long, default_value_t = 1_500_000, value_name = "BPS")]
    pub video_bitrate: u32,
    /// Lowest video bitrate congestion control may ask for, bits per second (below about
    /// 150 kbit/s video is mostly keyframes and mush).
    #[arg(long, default_value_t = DEFAULT_MIN_VIDEO_BITRATE, value_name = "BPS")]
    pub min_video_bitrate: u32,
    #[command(flatten)]
    pub impair: ImpairArgs,
}

/// `--impair SPEC`: impairment of the command's own peer connections (`publish`, `bot`,
/// `view`), in process, below SRTP, both directions (docs/interop.md#impairment).
#[derive(clap::Args, Clone, Default)]
pub struct ImpairArgs {
    /// Impair our UDP path, both directions, e.g.
    /// "loss=5%,burst=3,delay=80ms,jitter=20ms,reorder=1%,rate=800kbit,seed=7", or
    /// @FILE.json, a schedule: [{"at_s":0,"loss":"0%"},{"at_s":5,"loss":"10%"}].
    #[arg(long, value_name = "SPEC")]
    pub impair: Option<String>,
}

impl ImpairArgs {
    /// Sets `config.impair` from --impair; a bad spec or schedule is bad input.
    pub fn configure(&self, config: &mut PeerConfig) -> Result<(), CliError> {
        config.impair = parse_impair("--impair", self.impair.as_deref())?;
        Ok(())
    }
}

/// The schedule of an impairment flag's value (`None` without one); a bad spec, an
/// unreadable or invalid schedule file is bad input naming `flag`.
pub fn parse_impair(flag: &str, value: Option<&str>) -> Result<Option<ImpairSchedule>, CliError> {
    value
        .map(|v| {
            ImpairSchedule::from_arg(v).map_err(|e| CliError::bad_input(format!("{flag}: {e}")))
        })
        .transpose()
}

/// How peers reach each other across networks: local addresses, STUN/TURN servers, the
/// relay-only policy, public addresses (docs/deploying.md). Shared by every command that
/// makes peers.
#[derive(clap::Args, Clone, Default)]
pub struct IceArgs {
    /// Local address ICE gathers on (repeatable). Default: every interface that is up,
    /// loopback included.
    #[arg(long = "ice-addr", value_name = "IP")]
    pub ice_addrs: Vec<IpAddr>,
    /// A STUN or TURN server (repeatable): stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp]
    /// or turns:HOST[:PORT]. None by default. Our peers use them all (TURN over TCP and TLS
    /// through a local bridge); `serve` also advertises every one to its viewers (Link
    /// headers).
    #[arg(long = "ice-server", value_name = "URL")]
    pub ice_servers: Vec<String>,
    /// Also trust the certificates in this PEM file for turns: servers (a private CA, or a
    /// self-signed TURN server's certificate); the system's roots stay trusted. Repeatable.
    #[arg(long = "ice-ca-cert", value_name = "PEM")]
    pub ice_ca_certs: Vec<PathBuf>,
    /// The TURN servers' username.
    #[arg(long, value_name = "NAME")]
    pub ice_username: Option<String>,
    /// The TURN servers' credential (password). Visible to anyone who can list processes
    /// (`ps`): prefer --ice-credential-file.
    #[arg(long, value_name = "SECRET", conflicts_with = "ice_credential_file")]
    pub ice_credential: Option<String>,
    /// Read the TURN servers' credential from the first line of this file.
    #[arg(long, value_name = "FILE")]
    pub ice_credential_file: Option<PathBuf>,
    /// Relay candidates only, as a browser's iceTransportPolicy "relay": media goes through
    /// a TURN server, never direct.
    #[arg(long)]
    pub ice_relay_only: bool,
    /// A public address our host candidates are also reached at (repeatable): the 1:1 NAT
    /// or Docker case, where the interface address is not the one peers can reach. Each
    /// UDP host candidate is repeated with this address and the same port.
    #[arg(long = "public-ip", value_name = "IP")]
    pub public_ips: Vec<IpAddr>,
    /// One UDP port for every peer's media (ICE muxed by ufrag), e.g. 8189: a firewall or
    /// a container needs only it open. Default: each peer on its own ephemeral ports.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub udp_port: Option<u16>,
    /// The largest picture decoded from a peer, WxH (either orientation): a stream
    /// declaring a larger one is refused (logged, its units dropped, never decoded).
    #[arg(long, value_name = "WxH", default_value = "4096x2304")]
    pub max_decode_size: PictureLimit,
}

impl IceArgs {
    /// The ICE servers: every --ice-server with the username and credential (from the
    /// flag or the file). A bad URL, TURN without credentials or an unreadable credential
    /// file is bad input.
    pub fn ice_servers(&self) -> Result<Vec<IceServer>, CliError> {
        let credential = match (&self.ice_credential, &self.ice_credential_file) {
            (Some(c), _) => {
                tracing::warn!(
                    "--ice-credential is visible to anyone who can list processes; prefer --ice-credential-file"
                );
                c.clone()
            }
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    CliError::bad_input(format!(
                        "cannot read --ice-credential-file {}: {e}",
                        path.display()
                    ))
                })?;
                text.lines().next().unwrap_or("").trim().to_owned()
            }
            (None, None) => String::new(),
        };
        if self.ice_servers.is_empty() {
            if self.ice_relay_only {
                return Err(CliError::bad_input(
                    "--ice-relay-only needs a TURN server (--ice-server turn:HOST:PORT)",
                ));
            }
            return Ok(Vec::new());
        }
        let server = IceServer {
            urls: self.ice_servers.clone(),
            username: self.ice_username.clone().unwrap_or_default(),
            credential,
        };
        let urls = server.check().map_err(CliError::bad_input)?;
        if self.ice_relay_only && !urls.iter().any(|u| u.is_turn()) {
            return Err(CliError::bad_input(
                "--ice-relay-only needs a TURN server (--ice-server turn:HOST:PORT or turns:HOST:PORT)",
            ));
        }
        Ok(vec![server])
    }

    /// Sets the ICE part of `config` from these flags.
    pub fn configure(&self, config: &mut PeerConfig) -> Result<(), CliError> {
        config.ice_addrs = self.ice_addrs.clone();
        config.ice_servers = self.ice_servers()?;
        // Checked now, so that a bad file is bad input before anyone connects.
        usermedia::peer::check_ice_ca_certs(&self.ice_ca_certs)
            .map_err(|e| CliError::bad_input(e.to_string()))?;
        config.ice_ca_certs = self.ice_ca_certs.clone();
        config.ice_relay_only = self.ice_relay_only;
        config.public_ips = self.public_ips.clone();
        config.udp_port = self.udp_port;
        config.max_decode_size = self.max_decode_size;
        Ok(())
    }
}

/// The value of --video-codec: the library's [`VideoCodec`], named as on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CodecArg {
    /// H.264 constrained baseline (openh264).
    H264,
    /// VP8 (libvpx).
    Vp8,
}

impl From<CodecArg> for VideoCodec {
    fn from(c: CodecArg) -> Self {
        match c {
            CodecArg::H264 => VideoCodec::H264,
            CodecArg::Vp8 => VideoCodec::Vp8,
        }
    }
}

/// A number of seconds above 0 and at most a day (--seconds).
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        Ok(_) => Err("must be above 0 and at most 86400".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Congestion-control bounds and the bitrate ladder from --video-bitrate (`max`),
/// --min-video-bitrate and --video-tiers (empty: derived from `max`). The ceiling is `max`
/// itself, so the flag is what viewers can really get. Inconsistent flags are bad input.
pub fn video_rates(
    max: u32,
    min: u32,
    tiers: &[u32],
) -> Result<(BitrateBounds, BitrateLadder), CliError> {
    if max == 0 {
        return Err(CliError::bad_input("--video-bitrate must be above 0"));
    }
    if min > max {
        return Err(CliError::bad_input(format!(
            "--min-video-bitrate {min} is above --video-bitrate {max}"
        )));
    }
    if let Some(t) = tiers.iter().find(|&&t| t > max || t == 0) {
        return Err(CliError::bad_input(format!(
            "--video-tiers: {t} is outside 1..={max} (--video-bitrate): such a tier could never be used"
        )));
    }
    let bounds = BitrateBounds {
        min,
        start: START_VIDEO_BITRATE.clamp(min, max),
        max,
    };
    let ladder = if tiers.is_empty() {
        BitrateLadder::from(max)
    } else {
        BitrateLadder::Explicit(tiers.to_vec())
    };
    Ok((bounds, ladder))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The value of `r`, or a panic with its error.
    pub(crate) fn ok<T>(r: Result<T, CliError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_bitrate_flags_set_the_bounds_and_the_ladder() {
        // --video-bitrate above the old fixed 2.5 Mbit/s ceiling is reachable.
        let (bounds, ladder) = ok(video_rates(4_000_000, 300_000, &[]));
        assert_eq!(
            bounds,
            BitrateBounds {
                min: 300_000,
                start: 1_000_000,
                max: 4_000_000
            }
        );
        assert_eq!(ladder, BitrateLadder::Derived { max: 4_000_000 });
        // A low ceiling pulls the start down with it.
        let (bounds, _) = ok(video_rates(500_000, 150_000, &[]));
        assert_eq!((bounds.start, bounds.max), (500_000, 500_000));
        let (_, ladder) = ok(video_rates(3_000_000, 150_000, &[300_000, 3_000_000]));
        assert_eq!(ladder.rungs(None), [3_000_000, 300_000]);
        assert!(video_rates(1_000_000, 2_000_000, &[]).is_err());
        assert!(video_rates(1_000_000, 150_000, &[2_000_000]).is_err());
        assert!(video_rates(0, 0, &[]).is_err());
        // Inconsistent flags are bad input.
        assert_eq!(video_rates(0, 0, &[]).map(|_| ()).unwrap_err().code(), 2);
    }

    #[test]
    fn the_codec_flag_names_every_library_codec_by_its_name() {
        use clap::ValueEnum;
        let named: Vec<(String, VideoCodec)> = CodecArg::value_variants()
            .iter()
            .map(|&c| {
                let name = c.to_possible_value().map(|v| v.get_name().to_owned());
                (name.unwrap_or_default(), VideoCodec::from(c))
            })
            .collect();
        let expected: Vec<(String, VideoCodec)> = VideoCodec::ALL
            .iter()
            .map(|&c| (c.as_str().to_owned(), c))
            .collect();
        assert_eq!(named, expected);
    }

    #[test]
    fn the_ice_flags_make_the_peer_configuration() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            ice: IceArgs,
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credential");
        std::fs::write(&file, "s3cret\nignored\n").unwrap();
        let cli = Cli::try_parse_from([
            "x",
            "--ice-server",
            "stun:127.0.0.1:3478",
            "--ice-server",
            "turn:127.0.0.1:3478?transport=udp",
            "--ice-username",
            "user",
            "--ice-credential-file",
            file.to_str().unwrap(),
            "--ice-relay-only",
            "--public-ip",
            "192.0.2.10",
            "--udp-port",
            "8189",
        ])
        .unwrap();
        let mut config = PeerConfig::default();
        ok(cli.ice.configure(&mut config));
        assert_eq!(config.ice_servers.len(), 1);
        assert_eq!(config.ice_servers[0].credential, "s3cret");
        assert_eq!(config.ice_servers[0].urls.len(), 2);
        assert!(config.ice_relay_only);
        assert_eq!(config.udp_port, Some(8189));
        assert_eq!(config.public_ips, ["192.0.2.10".parse::<IpAddr>().unwrap()]);
        // Bad input: a bad URL, TURN without credentials, relay-only without TURN.
        for args in [
            &["x", "--ice-server", "http://x"][..],
            &["x", "--ice-server", "turn:127.0.0.1"],
            &["x", "--ice-relay-only"],
            &["x", "--ice-relay-only", "--ice-server", "stun:127.0.0.1"],
            &[
                "x",
                "--ice-server",
                "turn:h",
                "--ice-username",
                "u",
                "--ice-credential-file",
                "/nonexistent",
            ],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let e = cli.ice.configure(&mut PeerConfig::default()).unwrap_err();
            assert_eq!(e.code(), 2, "{args:?}: {e}");
        }
        assert!(Cli::try_parse_from(["x", "--udp-port", "0"]).is_err());
        // The decode size limit: 4096x2304 unless given; WxH only.
        let mut config = PeerConfig::default();
        ok(Cli::try_parse_from(["x"])
            .unwrap()
            .ice
            .configure(&mut config));
        assert_eq!(config.max_decode_size.to_string(), "4096x2304");
        let cli = Cli::try_parse_from(["x", "--max-decode-size", "1280x720"]).unwrap();
        ok(cli.ice.configure(&mut config));
        assert_eq!(config.max_decode_size.to_string(), "1280x720");
        assert!(Cli::try_parse_from(["x", "--max-decode-size", "1280"]).is_err());
    }

    #[test]
    fn the_impair_flag_makes_a_schedule_or_is_bad_input() {
        let mut config = PeerConfig::default();
        let args = ImpairArgs {
            impair: Some("loss=10%,seed=3".into()),
        };
        ok(args.configure(&mut config));
        let schedule = config.impair.clone().unwrap();
        assert_eq!((schedule.first().loss, schedule.seed()), (0.1, 3));
        for bad in ["loss=10", "@/nonexistent.json", "lag=1ms"] {
            let e = parse_impair("--impair", Some(bad)).unwrap_err();
            assert_eq!(e.code(), 2, "{bad}: {e}");
            assert!(e.to_string().starts_with("--impair: "), "{e}");
        }
        assert!(ok(parse_impair("--impair", None)).is_none());
    }

    #[test]
    fn seconds_are_above_zero_and_at_most_a_day() {
        assert_eq!(parse_seconds("1.5"), Ok(1.5));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("86401").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
