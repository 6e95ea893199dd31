//! The exit codes: a command's failure says at its site whether it is the caller's input
//! (2) or a failure at run time (3); a media error (1) is printed as JSON by the command and
//! returned as a plain exit code; clap's own usage errors are 2 as well.

use std::fmt;
use std::process::ExitCode;

/// A media error (the spec's: TypeError, NotFoundError, OverconstrainedError, …), printed as
/// `{"error": ...}` on stdout.
pub const MEDIA_ERROR: u8 = 1;
/// Bad input or usage.
pub const BAD_INPUT: u8 = 2;
/// A runtime or network failure.
pub const RUNTIME: u8 = 3;

/// The exit-code table of `usermedia --help`.
pub const TABLE: &str = "\
Exit codes:
  0  success
  1  a media error (TypeError, NotFoundError, OverconstrainedError, ...), printed as
     {\"error\": ...} on stdout
  2  bad input or usage: a bad flag, constraints that are not JSON, a bad devices, token,
     certificate or CA file, a bad URL, a token or URL the server refuses (HTTP 401, 403, 404)
  3  a runtime or network failure: cannot listen (address in use), a server or room that
     cannot be reached, a server refusing the session otherwise, a connection that fails or
     times out, files that cannot be written (serve, publish, bot, capture)";

/// Exit status of a media error, which the command has already printed.
pub fn media_error() -> ExitCode {
    ExitCode::from(MEDIA_ERROR)
}

/// Why a command failed; the variant is its exit code.
#[derive(Debug)]
pub enum CliError {
    /// The caller's input: a flag, a file or a URL to fix. Exit 2.
    BadInput(anyhow::Error),
    /// The world at run time: the network, a server, the machine. Exit 3.
    Runtime(anyhow::Error),
}

impl CliError {
    /// Bad input described by `message`.
    pub fn bad_input(message: impl fmt::Display) -> Self {
        CliError::BadInput(anyhow::anyhow!("{message}"))
    }

    /// A runtime failure described by `message`.
    pub fn runtime(message: impl fmt::Display) -> Self {
        CliError::Runtime(anyhow::anyhow!("{message}"))
    }

    /// The process's exit code for it.
    pub fn code(&self) -> u8 {
        match self {
            CliError::BadInput(_) => BAD_INPUT,
            CliError::Runtime(_) => RUNTIME,
        }
    }

    /// Prints it on stderr and gives its exit code.
    pub fn report(self) -> ExitCode {
        eprintln!("error: {self}");
        ExitCode::from(self.code())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::BadInput(e) | CliError::Runtime(e) => f.write_str(&chain(e.as_ref())),
        }
    }
}

/// The error with its causes, `outer: inner`, each cause once: the library's errors carry
/// their cause as `source()` *and* name it in their own message (so `{e}` alone says it),
/// and a cause whose text the message already holds is not repeated.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = e.source();
    }
    text
}

/// Classifies a `Result`'s error where it happens: `.bad_input()?` or `.runtime()?`. (There
/// is deliberately no `From` into [`CliError`]: a bare `?` does not compile, so every failure
/// site chooses.)
pub trait Classify<T> {
    /// The error is the caller's input (exit 2).
    fn bad_input(self) -> Result<T, CliError>;
    /// The error is a runtime or network failure (exit 3).
    fn runtime(self) -> Result<T, CliError>;
}

impl<T, E: Into<anyhow::Error>> Classify<T> for Result<T, E> {
    fn bad_input(self) -> Result<T, CliError> {
        self.map_err(|e| CliError::BadInput(e.into()))
    }

    fn runtime(self) -> Result<T, CliError> {
        self.map_err(|e| CliError::Runtime(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn each_class_has_its_code_and_keeps_the_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let e = Err::<(), _>(io)
            .context("cannot listen on 127.0.0.1:8080")
            .runtime()
            .unwrap_err();
        assert_eq!(e.code(), 3);
        assert_eq!(
            e.to_string(),
            "cannot listen on 127.0.0.1:8080: address in use"
        );
        let e = Err::<(), _>(anyhow::anyhow!("bad"))
            .bad_input()
            .unwrap_err();
        assert_eq!(e.code(), 2);
        assert_eq!(CliError::runtime("x").code(), RUNTIME);
        assert_eq!(CliError::bad_input("x").code(), BAD_INPUT);
    }

    /// A library error that names its cause and also gives it as `source()`.
    #[derive(Debug, thiserror::Error)]
    #[error("libvpx decode: {source}")]
    struct Step {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_cause_the_message_already_names_is_printed_once() {
        let step = Step {
            source: std::io::Error::other("bitstream not supported"),
        };
        let e = Err::<(), _>(step)
            .context("the video decoder failed")
            .runtime()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the video decoder failed: libvpx decode: bitstream not supported"
        );
    }
}
