//! [`Prompter`]: the thread-safe edge of the permission prompt. getUserMedia asks and
//! waits; the operator answers from another thread (the terminal) or task (`POST
//! /permissions/{id}`). The policy itself is the pure [`PromptBook`].

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::allow_list::Feature;
use super::prompt::{Ask, Decision, Outcome, PendingRequest, PromptBook, PromptError};
use crate::error::MediaError;
use crate::sync::lock;

/// The prompt shared by getUserMedia (which asks and waits) and whoever answers.
///
/// getUserMedia is synchronous in this library, so the wait is a blocking one: the asking
/// thread sleeps on a condition variable, woken by every decision, until its request is
/// decided or its deadline passes (`wait_timeout` up to the deadline, so a request with no
/// answer ends exactly on time without any timer thread). Async callers run getUserMedia in
/// `spawn_blocking` so the answering side — an HTTP handler on the same runtime — keeps
/// running.
#[derive(Debug)]
pub struct Prompter {
    book: Mutex<PromptBook>,
    changed: Condvar,
}

impl Prompter {
    /// A prompt whose requests wait up to `timeout`; with `remember`, a grant holds for the
    /// process's lifetime (per context and kind).
    pub fn new(timeout: Duration, remember: bool) -> Self {
        Prompter {
            book: Mutex::new(PromptBook::new(timeout, remember)),
            changed: Condvar::new(),
        }
    }

    /// Asks the operator for `features` on behalf of `context` (the labels of the devices
    /// in `devices`) and waits for the answer: `Ok` if granted (or remembered),
    /// `NotAllowedError` if denied, unanswered in time, or the prompter closed.
    pub fn ask(
        &self,
        context: Option<&str>,
        features: &[Feature],
        devices: Vec<String>,
    ) -> Result<(), MediaError> {
        let mut book = lock(&self.book);
        let id = match book.open(context, features, devices, Instant::now()) {
            Ask::Remembered => return Ok(()),
            Ask::Pending(id) => id,
        };
        let timeout = book.timeout();
        let what = features
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(" and ");
        tracing::info!("permission request {id}: {what} for {context:?}, waiting for an answer");
        self.changed.notify_all();
        loop {
            let now = Instant::now();
            let outcome = book.poll(id, now);
            let refused = |why: String| MediaError::NotAllowedError {
                message: format!("{what} access: {why}"),
            };
            match outcome {
                Outcome::Granted => return Ok(()),
                Outcome::Denied => return Err(refused("denied by the operator".into())),
                Outcome::TimedOut => {
                    return Err(refused(format!(
                        "no answer to the permission prompt within {} s",
                        timeout.as_secs_f64()
                    )))
                }
                Outcome::Closed => return Err(refused("the prompt was closed".into())),
                Outcome::Pending => {
                    let deadline = book.deadline(id).unwrap_or(now);
                    let wait = deadline.saturating_duration_since(now);
                    book = self
                        .changed
                        .wait_timeout(book, wait)
                        .map(|(b, _)| b)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            }
        }
    }

    /// Answers request `id`.
    pub fn decide(&self, id: &str, decision: Decision) -> Result<(), PromptError> {
        let result = lock(&self.book).decide(id, decision, Instant::now());
        if result.is_ok() {
            tracing::info!("permission request {id}: {decision:?}");
            self.changed.notify_all();
        }
        result
    }

    /// The requests waiting for an answer, oldest first.
    pub fn pending(&self) -> Vec<PendingRequest> {
        lock(&self.book).pending(Instant::now())
    }

    /// Waits up to `timeout` for a pending request newer than `after` (an id) and returns
    /// the oldest such: what the terminal asks about next.
    pub fn next_request(&self, after: u64, timeout: Duration) -> Option<PendingRequest> {
        let deadline = Instant::now() + timeout;
        let mut book = lock(&self.book);
        loop {
            let now = Instant::now();
            let newer = book
                .pending(now)
                .into_iter()
                .find(|r| r.id.parse::<u64>().is_ok_and(|n| n > after));
            if newer.is_some() || now >= deadline {
                return newer;
            }
            book = self
                .changed
                .wait_timeout(book, deadline - now)
                .map(|(b, _)| b)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Refuses every open request and every later one at once (the process is stopping).
    pub fn close(&self) {
        lock(&self.book).close();
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn an_answer_from_another_thread_ends_the_wait() {
        let prompter = Arc::new(Prompter::new(Duration::from_secs(10), false));
        let answerer = Arc::clone(&prompter);
        let t = std::thread::spawn(move || {
            let r = answerer
                .next_request(0, Duration::from_secs(5))
                .expect("a request");
            assert_eq!(r.features, [Feature::Camera]);
            answerer.decide(&r.id, Decision::Allow).unwrap();
        });
        let started = Instant::now();
        prompter
            .ask(Some("stream:s"), &[Feature::Camera], vec![])
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
    }

    #[test]
    fn closing_refuses_the_waiting_request() {
        let prompter = Arc::new(Prompter::new(Duration::from_secs(10), false));
        let closer = Arc::clone(&prompter);
        let t = std::thread::spawn(move || {
            closer.next_request(0, Duration::from_secs(5)).unwrap();
            closer.close();
        });
        let e = prompter
            .ask(None, &[Feature::Microphone], vec![])
            .unwrap_err();
        assert_eq!(e.name(), "NotAllowedError");
        t.join().unwrap();
    }
}
