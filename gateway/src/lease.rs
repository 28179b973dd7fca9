//! etcdserverpb.Lease. Grants and revokes go through the log; keep-alives and time-to-live are
//! answered by the leader, whose lessor tracks expiry (followers forward them).

use std::pin::Pin;
use std::sync::Arc;

use cairn_core::Node;
use cairn_proto::etcdserverpb::lease_server::Lease;
use cairn_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::status;

#[derive(Clone)]
pub struct LeaseService {
    pub node: Arc<Node>,
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(&self, req: Request<LeaseGrantRequest>) -> Result<Response<LeaseGrantResponse>, Status> {
        self.node.lease_grant(req.into_inner()).await.map(Response::new).map_err(status)
    }

    async fn lease_revoke(&self, req: Request<LeaseRevokeRequest>) -> Result<Response<LeaseRevokeResponse>, Status> {
        self.node.lease_revoke(req.into_inner()).await.map(Response::new).map_err(status)
    }

    type LeaseKeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

    /// Each request renews once and gets one reply, in order. An error ends the stream, as in
    /// etcd.
    async fn lease_keep_alive(&self, req: Request<Streaming<LeaseKeepAliveRequest>>) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut requests = req.into_inner();
        let node = self.node.clone();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok(Some(req)) = requests.message().await {
                let reply = node.lease_keep_alive(req.id).await.map_err(status);
                let failed = reply.is_err();
                if tx.send(reply).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(&self, req: Request<LeaseTimeToLiveRequest>) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        self.node.lease_time_to_live(req.into_inner()).await.map(Response::new).map_err(status)
    }

    async fn lease_leases(&self, _req: Request<LeaseLeasesRequest>) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.node.lease_leases().await.map(Response::new).map_err(status)
    }
}
