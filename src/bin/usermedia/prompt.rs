//! The permission prompt on the terminal: each new request is asked on stderr and the
//! operator's line on stdin answers it (`y`/`yes` allows, anything else denies). Runs on
//! its own thread beside whatever else answers (`POST /permissions/{id}`); the first
//! answer wins.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use usermedia::devices::{Decision, PendingRequest, Prompter};

/// Answers `prompter`'s requests from the terminal (stdin, stderr) on a thread that ends
/// when stdin does.
pub fn answer_on_terminal(prompter: Arc<Prompter>) {
    let spawned = std::thread::Builder::new()
        .name("permission prompt".into())
        .spawn(move || {
            answer_lines(
                &prompter,
                std::io::BufReader::new(std::io::stdin()),
                std::io::stderr(),
            )
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot prompt on the terminal: {e}");
    }
}

/// The question for `request`, one line.
pub fn question(request: &PendingRequest) -> String {
    let what = request
        .features
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(" and ");
    let context = request.context.as_deref().unwrap_or("this process");
    format!(
        "usermedia: allow {what} ({}) for {context}? [y/N] (request {}, {} s to answer) ",
        request.devices.join(", "),
        request.id,
        request.expires_in_ms.div_ceil(1000)
    )
}

/// Whether an answer line allows: `y` or `yes`, any case.
pub fn allows(line: &str) -> bool {
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// How often the terminal looks for requests answered elsewhere or timed out.
const POLL: Duration = Duration::from_millis(100);

/// The request to ask about now: the newest pending one, unless it is the one already
/// asked (`asked`, an id).
pub fn to_ask<'a>(
    asked: Option<&str>,
    pending: &'a [PendingRequest],
) -> Option<&'a PendingRequest> {
    pending.last().filter(|r| Some(r.id.as_str()) != asked)
}

/// What a typed line does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineFor {
    /// It answers this request: the one asked, still pending.
    Answer(String),
    /// The request asked was answered elsewhere or timed out: the line answers nothing.
    Stale(String),
}

/// Which request a line typed while `asked` was on the screen answers, given what is
/// pending when it arrives (`None`: no question was asked).
pub fn line_for(asked: Option<&str>, pending: &[PendingRequest]) -> Option<LineFor> {
    let asked = asked?;
    Some(if pending.iter().any(|r| r.id == asked) {
        LineFor::Answer(asked.to_string())
    } else {
        LineFor::Stale(asked.to_string())
    })
}

/// Asks each new request on `output` and answers it with the next line of `input`, until
/// `input` ends. The question on the screen is always the newest pending request's: when
/// the one asked is answered elsewhere or times out, the next is asked at once, and a
/// line typed for a request that is gone says so and answers nothing.
pub fn answer_lines(
    prompter: &Prompter,
    input: impl BufRead + Send + 'static,
    mut output: impl Write,
) {
    let (tx, lines) = std::sync::mpsc::sync_channel::<String>(16);
    let reader = std::thread::Builder::new()
        .name("permission prompt input".into())
        .spawn(move || {
            for line in input.lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
    if let Err(e) = reader {
        tracing::warn!("cannot read the terminal: {e}");
        return;
    }
    // The request whose question is on the screen, until a line answers it.
    let mut asked: Option<String> = None;
    loop {
        let pending = prompter.pending();
        if let Some(request) = to_ask(asked.as_deref(), &pending) {
            let _ = write!(output, "{}", question(request));
            let _ = output.flush();
            asked = Some(request.id.clone());
        }
        let Some(shown) = asked.clone() else {
            // Nothing asked: wait for a request; lines stay queued for it.
            let last = pending.last().and_then(|r| r.id.parse().ok()).unwrap_or(0);
            prompter.next_request(last, POLL * 10);
            continue;
        };
        let line = match lines.recv_timeout(POLL) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        };
        asked = None;
        match line_for(Some(&shown), &prompter.pending()) {
            Some(LineFor::Answer(id)) => {
                let decision = if allows(&line) {
                    Decision::Allow
                } else {
                    Decision::Deny
                };
                if prompter.decide(&id, decision).is_err() {
                    let _ = writeln!(
                        output,
                        "usermedia: request {id} was already answered or timed out"
                    );
                }
            }
            Some(LineFor::Stale(id)) => {
                let _ = writeln!(
                    output,
                    "usermedia: request {id} was already answered or timed out"
                );
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usermedia::devices::Feature;

    #[test]
    fn a_line_answers_the_request_asked() {
        let prompter = Arc::new(Prompter::new(Duration::from_secs(2), false));
        let (tx, rx) = std::sync::mpsc::channel();
        let answerer = Arc::clone(&prompter);
        std::thread::spawn(move || {
            let mut out = Vec::new();
            answer_lines(&answerer, &b"yes\nn\n"[..], &mut out);
            let _ = tx.send(String::from_utf8_lossy(&out).into_owned());
        });
        prompter
            .ask(Some("stream:cam"), &[Feature::Camera], vec!["Cam".into()])
            .unwrap();
        let e = prompter
            .ask(None, &[Feature::Microphone], vec!["Mic".into()])
            .unwrap_err();
        assert_eq!(e.name(), "NotAllowedError");
        assert!(e.message().contains("denied by the operator"), "{e:?}");
        // A third request finds stdin at its end: nobody answers, it times out.
        let e = prompter.ask(None, &[Feature::Camera], vec![]).unwrap_err();
        assert!(e.message().contains("within 2 s"), "{e:?}");
        let asked = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
        assert!(
            asked.contains("allow camera (Cam) for stream:cam? [y/N] (request 1"),
            "{asked}"
        );
        assert!(
            asked.contains("allow microphone (Mic) for this process?"),
            "{asked}"
        );
    }

    fn request(id: &str) -> PendingRequest {
        PendingRequest {
            id: id.into(),
            context: None,
            features: vec![Feature::Camera],
            devices: vec![],
            expires_in_ms: 1000,
        }
    }

    #[test]
    fn the_newest_pending_request_is_asked_once() {
        let pending = [request("1"), request("2")];
        assert_eq!(to_ask(None, &pending).map(|r| r.id.as_str()), Some("2"));
        assert_eq!(to_ask(Some("2"), &pending), None);
        // The one on the screen was answered elsewhere: the next is asked.
        assert_eq!(
            to_ask(Some("2"), &pending[..1]).map(|r| r.id.as_str()),
            Some("1")
        );
        assert_eq!(to_ask(Some("1"), &[]), None);
    }

    #[test]
    fn a_line_answers_the_question_on_the_screen_only_while_it_is_pending() {
        let pending = [request("1"), request("3")];
        assert_eq!(
            line_for(Some("3"), &pending),
            Some(LineFor::Answer("3".into()))
        );
        assert_eq!(
            line_for(Some("2"), &pending),
            Some(LineFor::Stale("2".into()))
        );
        assert_eq!(line_for(None, &pending), None);
    }

    #[test]
    fn after_a_request_answered_elsewhere_the_next_line_answers_the_next_request() {
        let prompter = Arc::new(Prompter::new(Duration::from_secs(5), false));
        let (line_tx, line_rx) = std::sync::mpsc::channel::<&'static [u8]>();
        struct Lines(std::sync::mpsc::Receiver<&'static [u8]>, &'static [u8]);
        impl std::io::Read for Lines {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.1.is_empty() {
                    self.1 = self.0.recv().unwrap_or(b"");
                }
                let n = self.1.len().min(buf.len());
                buf[..n].copy_from_slice(&self.1[..n]);
                self.1 = &self.1[n..];
                Ok(n)
            }
        }
        let input = std::io::BufReader::new(Lines(line_rx, b""));
        let out = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let answerer = Arc::clone(&prompter);
        let screen = Shared(Arc::clone(&out));
        std::thread::spawn(move || answer_lines(&answerer, input, screen));
        let asks = |n: usize| {
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while String::from_utf8_lossy(&out.lock().unwrap())
                .matches("[y/N]")
                .count()
                < n
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "question {n} never asked"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let first = {
            let p = Arc::clone(&prompter);
            std::thread::spawn(move || p.ask(Some("stream:a"), &[Feature::Camera], vec![]))
        };
        asks(1);
        // Request 1 is answered over HTTP while the terminal waits for its line.
        prompter.decide("1", Decision::Allow).unwrap();
        assert!(first.join().unwrap().is_ok());
        let second = {
            let p = Arc::clone(&prompter);
            std::thread::spawn(move || p.ask(Some("stream:b"), &[Feature::Microphone], vec![]))
        };
        asks(2);
        line_tx.send(b"y\n").unwrap();
        assert!(
            second.join().unwrap().is_ok(),
            "the line went to the stale request"
        );
        let screen = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
        assert!(
            screen.contains("for stream:b? [y/N] (request 2"),
            "{screen}"
        );
    }

    #[test]
    fn only_yes_allows() {
        assert!(allows("y\n") && allows(" YES ") && allows("Yes"));
        assert!(!allows("") && !allows("no") && !allows("yep"));
    }
}
