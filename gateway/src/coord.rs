//! The KV recipes etcd's lock and election servers run (client/v3/concurrency): lease-bound
//! keys under `name/`, ordered by create revision; a waiter watches the key created just
//! before its own until it is deleted (reference/etcd-api.md §1.8).

use cairn_core::mvcc::keys::KeyRange;
use cairn_core::watch::WatchSpec;
use cairn_core::Node;
use cairn_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use cairn_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use cairn_proto::etcdserverpb::{
    request_op, response_op, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp, ResponseHeader,
    TxnRequest, TxnResponse,
};
use cairn_proto::mvccpb::event::EventType;
use cairn_proto::mvccpb::KeyValue;
use tonic::Status;

use crate::error::status;

pub const SESSION_EXPIRED: &str = "mutex: session is expired";
pub const NOT_LEADER: &str = "election: not leader";
pub const NO_LEADER: &str = "election: no leader";
pub const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";

/// `name/`, the prefix every contender's key lives under.
pub fn prefix(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// A contender's key: the prefix and its lease ID in hex.
pub fn contender_key(name: &[u8], lease: i64) -> Vec<u8> {
    let mut key = prefix(name);
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    key
}

/// The end of the range of keys starting with `prefix` (clientv3's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

pub fn create_revision_is(key: &[u8], rev: i64) -> Compare {
    Compare {
        key: key.to_vec(),
        target: CompareTarget::Create as i32,
        result: CompareResult::Equal as i32,
        target_union: Some(TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

pub fn op_put(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestPut(PutRequest { key: key.to_vec(), value: value.to_vec(), lease, ..Default::default() })) }
}

pub fn op_get(key: &[u8]) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestRange(RangeRequest { key: key.to_vec(), ..Default::default() })) }
}

pub fn op_delete(key: &[u8]) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest { key: key.to_vec(), ..Default::default() })) }
}

/// The oldest key under `prefix` (`WithFirstCreate`).
pub fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        sort_target: SortTarget::Create as i32,
        sort_order: SortOrder::Ascend as i32,
        limit: 1,
        ..Default::default()
    }
}

pub fn op_range(req: RangeRequest) -> RequestOp {
    RequestOp { request: Some(request_op::Request::RequestRange(req)) }
}

pub fn range_of(resp: &TxnResponse, i: usize) -> Option<&RangeResponse> {
    match resp.responses.get(i)?.response.as_ref()? {
        response_op::Response::ResponseRange(r) => Some(r),
        _ => None,
    }
}

pub fn header_revision(header: &Option<ResponseHeader>) -> i64 {
    header.as_ref().map_or(0, |h| h.revision)
}

/// etcd's lock and election servers call the KV API through an embedded client, and grpc-go
/// turns the errors it returns into code Unknown with the same text.
pub fn recipe_status(e: cairn_core::Error) -> Status {
    Status::unknown(status(e).message().to_owned())
}

pub async fn txn(node: &Node, req: TxnRequest) -> Result<TxnResponse, Status> {
    node.txn(req).await.map_err(recipe_status)
}

pub async fn range(node: &Node, req: RangeRequest) -> Result<RangeResponse, Status> {
    node.range(req).await.map_err(recipe_status)
}

/// Waits until every key under `prefix` created at or before `max_create_revision` is gone
/// (`waitDeletes`): each round reads the newest such key and waits for its deletion.
pub async fn wait_deletes(node: &Node, prefix: &[u8], max_create_revision: i64) -> Result<ResponseHeader, Status> {
    loop {
        let resp = range(
            node,
            RangeRequest {
                key: prefix.to_vec(),
                range_end: prefix_end(prefix),
                sort_target: SortTarget::Create as i32,
                sort_order: SortOrder::Descend as i32,
                limit: 1,
                max_create_revision,
                ..Default::default()
            },
        )
        .await?;
        let Some(last) = resp.kvs.first() else {
            return Ok(resp.header.unwrap_or_default());
        };
        wait_delete(node, &last.key, header_revision(&resp.header)).await?;
    }
}

/// Waits for a DELETE of `key` at or after `from` (`waitDelete`). A watch canceled by
/// compaction returns too: the caller reads again.
pub async fn wait_delete(node: &Node, key: &[u8], from: i64) -> Result<(), Status> {
    let stream = node.watch();
    stream.create(WatchSpec {
        range: KeyRange::new(key, b""),
        start_revision: from,
        watch_id: 0,
        prev_kv: false,
        no_put: true,
        no_delete: false,
        progress_notify: false,
        fragment: false,
    });
    while let Some(resp) = stream.next().await {
        if resp.canceled || resp.events.iter().any(|e| e.r#type == EventType::Delete as i32) {
            return Ok(());
        }
    }
    Err(Status::unavailable("etcdserver: server stopped"))
}

pub fn kv_of(event: &cairn_proto::mvccpb::Event) -> KeyValue {
    event.kv.clone().unwrap_or_default()
}
