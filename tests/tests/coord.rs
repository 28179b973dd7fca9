//! The Lock (v3lockpb) and Election (v3electionpb) services, and the Range requests their
//! recipes make (reference/etcd-api.md §0 item 7, §1.8, §2), written once against etcd-client and
//! run against every backend. Each check locks and campaigns under its own key prefix, with its
//! own leases.
//!
//! A call that must wait runs in a spawned task. That it is still waiting is checked only once
//! the store shows its key: from then on a correct server cannot answer it until the holder lets
//! go, so the check cannot fail by timing alone.

use std::time::Duration;

use anyhow::ensure;
use cairn_tests::{
    assert_grpc_error, check, cluster_or_skip, run_checks, wait_until, Backend, Check,
    CheckContext, Cluster, ELECTION_TIMEOUT,
};
use etcd_client::{
    CampaignResponse, Client, GetOptions, KeyValue, LeaderKey, LockOptions, LockResponse,
    ObserveStream, ProclaimOptions, ResignOptions, ResponseHeader, SortOrder, SortTarget, Txn,
    TxnOp, TxnOpResponse,
};
use tokio::task::JoinHandle;
use tonic::Code;

const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
const NOT_LEADER: &str = "election: not leader";
const NO_LEADER: &str = "election: no leader";
const LEADER_MISSING: &str = "\"leader\" field must be provided";
/// Long enough that no lease granted with it expires during a run.
const LONG_TTL: i64 = 600;
/// How long a waiting call may take to finish once it can, or a stream to deliver a message.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a waiter's key may take to appear in the store.
const WAITER_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_single() {
    single_member(Backend::Cairn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_three() {
    three_members(Backend::Cairn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_single() {
    single_member(Backend::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_three() {
    three_members(Backend::Etcd).await;
}

async fn single_member(backend: Backend) {
    let Some(cluster) = cluster_or_skip(backend, 1).await else {
        return;
    };
    let ctx = Coord::for_member(&cluster, 0, "single/").await;
    run_checks(&format!("{} single", backend.name()), &ctx, &checks()).await;
}

/// The whole suite through a follower, then again through the leader.
async fn three_members(backend: Backend) {
    let Some(cluster) = cluster_or_skip(backend, 3).await else {
        return;
    };
    let leader = cluster
        .wait_for_leader(ELECTION_TIMEOUT)
        .await
        .expect("a leader");
    let follower = cluster.followers().await.expect("followers")[0];
    let name = backend.name();
    let via_follower = Coord::for_member(&cluster, follower, "follower/").await;
    run_checks(
        &format!("{name} 3 members via follower"),
        &via_follower,
        &checks(),
    )
    .await;
    let via_leader = Coord::for_member(&cluster, leader, "leader/").await;
    run_checks(
        &format!("{name} 3 members via leader"),
        &via_leader,
        &checks(),
    )
    .await;
}

fn checks() -> Vec<Check<Coord>> {
    vec![
        check!(range_oldest_by_create_revision),
        check!(range_newest_created_before),
        check!(lock_returns_owner_key),
        check!(lock_twice_with_one_lease_is_one_acquisition),
        check!(second_lock_waits_for_unlock),
        check!(revoking_the_holders_lease_releases_the_lock),
        check!(lock_with_unknown_lease_fails),
        check!(unlock_of_a_key_not_held_succeeds),
        check!(campaign_returns_leader_key),
        check!(leader_of_empty_election_fails),
        check!(campaign_waits_until_leader_resigns),
        check!(revoking_the_leaders_lease_ends_its_term),
        check!(proclaim_updates_the_value),
        check!(proclaim_with_stale_leader_key_fails),
        check!(resign_with_stale_leader_key_keeps_the_leader),
        check!(leader_key_must_be_provided),
        check!(observe_follows_the_leader),
        check!(response_headers_identify_cluster_and_member),
    ]
}

#[derive(Clone)]
struct Coord {
    client: Client,
    prefix: String,
    /// The member the client talks to, as its headers must name it.
    member_id: u64,
}

impl CheckContext for Coord {
    fn scoped(&self, check: &str) -> Self {
        Coord {
            prefix: format!("{}{check}/", self.prefix),
            ..self.clone()
        }
    }
}

impl Coord {
    async fn for_member(cluster: &Cluster, index: usize, prefix: &str) -> Coord {
        Coord {
            client: cluster.member_client(index).await.expect("a client"),
            prefix: prefix.to_owned(),
            member_id: cluster.member_id(index),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn client(&self) -> Client {
        self.client.clone()
    }

    async fn grant(&self) -> i64 {
        self.client()
            .lease_grant(LONG_TTL, None)
            .await
            .expect("lease grant")
            .id()
    }

    async fn revoke(&self, lease: i64) {
        self.client()
            .lease_revoke(lease)
            .await
            .expect("lease revoke");
    }

    /// The pairs under `name/`, oldest first: the owner or candidate keys of a lock or election.
    async fn contenders(&self, name: &str) -> Vec<KeyValue> {
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Create, SortOrder::Ascend);
        let reply = self
            .client()
            .get(format!("{name}/"), Some(options))
            .await
            .expect("get");
        reply.kvs().to_vec()
    }

    async fn contender_keys(&self, name: &str) -> Vec<String> {
        key_strings(&self.contenders(name).await)
    }

    /// Waits until `name/` holds exactly `keys` (oldest first): a waiter has put its key.
    async fn wait_for_contenders(&self, name: &str, keys: &[String]) {
        let what = format!("the keys {keys:?} under {name}/");
        wait_until(&what, WAITER_TIMEOUT, || async {
            let found = self.contender_keys(name).await;
            ensure!(found == keys, "found {found:?}");
            Ok(())
        })
        .await
        .expect("the waiter registers");
    }

    fn lock_in_background(&self, name: &str, lease: i64) -> JoinHandle<LockResponse> {
        let mut client = self.client();
        let name = name.to_owned();
        tokio::spawn(async move {
            client
                .lock(name, Some(LockOptions::new().with_lease(lease)))
                .await
                .expect("the waiting lock")
        })
    }

    async fn lock(&self, name: &str, lease: i64) -> LockResponse {
        self.client()
            .lock(name, Some(LockOptions::new().with_lease(lease)))
            .await
            .expect("lock")
    }

    async fn campaign(&self, name: &str, value: &str, lease: i64) -> LeaderKey {
        let mut reply = self
            .client()
            .campaign(name, value, lease)
            .await
            .expect("campaign");
        reply.take_leader().expect("a leader key")
    }

    fn campaign_in_background(
        &self,
        name: &str,
        value: &str,
        lease: i64,
    ) -> JoinHandle<CampaignResponse> {
        let mut client = self.client();
        let (name, value) = (name.to_owned(), value.to_owned());
        tokio::spawn(async move {
            client
                .campaign(name, value, lease)
                .await
                .expect("the waiting campaign")
        })
    }

    /// The current leader's key and value.
    async fn leader(&self, name: &str) -> (String, String) {
        let reply = self.client().leader(name).await.expect("leader");
        let kv = reply.kv().expect("the leader's pair");
        (key_string(kv), value_string(kv))
    }
}

/// The key a lock owner or candidate writes: the name, `/`, and the lease in lowercase hex.
fn owner_key(name: &str, lease: i64) -> String {
    format!("{name}/{lease:x}")
}

fn key_string(kv: &KeyValue) -> String {
    String::from_utf8_lossy(kv.key()).into_owned()
}

fn value_string(kv: &KeyValue) -> String {
    String::from_utf8_lossy(kv.value()).into_owned()
}

fn key_strings(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter().map(key_string).collect()
}

#[track_caller]
fn header(header: Option<&ResponseHeader>) -> &ResponseHeader {
    header.expect("a response header")
}

/// Waits for a task that must now be able to finish.
async fn finished<T>(task: JoinHandle<T>, what: &str) -> T {
    tokio::time::timeout(HANDOVER_TIMEOUT, task)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {HANDOVER_TIMEOUT:?}"))
        .unwrap_or_else(|error| panic!("{what} failed: {error}"))
}

async fn next_leader(observed: &mut ObserveStream) -> (String, String) {
    let reply = tokio::time::timeout(HANDOVER_TIMEOUT, observed.message())
        .await
        .expect("an observe message in time")
        .expect("an observe message, not an error")
        .expect("the observe stream stays open");
    let kv = reply.kv().expect("the leader's pair");
    (key_string(kv), value_string(kv))
}

/// Keys `b`, `c`, `a` created in that order, then `b` and `c` updated, so that key order, create
/// order and mod order all differ. Returns the create revisions of b, c and a.
async fn put_contenders(ctx: &Coord) -> [i64; 3] {
    let mut client = ctx.client();
    let mut created = [0; 3];
    for (slot, name) in created.iter_mut().zip(["b", "c", "a"]) {
        let reply = client.put(ctx.key(name), name, None).await.expect("put");
        *slot = header(reply.header()).revision();
    }
    for name in ["c", "b"] {
        client.put(ctx.key(name), "again", None).await.expect("put");
    }
    created
}

/// The mutex's "oldest key under the prefix": CREATE ascending with limit 1, on its own and
/// inside a Txn as the mutex sends it.
async fn range_oldest_by_create_revision(ctx: Coord) {
    put_contenders(&ctx).await;
    let oldest = || {
        GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Create, SortOrder::Ascend)
            .with_limit(1)
    };
    let reply = ctx
        .client()
        .get(ctx.prefix.clone(), Some(oldest()))
        .await
        .expect("get");
    assert_eq!(key_strings(reply.kvs()), [ctx.key("b")]);
    assert_eq!((reply.more(), reply.count()), (true, 3));

    let txn = Txn::new().and_then([TxnOp::get(ctx.prefix.clone(), Some(oldest()))]);
    let reply = ctx.client().txn(txn).await.expect("txn");
    match reply.op_responses().as_slice() {
        [TxnOpResponse::Get(get)] => assert_eq!(key_strings(get.kvs()), [ctx.key("b")]),
        other => panic!("expected one get response, got {other:?}"),
    }
}

/// The mutex's "newest key created before mine": CREATE descending, max_create_revision, limit
/// 1; the limit applies after the filter.
async fn range_newest_created_before(ctx: Coord) {
    let [b, c, a] = put_contenders(&ctx).await;
    let newest_before = |max_create: i64| {
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Create, SortOrder::Descend)
            .with_max_create_revision(max_create)
            .with_limit(1);
        let mut client = ctx.client();
        let prefix = ctx.prefix.clone();
        async move { client.get(prefix, Some(options)).await.expect("get") }
    };
    assert_eq!(key_strings(newest_before(a).await.kvs()), [ctx.key("a")]);
    assert_eq!(
        key_strings(newest_before(a - 1).await.kvs()),
        [ctx.key("c")]
    );
    assert_eq!(
        key_strings(newest_before(c - 1).await.kvs()),
        [ctx.key("b")]
    );
    let none = newest_before(b - 1).await;
    assert!(none.kvs().is_empty(), "nothing was created before b");
    assert!(!none.more(), "the filter left nothing more");
}

async fn lock_returns_owner_key(ctx: Coord) {
    let name = ctx.key("lock");
    let lease = ctx.grant().await;
    let reply = ctx.lock(&name, lease).await;
    let key = String::from_utf8_lossy(reply.key()).into_owned();
    assert_eq!(key, owner_key(&name, lease));
    let owners = ctx.contenders(&name).await;
    assert_eq!(key_strings(&owners), std::slice::from_ref(&key));
    assert_eq!(owners[0].lease(), lease, "the owner key carries the lease");
    assert_eq!(owners[0].value(), b"", "the owner key has no value");
    assert_eq!(
        header(reply.header()).revision(),
        owners[0].create_revision(),
        "an uncontended lock answers with the header of the put that took it"
    );
    ctx.client().unlock(key).await.expect("unlock");
    assert!(
        ctx.contenders(&name).await.is_empty(),
        "unlock deletes the owner key"
    );
    ctx.revoke(lease).await;
}

async fn lock_twice_with_one_lease_is_one_acquisition(ctx: Coord) {
    let name = ctx.key("lock");
    let lease = ctx.grant().await;
    let first = ctx.lock(&name, lease).await;
    let created = ctx.contenders(&name).await[0].create_revision();
    let second = ctx.lock(&name, lease).await;
    assert_eq!(first.key(), second.key());
    let owners = ctx.contenders(&name).await;
    assert_eq!(key_strings(&owners), [owner_key(&name, lease)]);
    assert_eq!(
        (owners[0].create_revision(), owners[0].version()),
        (created, 1),
        "the second lock writes nothing"
    );
    ctx.revoke(lease).await;
}

async fn second_lock_waits_for_unlock(ctx: Coord) {
    let name = ctx.key("lock");
    let (first, second) = (ctx.grant().await, ctx.grant().await);
    let held = ctx.lock(&name, first).await;
    let waiting = ctx.lock_in_background(&name, second);
    ctx.wait_for_contenders(&name, &[owner_key(&name, first), owner_key(&name, second)])
        .await;
    assert!(
        !waiting.is_finished(),
        "the second lock returned while the first was held"
    );
    ctx.client().unlock(held.key()).await.expect("unlock");
    let taken = finished(waiting, "the second lock").await;
    assert_eq!(taken.key(), owner_key(&name, second).as_bytes());
    assert_eq!(ctx.contender_keys(&name).await, [owner_key(&name, second)]);
    ctx.revoke(first).await;
    ctx.revoke(second).await;
}

async fn revoking_the_holders_lease_releases_the_lock(ctx: Coord) {
    let name = ctx.key("lock");
    let (first, second) = (ctx.grant().await, ctx.grant().await);
    ctx.lock(&name, first).await;
    let waiting = ctx.lock_in_background(&name, second);
    ctx.wait_for_contenders(&name, &[owner_key(&name, first), owner_key(&name, second)])
        .await;
    assert!(!waiting.is_finished(), "the second lock did not wait");
    ctx.revoke(first).await;
    let taken = finished(waiting, "the second lock").await;
    assert_eq!(taken.key(), owner_key(&name, second).as_bytes());
    ctx.revoke(second).await;
}

/// etcd's lock server hands back the error of its in-process client untranslated, so the lease
/// error arrives with code Unknown rather than NotFound.
async fn lock_with_unknown_lease_fails(ctx: Coord) {
    let name = ctx.key("lock");
    let lease = ctx.grant().await;
    ctx.revoke(lease).await;
    let reply = ctx
        .client()
        .lock(name.as_str(), Some(LockOptions::new().with_lease(lease)))
        .await;
    assert_grpc_error(reply, Code::Unknown, LEASE_NOT_FOUND);
    assert!(ctx.contenders(&name).await.is_empty(), "no owner key");
}

async fn unlock_of_a_key_not_held_succeeds(ctx: Coord) {
    let name = ctx.key("lock");
    ctx.client()
        .unlock(owner_key(&name, 0x1234))
        .await
        .expect("unlock is a plain delete");
    assert!(ctx.contenders(&name).await.is_empty());
}

async fn campaign_returns_leader_key(ctx: Coord) {
    let name = ctx.key("election");
    let lease = ctx.grant().await;
    let mut reply = ctx
        .client()
        .campaign(name.as_str(), "v1", lease)
        .await
        .expect("campaign");
    let leader = reply.take_leader().expect("a leader key");
    assert_eq!(leader.name(), name.as_bytes());
    assert_eq!(leader.key_str().expect("utf-8"), owner_key(&name, lease));
    assert_eq!(leader.lease(), lease);
    let candidates = ctx.contenders(&name).await;
    assert_eq!(key_strings(&candidates), [owner_key(&name, lease)]);
    assert_eq!(candidates[0].value(), b"v1");
    assert_eq!(candidates[0].lease(), lease);
    assert_eq!(
        leader.rev(),
        candidates[0].create_revision(),
        "rev is the leader key's create revision"
    );
    assert_eq!(header(reply.header()).revision(), leader.rev());
    assert_eq!(
        ctx.leader(&name).await,
        (owner_key(&name, lease), "v1".to_owned())
    );
    ctx.revoke(lease).await;
}

async fn leader_of_empty_election_fails(ctx: Coord) {
    let reply = ctx.client().leader(ctx.key("election")).await;
    assert_grpc_error(reply, Code::Unknown, NO_LEADER);
}

async fn campaign_waits_until_leader_resigns(ctx: Coord) {
    let name = ctx.key("election");
    let (first, second) = (ctx.grant().await, ctx.grant().await);
    let leader = ctx.campaign(&name, "first", first).await;
    let waiting = ctx.campaign_in_background(&name, "second", second);
    ctx.wait_for_contenders(&name, &[owner_key(&name, first), owner_key(&name, second)])
        .await;
    assert!(
        !waiting.is_finished(),
        "the second campaign won while the first leader was in office"
    );
    assert_eq!(
        ctx.leader(&name).await,
        (owner_key(&name, first), "first".to_owned()),
        "the oldest candidate leads"
    );
    ctx.client()
        .resign(Some(ResignOptions::new().with_leader(leader)))
        .await
        .expect("resign");
    let won = finished(waiting, "the second campaign").await;
    let won = won.leader().expect("a leader key");
    assert_eq!(won.key_str().expect("utf-8"), owner_key(&name, second));
    assert_eq!(
        ctx.leader(&name).await,
        (owner_key(&name, second), "second".to_owned())
    );
    assert_eq!(
        ctx.contender_keys(&name).await,
        [owner_key(&name, second)],
        "resign deletes the leader key"
    );
    ctx.revoke(first).await;
    ctx.revoke(second).await;
}

async fn revoking_the_leaders_lease_ends_its_term(ctx: Coord) {
    let name = ctx.key("election");
    let (first, second) = (ctx.grant().await, ctx.grant().await);
    ctx.campaign(&name, "first", first).await;
    let waiting = ctx.campaign_in_background(&name, "second", second);
    ctx.wait_for_contenders(&name, &[owner_key(&name, first), owner_key(&name, second)])
        .await;
    assert!(!waiting.is_finished(), "the second campaign did not wait");
    ctx.revoke(first).await;
    finished(waiting, "the second campaign").await;
    assert_eq!(
        ctx.leader(&name).await,
        (owner_key(&name, second), "second".to_owned())
    );
    ctx.revoke(second).await;
}

async fn proclaim_updates_the_value(ctx: Coord) {
    let name = ctx.key("election");
    let lease = ctx.grant().await;
    let leader = ctx.campaign(&name, "v1", lease).await;
    let reply = ctx
        .client()
        .proclaim(
            "v2",
            Some(ProclaimOptions::new().with_leader(leader.clone())),
        )
        .await
        .expect("proclaim");
    let candidates = ctx.contenders(&name).await;
    assert_eq!(key_strings(&candidates), [owner_key(&name, lease)]);
    let kv = &candidates[0];
    assert_eq!(kv.value(), b"v2");
    assert_eq!(
        (kv.create_revision(), kv.version(), kv.lease()),
        (leader.rev(), 2, lease),
        "proclaim rewrites the same key"
    );
    assert_eq!(header(reply.header()).revision(), kv.mod_revision());
    assert_eq!(
        ctx.leader(&name).await,
        (owner_key(&name, lease), "v2".to_owned())
    );
    ctx.revoke(lease).await;
}

/// A leader key whose rev is no longer its key's create revision (the leader resigned and
/// campaigned again) cannot proclaim.
async fn proclaim_with_stale_leader_key_fails(ctx: Coord) {
    let name = ctx.key("election");
    let lease = ctx.grant().await;
    let stale = ctx.campaign(&name, "v1", lease).await;
    ctx.client()
        .resign(Some(ResignOptions::new().with_leader(stale.clone())))
        .await
        .expect("resign");
    let current = ctx.campaign(&name, "v2", lease).await;
    assert_ne!(current.rev(), stale.rev(), "a new term has a new rev");
    let refused = ctx
        .client()
        .proclaim(
            "v3",
            Some(ProclaimOptions::new().with_leader(stale.clone())),
        )
        .await;
    assert_grpc_error(refused, Code::Unknown, NOT_LEADER);
    assert_eq!(
        ctx.leader(&name).await,
        (owner_key(&name, lease), "v2".to_owned()),
        "a refused proclaim writes nothing"
    );
    ctx.client()
        .proclaim("v3", Some(ProclaimOptions::new().with_leader(current)))
        .await
        .expect("the current leader key proclaims");
    assert_eq!(ctx.leader(&name).await.1, "v3");
    ctx.revoke(lease).await;

    let gone = ctx
        .client()
        .proclaim("v4", Some(ProclaimOptions::new().with_leader(stale)))
        .await;
    assert_grpc_error(gone, Code::Unknown, NOT_LEADER);
}

async fn resign_with_stale_leader_key_keeps_the_leader(ctx: Coord) {
    let name = ctx.key("election");
    let lease = ctx.grant().await;
    let stale = ctx.campaign(&name, "v1", lease).await;
    ctx.client()
        .resign(Some(ResignOptions::new().with_leader(stale.clone())))
        .await
        .expect("resign");
    ctx.campaign(&name, "v2", lease).await;
    ctx.client()
        .resign(Some(ResignOptions::new().with_leader(stale)))
        .await
        .expect("resigning a past term is not an error");
    assert_eq!(
        ctx.leader(&name).await,
        (owner_key(&name, lease), "v2".to_owned()),
        "and deletes nothing"
    );
    ctx.revoke(lease).await;
}

async fn leader_key_must_be_provided(ctx: Coord) {
    let proclaim = ctx.client().proclaim("v", None).await;
    assert_grpc_error(proclaim, Code::Unknown, LEADER_MISSING);
    let resign = ctx.client().resign(None).await;
    assert_grpc_error(resign, Code::Unknown, LEADER_MISSING);
}

/// Observe sends the current leader, then each proclaimed value, then the next leader.
async fn observe_follows_the_leader(ctx: Coord) {
    let name = ctx.key("election");
    let (first, second) = (ctx.grant().await, ctx.grant().await);
    let leader = ctx.campaign(&name, "a", first).await;
    let mut observed = ctx.client().observe(name.as_str()).await.expect("observe");
    assert_eq!(
        next_leader(&mut observed).await,
        (owner_key(&name, first), "a".to_owned())
    );
    ctx.client()
        .proclaim(
            "b",
            Some(ProclaimOptions::new().with_leader(leader.clone())),
        )
        .await
        .expect("proclaim");
    assert_eq!(
        next_leader(&mut observed).await,
        (owner_key(&name, first), "b".to_owned())
    );
    let waiting = ctx.campaign_in_background(&name, "c", second);
    ctx.wait_for_contenders(&name, &[owner_key(&name, first), owner_key(&name, second)])
        .await;
    ctx.client()
        .resign(Some(ResignOptions::new().with_leader(leader)))
        .await
        .expect("resign");
    finished(waiting, "the second campaign").await;
    assert_eq!(
        next_leader(&mut observed).await,
        (owner_key(&name, second), "c".to_owned()),
        "a waiting candidate's put is not reported until it leads"
    );
    ctx.revoke(first).await;
    ctx.revoke(second).await;
}

async fn response_headers_identify_cluster_and_member(ctx: Coord) {
    let mut client = ctx.client();
    let (lock_name, election) = (ctx.key("lock"), ctx.key("election"));
    let lease = ctx.grant().await;
    let lock = ctx.lock(&lock_name, lease).await;
    let unlock = client.unlock(lock.key()).await.expect("unlock");
    let campaign = client
        .campaign(election.as_str(), "v", lease)
        .await
        .expect("campaign");
    let leader_key = campaign.leader().expect("a leader key").clone();
    let leader = client.leader(election.as_str()).await.expect("leader");
    let proclaim = client
        .proclaim(
            "w",
            Some(ProclaimOptions::new().with_leader(leader_key.clone())),
        )
        .await
        .expect("proclaim");
    let resign = client
        .resign(Some(ResignOptions::new().with_leader(leader_key)))
        .await
        .expect("resign");
    let get = client.get(ctx.key("k"), None).await.expect("get");
    let cluster_id = header(get.header()).cluster_id();
    let headers = [
        ("lock", lock.header()),
        ("unlock", unlock.header()),
        ("campaign", campaign.header()),
        ("leader", leader.header()),
        ("proclaim", proclaim.header()),
        ("resign", resign.header()),
    ];
    for (rpc, h) in headers {
        let h = header(h);
        assert_eq!(h.cluster_id(), cluster_id, "{rpc}: the cluster's id");
        assert_eq!(
            h.member_id(),
            ctx.member_id,
            "{rpc}: the member that answered"
        );
        assert!(h.raft_term() > 0, "{rpc}: raft_term is set");
        assert!(h.revision() > 0, "{rpc}: revision is set");
    }
    assert_eq!(
        header(resign.header()).revision(),
        header(get.header()).revision(),
        "resign's header is that of its delete, the last write"
    );
    ctx.revoke(lease).await;
}
