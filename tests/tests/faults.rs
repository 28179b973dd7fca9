//! Three-member clusters under failure: elections, catch-up, and no acknowledged write lost.
//! Each scenario runs against cairn and against a real etcd where one is installed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cairn_tests::{wait_until, Cluster, ELECTION_TIMEOUT, START_TIMEOUT};
use etcd_client::{Client, GetOptions};
use tokio::task::JoinHandle;

/// How long every member may take to apply a revision the cluster has reached.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(15);
/// Writes that must be acknowledged before (and again after) a fault is injected.
const ACKS_AROUND_FAULT: usize = 20;
/// Upper bound on the put attempts of one writer, so a writer always ends.
const MAX_ATTEMPTS_PER_WRITER: usize = 5_000;
const WRITERS: usize = 3;
/// Pause after a failed put, so writers facing an election do not spin.
const BACKOFF: Duration = Duration::from_millis(20);

use cairn_tests::crash_scenario;

crash_scenario!(elects_leader_and_replicates_writes);
crash_scenario!(leader_failover_and_catch_up);
crash_scenario!(graceful_leader_stop);
crash_scenario!(no_acknowledged_write_lost_when_leader_dies);
crash_scenario!(all_members_killed_and_restarted);

/// Raft snapshots every 100 entries, so a member that misses more than that finds the log it
/// needs purged and must be sent a snapshot.
const SNAPSHOT_COUNT: &str = "--snapshot-count=100";
const WRITES_WHILE_DOWN: usize = 600;

mod lagging_member_catches_up_by_snapshot {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cairn() {
        super::lagging_member_catches_up_by_snapshot(cairn_tests::Backend::Cairn).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcd34() {
        super::lagging_member_catches_up_by_snapshot(cairn_tests::Backend::Etcd34).await;
    }
}

async fn lagging_member_catches_up_by_snapshot(backend: cairn_tests::Backend) {
    let cluster = Cluster::start_with(backend, 3, &[SNAPSHOT_COUNT]).await.expect("a cluster starts");
    let Some(mut cluster) = cluster else {
        eprintln!("skipped: no {} installed", backend.name());
        return;
    };
    let leader = cluster.wait_for_leader(ELECTION_TIMEOUT).await.expect("a leader");
    let lagging = (leader + 1) % cluster.size();
    put_acknowledged(&cluster, "lag/first", "0").await;
    cluster.kill(lagging).expect("SIGKILL a follower");

    // One at a time: concurrent puts would share log entries (group commit), and this needs
    // many more entries than the snapshot count.
    let mut client = cluster.member_client(leader).await.expect("a client");
    for i in 0..WRITES_WHILE_DOWN {
        client.put(format!("lag/{i:04}"), format!("v{i}"), None).await.expect("a put with two of three members up");
    }
    let revision = current_revision(&cluster).await;

    cluster.restart(lagging).await.expect("the follower restarts");
    cluster
        .wait_for_revision(lagging, revision, CATCH_UP_TIMEOUT)
        .await
        .expect("the lagging member catches up");
    let pairs = local_pairs(&cluster, lagging, "lag/").await;
    assert_eq!(pairs.len(), WRITES_WHILE_DOWN + 1, "every key reached the lagging member");
    assert_eq!(pairs.get("lag/0599").map(String::as_str), Some("v599"));
    if backend == cairn_tests::Backend::Cairn {
        // A member that installed a raft snapshot switched to a new state directory.
        let pointer = cluster.data_dir(lagging).join("state.current");
        assert!(pointer.exists(), "the lagging member caught up from a snapshot, not from the log");
    }
}

async fn elects_leader_and_replicates_writes(cluster: Cluster) {
    let leader = cluster
        .wait_for_leader(ELECTION_TIMEOUT)
        .await
        .expect("a leader");
    let statuses = [cluster.status(0), cluster.status(1), cluster.status(2)];
    for (index, status) in statuses.into_iter().enumerate() {
        let status = status.await.expect("status");
        assert_eq!(
            status.leader(),
            cluster.member_id(leader),
            "member {index} names the leader"
        );
    }
    let mut last = 0;
    for index in 0..cluster.size() {
        let mut client = cluster.member_client(index).await.expect("a client");
        let reply = client
            .put(format!("replicate/from-{index}"), format!("v{index}"), None)
            .await
            .unwrap_or_else(|error| panic!("a write through member {index}: {error}"));
        last = reply.header().expect("a header").revision();
    }
    let expected: BTreeMap<String, String> = (0..cluster.size())
        .map(|index| (format!("replicate/from-{index}"), format!("v{index}")))
        .collect();
    for index in 0..cluster.size() {
        cluster
            .wait_for_revision(index, last, CATCH_UP_TIMEOUT)
            .await
            .expect("every member applies every write");
        assert_eq!(
            local_pairs(&cluster, index, "replicate/").await,
            expected,
            "member {index}"
        );
    }
}

async fn leader_failover_and_catch_up(mut cluster: Cluster) {
    let old_leader = cluster
        .wait_for_leader(ELECTION_TIMEOUT)
        .await
        .expect("a leader");
    let old_term = raft_term(&cluster, old_leader).await;
    put_acknowledged(&cluster, "failover/before", "1").await;

    cluster.kill(old_leader).expect("SIGKILL the leader");
    let new_leader = cluster
        .wait_for_leader(ELECTION_TIMEOUT)
        .await
        .expect("a new leader");
    assert_ne!(new_leader, old_leader);
    assert!(
        raft_term(&cluster, new_leader).await > old_term,
        "an election starts a new term"
    );
    let revision = put_acknowledged(&cluster, "failover/after", "2").await;

    cluster
        .restart(old_leader)
        .await
        .expect("the old leader restarts");
    cluster
        .wait_for_revision(old_leader, revision, CATCH_UP_TIMEOUT)
        .await
        .expect("the restarted member catches up");
    let expected = BTreeMap::from([
        ("failover/after".to_owned(), "2".to_owned()),
        ("failover/before".to_owned(), "1".to_owned()),
    ]);
    assert_eq!(
        local_pairs(&cluster, old_leader, "failover/").await,
        expected
    );
}

/// SIGTERM: the leader exits promptly, the others carry on, and it rejoins with its data.
async fn graceful_leader_stop(mut cluster: Cluster) {
    let old_leader = cluster
        .wait_for_leader(ELECTION_TIMEOUT)
        .await
        .expect("a leader");
    put_acknowledged(&cluster, "stop/before", "1").await;
    cluster
        .stop(old_leader)
        .await
        .expect("the leader exits on SIGTERM");
    let new_leader = cluster
        .wait_for_leader(ELECTION_TIMEOUT)
        .await
        .expect("a new leader");
    assert_ne!(new_leader, old_leader);
    let revision = put_acknowledged(&cluster, "stop/after", "2").await;

    cluster
        .restart(old_leader)
        .await
        .expect("the old leader restarts");
    cluster
        .wait_for_revision(old_leader, revision, CATCH_UP_TIMEOUT)
        .await
        .expect("the restarted member catches up");
    let expected = BTreeMap::from([
        ("stop/after".to_owned(), "2".to_owned()),
        ("stop/before".to_owned(), "1".to_owned()),
    ]);
    assert_eq!(local_pairs(&cluster, old_leader, "stop/").await, expected);
}

async fn no_acknowledged_write_lost_when_leader_dies(mut cluster: Cluster) {
    let leader = cluster
        .wait_for_leader(ELECTION_TIMEOUT)
        .await
        .expect("a leader");
    let writers = Writers::start(cluster.client().await.expect("a client"), "acked/");
    writers.wait_for_acks(ACKS_AROUND_FAULT).await;

    cluster.kill(leader).expect("SIGKILL the leader");
    let acked_at_kill = writers.acked();
    cluster
        .wait_for_leader(ELECTION_TIMEOUT)
        .await
        .expect("a new leader");
    writers
        .wait_for_acks(acked_at_kill + ACKS_AROUND_FAULT)
        .await;
    let acked = writers.finish().await;
    eprintln!(
        "{} writes acknowledged, {acked_at_kill} of them before the kill",
        acked.len()
    );

    assert_all_present(&cluster, "acked/", &acked).await;
    cluster
        .restart(leader)
        .await
        .expect("the old leader restarts");
    let revision = current_revision(&cluster).await;
    cluster
        .wait_for_revision(leader, revision, CATCH_UP_TIMEOUT)
        .await
        .expect("the restarted member catches up");
    let local = local_pairs(&cluster, leader, "acked/").await;
    for (key, value) in &acked {
        assert_eq!(local.get(key), Some(value), "{key} on the restarted member");
    }
}

async fn all_members_killed_and_restarted(mut cluster: Cluster) {
    cluster
        .wait_for_leader(ELECTION_TIMEOUT)
        .await
        .expect("a leader");
    let writers = Writers::start(cluster.client().await.expect("a client"), "durable/");
    writers.wait_for_acks(ACKS_AROUND_FAULT).await;
    for index in 0..cluster.size() {
        cluster.kill(index).expect("SIGKILL");
    }
    let acked = writers.finish().await;
    eprintln!(
        "{} writes acknowledged before every member was killed",
        acked.len()
    );

    for index in 0..cluster.size() {
        cluster.relaunch(index).expect("relaunch");
    }
    cluster
        .wait_for_leader(START_TIMEOUT)
        .await
        .expect("a leader after restart");
    assert_all_present(&cluster, "durable/", &acked).await;
    let revision = current_revision(&cluster).await;
    for index in 0..cluster.size() {
        cluster
            .wait_for_revision(index, revision, CATCH_UP_TIMEOUT)
            .await
            .expect("every member recovers");
        let local = local_pairs(&cluster, index, "durable/").await;
        for (key, value) in &acked {
            assert_eq!(local.get(key), Some(value), "{key} on member {index}");
        }
    }
}

/// Concurrent writers, each putting fresh keys until told to stop, remembering every put the
/// cluster acknowledged.
struct Writers {
    acked: Arc<Mutex<Vec<(String, String)>>>,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Writers {
    fn start(client: Client, prefix: &str) -> Writers {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..WRITERS)
            .map(|writer| {
                let (mut client, prefix) = (client.clone(), prefix.to_owned());
                let (acked, count, stop) = (acked.clone(), count.clone(), stop.clone());
                tokio::spawn(async move {
                    for attempt in 0..MAX_ATTEMPTS_PER_WRITER {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let key = format!("{prefix}w{writer}/{attempt:05}");
                        let value = format!("{writer}-{attempt}");
                        match client.put(key.clone(), value.clone(), None).await {
                            Ok(_) => {
                                acked
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .push((key, value));
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => tokio::time::sleep(BACKOFF).await,
                        }
                    }
                })
            })
            .collect();
        Writers {
            acked,
            count,
            stop,
            tasks,
        }
    }

    fn acked(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    async fn wait_for_acks(&self, target: usize) {
        let what = format!("{target} acknowledged writes");
        wait_until(&what, ELECTION_TIMEOUT, || async {
            let acked = self.acked();
            anyhow::ensure!(acked >= target, "{acked} so far");
            Ok(())
        })
        .await
        .expect("writes are acknowledged");
    }

    /// Stops the writers and returns every acknowledged (key, value).
    async fn finish(self) -> Vec<(String, String)> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a writer task");
        }
        std::mem::take(&mut *self.acked.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A put that must be acknowledged within the election timeout (retrying through elections).
async fn put_acknowledged(cluster: &Cluster, key: &str, value: &str) -> i64 {
    let client = cluster.client().await.expect("a client");
    wait_until(
        &format!("a write of {key} to be acknowledged"),
        ELECTION_TIMEOUT,
        || {
            let mut client = client.clone();
            async move {
                let reply = client.put(key, value, None).await?;
                Ok(reply.header().map_or(0, |header| header.revision()))
            }
        },
    )
    .await
    .expect("writes resume")
}

async fn raft_term(cluster: &Cluster, index: usize) -> u64 {
    cluster.status(index).await.expect("status").raft_term()
}

/// The cluster's revision, read linearizably through the running members.
async fn current_revision(cluster: &Cluster) -> i64 {
    let client = cluster.client().await.expect("a client");
    wait_until("a linearizable read", ELECTION_TIMEOUT, || {
        let mut client = client.clone();
        async move {
            let reply = client.get("health", None).await?;
            Ok(reply.header().map_or(0, |header| header.revision()))
        }
    })
    .await
    .expect("the cluster answers reads")
}

/// What member `index` holds under `prefix`, by a serializable (local) read.
async fn local_pairs(cluster: &Cluster, index: usize, prefix: &str) -> BTreeMap<String, String> {
    let mut client = cluster.member_client(index).await.expect("a client");
    let reply = client
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_serializable()),
        )
        .await
        .expect("a serializable read");
    reply
        .kvs()
        .iter()
        .map(|kv| {
            let key = kv.key_str().expect("utf-8 key").to_owned();
            (key, kv.value_str().expect("utf-8 value").to_owned())
        })
        .collect()
}

/// Every acknowledged write is there, by a linearizable read through the running members.
async fn assert_all_present(cluster: &Cluster, prefix: &str, acked: &[(String, String)]) {
    assert!(!acked.is_empty(), "some writes must have been acknowledged");
    let client = cluster.client().await.expect("a client");
    let reply = wait_until("a linearizable read", ELECTION_TIMEOUT, || {
        let mut client = client.clone();
        async move {
            Ok(client
                .get(prefix, Some(GetOptions::new().with_prefix()))
                .await?)
        }
    })
    .await
    .expect("the cluster answers reads");
    let stored: BTreeMap<&[u8], &[u8]> = reply
        .kvs()
        .iter()
        .map(|kv| (kv.key(), kv.value()))
        .collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|(key, value)| stored.get(key.as_bytes()) != Some(&value.as_bytes()))
        .map(|(key, _)| key)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {lost:?}",
        lost.len(),
        acked.len()
    );
}
