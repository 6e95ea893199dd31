//! Impairment over time (pure): a spec, or a schedule `@file.json` of entries
//! (`[{"at_s":0,"loss":"0%"},{"at_s":5,"loss":"10%"},{"at_s":10,"rate":"300kbit"}]`), each
//! changing the keys it names from that second on; and the seeds each peer and direction
//! draw from, derived from the spec's seed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::spec::{ImpairSpec, ImpairSpecError, IMPAIR_KEYS};

/// Most entries a schedule may hold.
pub const MAX_SCHEDULE_ENTRIES: usize = 1000;
/// Largest schedule file read, bytes.
pub const MAX_SCHEDULE_BYTES: u64 = 1 << 20;

/// Why a spec or a schedule cannot be used; each names the file and entry at fault.
#[derive(Debug, thiserror::Error)]
pub enum ImpairScheduleError {
    #[error(transparent)]
    Spec(#[from] ImpairSpecError),
    #[error("cannot read the impairment schedule {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the impairment schedule {path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the impairment schedule {path}: {problem}")]
    Shape { path: PathBuf, problem: String },
    #[error("the impairment schedule {path}, entry {index} (at_s {at_s}): {source}")]
    Entry {
        path: PathBuf,
        index: usize,
        at_s: f64,
        #[source]
        source: ImpairSpecError,
    },
}

/// The conditions of a path over time: the spec in force from each time on (since the
/// peer was made), the first from 0 (an empty spec when the first entry starts later).
#[derive(Debug, Clone, PartialEq)]
pub struct ImpairSchedule {
    steps: Vec<(Duration, ImpairSpec)>,
}

impl From<ImpairSpec> for ImpairSchedule {
    fn from(spec: ImpairSpec) -> Self {
        ImpairSchedule {
            steps: vec![(Duration::ZERO, spec)],
        }
    }
}

impl ImpairSchedule {
    /// A command line's value: `@FILE` (a schedule) or a spec (`loss=5%,seed=7`).
    pub fn from_arg(arg: &str) -> Result<Self, ImpairScheduleError> {
        match arg.strip_prefix('@') {
            Some(path) => Self::from_file(Path::new(path)),
            None => Ok(arg.parse::<ImpairSpec>()?.into()),
        }
    }

    /// Reads a schedule file (JSON, at most [`MAX_SCHEDULE_BYTES`]).
    pub fn from_file(path: &Path) -> Result<Self, ImpairScheduleError> {
        let read = |source| ImpairScheduleError::Read {
            path: path.to_owned(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > MAX_SCHEDULE_BYTES {
            return Err(ImpairScheduleError::Shape {
                path: path.to_owned(),
                problem: format!("{len} bytes, more than the {MAX_SCHEDULE_BYTES} accepted"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Self::from_json(&text, path)
    }

    /// A schedule from its JSON text (`path` names it in errors).
    pub fn from_json(text: &str, path: &Path) -> Result<Self, ImpairScheduleError> {
        let shape = |problem: String| ImpairScheduleError::Shape {
            path: path.to_owned(),
            problem,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|source| ImpairScheduleError::Json {
                path: path.to_owned(),
                source,
            })?;
        let serde_json::Value::Array(entries) = value else {
            return Err(shape(
                "expected a list of entries, e.g. [{\"at_s\":0,\"loss\":\"5%\"}]".into(),
            ));
        };
        if entries.is_empty() || entries.len() > MAX_SCHEDULE_ENTRIES {
            return Err(shape(format!(
                "{} entries: expected 1 to {MAX_SCHEDULE_ENTRIES}",
                entries.len()
            )));
        }
        let mut steps: Vec<(Duration, ImpairSpec)> = Vec::new();
        let mut spec = ImpairSpec::default();
        for (index, entry) in entries.iter().enumerate() {
            let serde_json::Value::Object(fields) = entry else {
                return Err(shape(format!("entry {index} is not an object")));
            };
            let at_s = fields
                .get("at_s")
                .and_then(serde_json::Value::as_f64)
                .filter(|t| t.is_finite() && *t >= 0.0 && *t <= 86_400.0)
                .ok_or_else(|| {
                    shape(format!(
                        "entry {index} needs \"at_s\": seconds from 0 to 86400"
                    ))
                })?;
            let at = Duration::from_secs_f64(at_s);
            if let Some((previous, _)) = steps.last() {
                if at <= *previous {
                    return Err(shape(format!(
                        "entry {index}: at_s {at_s} is not after the previous entry's {}",
                        previous.as_secs_f64()
                    )));
                }
            }
            for (key, value) in fields.iter().filter(|(k, _)| *k != "at_s") {
                let entry_error = |source| ImpairScheduleError::Entry {
                    path: path.to_owned(),
                    index,
                    at_s,
                    source,
                };
                if !IMPAIR_KEYS.contains(&key.as_str()) {
                    return Err(entry_error(ImpairSpecError::UnknownKey(key.clone())));
                }
                if key == "seed" && index > 0 {
                    return Err(shape(format!(
                        "entry {index}: \"seed\" can only be set by the first entry"
                    )));
                }
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(shape(format!(
                            "entry {index}: \"{key}\" must be a string such as \"5%\" or \"80ms\""
                        )))
                    }
                };
                spec.set(key, &text).map_err(entry_error)?;
            }
            steps.push((at, spec.clone()));
        }
        if steps[0].0 > Duration::ZERO {
            let start = ImpairSpec {
                seed: steps[0].1.seed,
                ..ImpairSpec::default()
            };
            steps.insert(0, (Duration::ZERO, start));
        }
        Ok(ImpairSchedule { steps })
    }

    /// The spec in force from 0.
    pub fn first(&self) -> &ImpairSpec {
        &self.steps[0].1
    }

    /// The seed every draw derives from.
    pub fn seed(&self) -> u64 {
        self.first().seed
    }

    /// Each time the conditions change and the spec from then on, the first at 0.
    pub fn steps(&self) -> &[(Duration, ImpairSpec)] {
        &self.steps
    }
}

/// The seed of one direction (`0` outbound, `1` inbound) of the `peer`-th impaired peer
/// (counted from 0 in the order they were made): distinct, well-mixed streams from one
/// seed (SplitMix64), so two runs that make their peers in the same order draw the same.
pub fn derive_seed(seed: u64, peer: u64, direction: u64) -> u64 {
    let mut z = seed
        ^ peer.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ direction.wrapping_mul(0xd1b5_4a32_d192_ed03);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ImpairSchedule, String> {
        ImpairSchedule::from_json(text, Path::new("s.json")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_issue_example_reads_and_each_entry_changes_only_its_keys() {
        let s = parse(
            r#"[{"at_s":0,"loss":"0%","seed":7},{"at_s":5,"loss":"10%"},{"at_s":10,"rate":"300kbit"}]"#,
        )
        .unwrap();
        let steps = s.steps();
        assert_eq!(steps.len(), 3);
        assert_eq!(s.seed(), 7);
        assert_eq!(steps[1].0, Duration::from_secs(5));
        assert_eq!(steps[1].1.loss, 0.10);
        assert_eq!((steps[2].1.loss, steps[2].1.rate), (0.10, Some(300_000)));
        // A schedule that starts later starts with nothing impaired.
        let s = parse(r#"[{"at_s":2,"delay":"50ms","burst":3}]"#).unwrap();
        assert_eq!(s.steps()[0], (Duration::ZERO, ImpairSpec::default()));
        assert_eq!(s.steps()[1].1.burst, Some(3.0));
        // A spec is a schedule of one step.
        let s = ImpairSchedule::from_arg("loss=5%,seed=3").unwrap();
        assert_eq!((s.steps().len(), s.first().loss, s.seed()), (1, 0.05, 3));
    }

    #[test]
    fn errors_name_the_file_the_entry_and_the_problem() {
        let err = |t: &str| parse(t).unwrap_err();
        assert!(err("[{").starts_with("the impairment schedule s.json is not valid JSON"));
        assert_eq!(
            err(r#"{"at_s":0}"#),
            "the impairment schedule s.json: expected a list of entries, e.g. [{\"at_s\":0,\"loss\":\"5%\"}]"
        );
        assert_eq!(
            err("[]"),
            "the impairment schedule s.json: 0 entries: expected 1 to 1000"
        );
        assert_eq!(
            err(r#"[{"loss":"1%"}]"#),
            "the impairment schedule s.json: entry 0 needs \"at_s\": seconds from 0 to 86400"
        );
        assert_eq!(
            err(r#"[{"at_s":0,"lag":"1ms"}]"#),
            "the impairment schedule s.json, entry 0 (at_s 0): unknown impairment key `lag` (known: loss, burst, delay, jitter, reorder, rate, seed)"
        );
        assert_eq!(
            err(r#"[{"at_s":1.5,"loss":"5"}]"#),
            "the impairment schedule s.json, entry 0 (at_s 1.5): impairment loss=5: a percentage, 0% to 100%"
        );
        assert_eq!(
            err(r#"[{"at_s":5,"loss":"1%"},{"at_s":5,"loss":"2%"}]"#),
            "the impairment schedule s.json: entry 1: at_s 5 is not after the previous entry's 5"
        );
        assert_eq!(
            err(r#"[{"at_s":0},{"at_s":1,"seed":2}]"#),
            "the impairment schedule s.json: entry 1: \"seed\" can only be set by the first entry"
        );
        assert_eq!(
            err(r#"[{"at_s":0,"loss":true}]"#),
            "the impairment schedule s.json: entry 0: \"loss\" must be a string such as \"5%\" or \"80ms\""
        );
        assert_eq!(
            err(r#"[3]"#),
            "the impairment schedule s.json: entry 0 is not an object"
        );
        let missing = ImpairSchedule::from_arg("@/nonexistent/s.json").unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("cannot read the impairment schedule /nonexistent/s.json: "),
            "{missing}"
        );
        assert!(matches!(
            ImpairSchedule::from_arg("loss=5"),
            Err(ImpairScheduleError::Spec(_))
        ));
    }

    #[test]
    fn seeds_differ_per_peer_and_direction_and_repeat_per_seed() {
        let a = derive_seed(7, 0, 0);
        assert_eq!(a, derive_seed(7, 0, 0));
        let all = [
            a,
            derive_seed(7, 0, 1),
            derive_seed(7, 1, 0),
            derive_seed(7, 1, 1),
            derive_seed(8, 0, 0),
        ];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }
}
