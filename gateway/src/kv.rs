//! etcdserverpb.KV.

use std::sync::Arc;

use cairn_core::Node;
use cairn_proto::etcdserverpb::kv_server::Kv;
use cairn_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, TxnRequest, TxnResponse,
};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::error::{status, too_large};

#[derive(Clone)]
pub struct KvService {
    pub node: Arc<Node>,
    /// grpc-go's receive limit in etcd: max-request-bytes plus 512 KiB of overhead.
    pub max_recv: usize,
}

impl KvService {
    fn admit<M: Message>(&self, req: Request<M>) -> Result<M, Status> {
        let msg = req.into_inner();
        let size = msg.encoded_len();
        if size > self.max_recv {
            return Err(too_large(size, self.max_recv));
        }
        Ok(msg)
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let req = self.admit(req)?;
        if !req.serializable && self.node.is_learner() {
            return Err(status(cairn_core::Error::NotSupportedForLearner));
        }
        self.node.range(req).await.map(Response::new).map_err(status)
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let req = self.admit(req)?;
        self.node.put(req).await.map(Response::new).map_err(status)
    }

    async fn delete_range(&self, req: Request<DeleteRangeRequest>) -> Result<Response<DeleteRangeResponse>, Status> {
        let req = self.admit(req)?;
        self.node.delete_range(req).await.map(Response::new).map_err(status)
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let req = self.admit(req)?;
        self.node.txn(req).await.map(Response::new).map_err(status)
    }

    async fn compact(&self, req: Request<CompactionRequest>) -> Result<Response<CompactionResponse>, Status> {
        let req = self.admit(req)?;
        self.node.compact(req).await.map(Response::new).map_err(status)
    }
}
