//! The KV behaviour suite (reference/etcd-api.md §1.1, §1.2, §2, §3, §4), written once against
//! etcd-client and run against every backend. Checks share one store, each under its own key
//! prefix, and use revisions relative to what they read first.

use cairn_tests::{
    assert_grpc_error, check, cluster_or_skip, grpc_code, grpc_message, run_checks, wait_until,
    Backend, Check, CheckContext, Cluster, ELECTION_TIMEOUT,
};
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, GetOptions, GetResponse,
    KeyValue, PutOptions, ResponseHeader, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
    TxnResponse,
};
use tonic::Code;

const KEY_NOT_PROVIDED: &str = "etcdserver: key is not provided";
const KEY_NOT_FOUND: &str = "etcdserver: key not found";
const VALUE_PROVIDED: &str = "etcdserver: value is provided";
const LEASE_PROVIDED: &str = "etcdserver: lease is provided";
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
const MAX_TXN_OPS: usize = 128;
/// A lease ID nobody granted (IDs are handed out by the server, practically never this one).
const UNKNOWN_LEASE: i64 = 0x0123_4567_89ab_cdef;

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
    let ctx = Kv::for_member(&cluster, 0, "single/").await;
    fresh_store_is_at_revision_1(&ctx).await;
    run_checks(&format!("{} single", backend.name()), &ctx, &checks()).await;
}

/// The whole suite through a follower (which must forward writes and linearizable reads), then
/// again through the leader.
async fn three_members(backend: Backend) {
    let Some(cluster) = cluster_or_skip(backend, 3).await else {
        return;
    };
    let leader = cluster
        .wait_for_leader(ELECTION_TIMEOUT)
        .await
        .expect("a leader");
    let follower = cluster.followers().await.expect("followers")[0];
    let via_follower = Kv::for_member(&cluster, follower, "follower/").await;
    fresh_store_is_at_revision_1(&via_follower).await;
    let name = backend.name();
    run_checks(
        &format!("{name} 3 members via follower"),
        &via_follower,
        &checks(),
    )
    .await;
    let via_leader = Kv::for_member(&cluster, leader, "leader/").await;
    run_checks(
        &format!("{name} 3 members via leader"),
        &via_leader,
        &checks(),
    )
    .await;
}

fn checks() -> Vec<Check<Kv>> {
    vec![
        check!(range_single_key),
        check!(range_with_range_end),
        check!(range_prefix),
        check!(range_from_key),
        check!(range_all_keys),
        check!(range_limit_sets_more_but_not_count),
        check!(range_past_revision),
        check!(range_future_revision_fails),
        check!(range_sort_orders_and_targets),
        check!(range_sort_none_with_non_key_target_ascends),
        check!(range_limit_applies_after_sort_and_filters),
        check!(range_serializable),
        check!(range_keys_only),
        check!(range_count_only),
        check!(range_revision_filters),
        check!(range_empty_key_is_rejected),
        check!(put_adds_one_revision_each_time),
        check!(put_prev_kv),
        check!(put_with_lease),
        check!(put_with_unknown_lease_writes_nothing),
        check!(put_ignore_value),
        check!(put_ignore_lease),
        check!(put_moves_key_between_leases),
        check!(delete_counts_and_adds_one_revision),
        check!(delete_prev_kv),
        check!(delete_of_nothing_adds_no_revision),
        check!(delete_then_put_starts_a_new_life),
        check!(txn_compare_targets_and_results),
        check!(txn_compare_missing_key),
        check!(txn_compare_with_range_end),
        check!(txn_branches),
        check!(txn_range_sees_earlier_put),
        check!(txn_nested),
        check!(txn_read_only_keeps_revision),
        check!(txn_sub_responses_carry_revision),
        check!(txn_too_many_ops),
        check!(txn_duplicate_put),
        check!(txn_put_inside_deleted_range),
        check!(txn_nested_duplicates),
        check!(txn_unknown_lease_fails_whole_txn),
        check!(compact_makes_older_revisions_unreadable),
        check!(compact_at_or_below_compacted_revision_fails),
        check!(compact_future_revision_fails),
        check!(compact_physical),
        check!(response_headers_identify_cluster_and_member),
        check!(oversized_request_is_refused),
    ]
}

#[derive(Clone)]
struct Kv {
    client: Client,
    prefix: String,
    /// The member the client talks to, as its headers must name it.
    member_id: u64,
}

impl CheckContext for Kv {
    fn scoped(&self, check: &str) -> Self {
        Kv {
            prefix: format!("{}{check}/", self.prefix),
            ..self.clone()
        }
    }
}

impl Kv {
    async fn for_member(cluster: &Cluster, index: usize, prefix: &str) -> Kv {
        Kv {
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

    /// The store's current revision.
    async fn revision(&self) -> i64 {
        let reply = self
            .client()
            .get(self.key("\u{1}probe"), None)
            .await
            .expect("get");
        header(reply.header()).revision()
    }

    /// Puts `value` under this check's key `name`; returns the revision of the write.
    async fn put(&self, name: &str, value: &str) -> i64 {
        let reply = self
            .client()
            .put(self.key(name), value, None)
            .await
            .expect("put");
        header(reply.header()).revision()
    }

    async fn get(&self, name: &str, options: Option<GetOptions>) -> GetResponse {
        self.client()
            .get(self.key(name), options)
            .await
            .expect("get")
    }

    /// The current pair under `name`; panics if there is none.
    async fn kv(&self, name: &str) -> KeyValue {
        let reply = self.get(name, None).await;
        reply
            .kvs()
            .first()
            .cloned()
            .unwrap_or_else(|| panic!("{name} is missing"))
    }

    async fn get_prefix(&self, options: GetOptions) -> GetResponse {
        self.client()
            .get(self.prefix.clone(), Some(options.with_prefix()))
            .await
            .expect("get")
    }

    async fn txn(&self, txn: Txn) -> TxnResponse {
        self.client().txn(txn).await.expect("txn")
    }

    async fn lease(&self) -> i64 {
        self.client()
            .lease_grant(600, None)
            .await
            .expect("lease grant")
            .id()
    }

    /// Key names relative to this check's prefix.
    fn names(&self, kvs: &[KeyValue]) -> Vec<String> {
        kvs.iter()
            .map(|kv| {
                let key = String::from_utf8_lossy(kv.key());
                key.strip_prefix(&self.prefix).unwrap_or(&key).to_owned()
            })
            .collect()
    }
}

#[track_caller]
fn header(header: Option<&ResponseHeader>) -> &ResponseHeader {
    header.expect("a response header")
}

fn values(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter()
        .map(|kv| kv.value_str().expect("utf-8 value"))
        .collect()
}

fn raw_keys(kvs: &[KeyValue]) -> Vec<Vec<u8>> {
    kvs.iter().map(|kv| kv.key().to_vec()).collect()
}

/// An empty store is at revision 1, so the first write makes revision 2 (§1.1).
async fn fresh_store_is_at_revision_1(ctx: &Kv) {
    let all = ctx
        .client()
        .get("\0", Some(GetOptions::new().with_all_keys()))
        .await
        .expect("get all");
    assert_eq!(all.count(), 0, "a fresh store holds no keys");
    assert_eq!(
        header(all.header()).revision(),
        1,
        "a fresh store is at revision 1"
    );
    let reply = ctx
        .client()
        .put(ctx.key("first"), "1", None)
        .await
        .expect("put");
    assert_eq!(
        header(reply.header()).revision(),
        2,
        "the first write makes revision 2"
    );
    let kv = ctx.kv("first").await;
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (2, 2, 1)
    );
}

async fn range_single_key(ctx: Kv) {
    ctx.put("a", "1").await;
    ctx.put("ab", "2").await;
    let reply = ctx.get("a", None).await;
    assert_eq!(ctx.names(reply.kvs()), ["a"]);
    assert_eq!(values(reply.kvs()), ["1"]);
    assert_eq!((reply.count(), reply.more()), (1, false));
    let missing = ctx.get("zz", None).await;
    assert!(missing.kvs().is_empty());
    assert_eq!(missing.count(), 0);
}

async fn range_with_range_end(ctx: Kv) {
    for name in ["a", "b", "c", "d"] {
        ctx.put(name, name).await;
    }
    let reply = ctx
        .get("b", Some(GetOptions::new().with_range(ctx.key("d"))))
        .await;
    assert_eq!(ctx.names(reply.kvs()), ["b", "c"], "range_end is exclusive");
    assert_eq!(reply.count(), 2);
}

async fn range_prefix(ctx: Kv) {
    for name in ["x/1", "x/2", "xy", "y"] {
        ctx.put(name, "v").await;
    }
    let slash = ctx.get("x/", Some(GetOptions::new().with_prefix())).await;
    assert_eq!(ctx.names(slash.kvs()), ["x/1", "x/2"]);
    let bare = ctx.get("x", Some(GetOptions::new().with_prefix())).await;
    assert_eq!(ctx.names(bare.kvs()), ["x/1", "x/2", "xy"]);
    assert_eq!(bare.count(), 3);
}

async fn range_from_key(ctx: Kv) {
    for name in ["a", "b", "c"] {
        ctx.put(name, "v").await;
    }
    let from = ctx.key("b");
    let reply = ctx.get("b", Some(GetOptions::new().with_from_key())).await;
    let keys = raw_keys(reply.kvs());
    assert_eq!(
        &keys[..2],
        [ctx.key("b").into_bytes(), ctx.key("c").into_bytes()]
    );
    assert!(
        keys.iter().all(|key| key.as_slice() >= from.as_bytes()),
        "every key is >= the start key"
    );
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "keys ascend");
    assert_eq!(reply.count(), keys.len() as i64);
}

async fn range_all_keys(ctx: Kv) {
    ctx.put("a", "v").await;
    let reply = ctx
        .client()
        .get("\0", Some(GetOptions::new().with_all_keys()))
        .await
        .expect("get all");
    let keys = raw_keys(reply.kvs());
    assert!(keys.contains(&ctx.key("a").into_bytes()));
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "keys ascend");
    assert_eq!(reply.count(), keys.len() as i64);
    assert!(!reply.more());
}

async fn range_limit_sets_more_but_not_count(ctx: Kv) {
    for name in ["a", "b", "c", "d", "e"] {
        ctx.put(name, "v").await;
    }
    let two = ctx.get_prefix(GetOptions::new().with_limit(2)).await;
    assert_eq!(ctx.names(two.kvs()), ["a", "b"]);
    assert_eq!((two.more(), two.count()), (true, 5));
    let exact = ctx.get_prefix(GetOptions::new().with_limit(5)).await;
    assert_eq!(
        (exact.kvs().len(), exact.more(), exact.count()),
        (5, false, 5)
    );
    let wide = ctx.get_prefix(GetOptions::new().with_limit(50)).await;
    assert_eq!((wide.kvs().len(), wide.more(), wide.count()), (5, false, 5));
}

async fn range_past_revision(ctx: Kv) {
    let first = ctx.put("k", "v1").await;
    ctx.put("k", "v2").await;
    ctx.put("later", "x").await;
    let deleted = ctx
        .client()
        .delete(ctx.key("k"), None)
        .await
        .expect("delete");
    let current = header(deleted.header()).revision();

    let old = ctx
        .get("k", Some(GetOptions::new().with_revision(first)))
        .await;
    assert_eq!(values(old.kvs()), ["v1"], "the value as of that revision");
    assert_eq!(old.kvs()[0].mod_revision(), first);
    assert_eq!(
        header(old.header()).revision(),
        current,
        "the header carries the current revision"
    );

    let whole = ctx
        .get_prefix(GetOptions::new().with_revision(first + 1))
        .await;
    assert_eq!(
        ctx.names(whole.kvs()),
        ["k"],
        "a key created later is absent"
    );
    assert_eq!(values(whole.kvs()), ["v2"]);
    assert!(ctx.get("k", None).await.kvs().is_empty(), "deleted now");
}

async fn range_future_revision_fails(ctx: Kv) {
    let current = ctx.revision().await;
    for revision in [current + 1, current + 1000] {
        let reply = ctx
            .client()
            .get(
                ctx.key("k"),
                Some(GetOptions::new().with_revision(revision)),
            )
            .await;
        assert_grpc_error(reply, Code::OutOfRange, FUTURE_REV);
    }
    let at_current = ctx
        .get("k", Some(GetOptions::new().with_revision(current)))
        .await;
    assert_eq!(header(at_current.header()).revision(), current);
}

/// Writes a, b, c so that every sort target orders them differently (see each assertion).
async fn sortable_keys(ctx: &Kv) {
    for (name, value) in [
        ("a", "m"),
        ("b", "z"),
        ("c", "x"),
        ("c", "y"),
        ("c", "a"),
        ("a", "m"),
    ] {
        ctx.put(name, value).await;
    }
}

async fn sorted(ctx: &Kv, target: SortTarget, order: SortOrder) -> Vec<String> {
    let reply = ctx
        .get_prefix(GetOptions::new().with_sort(target, order))
        .await;
    ctx.names(reply.kvs())
}

async fn range_sort_orders_and_targets(ctx: Kv) {
    sortable_keys(&ctx).await;
    use SortOrder::{Ascend, Descend};
    let cases = [
        (SortTarget::Key, Ascend, ["a", "b", "c"]),
        (SortTarget::Key, Descend, ["c", "b", "a"]),
        (SortTarget::Version, Ascend, ["b", "a", "c"]),
        (SortTarget::Version, Descend, ["c", "a", "b"]),
        (SortTarget::Create, Ascend, ["a", "b", "c"]),
        (SortTarget::Create, Descend, ["c", "b", "a"]),
        (SortTarget::Mod, Ascend, ["b", "c", "a"]),
        (SortTarget::Mod, Descend, ["a", "c", "b"]),
        (SortTarget::Value, Ascend, ["c", "a", "b"]),
        (SortTarget::Value, Descend, ["b", "a", "c"]),
    ];
    for (target, order, expected) in cases {
        assert_eq!(
            sorted(&ctx, target, order).await,
            expected,
            "sorted by {target:?} {order:?}"
        );
    }
}

async fn range_sort_none_with_non_key_target_ascends(ctx: Kv) {
    sortable_keys(&ctx).await;
    let cases = [
        (SortTarget::Version, ["b", "a", "c"]),
        (SortTarget::Create, ["a", "b", "c"]),
        (SortTarget::Mod, ["b", "c", "a"]),
        (SortTarget::Value, ["c", "a", "b"]),
    ];
    for (target, expected) in cases {
        assert_eq!(
            sorted(&ctx, target, SortOrder::None).await,
            expected,
            "order NONE, target {target:?}"
        );
    }
}

/// Lock and election recipes depend on this (§0 #7).
async fn range_limit_applies_after_sort_and_filters(ctx: Kv) {
    sortable_keys(&ctx).await;
    let newest = ctx
        .get_prefix(
            GetOptions::new()
                .with_sort(SortTarget::Create, SortOrder::Descend)
                .with_limit(1),
        )
        .await;
    assert_eq!(ctx.names(newest.kvs()), ["c"]);
    assert_eq!((newest.more(), newest.count()), (true, 3));

    let by_value = ctx
        .get_prefix(
            GetOptions::new()
                .with_sort(SortTarget::Value, SortOrder::Ascend)
                .with_limit(2),
        )
        .await;
    assert_eq!(ctx.names(by_value.kvs()), ["c", "a"]);

    let b_created = ctx.kv("b").await.create_revision();
    let before_c = ctx
        .get_prefix(
            GetOptions::new()
                .with_sort(SortTarget::Create, SortOrder::Descend)
                .with_max_create_revision(b_created)
                .with_limit(1),
        )
        .await;
    assert_eq!(
        ctx.names(before_c.kvs()),
        ["b"],
        "the newest key created at or before b"
    );
    assert_eq!(
        (before_c.more(), before_c.count()),
        (true, 3),
        "count ignores filters"
    );

    let only_c = ctx
        .get_prefix(
            GetOptions::new()
                .with_min_create_revision(b_created + 1)
                .with_limit(1),
        )
        .await;
    assert_eq!(ctx.names(only_c.kvs()), ["c"]);
    assert_eq!(
        (only_c.more(), only_c.count()),
        (false, 3),
        "more is about what the filter kept, count about the whole range"
    );
}

async fn range_serializable(ctx: Kv) {
    let written = ctx.put("k", "v").await;
    let what = "a serializable read to see the write";
    let reply = wait_until(what, ELECTION_TIMEOUT, || {
        let ctx = ctx.clone();
        async move {
            let reply = ctx
                .get("k", Some(GetOptions::new().with_serializable()))
                .await;
            anyhow::ensure!(!reply.kvs().is_empty(), "not visible yet");
            Ok(reply)
        }
    })
    .await
    .expect("the member applies the write");
    assert_eq!(values(reply.kvs()), ["v"]);
    assert!(header(reply.header()).revision() >= written);
}

async fn range_keys_only(ctx: Kv) {
    let written = ctx.put("a", "value-a").await;
    ctx.put("b", "value-b").await;
    let reply = ctx.get_prefix(GetOptions::new().with_keys_only()).await;
    assert_eq!(ctx.names(reply.kvs()), ["a", "b"]);
    assert!(
        reply.kvs().iter().all(|kv| kv.value().is_empty()),
        "values are left out"
    );
    let a = &reply.kvs()[0];
    assert_eq!(
        (a.create_revision(), a.mod_revision(), a.version()),
        (written, written, 1)
    );
    assert_eq!(reply.count(), 2);
}

async fn range_count_only(ctx: Kv) {
    for name in ["a", "b", "c"] {
        ctx.put(name, "v").await;
    }
    let reply = ctx.get_prefix(GetOptions::new().with_count_only()).await;
    assert!(reply.kvs().is_empty(), "no pairs, only the count");
    assert_eq!(reply.count(), 3);
    let limited = ctx
        .get_prefix(GetOptions::new().with_count_only().with_limit(1))
        .await;
    assert_eq!(limited.count(), 3, "limit does not change count");
}

async fn range_revision_filters(ctx: Kv) {
    let a_created = ctx.put("a", "1").await;
    let b_created = ctx.put("b", "1").await;
    let c_created = ctx.put("c", "1").await;
    let a_modified = ctx.put("a", "2").await;
    let cases = [
        (
            "min_mod",
            GetOptions::new().with_min_mod_revision(c_created),
            vec!["a", "c"],
        ),
        (
            "max_mod",
            GetOptions::new().with_max_mod_revision(b_created),
            vec!["b"],
        ),
        (
            "min_create",
            GetOptions::new().with_min_create_revision(b_created),
            vec!["b", "c"],
        ),
        (
            "max_create",
            GetOptions::new().with_max_create_revision(a_created),
            vec!["a"],
        ),
        (
            "min_create+max_mod",
            GetOptions::new()
                .with_min_create_revision(b_created)
                .with_max_mod_revision(a_modified - 1),
            vec!["b", "c"],
        ),
    ];
    for (label, options, expected) in cases {
        let reply = ctx.get_prefix(options).await;
        assert_eq!(ctx.names(reply.kvs()), expected, "{label}");
        assert_eq!(reply.count(), 3, "{label}: count ignores filters");
    }
}

async fn range_empty_key_is_rejected(ctx: Kv) {
    let mut client = ctx.client();
    assert_grpc_error(
        client.get("", None).await,
        Code::InvalidArgument,
        KEY_NOT_PROVIDED,
    );
    assert_grpc_error(
        client.put("", "v", None).await,
        Code::InvalidArgument,
        KEY_NOT_PROVIDED,
    );
    assert_grpc_error(
        client.delete("", None).await,
        Code::InvalidArgument,
        KEY_NOT_PROVIDED,
    );
}

async fn put_adds_one_revision_each_time(ctx: Kv) {
    let before = ctx.revision().await;
    assert_eq!(ctx.put("k", "same").await, before + 1);
    assert_eq!(
        ctx.put("k", "same").await,
        before + 2,
        "an unchanged value still adds a revision"
    );
    assert_eq!(ctx.put("k", "other").await, before + 3);
    let kv = ctx.kv("k").await;
    assert_eq!(kv.create_revision(), before + 1);
    assert_eq!(kv.mod_revision(), before + 3);
    assert_eq!(kv.version(), 3);
    assert_eq!(kv.lease(), 0);
    assert_eq!(ctx.revision().await, before + 3, "reads add no revision");
}

async fn put_prev_kv(ctx: Kv) {
    let mut client = ctx.client();
    let with_prev = || Some(PutOptions::new().with_prev_key());
    let created = client
        .put(ctx.key("k"), "v1", with_prev())
        .await
        .expect("put");
    assert!(
        created.prev_key().is_none(),
        "a new key has no previous pair"
    );
    let rev1 = header(created.header()).revision();
    let updated = client
        .put(ctx.key("k"), "v2", with_prev())
        .await
        .expect("put");
    let prev = updated.prev_key().expect("the previous pair");
    assert_eq!(prev.value(), b"v1");
    assert_eq!(
        (prev.version(), prev.mod_revision(), prev.create_revision()),
        (1, rev1, rev1)
    );
    let plain = client.put(ctx.key("k"), "v3", None).await.expect("put");
    assert!(plain.prev_key().is_none(), "prev_kv only when asked");
}

async fn put_with_lease(ctx: Kv) {
    let lease = ctx.lease().await;
    let mut client = ctx.client();
    client
        .put(ctx.key("k"), "v", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put with lease");
    assert_eq!(ctx.kv("k").await.lease(), lease);
    client.lease_revoke(lease).await.expect("revoke");
    assert!(
        ctx.get("k", None).await.kvs().is_empty(),
        "revoking the lease deletes its keys"
    );
}

async fn put_with_unknown_lease_writes_nothing(ctx: Kv) {
    let before = ctx.revision().await;
    let unknown = UNKNOWN_LEASE;
    let reply = ctx
        .client()
        .put(
            ctx.key("k"),
            "v",
            Some(PutOptions::new().with_lease(unknown)),
        )
        .await;
    assert_grpc_error(reply, Code::NotFound, LEASE_NOT_FOUND);
    assert!(ctx.get("k", None).await.kvs().is_empty());
    assert_eq!(
        ctx.revision().await,
        before,
        "a refused put adds no revision"
    );
}

async fn put_ignore_value(ctx: Kv) {
    let mut client = ctx.client();
    let lease = ctx.lease().await;
    ctx.put("k", "kept").await;
    let reply = client
        .put(
            ctx.key("k"),
            "",
            Some(PutOptions::new().with_ignore_value().with_lease(lease)),
        )
        .await
        .expect("put ignoring the value");
    let kv = ctx.kv("k").await;
    assert_eq!(kv.value(), b"kept");
    assert_eq!(kv.version(), 2);
    assert_eq!(kv.lease(), lease, "the rest of the put still applies");
    assert_eq!(kv.mod_revision(), header(reply.header()).revision());

    let given = client
        .put(
            ctx.key("k"),
            "x",
            Some(PutOptions::new().with_ignore_value()),
        )
        .await;
    assert_grpc_error(given, Code::InvalidArgument, VALUE_PROVIDED);
    let missing = client
        .put(
            ctx.key("missing"),
            "",
            Some(PutOptions::new().with_ignore_value()),
        )
        .await;
    assert_grpc_error(missing, Code::InvalidArgument, KEY_NOT_FOUND);
}

async fn put_ignore_lease(ctx: Kv) {
    let mut client = ctx.client();
    let lease = ctx.lease().await;
    client
        .put(
            ctx.key("k"),
            "v1",
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .expect("put");
    client
        .put(
            ctx.key("k"),
            "v2",
            Some(PutOptions::new().with_ignore_lease()),
        )
        .await
        .expect("put ignoring the lease");
    let kv = ctx.kv("k").await;
    assert_eq!(
        (kv.value(), kv.lease()),
        (&b"v2"[..], lease),
        "the lease is kept"
    );

    let given = client
        .put(
            ctx.key("k"),
            "v3",
            Some(PutOptions::new().with_ignore_lease().with_lease(lease)),
        )
        .await;
    assert_grpc_error(given, Code::InvalidArgument, LEASE_PROVIDED);
    let missing = client
        .put(
            ctx.key("missing"),
            "v",
            Some(PutOptions::new().with_ignore_lease()),
        )
        .await;
    assert_grpc_error(missing, Code::InvalidArgument, KEY_NOT_FOUND);

    client.put(ctx.key("k"), "v4", None).await.expect("put");
    assert_eq!(
        ctx.kv("k").await.lease(),
        0,
        "a plain put detaches the lease"
    );
}

async fn put_moves_key_between_leases(ctx: Kv) {
    let (first, second) = (ctx.lease().await, ctx.lease().await);
    let mut client = ctx.client();
    for lease in [first, second] {
        client
            .put(ctx.key("k"), "v", Some(PutOptions::new().with_lease(lease)))
            .await
            .expect("put");
    }
    assert_eq!(ctx.kv("k").await.lease(), second);
    client.lease_revoke(first).await.expect("revoke");
    assert_eq!(
        ctx.kv("k").await.lease(),
        second,
        "revoking the old lease leaves the key"
    );
}

async fn delete_counts_and_adds_one_revision(ctx: Kv) {
    for name in ["a", "b", "c"] {
        ctx.put(name, "v").await;
    }
    ctx.put("other", "v").await;
    let before = ctx.revision().await;
    let reply = ctx
        .client()
        .delete(
            ctx.key("a"),
            Some(DeleteOptions::new().with_range(ctx.key("d"))),
        )
        .await
        .expect("delete");
    assert_eq!(reply.deleted(), 3);
    assert!(reply.prev_kvs().is_empty(), "prev_kv only when asked");
    assert_eq!(
        header(reply.header()).revision(),
        before + 1,
        "one revision for all keys"
    );
    assert_eq!(
        ctx.names(ctx.get_prefix(GetOptions::new()).await.kvs()),
        ["other"]
    );
}

async fn delete_prev_kv(ctx: Kv) {
    ctx.put("a", "1").await;
    ctx.put("b", "2").await;
    let reply = ctx
        .client()
        .delete(
            ctx.prefix.clone(),
            Some(DeleteOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .expect("delete");
    assert_eq!(reply.deleted(), 2);
    assert_eq!(ctx.names(reply.prev_kvs()), ["a", "b"]);
    assert_eq!(values(reply.prev_kvs()), ["1", "2"]);
}

async fn delete_of_nothing_adds_no_revision(ctx: Kv) {
    let before = ctx.revision().await;
    let reply = ctx
        .client()
        .delete(
            ctx.prefix.clone(),
            Some(DeleteOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .expect("delete");
    assert_eq!(reply.deleted(), 0);
    assert!(reply.prev_kvs().is_empty());
    assert_eq!(header(reply.header()).revision(), before);
    assert_eq!(ctx.revision().await, before);
}

async fn delete_then_put_starts_a_new_life(ctx: Kv) {
    ctx.put("k", "1").await;
    ctx.put("k", "2").await;
    ctx.client()
        .delete(ctx.key("k"), None)
        .await
        .expect("delete");
    let reborn = ctx.put("k", "3").await;
    let kv = ctx.kv("k").await;
    assert_eq!(kv.version(), 1);
    assert_eq!(kv.create_revision(), reborn);
    assert_eq!(kv.mod_revision(), reborn);
}

async fn succeeds(ctx: &Kv, compares: Vec<Compare>) -> bool {
    let before = ctx.revision().await;
    let reply = ctx.txn(Txn::new().when(compares)).await;
    assert_eq!(
        header(reply.header()).revision(),
        before,
        "a txn without writes adds no revision"
    );
    reply.succeeded()
}

async fn txn_compare_targets_and_results(ctx: Kv) {
    let lease = ctx.lease().await;
    let k = ctx.key("k");
    let created = ctx.put("k", "v").await;
    let reply = ctx
        .client()
        .put(k.clone(), "v", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put");
    let modified = header(reply.header()).revision();
    use CompareOp::{Equal, Greater, Less, NotEqual};
    let cases = [
        (Compare::version(k.clone(), Equal, 2), true),
        (Compare::version(k.clone(), Greater, 1), true),
        (Compare::version(k.clone(), Greater, 2), false),
        (Compare::version(k.clone(), Less, 3), true),
        (Compare::version(k.clone(), Less, 2), false),
        (Compare::version(k.clone(), NotEqual, 2), false),
        (Compare::version(k.clone(), NotEqual, 1), true),
        (Compare::create_revision(k.clone(), Equal, created), true),
        (
            Compare::create_revision(k.clone(), Greater, created - 1),
            true,
        ),
        (Compare::create_revision(k.clone(), Less, created), false),
        (
            Compare::create_revision(k.clone(), NotEqual, created),
            false,
        ),
        (Compare::mod_revision(k.clone(), Equal, modified), true),
        (Compare::mod_revision(k.clone(), Equal, created), false),
        (Compare::mod_revision(k.clone(), Greater, created), true),
        (Compare::mod_revision(k.clone(), Less, modified + 1), true),
        (Compare::mod_revision(k.clone(), NotEqual, created), true),
        (Compare::value(k.clone(), Equal, "v"), true),
        (Compare::value(k.clone(), Equal, "w"), false),
        (Compare::value(k.clone(), Greater, "u"), true),
        (Compare::value(k.clone(), Greater, "v"), false),
        (Compare::value(k.clone(), Less, "w"), true),
        (Compare::value(k.clone(), Less, "v0"), true),
        (Compare::value(k.clone(), NotEqual, "v"), false),
        (Compare::value(k.clone(), NotEqual, "x"), true),
        (Compare::lease(k.clone(), Equal, lease), true),
        (Compare::lease(k.clone(), Equal, 0), false),
        (Compare::lease(k.clone(), Greater, 0), true),
        (Compare::lease(k.clone(), Less, lease), false),
        (Compare::lease(k.clone(), NotEqual, 0), true),
    ];
    for (index, (compare, expected)) in cases.into_iter().enumerate() {
        let label = format!("case {index}: {compare:?}");
        assert_eq!(succeeds(&ctx, vec![compare]).await, expected, "{label}");
    }
    let all_true = vec![
        Compare::version(k.clone(), Equal, 2),
        Compare::value(k.clone(), Equal, "v"),
    ];
    assert!(succeeds(&ctx, all_true).await);
    let one_false = vec![
        Compare::version(k.clone(), Equal, 2),
        Compare::value(k, Equal, "nope"),
    ];
    assert!(!succeeds(&ctx, one_false).await, "compares are ANDed");
}

async fn txn_compare_missing_key(ctx: Kv) {
    let k = ctx.key("missing");
    use CompareOp::{Equal, Greater, NotEqual};
    let cases = [
        (Compare::create_revision(k.clone(), Equal, 0), true),
        (Compare::version(k.clone(), Equal, 0), true),
        (Compare::mod_revision(k.clone(), Equal, 0), true),
        (Compare::lease(k.clone(), Equal, 0), true),
        (Compare::version(k.clone(), Greater, 0), false),
        (Compare::value(k.clone(), Equal, ""), false),
        (Compare::value(k.clone(), NotEqual, "x"), false),
        (Compare::value(k.clone(), Greater, ""), false),
    ];
    for (index, (compare, expected)) in cases.into_iter().enumerate() {
        let label = format!("case {index}: {compare:?}");
        assert_eq!(succeeds(&ctx, vec![compare]).await, expected, "{label}");
    }
}

async fn txn_compare_with_range_end(ctx: Kv) {
    ctx.put("r/a", "1").await;
    ctx.put("r/b", "1").await;
    ctx.put("r/b", "2").await;
    let r = ctx.key("r/");
    use CompareOp::{Equal, Greater, Less};
    let cases = [
        (Compare::version(r.clone(), Greater, 0).with_prefix(), true),
        (Compare::version(r.clone(), Equal, 1).with_prefix(), false),
        (Compare::version(r.clone(), Less, 3).with_prefix(), true),
        (Compare::value(r.clone(), Equal, "1").with_prefix(), false),
        (
            Compare::version(ctx.key("r/a"), Equal, 1).with_range(ctx.key("r/b")),
            true,
        ),
    ];
    for (index, (compare, expected)) in cases.into_iter().enumerate() {
        let label = format!("case {index}: {compare:?}");
        assert_eq!(succeeds(&ctx, vec![compare]).await, expected, "{label}");
    }
}

async fn txn_branches(ctx: Kv) {
    let k = ctx.key("k");
    let branches = |expected: &str| {
        Txn::new()
            .when(vec![Compare::value(k.clone(), CompareOp::Equal, expected)])
            .and_then(vec![TxnOp::put(ctx.key("then"), expected, None)])
            .or_else(vec![TxnOp::put(ctx.key("else"), expected, None)])
    };
    ctx.put("k", "yes").await;
    let taken = ctx.txn(branches("yes")).await;
    assert!(taken.succeeded());
    assert_eq!(taken.op_responses().len(), 1);
    assert!(matches!(taken.op_responses()[0], TxnOpResponse::Put(_)));
    let not_taken = ctx.txn(branches("no")).await;
    assert!(!not_taken.succeeded());
    let all = ctx.get_prefix(GetOptions::new()).await;
    assert_eq!(ctx.names(all.kvs()), ["else", "k", "then"]);
    assert_eq!(values(all.kvs()), ["no", "yes", "yes"]);
}

async fn txn_range_sees_earlier_put(ctx: Kv) {
    let before = ctx.revision().await;
    let reply = ctx
        .txn(Txn::new().and_then(vec![
            TxnOp::put(ctx.key("a"), "1", None),
            TxnOp::put(ctx.key("b"), "2", None),
            TxnOp::get(ctx.prefix.clone(), Some(GetOptions::new().with_prefix())),
        ]))
        .await;
    assert!(reply.succeeded(), "no compares means success");
    assert_eq!(
        header(reply.header()).revision(),
        before + 1,
        "one revision per txn"
    );
    let TxnOpResponse::Get(range) = &reply.op_responses()[2] else {
        panic!("the third response answers the range");
    };
    assert_eq!(ctx.names(range.kvs()), ["a", "b"]);
    assert!(
        range.kvs().iter().all(|kv| kv.mod_revision() == before + 1),
        "keys changed in one txn share a mod_revision"
    );
}

async fn txn_nested(ctx: Kv) {
    ctx.put("k", "v").await;
    let inner = |expected: &str| {
        Txn::new()
            .when(vec![Compare::value(
                ctx.key("k"),
                CompareOp::Equal,
                expected,
            )])
            .and_then(vec![TxnOp::put(ctx.key("inner"), "then", None)])
            .or_else(vec![TxnOp::put(ctx.key("inner"), "else", None)])
    };
    let reply = ctx
        .txn(Txn::new().and_then(vec![
            TxnOp::txn(inner("v")),
            TxnOp::get(ctx.key("inner"), None),
        ]))
        .await;
    let TxnOpResponse::Txn(nested) = &reply.op_responses()[0] else {
        panic!("the first response answers the nested txn");
    };
    assert!(nested.succeeded());
    let TxnOpResponse::Get(range) = &reply.op_responses()[1] else {
        panic!("the second response answers the range");
    };
    assert_eq!(values(range.kvs()), ["then"]);

    let reply = ctx
        .txn(Txn::new().and_then(vec![TxnOp::txn(inner("other"))]))
        .await;
    let TxnOpResponse::Txn(nested) = &reply.op_responses()[0] else {
        panic!("the response answers the nested txn");
    };
    assert!(!nested.succeeded());
    assert_eq!(ctx.kv("inner").await.value(), b"else");
}

async fn txn_read_only_keeps_revision(ctx: Kv) {
    ctx.put("k", "v").await;
    let before = ctx.revision().await;
    let reply = ctx
        .txn(
            Txn::new()
                .when(vec![Compare::version(ctx.key("k"), CompareOp::Equal, 1)])
                .and_then(vec![
                    TxnOp::get(ctx.key("k"), None),
                    TxnOp::delete(ctx.key("missing"), None),
                ]),
        )
        .await;
    assert!(reply.succeeded());
    assert_eq!(header(reply.header()).revision(), before);
    assert_eq!(
        ctx.revision().await,
        before,
        "deleting nothing changes nothing"
    );
}

async fn txn_sub_responses_carry_revision(ctx: Kv) {
    ctx.put("old", "v").await;
    let reply = ctx
        .txn(Txn::new().and_then(vec![
            TxnOp::put(ctx.key("k"), "v", None),
            TxnOp::get(ctx.key("k"), None),
            TxnOp::delete(ctx.key("old"), None),
        ]))
        .await;
    let revision = header(reply.header()).revision();
    for response in reply.op_responses() {
        let sub = match &response {
            TxnOpResponse::Put(put) => put.header(),
            TxnOpResponse::Get(get) => get.header(),
            TxnOpResponse::Delete(delete) => delete.header(),
            TxnOpResponse::Txn(txn) => txn.header(),
        };
        let sub = header(sub);
        assert_eq!(sub.revision(), revision, "{response:?}");
        assert_eq!(
            (sub.cluster_id(), sub.member_id(), sub.raft_term()),
            (0, 0, 0),
            "only revision is set"
        );
    }
}

async fn txn_too_many_ops(ctx: Kv) {
    let puts = |count: usize| -> Vec<TxnOp> {
        (0..count)
            .map(|i| TxnOp::put(ctx.key(&format!("{i:03}")), "v", None))
            .collect()
    };
    let refused = ctx
        .client()
        .txn(Txn::new().and_then(puts(MAX_TXN_OPS + 1)))
        .await;
    assert_grpc_error(refused, Code::InvalidArgument, TOO_MANY_OPS);
    let compares: Vec<Compare> = (0..=MAX_TXN_OPS)
        .map(|i| Compare::version(ctx.key(&format!("{i:03}")), CompareOp::Equal, 0))
        .collect();
    let refused = ctx.client().txn(Txn::new().when(compares)).await;
    assert_grpc_error(refused, Code::InvalidArgument, TOO_MANY_OPS);
    assert_eq!(
        ctx.get_prefix(GetOptions::new().with_count_only())
            .await
            .count(),
        0
    );

    let accepted = ctx.txn(Txn::new().and_then(puts(MAX_TXN_OPS))).await;
    assert_eq!(accepted.op_responses().len(), MAX_TXN_OPS);
    assert_eq!(
        ctx.get_prefix(GetOptions::new().with_count_only())
            .await
            .count(),
        MAX_TXN_OPS as i64
    );
}

async fn txn_duplicate_put(ctx: Kv) {
    let twice = Txn::new().and_then(vec![
        TxnOp::put(ctx.key("k"), "1", None),
        TxnOp::put(ctx.key("k"), "2", None),
    ]);
    assert_grpc_error(
        ctx.client().txn(twice).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );
    let in_failure = Txn::new()
        .when(vec![Compare::version(ctx.key("k"), CompareOp::Equal, 0)])
        .or_else(vec![
            TxnOp::put(ctx.key("k"), "1", None),
            TxnOp::put(ctx.key("k"), "2", None),
        ]);
    assert_grpc_error(
        ctx.client().txn(in_failure).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );
    assert!(ctx.get("k", None).await.kvs().is_empty());

    let one_per_branch = Txn::new()
        .when(vec![Compare::version(ctx.key("k"), CompareOp::Equal, 0)])
        .and_then(vec![TxnOp::put(ctx.key("k"), "then", None)])
        .or_else(vec![TxnOp::put(ctx.key("k"), "else", None)]);
    assert!(
        ctx.txn(one_per_branch).await.succeeded(),
        "each branch may put the key once"
    );
    assert_eq!(ctx.kv("k").await.value(), b"then");
}

async fn txn_put_inside_deleted_range(ctx: Kv) {
    ctx.put("r/a", "v").await;
    let delete_range = || TxnOp::delete(ctx.key("r/"), Some(DeleteOptions::new().with_prefix()));
    let refused = Txn::new().and_then(vec![delete_range(), TxnOp::put(ctx.key("r/b"), "v", None)]);
    assert_grpc_error(
        ctx.client().txn(refused).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );
    let refused = Txn::new().and_then(vec![TxnOp::put(ctx.key("r/b"), "v", None), delete_range()]);
    assert_grpc_error(
        ctx.client().txn(refused).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );

    let overlapping_deletes = Txn::new().and_then(vec![
        delete_range(),
        TxnOp::delete(ctx.key("r/a"), None),
        TxnOp::put(ctx.key("s"), "v", None),
    ]);
    ctx.txn(overlapping_deletes).await;
    assert_eq!(
        ctx.names(ctx.get_prefix(GetOptions::new()).await.kvs()),
        ["s"]
    );
}

async fn txn_nested_duplicates(ctx: Kv) {
    let nested_put =
        |value: &str| TxnOp::txn(Txn::new().and_then(vec![TxnOp::put(ctx.key("k"), value, None)]));
    let refused = Txn::new().and_then(vec![
        TxnOp::put(ctx.key("k"), "outer", None),
        nested_put("inner"),
    ]);
    assert_grpc_error(
        ctx.client().txn(refused).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );

    let delete_all = TxnOp::delete(ctx.prefix.clone(), Some(DeleteOptions::new().with_prefix()));
    let refused = Txn::new().and_then(vec![delete_all, nested_put("inner")]);
    assert_grpc_error(
        ctx.client().txn(refused).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );

    let both_branches = Txn::new().and_then(vec![TxnOp::txn(
        Txn::new()
            .when(vec![Compare::version(ctx.key("k"), CompareOp::Equal, 0)])
            .and_then(vec![TxnOp::put(ctx.key("k"), "then", None)])
            .or_else(vec![TxnOp::put(ctx.key("k"), "else", None)]),
    )]);
    ctx.txn(both_branches).await;
    assert_eq!(ctx.kv("k").await.value(), b"then");
}

async fn txn_unknown_lease_fails_whole_txn(ctx: Kv) {
    let before = ctx.revision().await;
    let unknown = UNKNOWN_LEASE;
    let txn = Txn::new().and_then(vec![
        TxnOp::put(ctx.key("a"), "v", None),
        TxnOp::put(
            ctx.key("b"),
            "v",
            Some(PutOptions::new().with_lease(unknown)),
        ),
    ]);
    assert_grpc_error(ctx.client().txn(txn).await, Code::NotFound, LEASE_NOT_FOUND);
    assert_eq!(
        ctx.get_prefix(GetOptions::new().with_count_only())
            .await
            .count(),
        0
    );
    assert_eq!(ctx.revision().await, before);

    let not_taken = Txn::new()
        .when(vec![Compare::version(ctx.key("a"), CompareOp::Equal, 0)])
        .and_then(vec![TxnOp::put(ctx.key("a"), "v", None)])
        .or_else(vec![TxnOp::put(
            ctx.key("b"),
            "v",
            Some(PutOptions::new().with_lease(unknown)),
        )]);
    assert!(
        ctx.txn(not_taken).await.succeeded(),
        "only the chosen branch is checked"
    );
}

async fn compact_makes_older_revisions_unreadable(ctx: Kv) {
    let first = ctx.put("k", "v1").await;
    let second = ctx.put("k", "v2").await;
    ctx.put("gone", "x").await;
    ctx.client()
        .delete(ctx.key("gone"), None)
        .await
        .expect("delete");
    let third = ctx.put("k", "v3").await;
    let reply = ctx.client().compact(second, None).await.expect("compact");
    assert_eq!(header(reply.header()).revision(), third);

    let before = ctx
        .client()
        .get(ctx.key("k"), Some(GetOptions::new().with_revision(first)))
        .await;
    assert_grpc_error(before, Code::OutOfRange, COMPACTED);
    let at = ctx
        .get("k", Some(GetOptions::new().with_revision(second)))
        .await;
    assert_eq!(
        values(at.kvs()),
        ["v2"],
        "reading exactly at the compacted revision works"
    );
    let latest = ctx.get_prefix(GetOptions::new()).await;
    assert_eq!(ctx.names(latest.kvs()), ["k"]);
    assert_eq!(
        latest.kvs()[0].version(),
        3,
        "compaction keeps the key's history counters"
    );
    let txn = Txn::new().and_then(vec![TxnOp::get(
        ctx.key("k"),
        Some(GetOptions::new().with_revision(first)),
    )]);
    assert_grpc_error(ctx.client().txn(txn).await, Code::OutOfRange, COMPACTED);
}

async fn compact_at_or_below_compacted_revision_fails(ctx: Kv) {
    ctx.put("k", "v1").await;
    let compacted = ctx.put("k", "v2").await;
    ctx.client()
        .compact(compacted, None)
        .await
        .expect("compact");
    for revision in [compacted, compacted - 1] {
        assert_grpc_error(
            ctx.client().compact(revision, None).await,
            Code::OutOfRange,
            COMPACTED,
        );
    }
}

async fn compact_future_revision_fails(ctx: Kv) {
    let current = ctx.revision().await;
    assert_grpc_error(
        ctx.client().compact(current + 1, None).await,
        Code::OutOfRange,
        FUTURE_REV,
    );
    assert_grpc_error(
        ctx.client().compact(current + 100, None).await,
        Code::OutOfRange,
        FUTURE_REV,
    );
}

async fn compact_physical(ctx: Kv) {
    let first = ctx.put("k", "v1").await;
    let second = ctx.put("k", "v2").await;
    let reply = ctx
        .client()
        .compact(second, Some(CompactionOptions::new().with_physical()))
        .await
        .expect("physical compact");
    assert!(header(reply.header()).revision() >= second);
    let old = ctx
        .client()
        .get(ctx.key("k"), Some(GetOptions::new().with_revision(first)))
        .await;
    assert_grpc_error(old, Code::OutOfRange, COMPACTED);
    assert_eq!(ctx.kv("k").await.value(), b"v2");
}

async fn response_headers_identify_cluster_and_member(ctx: Kv) {
    let mut client = ctx.client();
    let put = client.put(ctx.key("k"), "v", None).await.expect("put");
    let get = client.get(ctx.key("k"), None).await.expect("get");
    let delete = client.delete(ctx.key("k"), None).await.expect("delete");
    let txn = client.txn(Txn::new()).await.expect("txn");
    let current = header(delete.header()).revision();
    let compact = client.compact(current, None).await.expect("compact");
    let status = client.status().await.expect("status");
    let headers = [
        ("put", put.header()),
        ("get", get.header()),
        ("delete", delete.header()),
        ("txn", txn.header()),
        ("compact", compact.header()),
        ("status", status.header()),
    ];
    let cluster_id = header(put.header()).cluster_id();
    assert_ne!(cluster_id, 0, "cluster_id is set");
    for (rpc, h) in headers {
        let h = header(h);
        assert_eq!(h.cluster_id(), cluster_id, "{rpc}: one cluster id");
        assert_eq!(
            h.member_id(),
            ctx.member_id,
            "{rpc}: the member that answered"
        );
        assert!(h.raft_term() > 0, "{rpc}: raft_term is set");
        assert!(h.revision() > 0, "{rpc}: revision is set");
    }
}

/// etcd refuses requests over --max-request-bytes (1.5 MiB): a 2 MiB value is past even gRPC's
/// receive limit (1.5 MiB + 512 KiB), a 1.8 MiB one is refused by etcd itself (§4, §5).
async fn oversized_request_is_refused(ctx: Kv) {
    let mut client = ctx.client();
    let two_mib = vec![b'x'; 2 * 1024 * 1024];
    let refused = client
        .put(ctx.key("huge"), two_mib, None)
        .await
        .expect_err("a 2 MiB put");
    assert_eq!(
        grpc_code(&refused),
        Some(Code::ResourceExhausted),
        "{refused}"
    );
    assert!(
        grpc_message(&refused).contains("larger than max"),
        "unexpected message: {}",
        grpc_message(&refused)
    );

    let over_limit = vec![b'x'; 1_800_000];
    let refused = client.put(ctx.key("big"), over_limit, None).await;
    assert_grpc_error(
        refused,
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );

    let under_limit = vec![b'x'; 1024 * 1024];
    client
        .put(ctx.key("fits"), under_limit, None)
        .await
        .expect("a 1 MiB put fits");
    assert!(ctx.get("huge", None).await.kvs().is_empty());
    assert!(ctx.get("big", None).await.kvs().is_empty());
    assert_eq!(ctx.kv("fits").await.value().len(), 1024 * 1024);
}
