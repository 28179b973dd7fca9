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

#[path = "kv/range.rs"]
mod range;
#[path = "kv/put_delete.rs"]
mod put_delete;
#[path = "kv/txn.rs"]
mod txn;
#[path = "kv/compact.rs"]
mod compact;

use compact::*;
use put_delete::*;
use range::*;
use txn::*;

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
