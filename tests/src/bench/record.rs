//! What the clients measured: a latency histogram of the operations that succeeded, the
//! conflicts of compare-and-swap, and the failures counted by message (as etcd's benchmark
//! does, a failed operation has no latency).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, up to an hour, to 3 significant digits.
const MAX_MICROS: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;
/// Longer messages are cut: a few distinct failures should stay readable in a report.
const MAX_MESSAGE_CHARS: usize = 200;

/// How one operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// A compare-and-swap that completed but lost its race: neither a success nor an error.
    Conflict,
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct Recorder {
    latency: Histogram<u64>,
    conflicts: u64,
    errors: BTreeMap<String, u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            latency: Histogram::new_with_bounds(1, MAX_MICROS, SIGNIFICANT_DIGITS).expect("constant bounds are valid"),
            conflicts: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl Recorder {
    /// Records a completed operation (success or conflict) by its latency, a failure by message.
    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        match outcome {
            Outcome::Done => self.latency(latency),
            Outcome::Conflict => {
                self.conflicts += 1;
                self.latency(latency);
            }
            Outcome::Failed(message) => self.error(message),
        }
    }

    pub fn latency(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(micros.max(1));
    }

    pub fn error(&mut self, message: impl Into<String>) {
        self.errors_n(message, 1);
    }

    pub fn errors_n(&mut self, message: impl Into<String>, n: u64) {
        if n > 0 {
            *self.errors.entry(shorten(message.into())).or_default() += n;
        }
    }

    pub fn merge(&mut self, other: &Recorder) {
        self.latency
            .add(&other.latency)
            .expect("recorders share one histogram range");
        self.conflicts += other.conflicts;
        for (message, n) in &other.errors {
            *self.errors.entry(message.clone()).or_default() += n;
        }
    }

    /// Operations that completed (successes and conflicts).
    pub fn ops(&self) -> u64 {
        self.latency.len()
    }

    pub fn conflicts(&self) -> u64 {
        self.conflicts
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn errors(&self) -> &BTreeMap<String, u64> {
        &self.errors
    }

    pub fn summary(&self) -> Latency {
        let h = &self.latency;
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Latency {
            avg: round3(h.mean() / 1000.0),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Latency percentiles in milliseconds (microsecond resolution).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub avg: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

/// Recorders for many concurrent tasks: task `i` records into shard `i % shards`, so memory stays
/// bounded (a histogram is ~190 KB) however many clients there are.
pub struct Shards(Vec<Mutex<Recorder>>);

const MAX_SHARDS: usize = 8;

impl Shards {
    pub fn new(tasks: usize) -> Self {
        Self((0..tasks.clamp(1, MAX_SHARDS)).map(|_| Mutex::default()).collect())
    }

    /// Runs `f` on task `task`'s recorder; never hold it across an await.
    pub fn with<T>(&self, task: usize, f: impl FnOnce(&mut Recorder) -> T) -> T {
        let shard = &self.0[task % self.0.len()];
        f(&mut shard.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn merged(&self) -> Recorder {
        let mut all = Recorder::default();
        for shard in &self.0 {
            all.merge(&shard.lock().unwrap_or_else(PoisonError::into_inner));
        }
        all
    }
}

/// An `etcd_client` error as one stable line: a server's status is its code and message (the
/// full `Display` carries metadata that differs per response, which would split the counts).
pub fn error_message(error: &etcd_client::Error) -> String {
    match error {
        etcd_client::Error::GRpcStatus(status) if status.message().is_empty() => {
            format!("{:?}", status.code())
        }
        etcd_client::Error::GRpcStatus(status) => format!("{:?}: {}", status.code(), status.message()),
        other => other.to_string(),
    }
}

fn shorten(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
    message
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_of_one_to_a_hundred_ms() {
        let mut r = Recorder::default();
        for n in 1..=100 {
            r.record(Outcome::Done, ms(n));
        }
        let l = r.summary();
        assert_eq!(r.ops(), 100);
        assert!((l.avg - 50.5).abs() < 0.1, "avg {}", l.avg);
        // hdrhistogram answers with the highest value equivalent to the sample (3 digits).
        for (got, want) in [
            (l.p50, 50.0),
            (l.p90, 90.0),
            (l.p99, 99.0),
            (l.p99_9, 100.0),
            (l.max, 100.0),
        ] {
            assert!((got - want).abs() <= want * 0.001 + 0.001, "got {got}, want {want}");
        }
    }

    #[test]
    fn merge_adds_histograms_conflicts_and_errors() {
        let (mut a, mut b) = (Recorder::default(), Recorder::default());
        for n in 1..=50 {
            a.record(Outcome::Done, ms(n));
            b.record(Outcome::Done, ms(n + 50));
        }
        a.record(
            Outcome::Failed("Unavailable: etcdserver: request timed out".into()),
            ms(1),
        );
        b.record(
            Outcome::Failed("Unavailable: etcdserver: request timed out".into()),
            ms(1),
        );
        b.record(Outcome::Failed("Unimplemented".into()), ms(1));
        b.record(Outcome::Conflict, ms(200));
        a.merge(&b);
        assert_eq!(a.ops(), 101, "50 + 50 successes + 1 conflict");
        assert_eq!(a.conflicts(), 1);
        assert_eq!(a.error_count(), 3);
        assert_eq!(
            a.errors().iter().map(|(m, n)| (m.as_str(), *n)).collect::<Vec<_>>(),
            [("Unavailable: etcdserver: request timed out", 2), ("Unimplemented", 1)]
        );
        let l = a.summary();
        assert!(
            (l.p50 - 51.0).abs() < 0.1,
            "p50 of 1..=100 and 200 is 51, got {}",
            l.p50
        );
        assert!((l.max - 200.0).abs() < 0.2, "max {}", l.max);
    }

    #[test]
    fn failures_have_no_latency() {
        let mut r = Recorder::default();
        r.record(Outcome::Failed("x".into()), ms(5000));
        assert_eq!((r.ops(), r.error_count()), (0, 1));
        assert_eq!(r.summary(), Latency::default());
        r.errors_n("missed", 0);
        assert_eq!(r.errors().len(), 1, "a zero count adds no message");
    }

    #[test]
    fn shards_merge_into_one() {
        let shards = Shards::new(100);
        for task in 0..100 {
            shards.with(task, |r| r.record(Outcome::Done, ms(1)));
        }
        shards.with(3, |r| r.error("boom"));
        let all = shards.merged();
        assert_eq!((all.ops(), all.error_count()), (100, 1));
    }

    #[test]
    fn messages_are_stable_and_short() {
        let status = etcd_client::Error::GRpcStatus(tonic::Status::unavailable("etcdserver: leader changed"));
        assert_eq!(error_message(&status), "Unavailable: etcdserver: leader changed");
        let bare = etcd_client::Error::GRpcStatus(tonic::Status::unimplemented(""));
        assert_eq!(error_message(&bare), "Unimplemented");
        let mut r = Recorder::default();
        r.error("e".repeat(1000));
        let kept = r.errors().keys().next().expect("one message");
        assert_eq!(kept.chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
