//! The permission prompt as a pure state machine: requests waiting for the operator, their
//! decisions and deadlines, and the grants remembered for the process's lifetime. It is fed
//! the time and never blocks; [`Prompter`](super::Prompter) is its thread-safe edge.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::allow_list::Feature;

/// The operator's answer to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nobody has answered yet and there is time left.
    Pending,
    Granted,
    Denied,
    /// Nobody answered before the deadline.
    TimedOut,
    /// The prompter shut down (the process is stopping) before an answer.
    Closed,
}

/// A request as the operator sees it (the terminal, `GET /permissions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRequest {
    /// The request's id: `POST /permissions/{id}` answers it.
    pub id: String,
    /// Who asks: `stream:NAME`, `room:NAME`, or none (the top-level caller).
    pub context: Option<String>,
    /// What it asks for.
    pub features: Vec<Feature>,
    /// The labels of the devices it would open.
    pub devices: Vec<String>,
    /// Time left to answer, in milliseconds.
    pub expires_in_ms: u64,
}

/// Why a decision was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    /// No such request, or it was answered or timed out already.
    #[error("no pending permission request {0:?} (unknown, answered or timed out)")]
    UnknownRequest(String),
}

/// What opening a request gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Every feature asked for was granted earlier and remembered: no question.
    Remembered,
    /// A question is open under this id.
    Pending(u64),
}

#[derive(Debug)]
struct Request {
    context: Option<String>,
    features: Vec<Feature>,
    devices: Vec<String>,
    deadline: Instant,
    outcome: Outcome,
}

/// The prompt's state: open requests and remembered grants.
#[derive(Debug)]
pub struct PromptBook {
    timeout: Duration,
    remember: bool,
    next_id: u64,
    requests: BTreeMap<u64, Request>,
    remembered: BTreeSet<(Option<String>, Feature)>,
    closed: bool,
}

impl PromptBook {
    /// Requests expire `timeout` after they are opened; with `remember`, a grant holds for
    /// the same context and features for the rest of the process (else each getUserMedia
    /// asks again).
    pub fn new(timeout: Duration, remember: bool) -> Self {
        PromptBook {
            timeout,
            remember,
            next_id: 1,
            requests: BTreeMap::new(),
            remembered: BTreeSet::new(),
            closed: false,
        }
    }

    /// How long a request waits for an answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Opens a question for `features` of `context` (the labels of the devices it would
    /// open in `devices`) at `now`, unless every feature is remembered as granted.
    pub fn open(
        &mut self,
        context: Option<&str>,
        features: &[Feature],
        devices: Vec<String>,
        now: Instant,
    ) -> Ask {
        let context = context.map(str::to_owned);
        if features
            .iter()
            .all(|f| self.remembered.contains(&(context.clone(), *f)))
        {
            return Ask::Remembered;
        }
        let id = self.next_id;
        self.next_id += 1;
        let outcome = if self.closed {
            Outcome::Closed
        } else {
            Outcome::Pending
        };
        self.requests.insert(
            id,
            Request {
                context,
                features: features.to_vec(),
                devices,
                deadline: now + self.timeout,
                outcome,
            },
        );
        Ask::Pending(id)
    }

    /// The operator's answer to request `id` (its id as text, as URLs carry it) at `now`.
    /// A request past its deadline can no longer be answered.
    pub fn decide(
        &mut self,
        id: &str,
        decision: Decision,
        now: Instant,
    ) -> Result<(), PromptError> {
        let unknown = || PromptError::UnknownRequest(id.to_owned());
        let n: u64 = id.parse().map_err(|_| unknown())?;
        let request = self.requests.get_mut(&n).ok_or_else(unknown)?;
        if request.outcome != Outcome::Pending || now >= request.deadline {
            return Err(unknown());
        }
        request.outcome = match decision {
            Decision::Allow => Outcome::Granted,
            Decision::Deny => Outcome::Denied,
        };
        if decision == Decision::Allow && self.remember {
            for f in &request.features {
                self.remembered.insert((request.context.clone(), *f));
            }
        }
        Ok(())
    }

    /// Where request `id` stands at `now`. A final outcome is handed out once: the request
    /// is forgotten after it (an unknown id reads as `TimedOut`).
    pub fn poll(&mut self, id: u64, now: Instant) -> Outcome {
        let Some(request) = self.requests.get(&id) else {
            return Outcome::TimedOut;
        };
        let outcome = match request.outcome {
            Outcome::Pending if now >= request.deadline => Outcome::TimedOut,
            o => o,
        };
        if outcome != Outcome::Pending {
            self.requests.remove(&id);
        }
        outcome
    }

    /// When request `id` times out (`None`: no such request).
    pub fn deadline(&self, id: u64) -> Option<Instant> {
        self.requests.get(&id).map(|r| r.deadline)
    }

    /// The requests still waiting for an answer at `now`, oldest first.
    pub fn pending(&self, now: Instant) -> Vec<PendingRequest> {
        self.requests
            .iter()
            .filter(|(_, r)| r.outcome == Outcome::Pending && now < r.deadline)
            .map(|(id, r)| PendingRequest {
                id: id.to_string(),
                context: r.context.clone(),
                features: r.features.clone(),
                devices: r.devices.clone(),
                expires_in_ms: u64::try_from(r.deadline.saturating_duration_since(now).as_millis())
                    .unwrap_or(u64::MAX),
            })
            .collect()
    }

    /// Ends every open question (`Closed`) and any later one at once: the process stops.
    pub fn close(&mut self) {
        self.closed = true;
        for r in self.requests.values_mut() {
            if r.outcome == Outcome::Pending {
                r.outcome = Outcome::Closed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(30);

    fn id(ask: Ask) -> u64 {
        match ask {
            Ask::Pending(id) => id,
            Ask::Remembered => panic!("expected a question"),
        }
    }

    #[test]
    fn a_request_is_granted_denied_or_times_out() {
        let t0 = Instant::now();
        let mut book = PromptBook::new(T, false);
        let a = id(book.open(
            Some("stream:cam"),
            &[Feature::Camera],
            vec!["Cam".into()],
            t0,
        ));
        let b = id(book.open(None, &[Feature::Microphone], vec![], t0));
        let c = id(book.open(None, &[Feature::Camera], vec![], t0));
        let listed = book.pending(t0 + Duration::from_secs(10));
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].id, a.to_string());
        assert_eq!(listed[0].expires_in_ms, 20_000);
        assert_eq!(listed[0].context.as_deref(), Some("stream:cam"));
        book.decide(&a.to_string(), Decision::Allow, t0).unwrap();
        book.decide(&b.to_string(), Decision::Deny, t0).unwrap();
        assert_eq!(book.poll(a, t0), Outcome::Granted);
        assert_eq!(book.poll(b, t0), Outcome::Denied);
        assert_eq!(
            book.poll(c, t0 + T - Duration::from_millis(1)),
            Outcome::Pending
        );
        // Past the deadline: timed out, and too late to answer.
        let late = t0 + T;
        assert!(book.decide(&c.to_string(), Decision::Allow, late).is_err());
        assert_eq!(book.poll(c, late), Outcome::TimedOut);
        assert!(book.pending(late).is_empty());
    }

    #[test]
    fn answers_are_taken_once_and_ids_checked() {
        let t0 = Instant::now();
        let mut book = PromptBook::new(T, false);
        let a = id(book.open(None, &[Feature::Camera], vec![], t0));
        book.decide(&a.to_string(), Decision::Deny, t0).unwrap();
        let again = book.decide(&a.to_string(), Decision::Allow, t0);
        assert_eq!(again, Err(PromptError::UnknownRequest(a.to_string())));
        assert!(book.decide("nope", Decision::Allow, t0).is_err());
        assert!(book.decide("99", Decision::Allow, t0).is_err());
        assert_eq!(book.poll(a, t0), Outcome::Denied);
    }

    #[test]
    fn grants_are_remembered_per_context_only_when_asked_to() {
        let t0 = Instant::now();
        let mut forgetful = PromptBook::new(T, false);
        let a = id(forgetful.open(None, &[Feature::Camera], vec![], t0));
        forgetful
            .decide(&a.to_string(), Decision::Allow, t0)
            .unwrap();
        assert!(matches!(
            forgetful.open(None, &[Feature::Camera], vec![], t0),
            Ask::Pending(_)
        ));

        let mut book = PromptBook::new(T, true);
        let a = id(book.open(Some("room:r1"), &[Feature::Camera], vec![], t0));
        book.decide(&a.to_string(), Decision::Allow, t0).unwrap();
        assert_eq!(
            book.open(Some("room:r1"), &[Feature::Camera], vec![], t0),
            Ask::Remembered
        );
        // Another context, or a feature not granted, asks again.
        assert!(matches!(
            book.open(Some("room:r2"), &[Feature::Camera], vec![], t0),
            Ask::Pending(_)
        ));
        assert!(matches!(
            book.open(
                Some("room:r1"),
                &[Feature::Camera, Feature::Microphone],
                vec![],
                t0
            ),
            Ask::Pending(_)
        ));
        // A denial is not remembered.
        let d = id(book.open(None, &[Feature::Microphone], vec![], t0));
        book.decide(&d.to_string(), Decision::Deny, t0).unwrap();
        assert!(matches!(
            book.open(None, &[Feature::Microphone], vec![], t0),
            Ask::Pending(_)
        ));
    }

    #[test]
    fn closing_ends_open_and_later_questions() {
        let t0 = Instant::now();
        let mut book = PromptBook::new(T, false);
        let a = id(book.open(None, &[Feature::Camera], vec![], t0));
        book.close();
        assert_eq!(book.poll(a, t0), Outcome::Closed);
        let b = id(book.open(None, &[Feature::Camera], vec![], t0));
        assert_eq!(book.poll(b, t0), Outcome::Closed);
    }
}
