//! Prometheus metrics under etcd's names (reference/etcd-api.md §9), served at `/metrics` in the
//! Prometheus text format etcd serves (version 0.0.4). Every metric name lives in this module
//! and in [`grpc`].
//!
//! prometheus-client encodes, and it speaks only OpenMetrics, which differs from the text format
//! where it matters to etcd's scrapers: a counter's family drops the `_total` its samples carry,
//! and `# UNIT` and `# EOF` lines exist. [`text_format`] undoes exactly that, so that a scrape
//! reads like etcd's (`# TYPE etcd_server_leader_changes_seen_total counter`). Hence every
//! counter here is named with its `_total`, as etcd names it.
//!
//! The values are read at scrape time: core keeps its counters in atomics
//! (`cairn_core::metrics`) and the member's state is asked for the rest.

pub mod grpc;

use std::fmt::{self, Write};
use std::sync::Arc;

use cairn_core::metrics::{self as core_metrics, HistogramSnapshot};
use cairn_core::Node;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::maintenance::SERVER_VERSION;

/// The `Content-Type` of a scrape: Prometheus text format 0.0.4, as etcd 3.5 serves it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub fn new(node: Arc<Node>) -> Arc<Metrics> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(MemberCollector { node }));
        registry.register_collector(Box::new(grpc::Collector));
        registry.register_collector(Box::new(ProcessCollector));
        Arc::new(Metrics { registry })
    }

    /// One scrape, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut openmetrics = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a collector.
        if let Err(e) = prometheus_client::encoding::text::encode_registry(&mut openmetrics, &self.registry) {
            tracing::error!("encoding metrics: {e}");
        }
        text_format(&openmetrics)
    }
}

/// The cluster version etcd reports beside its own: `major.minor.0` of the server version.
pub fn cluster_version() -> String {
    format!("{}.0", major_minor(SERVER_VERSION))
}

fn major_minor(version: &str) -> &str {
    version.rsplit_once('.').map_or(version, |(major_minor, _)| major_minor)
}

/// OpenMetrics text, as prometheus-client writes it, turned into the Prometheus text format:
/// counter families take their samples' `_total` name, `# UNIT` and `# EOF` go.
fn text_format(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            // prometheus-client writes HELP right before TYPE; it waits for the type.
            help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, "untyped"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", kind),
                "unknown" => ("", "untyped"),
                _ => ("", kind),
            };
            if let Some((_, text)) = help.take().and_then(|h| h.split_once(' ')) {
                let _ = writeln!(out, "# HELP {name}{suffix} {text}");
            }
            let _ = writeln!(out, "# TYPE {name}{suffix} {kind}");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A gauge without labels.
fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: impl EncodeGaugeValue) -> fmt::Result {
    encoder.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&value)
}

/// etcd's "1 for the label with the current value" gauges (`etcd_server_version` …).
fn labelled_one(encoder: &mut DescriptorEncoder, name: &str, help: &str, label: &str, value: &str) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    family.encode_family(&[(label, value)])?.encode_gauge(&1i64)
}

/// A counter without labels; `name` carries its `_total`, as etcd writes it.
fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    encoder.encode_descriptor(counter_family(name), help, None, MetricType::Counter)?.encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// The OpenMetrics family of a counter named `<family>_total`.
fn counter_family(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

fn histogram(encoder: &mut DescriptorEncoder, name: &str, help: &str, snapshot: HistogramSnapshot) -> fmt::Result {
    let count = snapshot.count();
    // prometheus-client marks the +Inf bucket by f64::MAX.
    let buckets: Vec<(f64, u64)> = snapshot.buckets.iter().map(|&(le, n)| (if le.is_finite() { le } else { f64::MAX }, n)).collect();
    encoder.encode_descriptor(name, help, None, MetricType::Histogram)?.encode_histogram::<NoLabelSet>(snapshot.sum, count, &buckets, None)
}

/// The member's own metrics: raft, proposals, disk, MVCC and leases.
struct MemberCollector {
    node: Arc<Node>,
}

impl fmt::Debug for MemberCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberCollector").field("member", &format_args!("{:x}", self.node.id())).finish()
    }
}

impl Collector for MemberCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let node = &self.node;
        let status = node.status();
        let leader = node.leader();
        let mvcc = node.mvcc();
        gauge(&mut e, "etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.", i64::from(leader.is_some()))?;
        gauge(&mut e, "etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.", i64::from(leader == Some(node.id())))?;
        gauge(&mut e, "etcd_server_is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise.", i64::from(status.is_learner))?;
        counter(&mut e, "etcd_server_leader_changes_seen_total", "The number of leader changes seen.", core_metrics::LEADER_CHANGES.get())?;
        gauge(&mut e, "etcd_server_proposals_committed_total", "The total number of consensus proposals committed.", core_metrics::COMMITTED_INDEX.get())?;
        gauge(&mut e, "etcd_server_proposals_applied_total", "The total number of consensus proposals applied.", status.raft_applied_index)?;
        gauge(&mut e, "etcd_server_proposals_pending", "The current number of pending proposals to commit.", core_metrics::PROPOSALS_PENDING.get())?;
        counter(&mut e, "etcd_server_proposals_failed_total", "The total number of failed proposals seen.", core_metrics::PROPOSALS_FAILED.get())?;
        gauge(&mut e, "etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.", node.config().quota_backend_bytes)?;
        labelled_one(&mut e, "etcd_server_id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", "server_id", &format!("{:x}", node.id()))?;
        labelled_one(&mut e, "etcd_server_version", "Which version is running. 1 for 'server_version' label with current version.", "server_version", SERVER_VERSION)?;
        labelled_one(&mut e, "etcd_cluster_version", "Which version is running. 1 for 'cluster_version' label with current cluster version", "cluster_version", major_minor(SERVER_VERSION))?;
        histogram(&mut e, "etcd_disk_wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL.", core_metrics::WAL_FSYNC.snapshot())?;
        gauge(&mut e, "etcd_disk_wal_write_bytes_total", "Total number of bytes written in WAL.", core_metrics::WAL_WRITE_BYTES.get())?;
        histogram(&mut e, "etcd_disk_backend_commit_duration_seconds", "The latency distributions of commit called by backend.", core_metrics::BACKEND_COMMIT.snapshot())?;
        gauge(&mut e, "etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes.", status.db_size)?;
        gauge(&mut e, "etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes.", status.db_size_in_use)?;
        counter(&mut e, "etcd_mvcc_put_total", "Total number of puts seen by this member.", core_metrics::PUTS.get())?;
        counter(&mut e, "etcd_mvcc_delete_total", "Total number of deletes seen by this member.", core_metrics::DELETES.get())?;
        counter(&mut e, "etcd_mvcc_txn_total", "Total number of txns seen by this member.", core_metrics::TXNS.get())?;
        counter(&mut e, "etcd_mvcc_range_total", "Total number of ranges seen by this member.", core_metrics::RANGES.get())?;
        gauge(&mut e, "etcd_debugging_mvcc_current_revision", "The current revision of store.", mvcc.current_revision())?;
        // etcd starts at -1: no compaction yet.
        let compacted = match mvcc.compact_revision() {
            0 => -1,
            revision => revision,
        };
        gauge(&mut e, "etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in store.", compacted)?;
        let watches = node.watch_counts();
        gauge(&mut e, "etcd_debugging_mvcc_watch_stream_total", "Total number of watch streams.", watches.streams as i64)?;
        gauge(&mut e, "etcd_debugging_mvcc_watcher_total", "Total number of watchers.", watches.watchers as i64)?;
        gauge(&mut e, "etcd_debugging_mvcc_slow_watcher_total", "Total number of unsynced slow watchers.", watches.slow as i64)?;
        counter(&mut e, "etcd_debugging_lease_granted_total", "The total number of granted leases.", core_metrics::LEASES_GRANTED.get())?;
        counter(&mut e, "etcd_debugging_lease_revoked_total", "The total number of revoked leases.", core_metrics::LEASES_REVOKED.get())?;
        counter(&mut e, "etcd_debugging_lease_renewed_total", "The number of renewed leases seen by the leader.", core_metrics::LEASES_RENEWED.get())?;
        counter(&mut e, "etcd_debugging_server_lease_expired_total", "The total number of expired leases.", core_metrics::LEASES_EXPIRED.get())?;
        Ok(())
    }
}

/// The file descriptor gauges of Prometheus' process collector, which etcd exports too.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            gauge(&mut e, "process_open_fds", "Number of open file descriptors.", fds.count() as i64)?;
        }
        if let Some(max) = max_open_files() {
            gauge(&mut e, "process_max_fds", "Maximum number of open file descriptors.", max)?;
        }
        Ok(())
    }
}

/// The soft limit on open files, from `/proc/self/limits`.
fn max_open_files() -> Option<i64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_counters_become_text_format_counters() {
        let openmetrics = "# HELP a_b Some help.\n# TYPE a_b counter\na_b_total 3\n\
                           # HELP g A gauge.\n# TYPE g gauge\ng{l=\"v\"} 1\n\
                           # HELP h_seconds Latency.\n# TYPE h_seconds histogram\n# UNIT h_seconds seconds\n\
                           h_seconds_sum 0.5\nh_seconds_count 1\nh_seconds_bucket{le=\"+Inf\"} 1\n# EOF\n";
        let expected = "# HELP a_b_total Some help.\n# TYPE a_b_total counter\na_b_total 3\n\
                        # HELP g A gauge.\n# TYPE g gauge\ng{l=\"v\"} 1\n\
                        # HELP h_seconds Latency.\n# TYPE h_seconds histogram\n\
                        h_seconds_sum 0.5\nh_seconds_count 1\nh_seconds_bucket{le=\"+Inf\"} 1\n";
        assert_eq!(text_format(openmetrics), expected);
    }

    #[test]
    fn versions_are_plain_numbers() {
        assert_eq!(major_minor("3.5.0"), "3.5");
        assert_eq!(cluster_version(), format!("{}.0", major_minor(SERVER_VERSION)));
    }
}
