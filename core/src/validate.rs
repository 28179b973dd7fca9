//! Checks made before a request is proposed, as etcd's v3rpc/key.go makes them; a request that
//! fails here never reaches the log.

use cairn_proto::etcdserverpb::{request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};

use crate::error::{Error, Result};
use crate::mvcc::keys::KeyRange;

pub const MAX_TXN_OPS: usize = 128;

pub fn range(r: &RangeRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::KeyNotProvided);
    }
    Ok(())
}

pub fn put(r: &PutRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::KeyNotProvided);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(Error::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(Error::LeaseProvided);
    }
    Ok(())
}

pub fn delete_range(r: &DeleteRangeRequest) -> Result<()> {
    if r.key.is_empty() {
        return Err(Error::KeyNotProvided);
    }
    Ok(())
}

pub fn txn(r: &TxnRequest) -> Result<()> {
    txn_ops(r, MAX_TXN_OPS)?;
    intervals(&r.success)?;
    intervals(&r.failure)?;
    Ok(())
}

/// etcd's `IsTxnReadonly`: every op of both top-level branches is a range.
pub fn txn_is_read_only(r: &TxnRequest) -> bool {
    r.success.iter().chain(&r.failure).all(|op| matches!(op.request, Some(request_op::Request::RequestRange(_))))
}

/// Whether a txn puts anything, on any branch at any depth (what NOSPACE refuses).
pub fn txn_puts(r: &TxnRequest) -> bool {
    r.success.iter().chain(&r.failure).any(|op| match &op.request {
        Some(request_op::Request::RequestPut(_)) => true,
        Some(request_op::Request::RequestTxn(nested)) => txn_puts(nested),
        _ => false,
    })
}

/// etcd's `isTxnSerializable`: every range of both branches asks for a serializable read.
pub fn txn_is_serializable(r: &TxnRequest) -> bool {
    r.success.iter().chain(&r.failure).all(|op| matches!(&op.request, Some(request_op::Request::RequestRange(range)) if range.serializable))
}

fn txn_ops(r: &TxnRequest, max_ops: usize) -> Result<()> {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len());
    if ops > max_ops {
        return Err(Error::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(Error::KeyNotProvided);
    }
    // Nested txns use up what the outer one left of the budget.
    for op in r.success.iter().chain(&r.failure) {
        request_op(op, max_ops - ops)?;
    }
    Ok(())
}

fn request_op(op: &RequestOp, max_ops: usize) -> Result<()> {
    match &op.request {
        Some(request_op::Request::RequestRange(r)) => range(r),
        Some(request_op::Request::RequestPut(r)) => put(r),
        Some(request_op::Request::RequestDeleteRange(r)) => delete_range(r),
        Some(request_op::Request::RequestTxn(r)) => txn_ops(r, max_ops),
        None => Err(Error::KeyNotFound),
    }
}

/// etcd's `checkIntervals`: within one branch no key is put twice, nor put inside a range the
/// same branch deletes (nested txns included); the then and else branches of one nested txn may
/// both put the same key. Returns the branch's puts and deleted ranges.
fn intervals(ops: &[RequestOp]) -> Result<(Vec<Vec<u8>>, Vec<KeyRange>)> {
    let mut dels: Vec<KeyRange> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(request_op::Request::RequestDeleteRange(d)) => Some(literal_range(&d.key, &d.range_end)),
            _ => None,
        })
        .collect();
    let deleted = |dels: &[KeyRange], key: &[u8]| dels.iter().any(|r| r.contains(key));
    let mut puts: Vec<Vec<u8>> = Vec::new();
    for op in ops {
        let Some(request_op::Request::RequestTxn(t)) = &op.request else { continue };
        let (puts_then, dels_then) = intervals(&t.success)?;
        let (puts_else, dels_else) = intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(Error::DuplicateKey);
            }
            puts.push(k.clone());
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || deleted(&dels, k) {
                return Err(Error::DuplicateKey);
            }
            puts.push(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(request_op::Request::RequestPut(p)) = &op.request else { continue };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(Error::DuplicateKey);
        }
        puts.push(p.key.clone());
    }
    Ok((puts, dels))
}

/// etcd builds these intervals from the raw bytes: `[key, range_end)`, or the point `key`.
fn literal_range(key: &[u8], range_end: &[u8]) -> KeyRange {
    if range_end.is_empty() {
        KeyRange::new(key, b"")
    } else {
        KeyRange { start: key.to_vec(), end: Some(range_end.to_vec()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::etcdserverpb::Compare;

    fn put_op(k: &str) -> RequestOp {
        RequestOp { request: Some(request_op::Request::RequestPut(PutRequest { key: k.into(), ..Default::default() })) }
    }
    fn del_op(k: &str, end: &str) -> RequestOp {
        RequestOp { request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest { key: k.into(), range_end: end.into(), ..Default::default() })) }
    }
    fn txn_op(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
        RequestOp { request: Some(request_op::Request::RequestTxn(TxnRequest { compare: vec![], success, failure })) }
    }

    #[test]
    fn duplicate_puts_and_puts_in_deleted_ranges_are_refused() {
        let dup = TxnRequest { success: vec![put_op("a"), put_op("a")], ..Default::default() };
        assert_eq!(txn(&dup), Err(Error::DuplicateKey));
        let in_deleted = TxnRequest { success: vec![del_op("a", "c"), put_op("b")], ..Default::default() };
        assert_eq!(txn(&in_deleted), Err(Error::DuplicateKey));
        let nested = TxnRequest { success: vec![put_op("a"), txn_op(vec![put_op("a")], vec![])], ..Default::default() };
        assert_eq!(txn(&nested), Err(Error::DuplicateKey));
        let both_branches = TxnRequest { success: vec![txn_op(vec![put_op("a")], vec![put_op("a")])], ..Default::default() };
        assert_eq!(txn(&both_branches), Ok(()));
        let overlapping_deletes = TxnRequest { success: vec![del_op("a", "c"), del_op("b", "d")], ..Default::default() };
        assert_eq!(txn(&overlapping_deletes), Ok(()));
    }

    #[test]
    fn op_limit_counts_nested_budget() {
        let many = TxnRequest { success: (0..129).map(|i| put_op(&format!("k{i}"))).collect(), ..Default::default() };
        assert_eq!(txn(&many), Err(Error::TooManyOps));
        let ok = TxnRequest { success: (0..128).map(|i| put_op(&format!("k{i}"))).collect(), ..Default::default() };
        assert_eq!(txn(&ok), Ok(()));
        let empty_compare = TxnRequest { compare: vec![Compare::default()], ..Default::default() };
        assert_eq!(txn(&empty_compare), Err(Error::KeyNotProvided));
    }
}
