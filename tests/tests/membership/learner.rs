//! A learner added while a writer runs: what it refuses, its promotion once in sync, and the
//! same store on every member afterwards.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::*;

/// Upper bound on the writer's put attempts, so it always ends.
const MAX_WRITES: usize = 50_000;
/// Pause after a failed put, so the writer does not spin.
const BACKOFF: Duration = Duration::from_millis(20);

/// `member add --learner` while a writer runs; the learner refuses writes and linearizable reads
/// but serves serializable ones; promotion is refused until it is in sync, then succeeds; once
/// the writer stops, every member has the same HashKV at the same revision.
pub(super) async fn learner_catches_up_while_writes_run(mut cluster: Cluster) {
    let cluster_id = cluster_id(&cluster, 0).await;
    let writer = Writer::start(client_for(&cluster, 0).await);
    writer.wait_for_acks(10).await;

    let learner = cluster.plan_member("m3").expect("ports for a learner");
    let peer_url = cluster.peer_url(learner).to_owned();
    let mut initial_cluster = entries(&cluster.initial_cluster().await.expect("the members"));
    initial_cluster.insert(format!("m3={peer_url}"));
    let ran = reconfigure_ctl(
        &etcdctl_for(&cluster, 1),
        &[
            "member",
            "add",
            "m3",
            "--learner",
            &format!("--peer-urls={peer_url}"),
        ],
    )
    .await;
    assert!(ran.success, "member add --learner: {}", ran.stderr);
    let id = check_member_add_output(&ran.stdout, cluster_id, "m3", &peer_url, &initial_cluster);
    check_listed_learner(&cluster, id, &peer_url).await;

    let client = client_for(&cluster, 0).await;
    assert_grpc_error(
        client.clone().member_promote(id).await,
        Code::FailedPrecondition,
        LEARNER_NOT_READY,
    );

    let joined = cluster.join(learner).await.expect("the learner starts");
    assert_eq!(
        joined, id,
        "the learner takes the ID that member add gave it"
    );
    check_learner_refusals(&cluster, learner).await;

    let refused = promote_when_in_sync(&client, id).await;
    eprintln!("promotion was refused {refused} times while the learner caught up");
    let acked = writer.finish().await;
    assert!(
        acked >= 10,
        "the writer ran throughout ({acked} puts acknowledged)"
    );

    let list = list_via(&cluster, learner).await;
    assert_eq!(list.len(), 4, "{list:?}");
    for index in cluster.running() {
        let member = listed(&list, cluster.member_id(index));
        assert_started(&cluster, index, member);
        assert!(!member.is_learner(), "{member:?}");
    }
    let mut promoted = client_for(&cluster, learner).await;
    promoted
        .put("learner/through-promoted", "1", None)
        .await
        .expect("a promoted member takes writes");
    let keys = promoted
        .get(
            "learner/w",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .expect("a promoted member serves linearizable reads");
    // A put that failed may still have been applied, under the key the next attempt reuses.
    let written = usize::try_from(keys.count()).expect("a count");
    assert!(
        written == acked || written == acked + 1,
        "every acknowledged put reached it: {written} keys, {acked} acknowledged"
    );

    same_hash_everywhere(&cluster).await;
}

/// The learner in `member list -w json`: `isLearner` true, not started yet.
async fn check_listed_learner(cluster: &Cluster, id: u64, peer_url: &str) {
    let json = etcdctl_for(cluster, 0).json(&["member", "list"]).await;
    let members = json["members"].as_array().expect("a members array");
    let learner = members
        .iter()
        .find(|member| as_u64(member, "ID") == id)
        .unwrap_or_else(|| panic!("the learner is listed: {json}"));
    assert_eq!(
        learner,
        &serde_json::json!({"ID": id, "peerURLs": [peer_url], "isLearner": true}),
        "an unstarted learner: no name, no client URLs"
    );
    let voters = members
        .iter()
        .filter(|member| member.get("isLearner").is_none());
    assert_eq!(voters.count(), 3, "{json}");
}

/// What the learner answers while it catches up: Status and serializable reads, nothing else.
async fn check_learner_refusals(cluster: &Cluster, learner: usize) {
    let status = cluster
        .status(learner)
        .await
        .expect("a learner answers Status");
    assert!(status.is_learner(), "Status says learner: {status:?}");
    assert_eq!(
        status.header().expect("a header").member_id(),
        cluster.member_id(learner)
    );
    let mut client = client_for(cluster, learner).await;
    assert_grpc_error(
        client.put("learner/refused", "x", None).await,
        Code::Unavailable,
        LEARNER_REFUSES,
    );
    assert_grpc_error(
        client.get("learner/w", None).await,
        Code::Unavailable,
        LEARNER_REFUSES,
    );
    let serializable = || GetOptions::new().with_prefix().with_serializable();
    let reply = client
        .get("learner/w", Some(serializable()))
        .await
        .expect("a learner serves serializable reads");
    assert_eq!(
        reply.header().expect("a header").member_id(),
        cluster.member_id(learner)
    );
    wait_until(
        "the learner to see the writer's keys",
        CATCH_UP_TIMEOUT,
        || {
            let mut client = client.clone();
            async move {
                let reply = client.get("learner/w", Some(serializable())).await?;
                anyhow::ensure!(reply.count() > 0, "no keys yet");
                Ok(())
            }
        },
    )
    .await
    .expect("the learner replicates");
    let ran = etcdctl_for(cluster, learner)
        .run(&["put", "learner/refused", "x"], Input::Nothing)
        .await
        .expect("etcdctl runs");
    assert!(
        !ran.success,
        "etcdctl put through a learner: {}",
        ran.stdout
    );
    assert!(
        ran.stderr.ends_with(&format!("Error: {LEARNER_REFUSES}\n")),
        "{}",
        ran.stderr
    );
}

/// Promotes learner `id`, retrying while it is refused as not in sync; returns how many times
/// it was.
async fn promote_when_in_sync(client: &Client, id: u64) -> usize {
    let refused = AtomicUsize::new(0);
    let refused_ref = &refused;
    let outcome = wait_until("the learner's promotion", RECONFIGURE_TIMEOUT, || {
        let mut client = client.clone();
        async move {
            match client.member_promote(id).await {
                Err(error) if grpc_message(&error) == LEARNER_NOT_READY => {
                    assert_eq!(grpc_code(&error), Some(Code::FailedPrecondition));
                    refused_ref.fetch_add(1, Ordering::Relaxed);
                    Err(anyhow::anyhow!("refused: {error}"))
                }
                outcome => Ok(outcome),
            }
        }
    })
    .await;
    let reply = outcome
        .unwrap_or_else(|error| panic!("{error:#}"))
        .expect("member promote");
    let promoted = listed(reply.members(), id);
    assert!(!promoted.is_learner(), "{promoted:?}");
    refused.into_inner()
}

/// With no more writes, every member reaches the same revision and has the same HashKV there,
/// through etcd-client and `etcdctl endpoint hashkv --cluster`.
async fn same_hash_everywhere(cluster: &Cluster) {
    let reply = client_for(cluster, 0)
        .await
        .put("learner/last", "1", None)
        .await
        .expect("put");
    let revision = reply.header().expect("a header").revision();
    let mut hashes = BTreeMap::new();
    for index in cluster.running() {
        cluster
            .wait_for_revision(index, revision, CATCH_UP_TIMEOUT)
            .await
            .expect("every member applies every write");
        let reply = client_for(cluster, index)
            .await
            .hash_kv(revision)
            .await
            .unwrap_or_else(|error| panic!("HashKV on member {index}: {error}"));
        hashes.insert(index, reply.hash());
    }
    let first = hashes.values().next().copied().expect("running members");
    assert!(
        hashes.values().all(|&hash| hash == first),
        "HashKV at revision {revision} per member: {hashes:?}"
    );

    let json = etcdctl_for(cluster, 0)
        .json(&["endpoint", "hashkv", "--cluster"])
        .await;
    let entries = json
        .as_array()
        .unwrap_or_else(|| panic!("one entry per member: {json}"));
    assert_eq!(entries.len(), hashes.len(), "{json}");
    for entry in entries {
        assert_eq!(
            as_u64(&entry["HashKV"], "hash"),
            u64::from(first),
            "{entry}"
        );
    }
}

/// Puts keys `learner/w00000`, `learner/w00001`, ... one at a time until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Writer {
    fn start(mut client: Client) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let (stopped, counter) = (Arc::clone(&stop), Arc::clone(&acked));
        let task = tokio::spawn(async move {
            for attempt in 0..MAX_WRITES {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let key = format!("learner/w{:05}", counter.load(Ordering::Relaxed));
                match client.put(key, attempt.to_string(), None).await {
                    Ok(_) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        eprintln!("writer: {error}");
                        tokio::time::sleep(BACKOFF).await;
                    }
                }
            }
        });
        Writer { stop, acked, task }
    }

    async fn wait_for_acks(&self, count: usize) {
        wait_until("the writer's first puts", CATCH_UP_TIMEOUT, || async {
            let acked = self.acked.load(Ordering::Relaxed);
            anyhow::ensure!(acked >= count, "{acked} acknowledged");
            Ok(())
        })
        .await
        .expect("the writer runs");
    }

    /// Stops the writer; returns how many keys it wrote.
    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the writer does not panic");
        self.acked.load(Ordering::Relaxed)
    }
}
