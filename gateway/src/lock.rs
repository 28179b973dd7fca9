//! v3lockpb.Lock: etcd's server-side mutex (server/etcdserver/api/v3lock), run on this member
//! with the concurrency recipe of coord.rs.

use std::sync::Arc;

use cairn_core::Node;
use cairn_proto::etcdserverpb::{DeleteRangeRequest, TxnRequest};
use cairn_proto::v3lockpb::lock_server::Lock;
use cairn_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::{Request, Response, Status};

use crate::coord::{self, contender_key, create_revision_is, first_created, header_revision, op_get, op_put, op_range, prefix, range_of};

#[derive(Clone)]
pub struct LockService {
    pub node: Arc<Node>,
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let req = req.into_inner();
        let node = &self.node;
        let pfx = prefix(&req.name);
        let key = contender_key(&req.name, req.lease);
        // Join the queue (or find our key from an earlier call with the same lease) and learn
        // the current holder, in one txn.
        let attempt = coord::txn(
            node,
            TxnRequest {
                compare: vec![create_revision_is(&key, 0)],
                success: vec![op_put(&key, b"", req.lease), op_range(first_created(&pfx))],
                failure: vec![op_get(&key), op_range(first_created(&pfx))],
            },
        )
        .await?;
        let my_rev = if attempt.succeeded {
            header_revision(&attempt.header)
        } else {
            range_of(&attempt, 0).and_then(|r| r.kvs.first()).map_or(0, |kv| kv.create_revision)
        };
        let holder = range_of(&attempt, 1).and_then(|r| r.kvs.first());
        if holder.is_none_or(|kv| kv.create_revision == my_rev) {
            return Ok(Response::new(LockResponse { header: attempt.header, key }));
        }
        if let Err(e) = coord::wait_deletes(node, &pfx, my_rev - 1).await {
            let _ = node.delete_range(DeleteRangeRequest { key: key.clone(), ..Default::default() }).await;
            return Err(e);
        }
        // The key may have gone with its lease while we waited (etcd issue #11456).
        let mine = coord::range(node, cairn_proto::etcdserverpb::RangeRequest { key: key.clone(), ..Default::default() }).await?;
        if mine.kvs.is_empty() {
            return Err(Status::unknown(coord::SESSION_EXPIRED));
        }
        Ok(Response::new(LockResponse { header: mine.header, key }))
    }

    async fn unlock(&self, req: Request<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        let key = req.into_inner().key;
        let resp = self.node.delete_range(DeleteRangeRequest { key, ..Default::default() }).await.map_err(coord::recipe_status)?;
        Ok(Response::new(UnlockResponse { header: resp.header }))
    }
}
