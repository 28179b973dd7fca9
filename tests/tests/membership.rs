//! The Cluster service (reference/etcd-api.md §1.5) through etcdctl 3.4 and etcd-client: the
//! member list, growing a cluster one member at a time and removing the original, a learner
//! that catches up while writes run, etcd's errors, and member IDs that survive restarts. Each
//! scenario runs against cairn and against a real etcd where one is installed.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cairn_tests::{
    run_etcdctl_scenario,
    assert_grpc_error, grpc_code, grpc_message, wait_until, Backend, Cluster, Etcdctl,
    Input, Ran, ELECTION_TIMEOUT, START_TIMEOUT,
};
use etcd_client::{Client, GetOptions, Member};
use serde_json::Value;
use tonic::Code;

#[path = "membership/errors.rs"]
mod errors;
#[path = "membership/grow.rs"]
mod grow;
#[path = "membership/learner.rs"]
mod learner;
#[path = "membership/list.rs"]
mod list;
#[path = "membership/restart.rs"]
mod restart;
#[path = "membership/snapshot_join.rs"]
mod snapshot_join;

use errors::*;
use grow::*;
use learner::*;
use list::*;
use restart::*;
use snapshot_join::*;

const MEMBER_NOT_FOUND: &str = "etcdserver: member not found";
const PEER_URLS_EXIST: &str = "etcdserver: Peer URLs already exists";
const NOT_A_LEARNER: &str = "etcdserver: can only promote a learner member";
const LEARNER_NOT_READY: &str =
    "etcdserver: can only promote a learner member which is in sync with leader";
const TOO_MANY_LEARNERS: &str = "etcdserver: too many learner members in cluster";
const LEARNER_REFUSES: &str = "etcdserver: rpc not supported for learner";
/// etcd 3.5 refuses to add a member, or to remove a voter, while the member handling the request
/// has been connected to every peer for less than 5 s (its `HealthInterval`), as it is just
/// after a start or a join. The change is retried through it, never asserted.
const UNHEALTHY: &str = "etcdserver: unhealthy cluster";
/// How long a membership change may be refused as [`UNHEALTHY`], or a learner as not in sync.
const RECONFIGURE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long every member may take to apply a revision the cluster has reached.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(15);

macro_rules! scenario {
    ($scenario:ident, $members:expr) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cairn() {
                super::run(cairn_tests::Backend::Cairn, $members, super::$scenario).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn etcd() {
                super::run(cairn_tests::Backend::Etcd, $members, super::$scenario).await;
            }
        }
    };
}

scenario!(member_list, 3);
scenario!(grow_from_one_then_remove_the_original, 1);
scenario!(learner_catches_up_while_writes_run, 3);
scenario!(membership_errors, 3);
scenario!(restart_keeps_member_and_cluster_ids, 3);

mod new_member_catches_up_by_snapshot {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cairn() {
        super::run_with(cairn_tests::Backend::Cairn, 1, &[super::SNAPSHOT_COUNT], super::new_member_catches_up_by_snapshot).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcd() {
        super::run_with(cairn_tests::Backend::Etcd, 1, &[super::SNAPSHOT_COUNT], super::new_member_catches_up_by_snapshot).await;
    }
}

/// Starts the cluster and runs `scenario`, or skips when etcdctl or the backend is missing.
async fn run<F, Fut>(backend: Backend, members: usize, scenario: F)
where
    F: FnOnce(Cluster) -> Fut,
    Fut: Future<Output = ()>,
{
    run_etcdctl_scenario(backend, members, &[], scenario).await;
}

/// [`run`], with extra flags for every member.
async fn run_with<F, Fut>(backend: Backend, members: usize, flags: &[&str], scenario: F)
where
    F: FnOnce(Cluster) -> Fut,
    Fut: Future<Output = ()>,
{
    run_etcdctl_scenario(backend, members, flags, scenario).await;
}

/// etcdctl talking to member `index` only; [`run`] has checked that one is installed.
fn etcdctl_for(cluster: &Cluster, index: usize) -> Etcdctl {
    Etcdctl::find(&[cluster.endpoint(index).to_owned()]).expect("etcdctl is installed")
}

async fn client_for(cluster: &Cluster, index: usize) -> Client {
    cluster
        .member_client(index)
        .await
        .unwrap_or_else(|error| panic!("a client for member {index}: {error:#}"))
}

/// Runs a membership change through etcd-client, retrying while it is refused as
/// [`UNHEALTHY`]; any other outcome is returned for the caller to check.
async fn reconfigure<T, F, Fut>(what: &str, mut change: F) -> Result<T, etcd_client::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let refused = AtomicUsize::new(0);
    let refused_ref = &refused;
    let outcome = wait_until(what, RECONFIGURE_TIMEOUT, || {
        let attempt = change();
        async move {
            match attempt.await {
                Err(error) if grpc_message(&error) == UNHEALTHY => {
                    assert_eq!(grpc_code(&error), Some(Code::Unavailable), "{error}");
                    refused_ref.fetch_add(1, Ordering::Relaxed);
                    Err(anyhow::anyhow!("refused: {error}"))
                }
                outcome => Ok(outcome),
            }
        }
    })
    .await;
    report_refusals(what, refused.into_inner());
    outcome.unwrap_or_else(|error| panic!("{error:#}"))
}

/// Runs a membership change through etcdctl, retrying while it is refused as [`UNHEALTHY`].
async fn reconfigure_ctl(etcdctl: &Etcdctl, args: &[&str]) -> Ran {
    let what = format!("etcdctl {args:?} to be accepted");
    let refused = AtomicUsize::new(0);
    let outcome = wait_until(&what, RECONFIGURE_TIMEOUT, || async {
        let ran = etcdctl.run(args, Input::Nothing).await?;
        if ran.stderr.contains(UNHEALTHY) {
            refused.fetch_add(1, Ordering::Relaxed);
            anyhow::bail!("refused: {}", ran.stderr);
        }
        Ok(ran)
    })
    .await;
    report_refusals(&what, refused.into_inner());
    outcome.unwrap_or_else(|error| panic!("{error:#}"))
}

fn report_refusals(what: &str, refused: usize) {
    if refused > 0 {
        eprintln!("{what}: refused {refused} times as `{UNHEALTHY}` first");
    }
}

/// The member list as member `index` answers it through etcd-client.
async fn list_via(cluster: &Cluster, index: usize) -> Vec<Member> {
    let reply = client_for(cluster, index)
        .await
        .member_list()
        .await
        .unwrap_or_else(|error| panic!("member list via member {index}: {error}"));
    reply.members().to_vec()
}

/// The member with `id`; panics if it is not listed.
#[track_caller]
fn listed(members: &[Member], id: u64) -> &Member {
    members
        .iter()
        .find(|member| member.id() == id)
        .unwrap_or_else(|| panic!("{id:x} is not listed: {members:?}"))
}

fn ids(members: &[Member]) -> BTreeSet<u64> {
    members.iter().map(Member::id).collect()
}

/// The cluster ID in member `index`'s response headers.
async fn cluster_id(cluster: &Cluster, index: usize) -> u64 {
    let status = cluster
        .status(index)
        .await
        .unwrap_or_else(|error| panic!("status of member {index}: {error:#}"));
    status.header().expect("a header").cluster_id()
}

/// Asserts that `member` is member `index`, started: named, with its own peer and client URLs.
#[track_caller]
fn assert_started(cluster: &Cluster, index: usize, member: &Member) {
    assert_eq!(
        (
            member.id(),
            member.name(),
            member.peer_urls(),
            member.client_urls()
        ),
        (
            cluster.member_id(index),
            cluster.name(index),
            &[cluster.peer_url(index).to_owned()][..],
            &[cluster.endpoint(index).to_owned()][..],
        ),
        "member {index} as listed"
    );
}

/// Waits until member `index` serves a linearizable read, which a learner refuses.
async fn wait_serving(cluster: &Cluster, index: usize) {
    let what = format!("member {index} to serve a linearizable read");
    wait_until(&what, START_TIMEOUT, || async {
        let mut client = cluster.member_client(index).await?;
        client.get("health", None).await?;
        Ok(())
    })
    .await
    .unwrap_or_else(|error| panic!("{error:#}\n{}", cluster.all_log_tails()));
}

/// Waits until member `via` lists member `index` as started (named, with client URLs): a new
/// member publishes these itself once it has joined, and etcd refuses to add a further voter
/// until it has.
async fn wait_published(cluster: &Cluster, via: usize, index: usize) {
    let what = format!("member {via} to list member {index} as started");
    wait_until(&what, START_TIMEOUT, || async {
        let mut client = cluster.member_client(via).await?;
        let reply = client.member_list().await?;
        let member = reply
            .members()
            .iter()
            .find(|member| member.id() == cluster.member_id(index));
        anyhow::ensure!(
            member.is_some_and(|member| !member.name().is_empty()),
            "listed as {member:?}"
        );
        Ok(())
    })
    .await
    .unwrap_or_else(|error| panic!("{error:#}"));
}

/// What `etcdctl member add` prints: `Member <id> added to cluster <id>` (both `%16x`, padded
/// with spaces), then the settings the new member must start with. Returns the new ID.
#[track_caller]
fn check_member_add_output(
    stdout: &str,
    cluster_id: u64,
    name: &str,
    peer_url: &str,
    initial_cluster: &BTreeSet<String>,
) -> u64 {
    let first = stdout.lines().next().unwrap_or_default();
    let id = first
        .split_whitespace()
        .nth(1)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or_else(|| panic!("no member ID in {stdout:?}"));
    assert_eq!(
        first,
        format!("Member {id:>16x} added to cluster {cluster_id:>16x}"),
        "{stdout:?}"
    );
    let settings: BTreeMap<&str, &str> = stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key, value.trim_matches('"')))
        .collect();
    assert_eq!(settings.get("ETCD_NAME"), Some(&name), "{stdout}");
    assert_eq!(
        settings.get("ETCD_INITIAL_ADVERTISE_PEER_URLS"),
        Some(&peer_url),
        "{stdout}"
    );
    assert_eq!(
        settings.get("ETCD_INITIAL_CLUSTER_STATE"),
        Some(&"existing"),
        "{stdout}"
    );
    let printed = settings
        .get("ETCD_INITIAL_CLUSTER")
        .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER in {stdout}"));
    assert_eq!(
        &entries(printed),
        initial_cluster,
        "every member, by name, plus the new one: {stdout}"
    );
    id
}

/// The entries of an `--initial-cluster` value, in no particular order.
fn entries(initial_cluster: &str) -> BTreeSet<String> {
    initial_cluster.split(',').map(str::to_owned).collect()
}

/// Every pair under `prefix`, by a linearizable read through member `index`.
async fn pairs(cluster: &Cluster, index: usize, prefix: &str) -> BTreeMap<String, String> {
    let reply = client_for(cluster, index)
        .await
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .unwrap_or_else(|error| panic!("a linearizable get through member {index}: {error}"));
    reply
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().expect("utf-8 key").to_owned(),
                kv.value_str().expect("utf-8 value").to_owned(),
            )
        })
        .collect()
}

#[track_caller]
fn as_u64(value: &Value, field: &str) -> u64 {
    value[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no unsigned {field}: {value}"))
}
