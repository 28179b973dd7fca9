//! The MVCC store against etcd's model (reference/etcd-api.md §1.1-1.2): revisions, versions,
//! leases, ranges, txns, group commit, compaction and restart.

use cairn_proto::cairnpb::{command, command_result, Command};
use cairn_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use cairn_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use cairn_proto::etcdserverpb::{
    request_op, response_op, CompactionRequest, Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest,
    LeaseRevokeRequest, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest,
    TxnResponse,
};
use cairn_proto::mvccpb::KeyValue;
use tempfile::TempDir;

use super::Mvcc;
use crate::error::Error;
use crate::storage::codec::Revision;
use crate::storage::{StateDb, StateRead};

type Outcome = command_result::Result;

macro_rules! expect_ok {
    ($outcome:expr, $variant:path) => {
        match $outcome {
            $variant(r) => r,
            other => panic!("expected {}, got {other:?}", stringify!($variant)),
        }
    };
}

fn failure(outcome: Outcome) -> Error {
    match outcome {
        Outcome::Error(e) => Error::from_wire(&e),
        other => panic!("expected an error, got {other:?}"),
    }
}

fn open(dir: &std::path::Path) -> Mvcc {
    Mvcc::new(StateDb::open(dir).expect("open the state db")).expect("load the mvcc store")
}

struct Store {
    dir: TempDir,
    mvcc: Mvcc,
}

impl Store {
    fn new() -> Store {
        let dir = tempfile::tempdir().expect("temp dir");
        let mvcc = open(dir.path());
        Store { dir, mvcc }
    }

    /// Closes the database and opens the same directory again, as a restart does.
    fn reopen(self) -> Store {
        let Store { dir, mvcc } = self;
        drop(mvcc);
        let mvcc = open(dir.path());
        Store { dir, mvcc }
    }

    /// Applies `cmds` in ONE apply call (one raft entry, group commit).
    fn run(&self, cmds: &[Command]) -> Vec<Outcome> {
        self.mvcc
            .apply(|applier| cmds.iter().map(|c| applier.apply(c).result.expect("every command has a result")).collect())
            .expect("apply")
    }

    fn one(&self, cmd: Command) -> Outcome {
        self.run(&[cmd]).pop().expect("one result")
    }

    fn put(&self, key: &[u8], value: &[u8]) -> PutResponse {
        expect_ok!(self.one(put(key, value)), Outcome::Put)
    }

    fn put_with(&self, req: PutRequest) -> Outcome {
        self.one(cmd(command::Op::Put(req)))
    }

    fn delete(&self, key: &[u8], range_end: &[u8]) -> DeleteRangeResponse {
        expect_ok!(self.one(delete(key, range_end)), Outcome::DeleteRange)
    }

    fn txn(&self, txn: TxnRequest) -> TxnResponse {
        expect_ok!(self.one(cmd(command::Op::Txn(txn))), Outcome::Txn)
    }

    fn range(&self, req: RangeRequest) -> RangeResponse {
        self.mvcc.range(&req).expect("range")
    }

    fn get(&self, key: &[u8]) -> Option<KeyValue> {
        self.get_at(key, 0).expect("read at the current revision")
    }

    fn get_at(&self, key: &[u8], revision: i64) -> Result<Option<KeyValue>, Error> {
        let mut resp = self.mvcc.range(&RangeRequest { revision, ..single(key) })?;
        assert!(resp.kvs.len() <= 1, "a single-key range returned {:?}", keys(&resp.kvs));
        Ok(resp.kvs.pop())
    }

    fn rev(&self) -> i64 {
        self.mvcc.current_revision()
    }

    /// Whether the `kv_rev` row of a revision is still on disk.
    fn has_row(&self, main: i64) -> bool {
        self.mvcc.db().kv_get(Revision::new(main, 0)).expect("kv_rev read").is_some()
    }
}

fn cmd(op: command::Op) -> Command {
    Command { op: Some(op) }
}

fn put_req(key: &[u8], value: &[u8]) -> PutRequest {
    PutRequest { key: key.to_vec(), value: value.to_vec(), ..Default::default() }
}

fn put(key: &[u8], value: &[u8]) -> Command {
    cmd(command::Op::Put(put_req(key, value)))
}

fn put_leased(key: &[u8], value: &[u8], lease: i64) -> Command {
    cmd(command::Op::Put(PutRequest { lease, ..put_req(key, value) }))
}

fn delete(key: &[u8], range_end: &[u8]) -> Command {
    cmd(command::Op::DeleteRange(DeleteRangeRequest { key: key.to_vec(), range_end: range_end.to_vec(), prev_kv: false }))
}

fn grant(id: i64) -> Command {
    cmd(command::Op::LeaseGrant(LeaseGrantRequest { ttl: 10, id }))
}

fn revoke(id: i64) -> Command {
    cmd(command::Op::LeaseRevoke(LeaseRevokeRequest { id }))
}

fn compact(revision: i64) -> Command {
    cmd(command::Op::Compaction(CompactionRequest { revision, physical: true }))
}

fn txn(txn: TxnRequest) -> Command {
    cmd(command::Op::Txn(txn))
}

fn single(key: &[u8]) -> RangeRequest {
    RangeRequest { key: key.to_vec(), ..Default::default() }
}

fn span(key: &[u8], range_end: &[u8]) -> RangeRequest {
    RangeRequest { key: key.to_vec(), range_end: range_end.to_vec(), ..Default::default() }
}

fn all_keys() -> RangeRequest {
    span(b"\0", b"\0")
}

fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect()
}

fn revision(header: &Option<ResponseHeader>) -> i64 {
    header.as_ref().expect("a header").revision
}

fn op_put(key: &[u8], value: &[u8]) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestPut(put_req(key, value))) }
}

fn op_put_with(req: PutRequest) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestPut(req)) }
}

fn op_range(req: RangeRequest) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestRange(req)) }
}

fn op_delete(key: &[u8], range_end: &[u8]) -> RequestOp {
    let req = DeleteRangeRequest { key: key.to_vec(), range_end: range_end.to_vec(), prev_kv: true };
    RequestOp { request: Some(request_op::Request::RequestDeleteRange(req)) }
}

fn op_txn(txn: TxnRequest) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestTxn(txn)) }
}

fn range_of(op: &ResponseOp) -> &RangeResponse {
    match &op.response {
        Some(response_op::Response::ResponseRange(r)) => r,
        other => panic!("expected a range response, got {other:?}"),
    }
}

fn compare(key: &[u8], target: CompareTarget, result: CompareResult, against: TargetUnion) -> Compare {
    Compare { key: key.to_vec(), range_end: Vec::new(), target: target as i32, result: result as i32, target_union: Some(against) }
}

/// Whether a txn with only `compares` takes its success branch.
fn holds(s: &Store, compares: Vec<Compare>) -> bool {
    let before = s.rev();
    let resp = s.txn(TxnRequest { compare: compares, success: vec![], failure: vec![] });
    assert_eq!(s.rev(), before, "a txn without writes changed the revision");
    resp.succeeded
}

#[test]
fn first_write_is_revision_two() {
    let s = Store::new();
    assert_eq!(s.rev(), 1);
    let empty = s.range(all_keys());
    assert_eq!((revision(&empty.header), empty.count, empty.kvs.len()), (1, 0, 0));

    let resp = s.put(b"a", b"1");
    assert_eq!(revision(&resp.header), 2);
    let kv = s.get(b"a").expect("a was written");
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version, kv.value.as_slice()), (2, 2, 1, &b"1"[..]));
    assert_eq!(s.rev(), 2);
}

#[test]
fn every_put_adds_a_revision_and_a_version() {
    let s = Store::new();
    let revs: Vec<i64> =
        [(&b"a"[..], &b"1"[..]), (b"b", b"x"), (b"a", b"1"), (b"a", b"2")].iter().map(|(k, v)| revision(&s.put(k, v).header)).collect();
    assert_eq!(revs, vec![2, 3, 4, 5], "an unchanged value still adds a revision");
    let a = s.get(b"a").expect("a");
    assert_eq!((a.create_revision, a.mod_revision, a.version, a.value.as_slice()), (2, 5, 3, &b"2"[..]));
    let b = s.get(b"b").expect("b");
    assert_eq!((b.create_revision, b.mod_revision, b.version), (3, 3, 1));
}

#[test]
fn delete_resets_version_and_create_revision() {
    let s = Store::new();
    s.put(b"a", b"1");
    s.put(b"a", b"2");
    let del = s.delete(b"a", b"");
    assert_eq!((del.deleted, revision(&del.header)), (1, 4));
    assert_eq!(s.get(b"a"), None);
    assert_eq!(s.range(single(b"a")).count, 0);

    assert_eq!(revision(&s.put(b"a", b"3").header), 5);
    let a = s.get(b"a").expect("a");
    assert_eq!((a.create_revision, a.mod_revision, a.version), (5, 5, 1));
    let old = s.get_at(b"a", 3).expect("read").expect("a at 3");
    assert_eq!((old.create_revision, old.version, old.value.as_slice()), (2, 2, &b"2"[..]));
    assert_eq!(s.get_at(b"a", 4).expect("read"), None, "a is deleted at revision 4");
}

#[test]
fn deleting_nothing_adds_no_revision() {
    let s = Store::new();
    s.put(b"a", b"1");
    let del = s.delete(b"zzz", b"");
    assert_eq!((del.deleted, revision(&del.header), s.rev()), (0, 2, 2));
    assert_eq!(revision(&s.put(b"b", b"1").header), 3);
}

#[test]
fn delete_range_removes_every_key_at_one_revision() {
    let s = Store::new();
    for k in [&b"a/1"[..], b"a/2", b"a/3", b"b"] {
        s.put(k, b"v");
    }
    let req = DeleteRangeRequest { key: b"a/".to_vec(), range_end: b"a0".to_vec(), prev_kv: true };
    let del = expect_ok!(s.one(cmd(command::Op::DeleteRange(req))), Outcome::DeleteRange);
    assert_eq!((del.deleted, revision(&del.header)), (3, 6));
    assert_eq!(keys(&del.prev_kvs), vec!["a/1", "a/2", "a/3"]);
    assert!(del.prev_kvs.iter().all(|kv| kv.value == b"v" && kv.version == 1));
    assert_eq!(keys(&s.range(all_keys()).kvs), vec!["b"]);
    assert_eq!(keys(&s.range(RangeRequest { revision: 5, ..all_keys() }).kvs), vec!["a/1", "a/2", "a/3", "b"]);
    assert_eq!(s.rev(), 6);

    let del = s.delete(b"b", b"");
    assert_eq!((del.deleted, del.prev_kvs.len()), (1, 0), "prev_kvs only when asked for");
}

#[test]
fn put_prev_kv_returns_the_pair_before_the_write() {
    let s = Store::new();
    let first = expect_ok!(s.put_with(PutRequest { prev_kv: true, ..put_req(b"a", b"1") }), Outcome::Put);
    assert_eq!(first.prev_kv, None, "a new key has no previous pair");
    let second = expect_ok!(s.put_with(PutRequest { prev_kv: true, ..put_req(b"a", b"2") }), Outcome::Put);
    let prev = second.prev_kv.expect("the previous pair");
    assert_eq!((prev.value.as_slice(), prev.mod_revision, prev.version), (&b"1"[..], 2, 1));
    assert_eq!(s.put(b"a", b"3").prev_kv, None, "prev_kv only when asked for");
}

#[test]
fn ignore_value_and_ignore_lease_keep_what_the_key_had() {
    let s = Store::new();
    s.one(grant(7));
    expect_ok!(s.one(put_leased(b"a", b"v", 7)), Outcome::Put);

    expect_ok!(s.put_with(PutRequest { ignore_value: true, ignore_lease: true, ..put_req(b"a", b"") }), Outcome::Put);
    let a = s.get(b"a").expect("a");
    assert_eq!((a.value.as_slice(), a.lease, a.version, a.mod_revision), (&b"v"[..], 7, 2, 3));

    expect_ok!(s.put_with(PutRequest { ignore_lease: true, ..put_req(b"a", b"w") }), Outcome::Put);
    let a = s.get(b"a").expect("a");
    assert_eq!((a.value.as_slice(), a.lease), (&b"w"[..], 7));

    expect_ok!(s.put_with(PutRequest { ignore_value: true, ..put_req(b"a", b"") }), Outcome::Put);
    let a = s.get(b"a").expect("a");
    assert_eq!((a.value.as_slice(), a.lease), (&b"w"[..], 0), "without ignore_lease the lease is the request's");

    let before = s.rev();
    assert_eq!(failure(s.put_with(PutRequest { ignore_value: true, ..put_req(b"nope", b"") })), Error::KeyNotFound);
    assert_eq!(failure(s.put_with(PutRequest { ignore_lease: true, ..put_req(b"nope", b"x") })), Error::KeyNotFound);
    assert_eq!((s.rev(), s.get(b"nope")), (before, None));
}

#[test]
fn put_with_an_unknown_lease_writes_nothing() {
    let s = Store::new();
    assert_eq!(failure(s.one(put_leased(b"a", b"1", 9))), Error::LeaseNotFound);
    assert_eq!((s.rev(), s.get(b"a")), (1, None));
}

#[test]
fn lease_grant_and_revoke_errors() {
    let s = Store::new();
    let granted = expect_ok!(s.one(grant(7)), Outcome::LeaseGrant);
    assert_eq!((granted.id, granted.ttl, revision(&granted.header)), (7, 10, 1), "a grant adds no revision");
    assert_eq!(failure(s.one(grant(7))), Error::LeaseExists);
    assert_eq!(failure(s.one(revoke(8))), Error::LeaseNotFound);
    let revoked = expect_ok!(s.one(revoke(7)), Outcome::LeaseRevoke);
    assert_eq!((revision(&revoked.header), s.rev()), (1, 1), "revoking a lease without keys adds no revision");
    assert_eq!(failure(s.one(revoke(7))), Error::LeaseNotFound);
    expect_ok!(s.one(grant(7)), Outcome::LeaseGrant);
}

#[test]
fn revoking_a_lease_deletes_its_keys_in_one_revision() {
    let s = Store::new();
    s.run(&[grant(7), grant(8)]);
    for (key, lease) in [(&b"a"[..], 7), (b"b", 7), (b"c", 7), (b"d", 0), (b"c", 8), (b"e", 7), (b"e", 0)] {
        expect_ok!(s.one(put_leased(key, b"v", lease)), Outcome::Put);
    }
    assert_eq!(s.rev(), 8);
    let revoked = expect_ok!(s.one(revoke(7)), Outcome::LeaseRevoke);
    assert_eq!(revision(&revoked.header), 9);
    assert_eq!(keys(&s.range(all_keys()).kvs), vec!["c", "d", "e"], "only the keys still on lease 7 go");
    assert_eq!(s.get(b"c").expect("c").lease, 8);
    assert_eq!(keys(&s.range(RangeRequest { revision: 8, ..all_keys() }).kvs), vec!["a", "b", "c", "d", "e"]);
    assert_eq!(s.rev(), 9);

    assert_eq!(failure(s.one(put_leased(b"x", b"v", 7))), Error::LeaseNotFound);
    expect_ok!(s.one(revoke(8)), Outcome::LeaseRevoke);
    assert_eq!((keys(&s.range(all_keys()).kvs), s.rev()), (vec!["d".to_string(), "e".to_string()], 10));
}

#[test]
fn a_deleted_key_leaves_its_lease() {
    let s = Store::new();
    s.one(grant(7));
    s.one(put_leased(b"a", b"v", 7));
    s.delete(b"a", b"");
    s.put(b"a", b"unleased");
    let revoked = expect_ok!(s.one(revoke(7)), Outcome::LeaseRevoke);
    assert_eq!((revision(&revoked.header), s.rev()), (4, 4), "nothing left on the lease: no revision");
    assert_eq!(s.get(b"a").expect("a").value, b"unleased");
}

#[test]
fn lease_commands_in_one_batch_see_each_other() {
    let s = Store::new();
    s.run(&[grant(3), grant(4)]);
    s.one(put_leased(b"moved", b"v", 3));
    let out = s.run(&[
        grant(5),
        put_leased(b"a", b"1", 5),
        put_leased(b"b", b"1", 5),
        put_leased(b"moved", b"v", 4),
        revoke(5),
        revoke(3),
        put_leased(b"c", b"1", 5),
    ]);
    assert_eq!(revision(&expect_ok!(out[1].clone(), Outcome::Put).header), 3);
    assert_eq!(revision(&expect_ok!(out[2].clone(), Outcome::Put).header), 4);
    assert_eq!(revision(&expect_ok!(out[4].clone(), Outcome::LeaseRevoke).header), 6, "a pending lease's keys are deleted");
    assert_eq!(revision(&expect_ok!(out[5].clone(), Outcome::LeaseRevoke).header), 6, "moved off lease 3 in this batch");
    assert_eq!(failure(out[6].clone()), Error::LeaseNotFound, "lease 5 was revoked earlier in the batch");
    assert_eq!(keys(&s.range(all_keys()).kvs), vec!["moved"]);
    assert_eq!(s.get(b"moved").expect("moved").lease, 4);
    assert_eq!(s.rev(), 6);
}

#[test]

fn revoking_lease_minus_one_deletes_its_keys() {
    // etcd accepts any non-zero client-chosen lease ID, negative ones included.
    let s = Store::new();
    s.one(grant(-1));
    s.one(put_leased(b"a", b"v", -1));
    expect_ok!(s.one(revoke(-1)), Outcome::LeaseRevoke);
    assert_eq!(s.get(b"a"), None);
}

#[test]
fn revoking_negative_and_extreme_lease_ids() {
    let s = Store::new();
    for id in [-5, i64::MIN, i64::MAX] {
        s.one(grant(id));
        s.one(put_leased(format!("k{id}").as_bytes(), b"v", id));
    }
    s.one(put(b"other", b"v"));
    for id in [-5, i64::MIN, i64::MAX] {
        expect_ok!(s.one(revoke(id)), Outcome::LeaseRevoke);
        assert_eq!(s.get(format!("k{id}").as_bytes()), None, "lease {id}");
    }
    assert_eq!(keys(&s.range(all_keys()).kvs), vec!["other"]);
}

/// a=2, a/1=3, a/2=4, b=5, c=6 (key=revision)
fn five_keys() -> Store {
    let s = Store::new();
    for (k, v) in [(&b"a"[..], &b"1"[..]), (b"a/1", b"2"), (b"a/2", b"3"), (b"b", b"4"), (b"c", b"5")] {
        s.put(k, v);
    }
    s
}

#[test]
fn range_forms() {
    let s = five_keys();
    let got = |req: RangeRequest| keys(&s.range(req).kvs);
    assert_eq!(got(single(b"a")), vec!["a"]);
    assert_eq!(got(single(b"a/")), Vec::<String>::new());
    assert_eq!(got(span(b"a/", b"a0")), vec!["a/1", "a/2"], "prefix");
    assert_eq!(got(span(b"b", b"\0")), vec!["b", "c"], "from key");
    assert_eq!(got(all_keys()), vec!["a", "a/1", "a/2", "b", "c"]);
    assert_eq!(got(span(b"a", b"c")), vec!["a", "a/1", "a/2", "b"]);
    let backwards = s.range(span(b"c", b"a"));
    assert_eq!((backwards.kvs.len(), backwards.count), (0, 0));
}

#[test]
fn binary_keys_keep_byte_order() {
    let s = Store::new();
    let ks: [&[u8]; 8] = [b"k\xff", b"abcdefghi", b"k", b"\xff\xff", b"abcdefgh", b"k\0", b"abcdefg", b"\x01"];
    for k in ks {
        s.put(k, k);
    }
    let mut sorted = ks.to_vec();
    sorted.sort();
    let all = s.range(all_keys());
    assert_eq!(all.kvs.iter().map(|kv| kv.key.as_slice()).collect::<Vec<_>>(), sorted);
    assert!(all.kvs.iter().all(|kv| kv.key == kv.value));
    assert_eq!(s.range(single(b"k")).kvs.len(), 1);
    let prefix = s.range(span(b"abcdefgh", b"abcdefgi"));
    assert_eq!(prefix.kvs.iter().map(|kv| kv.key.as_slice()).collect::<Vec<_>>(), vec![&b"abcdefgh"[..], b"abcdefghi"]);
    assert_eq!(s.range(span(b"k", b"l")).count, 3);
}

#[test]
fn limit_sets_more_and_count_ignores_it() {
    let s = five_keys();
    let two = s.range(RangeRequest { limit: 2, ..all_keys() });
    assert_eq!((keys(&two.kvs), two.more, two.count), (vec!["a".to_string(), "a/1".to_string()], true, 5));
    let exact = s.range(RangeRequest { limit: 5, ..all_keys() });
    assert_eq!((exact.kvs.len(), exact.more, exact.count), (5, false, 5));
    let over = s.range(RangeRequest { limit: 6, ..all_keys() });
    assert_eq!((over.kvs.len(), over.more), (5, false));
    let unlimited = s.range(all_keys());
    assert_eq!((unlimited.kvs.len(), unlimited.more), (5, false));
    let prefix = s.range(RangeRequest { limit: 1, ..span(b"a/", b"a0") });
    assert_eq!((keys(&prefix.kvs), prefix.more, prefix.count), (vec!["a/1".to_string()], true, 2));
}

/// a: value w, version 2, create 3, mod 5; b: value y, version 1, create 4, mod 4;
/// c: value u, version 3, create 2, mod 7.
fn sortable() -> Store {
    let s = Store::new();
    for (k, v) in [(&b"c"[..], &b"x"[..]), (b"a", b"z"), (b"b", b"y"), (b"a", b"w"), (b"c", b"v"), (b"c", b"u")] {
        s.put(k, v);
    }
    s
}

#[test]
fn sort_by_every_target_and_order() {
    let s = sortable();
    let sorted = |target: SortTarget, order: SortOrder| {
        keys(&s.range(RangeRequest { sort_target: target as i32, sort_order: order as i32, ..all_keys() }).kvs).concat()
    };
    let cases = [
        (SortTarget::Key, SortOrder::None, "abc"),
        (SortTarget::Key, SortOrder::Ascend, "abc"),
        (SortTarget::Key, SortOrder::Descend, "cba"),
        (SortTarget::Version, SortOrder::Ascend, "bac"),
        (SortTarget::Version, SortOrder::Descend, "cab"),
        (SortTarget::Create, SortOrder::Ascend, "cab"),
        (SortTarget::Create, SortOrder::Descend, "bac"),
        (SortTarget::Mod, SortOrder::Ascend, "bac"),
        (SortTarget::Mod, SortOrder::Descend, "cab"),
        (SortTarget::Value, SortOrder::Ascend, "cab"),
        (SortTarget::Value, SortOrder::Descend, "bac"),
        (SortTarget::Create, SortOrder::None, "cab"),
        (SortTarget::Value, SortOrder::None, "cab"),
    ];
    for (target, order, want) in cases {
        assert_eq!(sorted(target, order), want, "{target:?} {order:?}");
    }
}

#[test]
fn limit_applies_after_sorting() {
    let s = sortable();
    let req = RangeRequest { sort_target: SortTarget::Value as i32, sort_order: SortOrder::Descend as i32, limit: 1, ..all_keys() };
    let top = s.range(req);
    assert_eq!((keys(&top.kvs), top.more, top.count), (vec!["b".to_string()], true, 3));
}

#[test]
fn unknown_sort_option_is_an_error() {
    let s = sortable();
    assert_eq!(s.mvcc.range(&RangeRequest { sort_order: 7, ..all_keys() }).err(), Some(Error::InvalidSortOption));
    assert_eq!(s.mvcc.range(&RangeRequest { sort_target: 9, ..all_keys() }).err(), Some(Error::InvalidSortOption));
}

#[test]
fn revision_filters_prune_but_count_ignores_them() {
    let s = five_keys();
    s.put(b"a", b"again");
    let got = |req: RangeRequest| {
        let r = s.range(req);
        (keys(&r.kvs).concat(), r.more, r.count)
    };
    assert_eq!(got(RangeRequest { min_mod_revision: 5, ..all_keys() }), ("abc".into(), false, 5));
    assert_eq!(got(RangeRequest { max_mod_revision: 4, ..all_keys() }), ("a/1a/2".into(), false, 5));
    assert_eq!(got(RangeRequest { min_create_revision: 3, max_create_revision: 5, ..all_keys() }), ("a/1a/2b".into(), false, 5));
    assert_eq!(got(RangeRequest { max_create_revision: 2, ..all_keys() }), ("a".into(), false, 5));
    assert_eq!(got(RangeRequest { min_mod_revision: 5, limit: 2, ..all_keys() }), ("ab".into(), true, 5));
    assert_eq!(got(RangeRequest { min_mod_revision: 5, limit: 3, ..all_keys() }), ("abc".into(), false, 5));
}

#[test]
fn keys_only_and_count_only() {
    let s = five_keys();
    let ko = s.range(RangeRequest { keys_only: true, ..all_keys() });
    assert_eq!(keys(&ko.kvs), vec!["a", "a/1", "a/2", "b", "c"]);
    assert!(ko.kvs.iter().all(|kv| kv.value.is_empty() && kv.mod_revision > 0 && kv.version == 1));
    let co = s.range(RangeRequest { count_only: true, ..span(b"a", b"b") });
    assert_eq!((co.kvs.len(), co.count, co.more), (0, 3, false));
    let co_limited = s.range(RangeRequest { count_only: true, limit: 1, ..all_keys() });
    assert_eq!((co_limited.kvs.len(), co_limited.count), (0, 5));
}

#[test]
fn reads_at_past_revisions() {
    let s = Store::new();
    s.put(b"a", b"1");
    s.put(b"a", b"2");
    s.delete(b"a", b"");
    s.put(b"a", b"3");
    s.put(b"b", b"1");
    let at = |rev| s.get_at(b"a", rev).expect("readable").map(|kv| (kv.value, kv.version, kv.create_revision));
    assert_eq!(at(2), Some((b"1".to_vec(), 1, 2)));
    assert_eq!(at(3), Some((b"2".to_vec(), 2, 2)));
    assert_eq!(at(4), None);
    assert_eq!(at(5), Some((b"3".to_vec(), 1, 5)));
    assert_eq!(at(0), at(6));
    assert_eq!(at(-1), at(6));
    let old = s.range(RangeRequest { revision: 3, ..all_keys() });
    assert_eq!((keys(&old.kvs), old.count), (vec!["a".to_string()], 1));
    assert_eq!(revision(&old.header), 6, "the header holds the current revision, even for a historical read");
    assert_eq!(s.get_at(b"a", 7).err(), Some(Error::FutureRev));
}

#[test]
fn txn_compare_targets_on_an_existing_key() {
    let s = Store::new();
    s.one(grant(7));
    s.put(b"a", b"1");
    s.one(put_leased(b"a", b"2", 7));
    s.put(b"b", b"x");
    use CompareResult::{Equal, Greater, Less, NotEqual};
    use CompareTarget as T;
    use TargetUnion as U;
    let cases = [
        (T::Version, Equal, U::Version(2), true),
        (T::Version, Equal, U::Version(1), false),
        (T::Version, Greater, U::Version(1), true),
        (T::Version, Less, U::Version(3), true),
        (T::Version, NotEqual, U::Version(2), false),
        (T::Create, Equal, U::CreateRevision(2), true),
        (T::Create, Greater, U::CreateRevision(2), false),
        (T::Mod, Equal, U::ModRevision(3), true),
        (T::Mod, Less, U::ModRevision(3), false),
        (T::Mod, Less, U::ModRevision(4), true),
        (T::Value, Equal, U::Value(b"2".to_vec()), true),
        (T::Value, Greater, U::Value(b"1".to_vec()), true),
        (T::Value, Less, U::Value(b"3".to_vec()), true),
        (T::Value, NotEqual, U::Value(b"2".to_vec()), false),
        (T::Lease, Equal, U::Lease(7), true),
        (T::Lease, Equal, U::Lease(0), false),
    ];
    for (target, result, against, want) in cases {
        let c = compare(b"a", target, result, against.clone());
        assert_eq!(holds(&s, vec![c]), want, "{target:?} {result:?} {against:?}");
    }
}

#[test]
fn txn_compare_on_a_missing_key_sees_a_zeroed_pair() {
    let s = Store::new();
    s.put(b"a", b"1");
    use CompareResult::{Equal, Greater, NotEqual};
    use CompareTarget as T;
    use TargetUnion as U;
    let cases = [
        (T::Version, Equal, U::Version(0), true),
        (T::Version, Greater, U::Version(0), false),
        (T::Create, Equal, U::CreateRevision(0), true),
        (T::Mod, Equal, U::ModRevision(0), true),
        (T::Lease, Equal, U::Lease(0), true),
        (T::Value, Equal, U::Value(Vec::new()), false),
        (T::Value, NotEqual, U::Value(b"x".to_vec()), false),
    ];
    for (target, result, against, want) in cases {
        let c = compare(b"missing", target, result, against.clone());
        assert_eq!(holds(&s, vec![c]), want, "{target:?} {result:?} {against:?}");
    }
}

#[test]
fn txn_compare_over_a_range_needs_every_key() {
    let s = Store::new();
    s.put(b"a", b"1");
    s.put(b"a", b"2");
    s.put(b"b", b"2");
    s.put(b"c", b"9");
    let over = |target, result, against| Compare { range_end: b"c".to_vec(), ..compare(b"a", target, result, against) };
    assert!(holds(&s, vec![over(CompareTarget::Version, CompareResult::Greater, TargetUnion::Version(0))]));
    assert!(!holds(&s, vec![over(CompareTarget::Version, CompareResult::Equal, TargetUnion::Version(2))]));
    assert!(holds(&s, vec![over(CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"2".to_vec()))]));
    assert!(holds(&s, vec![over(CompareTarget::Create, CompareResult::Less, TargetUnion::CreateRevision(5))]));
    let to_end = Compare { range_end: b"\0".to_vec(), ..compare(b"a", CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"2".to_vec())) };
    assert!(!holds(&s, vec![to_end]), "c holds 9");
    let empty_range = Compare { range_end: b"y".to_vec(), ..compare(b"x", CompareTarget::Create, CompareResult::Equal, TargetUnion::CreateRevision(0)) };
    assert!(holds(&s, vec![empty_range]), "no key in range compares as a zeroed pair");
}

#[test]
fn txn_compares_are_anded() {
    let s = Store::new();
    s.put(b"a", b"1");
    let yes = compare(b"a", CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"1".to_vec()));
    let no = compare(b"a", CompareTarget::Version, CompareResult::Equal, TargetUnion::Version(5));
    assert!(holds(&s, vec![yes.clone(), yes.clone()]));
    assert!(!holds(&s, vec![yes.clone(), no.clone()]));
    assert!(!holds(&s, vec![no, yes]));
    assert!(holds(&s, vec![]), "no compares take the success branch");
}

#[test]
fn txn_runs_one_branch_at_one_revision() {
    let s = Store::new();
    s.put(b"a", b"1");
    let t = TxnRequest {
        compare: vec![compare(b"a", CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"1".to_vec()))],
        success: vec![op_put(b"a", b"2"), op_put(b"b", b"1"), op_range(single(b"a"))],
        failure: vec![op_put(b"c", b"1")],
    };
    let resp = s.txn(t.clone());
    assert!(resp.succeeded);
    assert_eq!((revision(&resp.header), s.rev()), (3, 3), "two puts, one revision");
    assert_eq!(resp.responses.len(), 3);
    let seen = range_of(&resp.responses[2]);
    assert_eq!((seen.kvs[0].value.as_slice(), revision(&seen.header)), (&b"2"[..], 3));
    let a = s.get(b"a").expect("a");
    let b = s.get(b"b").expect("b");
    assert_eq!((a.mod_revision, a.version, b.create_revision, b.mod_revision), (3, 2, 3, 3));
    assert_eq!(s.get(b"c"), None);

    let resp = s.txn(t);
    assert!(!resp.succeeded);
    assert_eq!((revision(&resp.header), resp.responses.len()), (4, 1));
    assert_eq!(s.get(b"c").expect("c").mod_revision, 4);
}

#[test]
fn read_only_txn_keeps_the_revision() {
    let s = Store::new();
    s.put(b"a", b"1");
    let resp = s.txn(TxnRequest { compare: vec![], success: vec![op_range(single(b"a")), op_delete(b"zzz", b"")], failure: vec![] });
    assert_eq!((revision(&resp.header), revision(&range_of(&resp.responses[0]).header), s.rev()), (2, 2, 2));
    assert_eq!(revision(&s.put(b"b", b"1").header), 3);
}

#[test]
fn range_in_a_txn_sees_earlier_ops_of_the_same_txn() {
    let s = Store::new();
    s.put(b"a", b"1");
    let resp = s.txn(TxnRequest {
        compare: vec![],
        success: vec![op_range(all_keys()), op_put(b"b", b"2"), op_range(all_keys()), op_delete(b"a", b""), op_range(all_keys())],
        failure: vec![],
    });
    let seen = |i: usize| {
        let r = range_of(&resp.responses[i]);
        (keys(&r.kvs).concat(), r.count, revision(&r.header))
    };
    assert_eq!(seen(0), ("a".into(), 1, 2));
    assert_eq!(seen(2), ("ab".into(), 2, 3));
    assert_eq!(seen(4), ("b".into(), 1, 3));
    match &resp.responses[3].response {
        Some(response_op::Response::ResponseDeleteRange(d)) => {
            assert_eq!((d.deleted, revision(&d.header), keys(&d.prev_kvs)), (1, 3, vec!["a".to_string()]))
        }
        other => panic!("expected a delete response, got {other:?}"),
    }
    assert_eq!((s.rev(), keys(&s.range(all_keys()).kvs)), (3, vec!["b".to_string()]));
    assert_eq!(s.get_at(b"a", 2).expect("readable").expect("a at 2").value, b"1");
}

#[test]
fn nested_txn_compares_see_the_state_before_the_txn() {
    let s = Store::new();
    s.put(b"a", b"0");
    let nested = TxnRequest {
        compare: vec![compare(b"a", CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"0".to_vec()))],
        success: vec![op_put(b"b", b"before")],
        failure: vec![op_put(b"b", b"after")],
    };
    let resp = s.txn(TxnRequest { compare: vec![], success: vec![op_put(b"a", b"1"), op_txn(nested)], failure: vec![] });
    assert!(resp.succeeded);
    assert_eq!(revision(&resp.header), 3);
    match &resp.responses[1].response {
        Some(response_op::Response::ResponseTxn(inner)) => assert!(inner.succeeded && inner.responses.len() == 1),
        other => panic!("expected a txn response, got {other:?}"),
    }
    let b = s.get(b"b").expect("b");
    assert_eq!((b.value.as_slice(), b.mod_revision), (&b"before"[..], 3));
    assert_eq!(s.get(b"a").expect("a").mod_revision, 3);
}

#[test]
fn nested_txn_takes_its_failure_branch() {
    let s = Store::new();
    let nested = TxnRequest {
        compare: vec![compare(b"x", CompareTarget::Version, CompareResult::Greater, TargetUnion::Version(0))],
        success: vec![op_put(b"yes", b"1")],
        failure: vec![op_put(b"no", b"1"), op_range(single(b"outer"))],
    };
    let resp = s.txn(TxnRequest { compare: vec![], success: vec![op_put(b"outer", b"1"), op_txn(nested)], failure: vec![] });
    match &resp.responses[1].response {
        Some(response_op::Response::ResponseTxn(inner)) => {
            assert!(!inner.succeeded);
            assert_eq!(range_of(&inner.responses[1]).kvs.len(), 1, "a nested range sees the outer put");
        }
        other => panic!("expected a txn response, got {other:?}"),
    }
    assert_eq!(keys(&s.range(all_keys()).kvs), vec!["no", "outer"]);
    assert_eq!(s.rev(), 2);
}

#[test]
fn a_failing_op_in_the_chosen_branch_fails_the_whole_txn() {
    let s = Store::new();
    s.put(b"a", b"1");
    let leased = PutRequest { lease: 99, ..put_req(b"b", b"1") };
    let t = TxnRequest { compare: vec![], success: vec![op_put(b"a", b"2"), op_put_with(leased.clone())], failure: vec![] };
    assert_eq!(failure(s.one(txn(t))), Error::LeaseNotFound);
    let ignore = PutRequest { ignore_value: true, ..put_req(b"nope", b"") };
    let t = TxnRequest { compare: vec![], success: vec![op_put(b"a", b"2"), op_put_with(ignore)], failure: vec![] };
    assert_eq!(failure(s.one(txn(t))), Error::KeyNotFound);
    let future = RangeRequest { revision: 50, ..single(b"a") };
    let t = TxnRequest { compare: vec![], success: vec![op_put(b"a", b"2"), op_range(future)], failure: vec![] };
    assert_eq!(failure(s.one(txn(t))), Error::FutureRev);
    assert_eq!((s.rev(), s.get(b"a").expect("a").value), (2, b"1".to_vec()), "nothing of a failed txn is written");

    let never = compare(b"a", CompareTarget::Version, CompareResult::Equal, TargetUnion::Version(9));
    let t = TxnRequest { compare: vec![never], success: vec![op_put_with(leased)], failure: vec![op_put(b"c", b"1")] };
    assert!(!s.txn(t).succeeded, "the branch not taken is not checked");
    assert_eq!(s.rev(), 3);
}

#[test]
fn group_commit_gives_each_command_its_own_revision() {
    let s = Store::new();
    let is_two = compare(b"a", CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"2".to_vec()));
    let out = s.run(&[
        put(b"a", b"1"),
        put(b"b", b"1"),
        cmd(command::Op::Put(PutRequest { prev_kv: true, ..put_req(b"a", b"2") })),
        put_leased(b"x", b"1", 42),
        txn(TxnRequest { compare: vec![is_two], success: vec![op_put(b"c", b"1")], failure: vec![] }),
        delete(b"b", b""),
        put(b"d", b"1"),
        delete(b"d", b""),
        put(b"d", b"2"),
    ]);
    let rev = |i: usize| match &out[i] {
        Outcome::Put(r) => revision(&r.header),
        Outcome::Txn(r) => revision(&r.header),
        Outcome::DeleteRange(r) => revision(&r.header),
        other => panic!("command {i}: {other:?}"),
    };
    assert_eq!([rev(0), rev(1), rev(2)], [2, 3, 4]);
    let prev = expect_ok!(out[2].clone(), Outcome::Put).prev_kv.expect("the pending a");
    assert_eq!((prev.value.as_slice(), prev.mod_revision), (&b"1"[..], 2));
    assert_eq!(failure(out[3].clone()), Error::LeaseNotFound, "a failed command takes no revision");
    assert!(expect_ok!(out[4].clone(), Outcome::Txn).succeeded, "the txn sees the put before it");
    assert_eq!([rev(4), rev(5), rev(6), rev(7), rev(8)], [5, 6, 7, 8, 9]);
    assert_eq!(s.rev(), 9);

    let a = s.get(b"a").expect("a");
    assert_eq!((a.create_revision, a.mod_revision, a.version), (2, 4, 2));
    assert_eq!(s.get(b"c").expect("c").create_revision, 5);
    assert_eq!(s.get(b"b"), None);
    assert!(s.get_at(b"b", 5).expect("readable").is_some());
    let d = s.get(b"d").expect("d");
    assert_eq!((d.create_revision, d.version, d.value.as_slice()), (9, 1, &b"2"[..]), "deleted and recreated in the batch");
}

/// a: 2 (v1), 3 (v2), 7 (v3); b: 4, deleted at 5; c: 6. Then compacted at 5.
fn compacted_at_five() -> Store {
    let s = Store::new();
    s.put(b"a", b"1");
    s.put(b"a", b"2");
    s.put(b"b", b"1");
    s.delete(b"b", b"");
    s.put(b"c", b"1");
    s.put(b"a", b"3");
    let resp = expect_ok!(s.one(compact(5)), Outcome::Compaction);
    assert_eq!(revision(&resp.header), 7);
    s
}

#[test]
fn compaction_keeps_the_newest_version_at_or_below_it() {
    let s = compacted_at_five();
    assert_eq!((s.mvcc.compact_revision(), s.rev()), (5, 7), "a compaction adds no revision");
    let at5 = s.range(RangeRequest { revision: 5, ..all_keys() });
    assert_eq!((keys(&at5.kvs), at5.count), (vec!["a".to_string()], 1), "reading at the compacted revision works");
    assert_eq!((at5.kvs[0].value.as_slice(), at5.kvs[0].version, at5.kvs[0].mod_revision), (&b"2"[..], 2, 3));
    assert_eq!(keys(&s.range(RangeRequest { revision: 6, ..all_keys() }).kvs), vec!["a", "c"]);
    assert_eq!(s.mvcc.range(&RangeRequest { revision: 4, ..all_keys() }).err(), Some(Error::Compacted));
    assert_eq!(s.mvcc.range(&RangeRequest { revision: 1, ..all_keys() }).err(), Some(Error::Compacted));
    let a = s.get(b"a").expect("a");
    assert_eq!((a.create_revision, a.version), (2, 3));

    assert!(!s.has_row(2), "a@2 is superseded by a@3");
    assert!(s.has_row(3), "a@3 is the newest a at 5");
    assert!(!s.has_row(4) && !s.has_row(5), "b is deleted at 5: its put and its tombstone go");
    assert!(s.has_row(6) && s.has_row(7));

    s.put(b"a", b"4");
    let a = s.get(b"a").expect("a");
    assert_eq!((a.create_revision, a.version, a.mod_revision), (2, 4, 8));
}

#[test]
fn compaction_revision_errors() {
    let s = compacted_at_five();
    assert_eq!(failure(s.one(compact(5))), Error::Compacted);
    assert_eq!(failure(s.one(compact(3))), Error::Compacted);
    assert_eq!(failure(s.one(compact(8))), Error::FutureRev);
    expect_ok!(s.one(compact(7)), Outcome::Compaction);
    assert!(!s.has_row(3));
    assert_eq!(keys(&s.range(RangeRequest { revision: 7, ..all_keys() }).kvs), vec!["a", "c"]);
    let old = RangeRequest { revision: 6, ..single(b"a") };
    let t = TxnRequest { compare: vec![], success: vec![op_range(old)], failure: vec![] };
    assert_eq!(failure(s.one(txn(t))), Error::Compacted);
}

#[test]
fn compaction_drops_a_tombstone_but_keeps_a_newer_life() {
    let s = Store::new();
    s.put(b"k", b"1");
    s.delete(b"k", b"");
    s.put(b"k", b"2");
    s.put(b"other", b"x");
    expect_ok!(s.one(compact(3)), Outcome::Compaction);
    assert!(!s.has_row(2) && !s.has_row(3) && s.has_row(4));
    assert_eq!(s.get_at(b"k", 3).expect("readable"), None);
    let k = s.get(b"k").expect("k");
    assert_eq!((k.create_revision, k.version, k.value.as_slice()), (4, 1, &b"2"[..]));
}

#[test]
fn compaction_in_a_batch_counts_earlier_commands() {
    let s = Store::new();
    let out = s.run(&[put(b"a", b"1"), put(b"a", b"2"), compact(3), put(b"a", b"3"), compact(3)]);
    expect_ok!(out[2].clone(), Outcome::Compaction);
    assert_eq!(failure(out[4].clone()), Error::Compacted);
    assert_eq!((s.mvcc.compact_revision(), s.rev()), (3, 4));
    assert!(!s.has_row(2) && s.has_row(3) && s.has_row(4));
}

#[test]
fn compaction_deletes_in_several_batches() {
    let s = Store::new();
    let cmds: Vec<Command> = (0..12_500).map(|i| put(b"hot", format!("{i}").as_bytes())).chain([put(b"cold", b"x")]).collect();
    s.run(&cmds);
    let top = s.rev();
    expect_ok!(s.one(compact(top)), Outcome::Compaction);
    assert!(!s.has_row(2) && !s.has_row(top - 2) && s.has_row(top - 1) && s.has_row(top));
    let hot = s.get(b"hot").expect("hot");
    assert_eq!((hot.version, hot.value.as_slice()), (12_500, &b"12499"[..]));
    assert_eq!(keys(&s.range(RangeRequest { revision: top, ..all_keys() }).kvs), vec!["cold", "hot"]);
}

#[test]
fn restart_keeps_state_revisions_and_leases() {
    let s = Store::new();
    s.one(grant(7));
    s.one(put_leased(b"a", b"1", 7));
    s.put(b"b", b"1");
    s.delete(b"b", b"");
    s.put(b"c", b"1");
    let before = keys(&s.range(all_keys()).kvs);

    let s = s.reopen();
    assert_eq!(s.rev(), 5);
    assert_eq!(keys(&s.range(all_keys()).kvs), before);
    let a = s.get(b"a").expect("a");
    assert_eq!((a.lease, a.create_revision, a.version), (7, 2, 1));
    assert!(s.get_at(b"b", 3).expect("readable").is_some(), "history survives");
    assert_eq!(revision(&s.range(single(b"a")).header), 5);
    assert_eq!(failure(s.one(grant(7))), Error::LeaseExists, "the lease survives");
    assert_eq!(revision(&s.put(b"d", b"1").header), 6);
    let revoked = expect_ok!(s.one(revoke(7)), Outcome::LeaseRevoke);
    assert_eq!(revision(&revoked.header), 7);
    assert_eq!(keys(&s.range(all_keys()).kvs), vec!["c", "d"], "a was attached before the restart");
}

#[test]
fn restart_keeps_the_compaction() {
    let s = compacted_at_five().reopen();
    assert_eq!((s.mvcc.compact_revision(), s.rev()), (5, 7));
    assert_eq!(s.mvcc.range(&RangeRequest { revision: 4, ..all_keys() }).err(), Some(Error::Compacted));
    assert_eq!(keys(&s.range(RangeRequest { revision: 5, ..all_keys() }).kvs), vec!["a"]);
    assert_eq!(failure(s.one(compact(5))), Error::Compacted);
    assert_eq!(revision(&s.put(b"z", b"1").header), 8);
}

#[test]
fn read_txn_answers_from_the_local_state_without_a_revision() {
    let s = Store::new();
    s.put(b"a", b"1");
    s.put(b"a", b"2");
    let is_two = compare(b"a", CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"2".to_vec()));
    let req = TxnRequest { compare: vec![is_two], success: vec![op_range(single(b"a"))], failure: vec![] };
    let resp = s.mvcc.read_txn(&req).expect("a read-only txn");
    assert!(resp.succeeded);
    assert_eq!(revision(&resp.header), 3);
    let r = range_of(&resp.responses[0]);
    assert_eq!((keys(&r.kvs).concat(), revision(&r.header)), ("a".to_string(), 3));
    assert_eq!(r.kvs[0].value, b"2");
    assert_eq!(s.rev(), 3, "nothing was written");
    // Its ranges obey the same revision checks as a Range.
    let future = TxnRequest { success: vec![op_range(RangeRequest { revision: 9, ..single(b"a") })], ..Default::default() };
    assert_eq!(s.mvcc.read_txn(&future).err(), Some(Error::FutureRev));
}
