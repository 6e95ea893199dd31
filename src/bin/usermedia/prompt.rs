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
        .spawn(move || answer_lines(&prompter, std::io::stdin().lock(), std::io::stderr()));
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

/// Asks each new request on `output` and answers it with the next line of `input`, until
/// `input` ends. A line that comes after its request was answered elsewhere or timed out
/// says so and answers nothing.
pub fn answer_lines(prompter: &Prompter, mut input: impl BufRead, mut output: impl Write) {
    let mut last = 0;
    loop {
        let Some(request) = prompter.next_request(last, Duration::from_secs(3600)) else {
            continue;
        };
        last = request.id.parse().unwrap_or(last);
        let _ = write!(output, "{}", question(&request));
        let _ = output.flush();
        let mut line = String::new();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let decision = if allows(&line) {
            Decision::Allow
        } else {
            Decision::Deny
        };
        if prompter.decide(&request.id, decision).is_err() {
            let _ = writeln!(
                output,
                "usermedia: request {} was already answered or timed out",
                request.id
            );
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

    #[test]
    fn only_yes_allows() {
        assert!(allows("y\n") && allows(" YES ") && allows("Yes"));
        assert!(!allows("") && !allows("no") && !allows("yep"));
    }
}
