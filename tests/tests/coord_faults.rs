//! Watches and leases on three members while the leader dies. Each scenario runs against cairn
//! and against etcd 3.4 (the `crash_scenario!` macro explains why 3.4 is the reference).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cairn_tests::{connect, wait_until, Cluster, ELECTION_TIMEOUT};
use etcd_client::{EventType, GetOptions, PutOptions, WatchOptions};
use tokio::time::{timeout, Instant};

/// Both servers run with the default `--election-timeout` of 1 s.
const RAFT_ELECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// Room for the expiry check loop (etcd 3.4 looks every 500 ms), the revoke's commit and the
/// delete event's delivery on a loaded 2-core machine.
const EXPIRY_SLACK: Duration = Duration::from_millis(1500);
/// Per-attempt limits, so that every loop here ends.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const READ_TIMEOUT: Duration = Duration::from_secs(1);
const BACKOFF: Duration = Duration::from_millis(50);
const MAX_WRITES_PER_WRITER: usize = 20_000;
const ACKS_PER_PHASE: usize = 40;
const LEASE_TTL: i64 = 3;

use cairn_tests::crash_scenario;

crash_scenario!(watcher_resumes_after_leader_kill);
crash_scenario!(kept_alive_lease_survives_leader_kill);
crash_scenario!(idle_lease_expires_within_ttl_and_an_election_timeout);
crash_scenario!(idle_lease_expires_after_leader_kill);
crash_scenario!(leader_without_quorum_stops_renewing);

type Acked = Arc<Mutex<Vec<(String, i64)>>>;

fn acked_len(acked: &Acked) -> usize {
    acked.lock().unwrap_or_else(PoisonError::into_inner).len()
}

async fn wait_for_acks(acked: &Acked, count: usize) {
    wait_until(&format!("{count} acknowledged writes"), ELECTION_TIMEOUT * 2, || async {
        let n = acked_len(acked);
        anyhow::ensure!(n >= count, "{n} so far");
        Ok(())
    })
    .await
    .expect("writes are acknowledged");
}

/// Puts unique keys under `busy/` through every endpoint until told to stop, recording the
/// revision of each acknowledged put.
fn spawn_writer(endpoints: Vec<String>, writer: usize, acked: Acked, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut client = connect(&endpoints, CONNECT_TIMEOUT).await.expect("a writer connects");
        for i in 0..MAX_WRITES_PER_WRITER {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let key = format!("busy/{writer}/{i:05}");
            match timeout(CONNECT_TIMEOUT * 3, client.put(key.as_str(), "v", None)).await {
                Ok(Ok(reply)) => {
                    let revision = reply.header().expect("a header").revision();
                    acked.lock().unwrap_or_else(PoisonError::into_inner).push((key, revision));
                }
                _ => tokio::time::sleep(BACKOFF).await,
            }
        }
    })
}

/// What the resuming watcher saw.
#[derive(Default)]
struct Watched {
    events: Vec<(String, i64)>,
    reconnects: usize,
}

/// Follows `busy/` from `start`, first through `first`, then through whichever member answers,
/// always resuming at the last revision seen + 1, until it has seen `target` (once set).
async fn resuming_watcher(endpoints: Vec<String>, first: usize, start: i64, target: Arc<AtomicI64>) -> Watched {
    let mut seen = Watched::default();
    let mut last = start - 1;
    let mut member = first;
    let deadline = Instant::now() + Duration::from_secs(120);
    'connect: while Instant::now() < deadline {
        let goal = target.load(Ordering::SeqCst);
        if goal > 0 && last >= goal {
            return seen;
        }
        let endpoint = &endpoints[member % endpoints.len()];
        member += 1;
        let Ok(Ok(mut client)) = timeout(CONNECT_TIMEOUT, connect(&[endpoint], CONNECT_TIMEOUT)).await else {
            tokio::time::sleep(BACKOFF).await;
            continue;
        };
        let options = WatchOptions::new().with_prefix().with_start_revision(last + 1);
        let Ok(Ok(mut stream)) = timeout(CONNECT_TIMEOUT, client.watch("busy/", Some(options))).await else {
            tokio::time::sleep(BACKOFF).await;
            continue;
        };
        seen.reconnects += 1;
        loop {
            let goal = target.load(Ordering::SeqCst);
            if goal > 0 && last >= goal {
                return seen;
            }
            match timeout(READ_TIMEOUT, stream.message()).await {
                Ok(Ok(Some(reply))) => {
                    assert!(!reply.canceled() || reply.compact_revision() == 0, "nothing is compacted here: {reply:?}");
                    for event in reply.events() {
                        let kv = event.kv().expect("an event carries its key");
                        let revision = kv.mod_revision();
                        seen.events.push((kv.key_str().expect("utf-8 key").to_owned(), revision));
                        last = last.max(revision);
                    }
                }
                Ok(Ok(None)) | Ok(Err(_)) => continue 'connect,
                Err(_) => {}
            }
        }
    }
    panic!("the watcher did not reach revision {} by its deadline (at {last})", target.load(Ordering::SeqCst));
}

/// A watcher on a busy prefix, connected to the leader, which is killed and restarted: it
/// resumes elsewhere from its last revision + 1 and sees every acknowledged write exactly
/// once, in revision order.
async fn watcher_resumes_after_leader_kill(mut cluster: Cluster) {
    let leader = cluster.wait_for_leader(ELECTION_TIMEOUT).await.expect("a leader");
    let mut client = cluster.client().await.expect("a client");
    let start = client.put("busy-start", "", None).await.expect("a put").header().expect("a header").revision() + 1;
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let target = Arc::new(AtomicI64::new(0));
    let watcher = tokio::spawn(resuming_watcher(cluster.endpoints(), leader, start, target.clone()));
    let writers: Vec<_> = (0..2).map(|w| spawn_writer(cluster.endpoints(), w, acked.clone(), stop.clone())).collect();

    wait_for_acks(&acked, ACKS_PER_PHASE).await;
    cluster.kill(leader).expect("SIGKILL the leader");
    cluster.wait_for_leader(ELECTION_TIMEOUT).await.expect("a new leader");
    wait_for_acks(&acked, acked_len(&acked) + ACKS_PER_PHASE).await;
    cluster.restart(leader).await.expect("the old leader restarts");
    wait_for_acks(&acked, acked_len(&acked) + ACKS_PER_PHASE).await;
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.expect("a writer ends");
    }

    let acked = acked.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let last = acked.iter().map(|(_, rev)| *rev).max().expect("writes were acknowledged");
    target.store(last, Ordering::SeqCst);
    let seen = watcher.await.expect("the watcher ends");
    assert!(seen.reconnects >= 2, "the watcher lost its member and reconnected ({} connections)", seen.reconnects);
    let revisions: Vec<i64> = seen.events.iter().map(|(_, rev)| *rev).collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "events in strictly increasing revision order, no duplicates");
    let events: HashSet<&(String, i64)> = seen.events.iter().collect();
    let missing: Vec<_> = acked.iter().filter(|a| !events.contains(a)).collect();
    assert!(missing.is_empty(), "{} acknowledged writes never reached the watcher, e.g. {:?}", missing.len(), missing.first());
}

/// A lease kept alive (through whichever member answers) across a leader kill keeps its key.
async fn kept_alive_lease_survives_leader_kill(mut cluster: Cluster) {
    let leader = cluster.wait_for_leader(ELECTION_TIMEOUT).await.expect("a leader");
    let mut client = cluster.client().await.expect("a client");
    let lease = client.lease_grant(LEASE_TTL, None).await.expect("grant").id();
    client.put("kept/key", "v", Some(PutOptions::new().with_lease(lease))).await.expect("put with the lease");

    let stop = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicUsize::new(0));
    let keeper = {
        let (endpoints, stop, lost) = (cluster.endpoints(), stop.clone(), lost.clone());
        tokio::spawn(async move {
            let mut member = leader;
            while !stop.load(Ordering::SeqCst) {
                let endpoint = endpoints[member % endpoints.len()].clone();
                member += 1;
                let Ok(Ok(mut client)) = timeout(CONNECT_TIMEOUT, connect(&[endpoint], CONNECT_TIMEOUT)).await else { continue };
                let Ok(Ok((mut keeper, mut replies))) = timeout(CONNECT_TIMEOUT, client.lease_keep_alive(lease)).await else { continue };
                while !stop.load(Ordering::SeqCst) {
                    if keeper.keep_alive().await.is_err() {
                        break;
                    }
                    // A keep-alive waits for a leader; an election takes well under 8 s.
                    match timeout(Duration::from_secs(8), replies.message()).await {
                        Ok(Ok(Some(reply))) if reply.ttl() > 0 => {}
                        Ok(Ok(Some(_))) => {
                            lost.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => break,
                    }
                    // The Go client's pace: a keep-alive every TTL/3.
                    tokio::time::sleep(Duration::from_millis(LEASE_TTL as u64 * 1000 / 3)).await;
                }
            }
        })
    };

    cluster.kill(leader).expect("SIGKILL the leader");
    cluster.wait_for_leader(ELECTION_TIMEOUT).await.expect("a new leader");
    // Two full TTLs after the election: an unrenewed lease would be gone by then.
    tokio::time::sleep(Duration::from_secs(2 * LEASE_TTL as u64)).await;
    let mut client = cluster.client().await.expect("a client");
    let left = client.get("kept/key", None).await.expect("get").kvs().len();
    let ttl = client.lease_time_to_live(lease, None).await.expect("time to live").ttl();
    stop.store(true, Ordering::SeqCst);
    keeper.await.expect("the keeper ends");
    assert_eq!(lost.load(Ordering::SeqCst), 0, "no keep-alive found the lease gone");
    assert_eq!(left, 1, "the key of a kept-alive lease survives the leader's death");
    assert!(ttl > 0, "the lease is still alive (TTL {ttl})");
    cluster.restart(leader).await.expect("the old leader restarts");
}

/// Waits for the DELETE of `key` (from `after`) on member `index`; returns when it was seen.
async fn deleted_at(cluster: &Cluster, index: usize, key: &str, after: i64) -> Instant {
    let mut client = cluster.member_client(index).await.expect("a client");
    let options = WatchOptions::new().with_start_revision(after + 1);
    let mut stream = client.watch(key, Some(options)).await.expect("a watch");
    let deadline = Instant::now() + Duration::from_secs(LEASE_TTL as u64) + ELECTION_TIMEOUT;
    loop {
        let reply = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("the lease expires before the deadline")
            .expect("the watch stream stays up")
            .expect("the watch stream stays open");
        if reply.events().iter().any(|e| e.event_type() == EventType::Delete) {
            return Instant::now();
        }
    }
}

/// A lease nobody keeps alive expires no sooner than its TTL and within its TTL plus one
/// election timeout, and takes its key with it.
async fn idle_lease_expires_within_ttl_and_an_election_timeout(cluster: Cluster) {
    let leader = cluster.wait_for_leader(ELECTION_TIMEOUT).await.expect("a leader");
    let follower = (leader + 1) % cluster.size();
    let mut client = cluster.member_client(leader).await.expect("a client");
    let sent = Instant::now();
    let lease = client.lease_grant(LEASE_TTL, None).await.expect("grant").id();
    let granted = Instant::now();
    let put = client.put("idle/key", "v", Some(PutOptions::new().with_lease(lease))).await.expect("put");
    let revision = put.header().expect("a header").revision();
    let gone = deleted_at(&cluster, follower, "idle/key", revision).await;
    let ttl = Duration::from_secs(LEASE_TTL as u64);
    assert!(gone - sent >= ttl, "expired after {:?}, before its TTL", gone - sent);
    assert!(gone - granted <= ttl + RAFT_ELECTION_TIMEOUT + EXPIRY_SLACK, "expired only after {:?}", gone - granted);
    let left = client.get("idle/", Some(GetOptions::new().with_prefix())).await.expect("get").kvs().len();
    assert_eq!(left, 0);
}

/// The leader that granted an idle lease dies: the new leader still expires it, at most its TTL
/// plus one election timeout after it took over.
async fn idle_lease_expires_after_leader_kill(mut cluster: Cluster) {
    let leader = cluster.wait_for_leader(ELECTION_TIMEOUT).await.expect("a leader");
    let mut client = cluster.member_client(leader).await.expect("a client");
    let lease = client.lease_grant(LEASE_TTL, None).await.expect("grant").id();
    let put = client.put("orphan/key", "v", Some(PutOptions::new().with_lease(lease))).await.expect("put");
    let revision = put.header().expect("a header").revision();
    cluster.kill(leader).expect("SIGKILL the leader");
    let new_leader = cluster.wait_for_leader(ELECTION_TIMEOUT).await.expect("a new leader");
    let elected = Instant::now();
    let gone = deleted_at(&cluster, new_leader, "orphan/key", revision).await;
    let bound = Duration::from_secs(LEASE_TTL as u64) + RAFT_ELECTION_TIMEOUT + EXPIRY_SLACK;
    assert!(gone - elected <= bound, "expired {:?} after the election", gone - elected);
    cluster.restart(leader).await.expect("the old leader restarts");
}

/// A leader that has lost both followers must stop renewing leases: the others may already
/// have elected a leader whose lease clocks run without its renewals. etcd's leader steps down
/// one to two election timeouts after it last heard from a quorum (CheckQuorum); Cairn's renews
/// without a read-index round only for half an election timeout after its last one.
async fn leader_without_quorum_stops_renewing(mut cluster: Cluster) {
    // Renewal attempts are watched this long after the followers die, well past the bound.
    const WATCH_FOR: Duration = Duration::from_secs(5);
    let bound = 2 * RAFT_ELECTION_TIMEOUT + Duration::from_millis(500);
    let leader = cluster.wait_for_leader(ELECTION_TIMEOUT).await.expect("a leader");
    let mut client = cluster.member_client(leader).await.expect("a client");
    let lease = client.lease_grant(60, None).await.expect("grant").id();
    // etcd-client's keep-alive sends its first request and waits for a reply with a TTL.
    timeout(READ_TIMEOUT * 5, client.lease_keep_alive(lease))
        .await
        .expect("a renewal in time")
        .expect("the leader renews while it has its quorum");
    for follower in (0..cluster.size()).filter(|&i| i != leader) {
        cluster.kill(follower).expect("SIGKILL a follower");
    }
    let lost = Instant::now();
    let (mut last_renewed, mut refused) = (None, 0);
    while lost.elapsed() < WATCH_FOR {
        match timeout(READ_TIMEOUT, client.lease_keep_alive(lease)).await {
            // The renewal happened before its answer arrived: taking the arrival bounds it.
            Ok(Ok(_)) => last_renewed = Some(Instant::now()),
            _ => {
                refused += 1;
                tokio::time::sleep(BACKOFF).await;
            }
        }
    }
    assert!(refused > 0, "the leader kept renewing for {WATCH_FOR:?} without a quorum");
    if let Some(at) = last_renewed {
        assert!(at - lost <= bound, "a renewal was answered {:?} after the quorum was lost", at - lost);
    }
}

/// Cairn only (etcd 3.4 and 3.5 checkpoint every 5 minutes at best): with checkpoints every
/// second, a new leader starts a long lease from its last recorded remaining TTL, not from its
/// full TTL again.
mod checkpointed_lease_keeps_its_remaining_ttl {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cairn() {
        super::checkpointed_lease_keeps_its_remaining_ttl().await;
    }
}

async fn checkpointed_lease_keeps_its_remaining_ttl() {
    const TTL: i64 = 30;
    let flags = ["--experimental-lease-checkpoint-interval=1s"];
    let mut cluster = Cluster::start_with(cairn_tests::Backend::Cairn, 3, &flags).await.expect("a cluster starts").expect("cairn is built");
    let leader = cluster.wait_for_leader(ELECTION_TIMEOUT).await.expect("a leader");
    let mut client = cluster.member_client(leader).await.expect("a client");
    let lease = client.lease_grant(TTL, None).await.expect("grant").id();
    // Let the lease run down by a few seconds, which several checkpoints record.
    wait_until("the lease to run down to 26 s", Duration::from_secs(10), || {
        let mut client = client.clone();
        async move {
            let left = client.lease_time_to_live(lease, None).await?.ttl();
            anyhow::ensure!(left <= TTL - 4, "{left} s left");
            Ok(())
        }
    })
    .await
    .expect("the lease runs down");
    cluster.kill(leader).expect("SIGKILL the leader");
    let new_leader = cluster.wait_for_leader(ELECTION_TIMEOUT).await.expect("a new leader");
    let mut client = cluster.member_client(new_leader).await.expect("a client");
    let left = client.lease_time_to_live(lease, None).await.expect("time to live").ttl();
    // The new leader adds one election timeout (1 s) to the last checkpoint, taken at most a
    // second before the kill; without checkpoints it would report the full 30 s.
    assert!((1..=TTL - 2).contains(&left), "the new leader gives the lease {left} s of {TTL}");
    cluster.restart(leader).await.expect("the old leader restarts");
}
