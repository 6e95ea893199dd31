//! The network impairment spec (`loss=5%,burst=3,delay=80ms,jitter=20ms,reorder=1%,
//! rate=800kbit,seed=7`): its typed form, its parser, and the errors naming the bad key or
//! value. Every key is optional; an empty spec impairs nothing.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The longest `delay` and `jitter` accepted.
pub const MAX_IMPAIR_DELAY: Duration = Duration::from_secs(10);
/// The slowest and fastest `rate` accepted, bits per second.
pub const MIN_IMPAIR_RATE: u64 = 1_000;
pub const MAX_IMPAIR_RATE: u64 = 100_000_000_000;
/// The longest mean loss burst accepted, packets.
pub const MAX_IMPAIR_BURST: f64 = 10_000.0;

/// The keys of a spec, in the order they are documented.
pub const IMPAIR_KEYS: [&str; 7] = [
    "loss", "burst", "delay", "jitter", "reorder", "rate", "seed",
];

/// What happens to the packets crossing one direction of a path.
#[derive(Debug, Clone, PartialEq)]
pub struct ImpairSpec {
    /// Fraction of packets lost, 0..=1 (`loss=5%`).
    pub loss: f64,
    /// Mean length of a loss burst, packets (`burst=3`); `None`: losses are independent.
    pub burst: Option<f64>,
    /// Added to every packet (`delay=80ms`).
    pub delay: Duration,
    /// Each packet's delay varies uniformly within ±`jitter` (never below zero).
    pub jitter: Duration,
    /// Fraction of packets held back past the next one, 0..=1 (`reorder=1%`).
    pub reorder: f64,
    /// The bottleneck's rate, bits per second (`rate=800kbit`); `None`: unlimited.
    pub rate: Option<u64>,
    /// Seeds the random draws: the same seed gives the same decisions (`seed=7`).
    pub seed: u64,
}

impl Default for ImpairSpec {
    fn default() -> Self {
        ImpairSpec {
            loss: 0.0,
            burst: None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: 0.0,
            rate: None,
            seed: 0,
        }
    }
}

/// Why a spec cannot be read; each names the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImpairSpecError {
    #[error("impairment `{0}`: expected key=value (e.g. loss=5%)")]
    NotKeyValue(String),
    #[error(
        "unknown impairment key `{0}` (known: loss, burst, delay, jitter, reorder, rate, seed)"
    )]
    UnknownKey(String),
    #[error("impairment key `{0}` is given twice")]
    Repeated(String),
    #[error("impairment {key}={value}: {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
}

impl ImpairSpec {
    /// Whether it changes anything at all.
    pub fn is_none(&self) -> bool {
        self.loss == 0.0
            && self.delay.is_zero()
            && self.jitter.is_zero()
            && self.reorder == 0.0
            && self.rate.is_none()
    }

    /// Sets one key from its text (as in the spec), e.g. `set("loss", "5%")`; a schedule
    /// changes a running spec this way.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ImpairSpecError> {
        let bad = |expected| ImpairSpecError::BadValue {
            key: key.to_owned(),
            value: value.to_owned(),
            expected,
        };
        match key {
            "loss" => self.loss = percent(value).ok_or_else(|| bad("a percentage, 0% to 100%"))?,
            "reorder" => {
                self.reorder = percent(value).ok_or_else(|| bad("a percentage, 0% to 100%"))?
            }
            "burst" => {
                let b = value
                    .parse::<f64>()
                    .ok()
                    .filter(|b| (1.0..=MAX_IMPAIR_BURST).contains(b))
                    .ok_or_else(|| bad("a mean burst length in packets, 1 to 10000"))?;
                self.burst = Some(b);
            }
            "delay" | "jitter" => {
                let d = duration(value)
                    .filter(|d| *d <= MAX_IMPAIR_DELAY)
                    .ok_or_else(|| bad("a duration up to 10s, e.g. 80ms or 0.5s"))?;
                if key == "delay" {
                    self.delay = d;
                } else {
                    self.jitter = d;
                }
            }
            "rate" => {
                let r = rate(value)
                    .filter(|r| (MIN_IMPAIR_RATE..=MAX_IMPAIR_RATE).contains(r))
                    .ok_or_else(|| bad("a rate from 1kbit to 100gbit, e.g. 800kbit or 2mbit"))?;
                self.rate = Some(r);
            }
            "seed" => {
                self.seed = value
                    .parse()
                    .map_err(|_| bad("an unsigned 64-bit integer"))?
            }
            other => return Err(ImpairSpecError::UnknownKey(other.to_owned())),
        }
        Ok(())
    }
}

impl FromStr for ImpairSpec {
    type Err = ImpairSpecError;

    /// `key=value` pairs separated by commas (spaces around them allowed), each key at
    /// most once, in any order.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut spec = ImpairSpec::default();
        let mut seen: Vec<&str> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .ok_or_else(|| ImpairSpecError::NotKeyValue(part.to_owned()))?;
            if !IMPAIR_KEYS.contains(&key) {
                return Err(ImpairSpecError::UnknownKey(key.to_owned()));
            }
            if seen.contains(&key) {
                return Err(ImpairSpecError::Repeated(key.to_owned()));
            }
            seen.push(key);
            spec.set(key, value)?;
        }
        Ok(spec)
    }
}

impl fmt::Display for ImpairSpec {
    /// The spec in its own syntax (every key, so it reads back the same).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loss={}%", self.loss * 100.0)?;
        if let Some(b) = self.burst {
            write!(f, ",burst={b}")?;
        }
        write!(
            f,
            ",delay={}ms,jitter={}ms,reorder={}%",
            self.delay.as_secs_f64() * 1000.0,
            self.jitter.as_secs_f64() * 1000.0,
            self.reorder * 100.0
        )?;
        if let Some(r) = self.rate {
            write!(f, ",rate={r}bit")?;
        }
        write!(f, ",seed={}", self.seed)
    }
}

/// `5%` → 0.05 (0% to 100%; the `%` is required, so `0.05` is not taken for 5%).
fn percent(value: &str) -> Option<f64> {
    let p: f64 = value.strip_suffix('%')?.trim().parse().ok()?;
    (0.0..=100.0).contains(&p).then_some(p / 100.0)
}

/// `80ms`, `0.5s`, `250us` → a duration.
fn duration(value: &str) -> Option<Duration> {
    let (number, scale) = if let Some(n) = value.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = value.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    let n: f64 = number.trim().parse().ok()?;
    Duration::try_from_secs_f64(n * scale).ok()
}

/// `800kbit`, `2mbit`, `1.5Mbit`, `64000bit`, `1gbit` → bits per second.
fn rate(value: &str) -> Option<u64> {
    let lower = value.to_ascii_lowercase();
    let (number, scale) = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)]
        .into_iter()
        .find_map(|(unit, scale)| lower.strip_suffix(unit).map(|n| (n.to_owned(), scale)))?;
    let n: f64 = number.trim().parse().ok()?;
    (n.is_finite() && n >= 0.0).then(|| (n * scale).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_reads() {
        let spec: ImpairSpec =
            "loss=5%,burst=3,delay=80ms,jitter=20ms,reorder=1%,rate=800kbit,seed=7"
                .parse()
                .unwrap();
        assert_eq!(
            spec,
            ImpairSpec {
                loss: 0.05,
                burst: Some(3.0),
                delay: Duration::from_millis(80),
                jitter: Duration::from_millis(20),
                reorder: 0.01,
                rate: Some(800_000),
                seed: 7,
            }
        );
        // It prints in its own syntax and reads back the same.
        assert_eq!(spec.to_string().parse::<ImpairSpec>().unwrap(), spec);
    }

    #[test]
    fn every_key_is_optional_and_order_is_free() {
        assert_eq!("".parse::<ImpairSpec>().unwrap(), ImpairSpec::default());
        assert!("".parse::<ImpairSpec>().unwrap().is_none());
        let spec: ImpairSpec = " seed=1 , loss=0.5% ".parse().unwrap();
        assert_eq!(spec.loss, 0.005);
        assert_eq!(spec.seed, 1);
        assert!(!spec.is_none());
        assert_eq!(
            "delay=0.5s".parse::<ImpairSpec>().unwrap().delay,
            Duration::from_millis(500)
        );
        assert_eq!(
            "rate=2Mbit".parse::<ImpairSpec>().unwrap().rate,
            Some(2_000_000)
        );
        assert_eq!(
            "rate=1.5mbit".parse::<ImpairSpec>().unwrap().rate,
            Some(1_500_000)
        );
    }

    #[test]
    fn errors_name_the_bad_key_or_value() {
        let err = |s: &str| s.parse::<ImpairSpec>().unwrap_err().to_string();
        assert_eq!(
            err("loss=5%,lag=3ms"),
            "unknown impairment key `lag` (known: loss, burst, delay, jitter, reorder, rate, seed)"
        );
        assert_eq!(err("loss=5"), "impairment loss=5: a percentage, 0% to 100%");
        assert_eq!(
            err("loss=120%"),
            "impairment loss=120%: a percentage, 0% to 100%"
        );
        assert_eq!(
            err("delay=80"),
            "impairment delay=80: a duration up to 10s, e.g. 80ms or 0.5s"
        );
        assert_eq!(
            err("delay=1e30s"),
            "impairment delay=1e30s: a duration up to 10s, e.g. 80ms or 0.5s"
        );
        assert_eq!(
            err("delay=-1ms"),
            "impairment delay=-1ms: a duration up to 10s, e.g. 80ms or 0.5s"
        );
        assert_eq!(
            err("jitter=11s"),
            "impairment jitter=11s: a duration up to 10s, e.g. 80ms or 0.5s"
        );
        assert_eq!(
            err("rate=fast"),
            "impairment rate=fast: a rate from 1kbit to 100gbit, e.g. 800kbit or 2mbit"
        );
        assert_eq!(
            err("burst=0.5"),
            "impairment burst=0.5: a mean burst length in packets, 1 to 10000"
        );
        assert_eq!(
            err("seed=-1"),
            "impairment seed=-1: an unsigned 64-bit integer"
        );
        assert_eq!(
            err("loss=1%,loss=2%"),
            "impairment key `loss` is given twice"
        );
        assert_eq!(
            err("loss"),
            "impairment `loss`: expected key=value (e.g. loss=5%)"
        );
        assert_eq!(
            err("loss="),
            "impairment `loss=`: expected key=value (e.g. loss=5%)"
        );
    }
}
