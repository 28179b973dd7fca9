//! `/metrics`: etcd's names, types and labels, parsed strictly, and counters that move with the
//! work a member does.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Context};
use cairn_tests::{grpc_code, wait_until, Cluster};
use etcd_client::{GetOptions, WatchOptions};
use tonic::Code;

use super::exposition::{Exposition, Kind};
use super::*;

/// How long the counters may take to show work already answered (etcd commits its backend
/// every 100 ms).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const PUTS: u64 = 5;

/// The families both etcd 3.5 and Cairn export, with etcd's types.
const CATALOGUE: &[(&str, Kind)] = &[
    ("etcd_server_has_leader", Kind::Gauge),
    ("etcd_server_is_leader", Kind::Gauge),
    ("etcd_server_is_learner", Kind::Gauge),
    ("etcd_server_leader_changes_seen_total", Kind::Counter),
    ("etcd_server_proposals_committed_total", Kind::Gauge),
    ("etcd_server_proposals_applied_total", Kind::Gauge),
    ("etcd_server_proposals_pending", Kind::Gauge),
    ("etcd_server_proposals_failed_total", Kind::Counter),
    ("etcd_server_quota_backend_bytes", Kind::Gauge),
    ("etcd_server_id", Kind::Gauge),
    ("etcd_server_version", Kind::Gauge),
    ("etcd_cluster_version", Kind::Gauge),
    ("etcd_disk_wal_fsync_duration_seconds", Kind::Histogram),
    ("etcd_disk_wal_write_bytes_total", Kind::Gauge),
    ("etcd_disk_backend_commit_duration_seconds", Kind::Histogram),
    ("etcd_mvcc_db_total_size_in_bytes", Kind::Gauge),
    ("etcd_mvcc_db_total_size_in_use_in_bytes", Kind::Gauge),
    ("etcd_mvcc_put_total", Kind::Counter),
    ("etcd_mvcc_delete_total", Kind::Counter),
    ("etcd_mvcc_txn_total", Kind::Counter),
    ("etcd_mvcc_range_total", Kind::Counter),
    ("etcd_debugging_mvcc_current_revision", Kind::Gauge),
    ("etcd_debugging_mvcc_compact_revision", Kind::Gauge),
    ("etcd_debugging_mvcc_watch_stream_total", Kind::Gauge),
    ("etcd_debugging_mvcc_watcher_total", Kind::Gauge),
    ("etcd_debugging_mvcc_slow_watcher_total", Kind::Gauge),
    ("etcd_debugging_lease_granted_total", Kind::Counter),
    ("etcd_debugging_lease_revoked_total", Kind::Counter),
    ("etcd_debugging_lease_renewed_total", Kind::Counter),
    ("etcd_debugging_server_lease_expired_total", Kind::Counter),
    ("grpc_server_started_total", Kind::Counter),
    ("grpc_server_handled_total", Kind::Counter),
    ("process_open_fds", Kind::Gauge),
    ("process_max_fds", Kind::Gauge),
];

/// etcd's bucket bounds for both disk latency histograms: `ExponentialBuckets(0.001, 2, 14)`.
const DISK_BUCKETS: [f64; 15] = [0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, f64::INFINITY];

const GRPC_CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// One scrape of member `index`, parsed strictly.
async fn scrape(cluster: &Cluster, index: usize) -> anyhow::Result<Exposition> {
    let reply = http::get(cluster.endpoint(index), "/metrics", HTTP_TIMEOUT).await?;
    ensure!(reply.status == 200, "/metrics answered {}", reply.status);
    ensure!(reply.header("content-type") == Some(CONTENT_TYPE), "content type {:?}", reply.header("content-type"));
    Exposition::parse(std::str::from_utf8(&reply.body).context("the body is not UTF-8")?).map_err(anyhow::Error::msg).context("a valid Prometheus text exposition")
}

#[track_caller]
fn value(e: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    e.value(name, labels).unwrap_or_else(|error| panic!("{error}"))
}

fn handled(e: &Exposition, method: &str, service: &str, code: &str) -> f64 {
    value(e, "grpc_server_handled_total", &[("grpc_method", method), ("grpc_service", service), ("grpc_code", code)])
}

fn started(e: &Exposition, method: &str, service: &str) -> f64 {
    value(e, "grpc_server_started_total", &[("grpc_method", method), ("grpc_service", service)])
}

/// A fresh single member's scrape: every family of the catalogue with etcd's type, the
/// values a new member has, etcd's histogram buckets and gRPC labels.
pub(super) async fn metrics_names_and_types(cluster: Cluster) {
    let e = scrape(&cluster, 0).await.expect("a scrape");
    for (name, kind) in CATALOGUE {
        let family = e.family(name).unwrap_or_else(|| panic!("no family {name}"));
        assert_eq!(family.kind, *kind, "{name}");
        assert!(family.help.as_deref().is_some_and(|h| !h.is_empty()), "{name} has HELP");
    }
    assert_eq!(value(&e, "etcd_server_has_leader", &[]), 1.0);
    assert_eq!(value(&e, "etcd_server_is_leader", &[]), 1.0, "a single member leads");
    assert_eq!(value(&e, "etcd_server_is_learner", &[]), 0.0);
    assert_eq!(value(&e, "etcd_server_leader_changes_seen_total", &[]), 1.0, "one election");
    assert_eq!(value(&e, "etcd_server_quota_backend_bytes", &[]), 2147483648.0, "etcd's default quota");
    assert_eq!(value(&e, "etcd_debugging_mvcc_current_revision", &[]), 1.0, "an empty store");
    assert_eq!(value(&e, "etcd_debugging_mvcc_compact_revision", &[]), -1.0, "nothing compacted");
    assert!(value(&e, "etcd_mvcc_db_total_size_in_bytes", &[]) > 0.0);
    let id = format!("{:x}", cluster.member_id(0));
    assert_eq!(value(&e, "etcd_server_id", &[("server_id", &id)]), 1.0, "the member ID in hex");
    let version = cluster.status(0).await.expect("Status").version().to_owned();
    assert_eq!(value(&e, "etcd_server_version", &[("server_version", &version)]), 1.0, "the version Status reports");

    for name in ["etcd_disk_wal_fsync_duration_seconds", "etcd_disk_backend_commit_duration_seconds"] {
        let bounds: Vec<f64> = e.family(name).expect("listed").samples.iter().filter_map(|s| s.labels.get("le")).map(|le| parse_bound(le)).collect();
        let mut sorted = bounds.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(sorted, DISK_BUCKETS, "{name}: etcd's buckets");
    }

    let handled = e.family("grpc_server_handled_total").expect("listed");
    let mut codes_of_put = BTreeSet::new();
    for s in &handled.samples {
        let keys: Vec<&str> = s.labels.keys().map(String::as_str).collect();
        assert_eq!(keys, ["grpc_code", "grpc_method", "grpc_service", "grpc_type"], "{s:?}");
        assert!(GRPC_CODES.contains(&s.labels["grpc_code"].as_str()), "{s:?}");
        if s.labels["grpc_method"] == "Put" && s.labels["grpc_service"] == "etcdserverpb.KV" {
            assert_eq!(s.labels["grpc_type"], "unary");
            codes_of_put.insert(s.labels["grpc_code"].clone());
        }
    }
    assert_eq!(codes_of_put.len(), GRPC_CODES.len(), "every code is listed from the start");
    let kinds = [
        ("Range", "etcdserverpb.KV", "unary"),
        ("Watch", "etcdserverpb.Watch", "bidi_stream"),
        ("LeaseKeepAlive", "etcdserverpb.Lease", "bidi_stream"),
        ("Snapshot", "etcdserverpb.Maintenance", "server_stream"),
        ("Check", "grpc.health.v1.Health", "unary"),
        ("Watch", "grpc.health.v1.Health", "server_stream"),
    ];
    for (method, service, kind) in kinds {
        let labels = [("grpc_method", method), ("grpc_service", service), ("grpc_type", kind)];
        e.value("grpc_server_started_total", &labels).unwrap_or_else(|error| panic!("{error}"));
    }
}

fn parse_bound(le: &str) -> f64 {
    if le == "+Inf" {
        return f64::INFINITY;
    }
    le.parse().unwrap_or_else(|_| panic!("le {le:?}"))
}

/// Puts, a refused read and a watch move the counters by exactly what was done.
pub(super) async fn metrics_move(cluster: Cluster) {
    let before = scrape(&cluster, 0).await.expect("a scrape");
    let mut client = cluster.client().await.expect("a client");
    let mut revision = 0;
    for i in 0..PUTS {
        let put = client.put(format!("metrics/k{i}"), "v", None).await.expect("put");
        revision = put.header().expect("a header").revision();
    }
    let future = client.get("metrics/k0", Some(GetOptions::new().with_revision(revision + 100))).await;
    assert_eq!(future.as_ref().err().and_then(grpc_code), Some(Code::OutOfRange), "a future revision");
    let mut watch = client.watch("metrics/", Some(WatchOptions::new().with_prefix())).await.expect("a watch");
    watch.message().await.expect("the watch is created");

    let kv = "etcdserverpb.KV";
    let puts = PUTS as f64;
    let after = wait_until("the counters to show the work", SETTLE_TIMEOUT, || async {
        let after = scrape(&cluster, 0).await?;
        let moved = |name: &str| after.value(name, &[]).unwrap_or(0.0) > before.value(name, &[]).unwrap_or(0.0);
        ensure!(handled(&after, "Put", kv, "OK") >= handled(&before, "Put", kv, "OK") + puts, "Put not counted yet");
        ensure!(moved("etcd_disk_backend_commit_duration_seconds_count"), "no backend commit yet");
        ensure!(moved("etcd_disk_wal_fsync_duration_seconds_count"), "no WAL fsync yet");
        Ok(after)
    })
    .await
    .expect("the counters move");

    assert_eq!(started(&after, "Put", kv), started(&before, "Put", kv) + puts, "grpc_server_started_total");
    assert_eq!(handled(&after, "Put", kv, "OK"), handled(&before, "Put", kv, "OK") + puts, "grpc_server_handled_total OK");
    assert_eq!(handled(&after, "Range", kv, "OutOfRange"), handled(&before, "Range", kv, "OutOfRange") + 1.0, "the refused read");
    assert_eq!(handled(&after, "Put", kv, "Unavailable"), 0.0, "no Put failed");
    let watches = [("grpc_method", "Watch"), ("grpc_service", "etcdserverpb.Watch"), ("grpc_type", "bidi_stream")];
    assert!(value(&after, "grpc_server_started_total", &watches) > value(&before, "grpc_server_started_total", &watches), "the watch stream");
    for name in ["etcd_server_proposals_committed_total", "etcd_server_proposals_applied_total", "etcd_mvcc_put_total"] {
        assert!(value(&after, name, &[]) >= value(&before, name, &[]) + puts, "{name}");
    }
    assert_eq!(value(&after, "etcd_debugging_mvcc_current_revision", &[]), revision as f64, "the store's revision");
    assert!(value(&after, "etcd_disk_wal_write_bytes_total", &[]) > value(&before, "etcd_disk_wal_write_bytes_total", &[]));
    assert_eq!(value(&after, "etcd_server_proposals_failed_total", &[]), 0.0);
    assert_eq!(value(&after, "etcd_server_has_leader", &[]), 1.0);
}
