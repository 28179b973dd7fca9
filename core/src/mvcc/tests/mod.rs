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
            .0
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

// After the helpers: `expect_ok!` must be defined before the modules that use it.
mod writes;
mod leases;
mod ranges;
mod txns;
mod batches;

mod alarms {
    use cairn_proto::etcdserverpb::alarm_request::AlarmAction;
    use cairn_proto::etcdserverpb::{AlarmRequest, AlarmType};

    use super::*;

    fn alarm(action: AlarmAction) -> Command {
        cmd(command::Op::Alarm(AlarmRequest { action: action as i32, member_id: 7, alarm: AlarmType::Nospace as i32 }))
    }

    #[test]
    fn nospace_refuses_puts_and_grants_but_not_deletes_until_disarmed() {
        let s = Store::new();
        s.put(b"a", b"1");
        let raised = expect_ok!(s.one(alarm(AlarmAction::Activate)), Outcome::Alarm);
        assert_eq!(raised.alarms.len(), 1);
        assert!(s.mvcc.no_space());
        assert_eq!(failure(s.one(put(b"b", b"2"))), Error::NoSpace);
        assert_eq!(failure(s.one(cmd(command::Op::LeaseGrant(LeaseGrantRequest { id: 1, ttl: 5 })))), Error::NoSpace);
        let txn = TxnRequest { success: vec![RequestOp { request: Some(request_op::Request::RequestPut(put_req(b"c", b"3"))) }], ..Default::default() };
        assert_eq!(failure(s.one(cmd(command::Op::Txn(txn)))), Error::NoSpace);
        assert_eq!(s.delete(b"a", b"").deleted, 1, "deletes free space and go through");
        // The alarm survives a restart.
        let s = s.reopen();
        assert!(s.mvcc.no_space());
        let cleared = expect_ok!(s.one(alarm(AlarmAction::Deactivate)), Outcome::Alarm);
        assert_eq!(cleared.alarms.len(), 1);
        assert!(!s.mvcc.no_space());
        s.put(b"b", b"2");
    }
}
