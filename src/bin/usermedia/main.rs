//! The `usermedia` command line: parses the arguments, starts logging, runs one command
//! and turns its outcome into the exit code (see [`exit`]: 0 success, 1 a media error,
//! 2 bad input or usage, 3 a runtime or network failure).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::Value;

mod args;
mod bench;
mod bench_fanout;
mod bench_first_frame;
mod bench_latency;
mod bench_pipeline;
mod bot;
mod bot_echo;
mod bot_record;
mod capture;
mod chat;
mod client;
mod devices;
mod exit;
mod indicator;
mod janus;
mod janus_echo;
mod media;
mod prompt;
mod publish;
mod select;
mod serve;
mod view;

#[derive(Parser)]
#[command(
    name = "usermedia",
    version,
    about = "getUserMedia for machines without a browser: constraints, devices, tracks",
    long_about = "getUserMedia for machines without a browser.\n\n\
        Devices come from --devices FILE (virtual devices, JSON) or, without it, from the \
        machine: its real cameras and microphones or, when it has none at all, a built-in \
        virtual camera (virtual-pattern) and microphone (virtual-tone).\n\n\
        Log level: RUST_LOG (default: warn; warnings name ignored constraint keys).",
    after_help = exit::TABLE
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the capture devices with their modes and capabilities.
    Devices(devices::Options),
    /// Capture and publish as a stream: browsers view it through WHEP (open the printed URL).
    Serve(serve::Options),
    /// Capture and publish to a WHIP endpoint (an SFU, another usermedia) or into a Janus
    /// VideoRoom (--janus) until Ctrl-C, then end the session (DELETE; or leave the room).
    Publish(publish::Options),
    /// Join a call room (ws://HOST/ws?room=R, as the /call page does, or a Janus VideoRoom
    /// with --janus) as a participant:
    /// send what it captures, decode what the others send, print one JSON line per remote
    /// track and, on leaving (Ctrl-C or --seconds), their settings and counters.
    Bot(bot::Options),
    /// Pull a WHEP stream (ours or any server's), decode it and report what arrived as JSON
    /// lines: a track line per track and, on exit (Ctrl-C, --seconds, the stream's end), a
    /// summary with frames, rate, size, skipped/repeated/reordered frames, freezes, latency
    /// and the A/V offset. --record DIR also writes it to an MP4 file without re-encoding.
    View(view::Options),
    /// Capture for a while and write what arrived: video.y4m and audio.wav in DIR, so a
    /// person can look and listen. Prints the settings chosen and the frame/sample counts.
    Capture(capture::Options),
    /// Run getUserMedia's device and settings selection without opening anything and
    /// print the chosen tracks as JSON. Exit 1 with {"error": ...} on a media error.
    Select(select::Options),
    /// Measure this build on this machine: fanout (one encode, N viewers in a separate
    /// process), first-frame, latency, pipeline. A table, or one JSON line with --json.
    Bench(bench::Options),
}

/// Logs on stderr, RUST_LOG or our default filter.
fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // webrtc-rs (crates `webrtc`, `rtc*`) logs routine connection set-up at warn
                // level (measured: ~5 lines per viewer, e.g. ICE pings before candidates
                // arrive, and the interceptor slots we replace on purpose). Its errors stay
                // visible; RUST_LOG=warn shows everything. Our own info lines (devices in use,
                // sessions) are on: an operator should see them.
                tracing_subscriber::EnvFilter::new("warn,usermedia=info,webrtc=error,rtc=error")
            }),
        )
        .init();
}

fn main() -> ExitCode {
    init_tracing();
    // A usage error (bad or missing flag) exits here, with clap's message: exit 2.
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Devices(opts) => devices::run(opts),
        Command::Serve(opts) => serve::run(opts),
        Command::Publish(opts) => publish::run(opts),
        Command::Bot(opts) => bot::run(opts),
        Command::View(opts) => view::run(opts),
        Command::Capture(opts) => capture::run(opts),
        Command::Select(opts) => select::run(opts),
        Command::Bench(opts) => bench::run(opts),
    };
    result.unwrap_or_else(exit::CliError::report)
}

/// Prints one JSON value as a line on stdout (every command's output).
fn print_json(value: &Value) {
    // serde_json cannot fail on a Value.
    println!("{}", serde_json::to_string(value).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_help_names_its_exit_codes() {
        let mut cli = Cli::command();
        assert!(cli.render_long_help().to_string().contains("Exit codes:"));
        // (`help`, clap's own, is there once the help was rendered.)
        for sub in cli.get_subcommands_mut().filter(|s| s.get_name() != "help") {
            let help = sub.render_long_help().to_string();
            assert!(help.contains("Exit codes:"), "{}: {help}", sub.get_name());
            assert!(
                help.contains("  2  bad input"),
                "{}: {help}",
                sub.get_name()
            );
        }
    }
}
