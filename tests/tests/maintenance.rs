//! The Maintenance service (reference/etcd-api.md §1.6) as etcdctl and etcd-client use it:
//! endpoint status, HashKV, defragmentation, the NOSPACE alarm, snapshots, and disaster recovery
//! from a snapshot. Each scenario runs against cairn and against a real etcd where one is
//! installed.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use cairn_tests::{
    run_etcdctl_scenario,
    assert_grpc_error, grpc_code, grpc_message, Backend, Cluster, Etcdctl, Input,
    ELECTION_TIMEOUT,
};
use etcd_client::{Client, CompactionOptions, GetOptions};
use futures::StreamExt;
use serde_json::Value;
use tonic::Code;

#[path = "maintenance/defragment.rs"]
mod defragment;
#[path = "maintenance/hash.rs"]
mod hash;
#[path = "maintenance/leadership.rs"]
mod leadership;
#[path = "maintenance/nospace.rs"]
mod nospace;
#[path = "maintenance/snapshot.rs"]
mod snapshot;

use defragment::*;
use hash::*;
use leadership::*;
use nospace::*;
use snapshot::*;

const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
/// How long every member may take to apply a revision the cluster has reached.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(15);
/// Puts in flight at once when a scenario fills the store.
const IN_FLIGHT: usize = 16;

macro_rules! scenario {
    ($scenario:ident, $members:expr) => {
        scenario!($scenario, $members, &[]);
    };
    ($scenario:ident, $members:expr, $flags:expr) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cairn() {
                super::run(
                    cairn_tests::Backend::Cairn,
                    $members,
                    $flags,
                    super::$scenario,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn etcd() {
                super::run(
                    cairn_tests::Backend::Etcd,
                    $members,
                    $flags,
                    super::$scenario,
                )
                .await;
            }
        }
    };
}

scenario!(endpoint_status, 3);
scenario!(hash_kv, 3);
scenario!(defrag, 3);
scenario!(defrag_shrinks_the_database, 1);
scenario!(nospace_alarm, 1, &[super::QUOTA]);
scenario!(snapshot_save, 1);
scenario!(disaster_recovery, 3);
scenario!(move_leader, 3);

/// Starts the cluster and runs `scenario`, or skips when etcdctl or the backend is missing.
async fn run<F, Fut>(backend: Backend, members: usize, flags: &[&str], scenario: F)
where
    F: FnOnce(Cluster) -> Fut,
    Fut: Future<Output = ()>,
{
    run_etcdctl_scenario(backend, members, flags, scenario).await;
}

/// etcdctl with these endpoints; [`run`] has checked that one is installed.
fn etcdctl(endpoints: &[String]) -> Etcdctl {
    Etcdctl::find(endpoints).expect("etcdctl is installed")
}

fn etcdctl_for(cluster: &Cluster, index: usize) -> Etcdctl {
    etcdctl(&[cluster.endpoint(index).to_owned()])
}

/// The member whose client URL etcdctl printed, with `http://` (`--cluster`) or without.
fn member_at(cluster: &Cluster, endpoint: &str) -> usize {
    let address = endpoint.trim_start_matches("http://");
    (0..cluster.size())
        .find(|&index| cluster.endpoint(index).trim_start_matches("http://") == address)
        .unwrap_or_else(|| panic!("{endpoint} is not a member's client URL"))
}

/// etcdctl's `-w json` for `endpoint status` and `endpoint hashkv`: one object per endpoint,
/// its payload under `field`.
fn per_endpoint<'a>(json: &'a Value, field: &str) -> Vec<(&'a str, &'a Value)> {
    json.as_array()
        .unwrap_or_else(|| panic!("one entry per endpoint: {json}"))
        .iter()
        .map(|entry| {
            let endpoint = entry["Endpoint"].as_str().expect("an Endpoint string");
            (endpoint, &entry[field])
        })
        .collect()
}

#[track_caller]
fn as_u64(value: &Value, field: &str) -> u64 {
    value[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no unsigned {field}: {value}"))
}

#[track_caller]
fn as_i64(value: &Value, field: &str) -> i64 {
    value[field]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer {field}: {value}"))
}

/// Puts every pair, a few at a time; the order among them is not defined.
async fn put_all(client: &Client, pairs: Vec<(String, String)>) {
    futures::stream::iter(pairs)
        .for_each_concurrent(IN_FLIGHT, |(key, value)| {
            let mut client = client.clone();
            async move {
                client.put(key, value, None).await.expect("put");
            }
        })
        .await;
}

/// The cluster's revision by a linearizable read, once every member has applied it.
async fn all_caught_up(cluster: &Cluster) -> i64 {
    let mut client = cluster.client().await.expect("a client");
    let reply = client
        .get("health", None)
        .await
        .expect("a linearizable read");
    let revision = reply.header().expect("a header").revision();
    for index in 0..cluster.size() {
        cluster
            .wait_for_revision(index, revision, CATCH_UP_TIMEOUT)
            .await
            .expect("every member applies every write");
    }
    revision
}

async fn compact_physically(client: &Client, revision: i64) {
    client
        .clone()
        .compact(revision, Some(CompactionOptions::new().with_physical()))
        .await
        .expect("compact");
}

fn is_plain_version(version: &str) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// `etcdctl endpoint status -w json`, over the three endpoints given and with `--cluster` from
/// one: every member answers for itself and names the same leader.
async fn endpoint_status(cluster: Cluster) {
    let mut client = cluster.client().await.expect("a client");
    client.put("status/k", "v", None).await.expect("put");
    let revision = all_caught_up(&cluster).await;
    let leader = cluster
        .wait_for_leader(ELECTION_TIMEOUT)
        .await
        .expect("a leader");
    let leader_id = cluster.member_id(leader);

    let given = etcdctl(&cluster.endpoints())
        .json(&["endpoint", "status"])
        .await;
    let given = per_endpoint(&given, "Status");
    let printed: Vec<&str> = given.iter().map(|(endpoint, _)| *endpoint).collect();
    let expected: Vec<&str> = (0..cluster.size())
        .map(|index| cluster.endpoint(index).trim_start_matches("http://"))
        .collect();
    assert_eq!(
        printed, expected,
        "one entry per endpoint, in the order given"
    );

    let expanded = etcdctl_for(&cluster, 0)
        .json(&["endpoint", "status", "--cluster"])
        .await;
    let expanded = per_endpoint(&expanded, "Status");
    let printed: BTreeSet<&str> = expanded.iter().map(|(endpoint, _)| *endpoint).collect();
    let expected: BTreeSet<&str> = (0..cluster.size())
        .map(|index| cluster.endpoint(index))
        .collect();
    assert_eq!(
        printed, expected,
        "--cluster lists every member's client URL"
    );

    let cluster_id = as_u64(&given[0].1["header"], "cluster_id");
    assert_ne!(cluster_id, 0);
    let term = as_u64(given[0].1, "raftTerm");
    for (endpoint, status) in given.iter().chain(&expanded) {
        let index = member_at(&cluster, endpoint);
        let header = &status["header"];
        assert_eq!(
            as_u64(header, "member_id"),
            cluster.member_id(index),
            "{endpoint}: {status}"
        );
        assert_eq!(
            as_u64(header, "cluster_id"),
            cluster_id,
            "{endpoint}: {status}"
        );
        assert_eq!(as_i64(header, "revision"), revision, "{endpoint}: {status}");
        assert_eq!(
            as_u64(status, "leader"),
            leader_id,
            "{endpoint} names the leader"
        );
        assert_eq!(
            as_u64(status, "raftTerm"),
            term,
            "{endpoint}: one term, no election"
        );
        check_status(status);
    }
}

/// What every member's status must show in a healthy cluster with no alarm.
fn check_status(status: &Value) {
    let version = status["version"].as_str().expect("a version string");
    assert!(
        is_plain_version(version),
        "version must be plain numeric x.y.z for clients to parse: {version}"
    );
    let db_size = as_u64(status, "dbSize");
    let in_use = as_u64(status, "dbSizeInUse");
    assert!(db_size > 0, "{status}");
    assert!(
        in_use > 0 && in_use <= db_size,
        "0 < dbSizeInUse <= dbSize: {status}"
    );
    assert!(as_u64(status, "raftTerm") > 0, "{status}");
    let applied = as_u64(status, "raftAppliedIndex");
    assert!(applied > 0, "{status}");
    assert!(
        as_u64(status, "raftIndex") >= applied,
        "committed >= applied: {status}"
    );
    // etcdctl leaves out false and empty fields (Go's omitempty).
    assert!(
        matches!(status.get("isLearner"), None | Some(Value::Bool(false))),
        "{status}"
    );
    assert!(
        status
            .get("errors")
            .is_none_or(|errors| errors.as_array().is_some_and(Vec::is_empty)),
        "no errors without alarms: {status}"
    );
}
