//! What a member measures about itself: counters, gauges and latency histograms in atomics, so
//! a hook on the hot path costs one relaxed add. The gateway exports them under etcd's metric
//! names (gateway/src/metrics.rs); core names none. They are process-wide, as etcd's are: a
//! process runs one member.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_proto::cairnpb::{command, Command};

/// Time of each synced write of the raft log (entries or vote): etcd's WAL fsync.
pub static WAL_FSYNC: Histogram = Histogram::new();
/// Bytes of log entries written to the raft log.
pub static WAL_WRITE_BYTES: Counter = Counter::new();
/// Time of each state-machine batch write (one per apply): etcd's backend commit.
pub static BACKEND_COMMIT: Histogram = Histogram::new();
/// The raft log's committed index, as the log store last saved it.
pub static COMMITTED_INDEX: Gauge = Gauge::new();
/// Client writes this member has proposed and not yet answered.
pub static PROPOSALS_PENDING: Gauge = Gauge::new();
/// Client writes that were not committed (no leader, timeout, stopped).
pub static PROPOSALS_FAILED: Counter = Counter::new();
/// Times this member saw a new leader (after none, or after another one).
pub static LEADER_CHANGES: Counter = Counter::new();
/// Puts applied on this member.
pub static PUTS: Counter = Counter::new();
/// Deletes applied on this member.
pub static DELETES: Counter = Counter::new();
/// Txns applied (writes) or served (read-only) on this member.
pub static TXNS: Counter = Counter::new();
/// Ranges served by this member.
pub static RANGES: Counter = Counter::new();
/// Leases granted by apply on this member.
pub static LEASES_GRANTED: Counter = Counter::new();
/// Leases revoked by apply on this member.
pub static LEASES_REVOKED: Counter = Counter::new();
/// Keep-alives served while this member leads.
pub static LEASES_RENEWED: Counter = Counter::new();
/// Expired leases this member, leading, proposed to revoke.
pub static LEASES_EXPIRED: Counter = Counter::new();

/// Counts a client write that apply is about to run.
pub(crate) fn applied(cmd: &Command) {
    match cmd.op {
        Some(command::Op::Put(_)) => PUTS.inc(),
        Some(command::Op::DeleteRange(_)) => DELETES.inc(),
        Some(command::Op::Txn(_)) => TXNS.inc(),
        _ => {}
    }
}

/// A count that only grows.
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Counter {
    fn default() -> Counter {
        Counter::new()
    }
}

/// A value that goes up and down.
pub struct Gauge(AtomicI64);

impl Gauge {
    pub const fn new() -> Gauge {
        Gauge(AtomicI64::new(0))
    }

    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Adds one until the returned guard is dropped.
    pub fn track(&'static self) -> Tracked {
        self.0.fetch_add(1, Ordering::Relaxed);
        Tracked(self)
    }
}

impl Default for Gauge {
    fn default() -> Gauge {
        Gauge::new()
    }
}

/// One unit of a [`Gauge`], given back on drop.
pub struct Tracked(&'static Gauge);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Upper bounds of the latency buckets in seconds: etcd's `ExponentialBuckets(0.001, 2, 14)`
/// (1 ms to 8.192 s), which both its WAL fsync and backend commit histograms use.
pub const DISK_BUCKETS: [f64; 14] = [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192];

/// A latency histogram over [`DISK_BUCKETS`], plus one bucket for anything slower.
pub struct Histogram {
    counts: [AtomicU64; DISK_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A histogram read at one moment: the sum in seconds and, per bucket, its upper bound
/// (`f64::INFINITY` last) and how many observations fell in it (not cumulative).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub sum: f64,
    pub buckets: Vec<(f64, u64)>,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|(_, n)| n).sum()
    }
}

impl Histogram {
    pub const fn new() -> Histogram {
        Histogram { counts: [const { AtomicU64::new(0) }; DISK_BUCKETS.len() + 1], sum_nanos: AtomicU64::new(0) }
    }

    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = DISK_BUCKETS.iter().position(|&le| secs <= le).unwrap_or(DISK_BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(took.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// Runs `f` and observes how long it took.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.observe(start.elapsed());
        out
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let bounds = DISK_BUCKETS.iter().copied().chain([f64::INFINITY]);
        let buckets = bounds.zip(&self.counts).map(|(le, n)| (le, n.load(Ordering::Relaxed))).collect();
        HistogramSnapshot { sum: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9, buckets }
    }
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let snap = h.snapshot();
        let counts: Vec<u64> = snap.buckets.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(snap.buckets.last().map(|(le, _)| *le), Some(f64::INFINITY));
        assert_eq!(snap.count(), 4);
        assert!((snap.sum - 10.0045).abs() < 1e-9, "{}", snap.sum);
    }

    #[test]
    fn a_tracked_gauge_goes_back_down() {
        static G: Gauge = Gauge::new();
        let one = G.track();
        let two = G.track();
        assert_eq!(G.get(), 2);
        drop(one);
        drop(two);
        assert_eq!(G.get(), 0);
    }
}
