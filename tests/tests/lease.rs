//! The Lease behaviour suite (reference/etcd-api.md §1.4, §2, §4), written once against
//! etcd-client and run against every backend. Checks share one store, each under its own key
//! prefix; the only leases that may expire on their own carry no keys once their check is over,
//! so no check sees another's revisions move.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use anyhow::ensure;
use cairn_tests::{
    assert_grpc_error, check, cluster_or_skip, run_checks, wait_until, Backend, Check,
    CheckContext, Cluster, ELECTION_TIMEOUT,
};
use etcd_client::{
    Client, GetOptions, LeaseGrantOptions, LeaseKeepAliveResponse, LeaseKeepAliveStream,
    LeaseKeeper, LeaseTimeToLiveOptions, PutOptions, ResponseHeader,
};
use tokio::time::{Instant, MissedTickBehavior};
use tonic::Code;

const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
const LEASE_EXISTS: &str = "etcdserver: lease already exists";
const TTL_TOO_LARGE: &str = "etcdserver: too large lease TTL";
/// `ceil(1.5 × election timeout)` with the default 1 s election timeout (§1.4, §5).
const MIN_TTL: i64 = 2;
const MAX_TTL: i64 = 9_000_000_000;
/// Long enough that no lease granted with it expires during a run.
const LONG_TTL: i64 = 600;
/// A lease ID nobody granted (IDs are handed out by the server, practically never this one).
const UNKNOWN_LEASE: i64 = 0x0123_4567_89ab_cdef;
/// How often the keep-alive check renews a lease of `MIN_TTL`: four renewals per TTL.
const RENEW_EVERY: Duration = Duration::from_millis(500);
/// How long a single reply may take before a check gives up on it.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

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
    let ctx = Leases::for_member(&cluster, 0, "single/").await;
    run_checks(&format!("{} single", backend.name()), &ctx, &checks()).await;
}

/// The whole suite through a follower (which must forward grants, revokes and renewals to the
/// leader), then again through the leader.
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
    let via_follower = Leases::for_member(&cluster, follower, "follower/").await;
    run_checks(
        &format!("{name} 3 members via follower"),
        &via_follower,
        &checks(),
    )
    .await;
    let via_leader = Leases::for_member(&cluster, leader, "leader/").await;
    run_checks(
        &format!("{name} 3 members via leader"),
        &via_leader,
        &checks(),
    )
    .await;
}

/// The expiry check runs before the keep-alive check so that a failing keep-alive check cannot
/// leave a short lease with keys that expires in the middle of it.
fn checks() -> Vec<Check<Leases>> {
    vec![
        check!(grant_picks_a_positive_id),
        check!(grant_with_client_chosen_id),
        check!(grant_raises_ttl_to_minimum),
        check!(grant_too_large_ttl_fails),
        check!(grant_existing_id_fails),
        check!(revoke_deletes_attached_keys_in_one_revision),
        check!(revoke_unknown_lease_fails),
        check!(put_with_revoked_lease_fails),
        check!(time_to_live_reports_remaining_and_keys),
        check!(time_to_live_of_unknown_lease),
        check!(leases_lists_granted_not_revoked),
        check!(unrenewed_lease_expires_with_its_keys),
        check!(keep_alive_returns_granted_ttl_and_renews),
        check!(keep_alive_of_unknown_lease_gets_ttl_0),
        check!(response_headers_identify_cluster_and_member),
    ]
}

#[derive(Clone)]
struct Leases {
    client: Client,
    prefix: String,
    /// The member the client talks to, as its headers must name it.
    member_id: u64,
}

impl CheckContext for Leases {
    fn scoped(&self, check: &str) -> Self {
        Leases {
            prefix: format!("{}{check}/", self.prefix),
            ..self.clone()
        }
    }
}

impl Leases {
    async fn for_member(cluster: &Cluster, index: usize, prefix: &str) -> Leases {
        Leases {
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

    /// A positive lease ID of this check's own, so that client-chosen IDs never collide between
    /// checks or between the follower and leader runs on one store.
    fn chosen_id(&self, salt: &str) -> i64 {
        let mut hasher = DefaultHasher::new();
        (&self.prefix, salt).hash(&mut hasher);
        let id = (hasher.finish() >> 1) as i64;
        id.max(1)
    }

    /// The store's current revision.
    async fn revision(&self) -> i64 {
        let reply = self
            .client()
            .get(self.key("\u{1}probe"), None)
            .await
            .expect("get");
        header(reply.header()).revision()
    }

    /// Grants a lease with a server-chosen ID; returns the ID.
    async fn grant(&self, ttl: i64) -> i64 {
        let reply = self
            .client()
            .lease_grant(ttl, None)
            .await
            .expect("lease grant");
        reply.id()
    }

    async fn revoke(&self, lease: i64) {
        self.client()
            .lease_revoke(lease)
            .await
            .expect("lease revoke");
    }

    /// Puts `name` attached to `lease`; returns the revision of the write.
    async fn put(&self, name: &str, lease: i64) -> i64 {
        let reply = self
            .client()
            .put(
                self.key(name),
                "v",
                Some(PutOptions::new().with_lease(lease)),
            )
            .await
            .expect("put with a lease");
        header(reply.header()).revision()
    }

    /// The names of this check's keys that exist now.
    async fn names(&self) -> Vec<String> {
        let reply = self
            .client()
            .get(self.prefix.clone(), Some(GetOptions::new().with_prefix()))
            .await
            .expect("get");
        reply
            .kvs()
            .iter()
            .map(|kv| {
                let key = String::from_utf8_lossy(kv.key());
                key.strip_prefix(&self.prefix).unwrap_or(&key).to_owned()
            })
            .collect()
    }

    async fn listed(&self) -> BTreeSet<i64> {
        let reply = self.client().leases().await.expect("leases");
        reply.leases().iter().map(|status| status.id()).collect()
    }
}

#[track_caller]
fn header(header: Option<&ResponseHeader>) -> &ResponseHeader {
    header.expect("a response header")
}

async fn grant_picks_a_positive_id(ctx: Leases) {
    let reply = ctx
        .client()
        .lease_grant(LONG_TTL, None)
        .await
        .expect("lease grant");
    assert!(
        reply.id() > 0,
        "a server-chosen ID is a positive int63: {}",
        reply.id()
    );
    assert_eq!(reply.ttl(), LONG_TTL);
    assert_eq!(reply.error(), "");
    let other = ctx.grant(LONG_TTL).await;
    assert_ne!(other, reply.id(), "each grant gets a new ID");
    ctx.revoke(reply.id()).await;
    ctx.revoke(other).await;
}

async fn grant_with_client_chosen_id(ctx: Leases) {
    let id = ctx.chosen_id("chosen");
    let reply = ctx
        .client()
        .lease_grant(LONG_TTL, Some(LeaseGrantOptions::new().with_id(id)))
        .await
        .expect("lease grant with an ID");
    assert_eq!((reply.id(), reply.ttl()), (id, LONG_TTL));
    let status = ctx
        .client()
        .lease_time_to_live(id, None)
        .await
        .expect("time to live");
    assert_eq!((status.id(), status.granted_ttl()), (id, LONG_TTL));
    ctx.revoke(id).await;
}

async fn grant_raises_ttl_to_minimum(ctx: Leases) {
    for asked in [0, 1] {
        let reply = ctx
            .client()
            .lease_grant(asked, None)
            .await
            .expect("lease grant");
        assert_eq!(
            reply.ttl(),
            MIN_TTL,
            "a TTL of {asked} is raised to the minimum"
        );
        let status = ctx
            .client()
            .lease_time_to_live(reply.id(), None)
            .await
            .expect("time to live");
        assert_eq!(
            status.granted_ttl(),
            MIN_TTL,
            "the lease keeps the raised TTL"
        );
        ctx.revoke(reply.id()).await;
    }
}

async fn grant_too_large_ttl_fails(ctx: Leases) {
    let id = ctx.chosen_id("too large");
    let refused = ctx
        .client()
        .lease_grant(MAX_TTL + 1, Some(LeaseGrantOptions::new().with_id(id)))
        .await;
    assert_grpc_error(refused, Code::OutOfRange, TTL_TOO_LARGE);
    assert!(
        !ctx.listed().await.contains(&id),
        "a refused grant makes no lease"
    );
    let largest = ctx.grant(MAX_TTL).await;
    let status = ctx
        .client()
        .lease_time_to_live(largest, None)
        .await
        .expect("time to live");
    assert_eq!(
        status.granted_ttl(),
        MAX_TTL,
        "the maximum itself is allowed"
    );
    ctx.revoke(largest).await;
}

async fn grant_existing_id_fails(ctx: Leases) {
    let id = ctx.chosen_id("twice");
    let with_id = || Some(LeaseGrantOptions::new().with_id(id));
    ctx.client()
        .lease_grant(LONG_TTL, with_id())
        .await
        .expect("the first grant");
    let again = ctx.client().lease_grant(LONG_TTL / 2, with_id()).await;
    assert_grpc_error(again, Code::FailedPrecondition, LEASE_EXISTS);
    let status = ctx
        .client()
        .lease_time_to_live(id, None)
        .await
        .expect("time to live");
    assert_eq!(
        status.granted_ttl(),
        LONG_TTL,
        "the first lease is untouched"
    );
    ctx.revoke(id).await;
}

async fn revoke_deletes_attached_keys_in_one_revision(ctx: Leases) {
    let lease = ctx.grant(LONG_TTL).await;
    for name in ["a", "b", "c"] {
        ctx.put(name, lease).await;
    }
    let last_put = ctx
        .client()
        .put(ctx.key("kept"), "v", None)
        .await
        .expect("put without a lease");
    let last_put = header(last_put.header()).revision();
    let revoked = ctx
        .client()
        .lease_revoke(lease)
        .await
        .expect("lease revoke");
    assert_eq!(
        header(revoked.header()).revision(),
        last_put + 1,
        "the revoke's header carries the revision that deleted the keys"
    );
    assert_eq!(ctx.names().await, ["kept"], "keys without the lease stay");
    assert_eq!(
        ctx.revision().await,
        last_put + 1,
        "three keys deleted in one revision"
    );
    let before = ctx
        .client()
        .get(
            ctx.prefix.clone(),
            Some(GetOptions::new().with_prefix().with_revision(last_put)),
        )
        .await
        .expect("get at the revision before the revoke");
    assert_eq!(
        before.count(),
        4,
        "the history still holds the deleted keys"
    );

    let empty = ctx.grant(LONG_TTL).await;
    let reply = ctx
        .client()
        .lease_revoke(empty)
        .await
        .expect("lease revoke");
    assert_eq!(
        header(reply.header()).revision(),
        last_put + 1,
        "revoking a lease without keys adds no revision"
    );
    assert_eq!(ctx.revision().await, last_put + 1);
}

async fn revoke_unknown_lease_fails(ctx: Leases) {
    let reply = ctx.client().lease_revoke(UNKNOWN_LEASE).await;
    assert_grpc_error(reply, Code::NotFound, LEASE_NOT_FOUND);
    let lease = ctx.grant(LONG_TTL).await;
    ctx.revoke(lease).await;
    let twice = ctx.client().lease_revoke(lease).await;
    assert_grpc_error(twice, Code::NotFound, LEASE_NOT_FOUND);
}

async fn put_with_revoked_lease_fails(ctx: Leases) {
    let lease = ctx.grant(LONG_TTL).await;
    ctx.revoke(lease).await;
    let before = ctx.revision().await;
    let reply = ctx
        .client()
        .put(ctx.key("k"), "v", Some(PutOptions::new().with_lease(lease)))
        .await;
    assert_grpc_error(reply, Code::NotFound, LEASE_NOT_FOUND);
    assert!(ctx.names().await.is_empty(), "nothing was written");
    assert_eq!(
        ctx.revision().await,
        before,
        "a refused put adds no revision"
    );
}

async fn time_to_live_reports_remaining_and_keys(ctx: Leases) {
    let lease = ctx.grant(LONG_TTL).await;
    ctx.put("a", lease).await;
    ctx.put("b", lease).await;
    let status = ctx
        .client()
        .lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("time to live with keys");
    assert_eq!((status.id(), status.granted_ttl()), (lease, LONG_TTL));
    assert!(
        status.ttl() > 0 && status.ttl() <= LONG_TTL,
        "the remaining TTL is in (0, granted]: {}",
        status.ttl()
    );
    // etcd lists the keys in no particular order.
    let keys: BTreeSet<Vec<u8>> = status.keys().iter().cloned().collect();
    let expected: BTreeSet<Vec<u8>> = [ctx.key("a"), ctx.key("b")]
        .into_iter()
        .map(String::into_bytes)
        .collect();
    assert_eq!(keys, expected);
    assert_eq!(status.keys().len(), 2, "each key once");

    let without_keys = ctx
        .client()
        .lease_time_to_live(lease, None)
        .await
        .expect("time to live");
    assert!(without_keys.keys().is_empty(), "keys only when asked");
    assert_eq!(without_keys.granted_ttl(), LONG_TTL);
    ctx.revoke(lease).await;
}

async fn time_to_live_of_unknown_lease(ctx: Leases) {
    let status = ctx
        .client()
        .lease_time_to_live(
            UNKNOWN_LEASE,
            Some(LeaseTimeToLiveOptions::new().with_keys()),
        )
        .await
        .expect("an unknown lease is not an error");
    assert_eq!(
        (status.id(), status.ttl(), status.granted_ttl()),
        (UNKNOWN_LEASE, -1, 0)
    );
    assert!(status.keys().is_empty());
}

async fn leases_lists_granted_not_revoked(ctx: Leases) {
    let kept = ctx.grant(LONG_TTL).await;
    let revoked = ctx.grant(LONG_TTL).await;
    let listed = ctx.listed().await;
    assert!(
        listed.contains(&kept) && listed.contains(&revoked),
        "{kept:x} and {revoked:x} in {listed:x?}"
    );
    ctx.revoke(revoked).await;
    let listed = ctx.listed().await;
    assert!(listed.contains(&kept), "{kept:x} in {listed:x?}");
    assert!(!listed.contains(&revoked), "{revoked:x} not in {listed:x?}");
    ctx.revoke(kept).await;
}

/// The lease's keys go at least `MIN_TTL` after the grant was applied, which is after `started`;
/// asserting a bound of half that cannot fail on a slow machine.
async fn unrenewed_lease_expires_with_its_keys(ctx: Leases) {
    let started = Instant::now();
    let lease = ctx.grant(MIN_TTL).await;
    ctx.put("a", lease).await;
    let last_put = ctx.put("b", lease).await;
    let deadline = Duration::from_secs(MIN_TTL as u64 + 5);
    wait_until("the lease to expire with its keys", deadline, || {
        let ctx = ctx.clone();
        async move {
            let names = ctx.names().await;
            ensure!(names.is_empty(), "still there: {names:?}");
            Ok(())
        }
    })
    .await
    .expect("the lease expires");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "keys of a {MIN_TTL} s lease vanished after only {waited:?}"
    );
    assert_eq!(
        ctx.revision().await,
        last_put + 1,
        "the expiry deleted both keys in one revision"
    );
    let status = ctx
        .client()
        .lease_time_to_live(lease, None)
        .await
        .expect("time to live");
    assert_eq!(status.ttl(), -1, "an expired lease is unknown");
    assert!(!ctx.listed().await.contains(&lease));
    let put = ctx
        .client()
        .put(ctx.key("c"), "v", Some(PutOptions::new().with_lease(lease)))
        .await;
    assert_grpc_error(put, Code::NotFound, LEASE_NOT_FOUND);
}

/// Renews a lease of the minimum TTL for well past that TTL: only the renewals keep its key.
async fn keep_alive_returns_granted_ttl_and_renews(ctx: Leases) {
    let started = Instant::now();
    let lease = ctx.grant(MIN_TTL).await;
    ctx.put("k", lease).await;
    // etcd-client sends the first request itself and checks that its reply has a TTL.
    let (mut keeper, mut replies) = ctx
        .client()
        .lease_keep_alive(lease)
        .await
        .expect("keep alive");
    assert_eq!(keeper.id(), lease);
    // The pace of renewals, not a wait for a condition.
    let mut ticks = tokio::time::interval(RENEW_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let keep_until = started + Duration::from_secs(MIN_TTL as u64 + 2);
    while Instant::now() < keep_until {
        ticks.tick().await;
        renew(&mut keeper, &mut replies, started).await;
    }
    assert_eq!(
        ctx.names().await,
        ["k"],
        "the key outlives its TTL while renewed"
    );
    renew(&mut keeper, &mut replies, started).await;
    let status = ctx
        .client()
        .lease_time_to_live(lease, None)
        .await
        .expect("time to live");
    // Remaining seconds are truncated, so a live lease may show 0; an expired one shows -1.
    assert!(
        (0..=MIN_TTL).contains(&status.ttl()) && status.granted_ttl() == MIN_TTL,
        "the renewed lease is alive: ttl {}, granted {}",
        status.ttl(),
        status.granted_ttl()
    );
    ctx.revoke(lease).await;
}

/// Sends one keep-alive and checks its reply: the lease's ID and its granted TTL.
async fn renew(keeper: &mut LeaseKeeper, replies: &mut LeaseKeepAliveStream, started: Instant) {
    keeper.keep_alive().await.expect("send a keep-alive");
    let reply = next_reply(replies).await;
    assert_eq!(
        (reply.id(), reply.ttl()),
        (keeper.id(), MIN_TTL),
        "after {:?}: each renewal answers with the granted TTL",
        started.elapsed()
    );
}

async fn next_reply(replies: &mut LeaseKeepAliveStream) -> LeaseKeepAliveResponse {
    tokio::time::timeout(REPLY_TIMEOUT, replies.message())
        .await
        .expect("a keep-alive reply in time")
        .expect("a keep-alive reply, not an error")
        .expect("the keep-alive stream stays open")
}

async fn keep_alive_of_unknown_lease_gets_ttl_0(ctx: Leases) {
    // etcd-client turns a first reply with TTL <= 0 into its own error; a server error would be
    // a gRPC status instead.
    match ctx.client().lease_keep_alive(UNKNOWN_LEASE).await {
        Err(etcd_client::Error::LeaseKeepAliveError(_)) => {}
        Err(other) => panic!("expected a TTL-0 reply, got the error {other}"),
        Ok(_) => panic!("an unknown lease was kept alive"),
    }
    let lease = ctx.grant(LONG_TTL).await;
    let (mut keeper, mut replies) = ctx
        .client()
        .lease_keep_alive(lease)
        .await
        .expect("keep alive");
    ctx.revoke(lease).await;
    keeper.keep_alive().await.expect("send a keep-alive");
    let reply = next_reply(&mut replies).await;
    assert_eq!((reply.id(), reply.ttl()), (lease, 0));
}

async fn response_headers_identify_cluster_and_member(ctx: Leases) {
    let mut client = ctx.client();
    let current = ctx.revision().await;
    let grant = client.lease_grant(LONG_TTL, None).await.expect("grant");
    let lease = grant.id();
    let ttl = client
        .lease_time_to_live(lease, None)
        .await
        .expect("time to live");
    let unknown_ttl = client
        .lease_time_to_live(UNKNOWN_LEASE, None)
        .await
        .expect("time to live");
    let leases = client.leases().await.expect("leases");
    let (mut keeper, mut replies) = client.lease_keep_alive(lease).await.expect("keep alive");
    keeper.keep_alive().await.expect("send a keep-alive");
    let kept = next_reply(&mut replies).await;
    let revoke = client.lease_revoke(lease).await.expect("revoke");
    let cluster_id = {
        let reply = client.get(ctx.key("k"), None).await.expect("get");
        header(reply.header()).cluster_id()
    };
    let headers = [
        ("grant", grant.header()),
        ("time to live", ttl.header()),
        ("time to live of an unknown lease", unknown_ttl.header()),
        ("leases", leases.header()),
        ("keep-alive", kept.header()),
        ("revoke", revoke.header()),
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
        assert_eq!(
            h.revision(),
            current,
            "{rpc}: the store's revision, which leases without keys do not move"
        );
    }
}
