//! etcdserverpb.Lease: grant and revoke (so that puts can carry a lease). Expiry, keep-alive
//! and time-to-live come with the coordination issue.

use std::pin::Pin;
use std::sync::Arc;

use cairn_core::Node;
use cairn_proto::etcdserverpb::lease_server::Lease;
use cairn_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::{later, status};

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

    async fn lease_keep_alive(&self, _req: Request<Streaming<LeaseKeepAliveRequest>>) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        Err(later("LeaseKeepAlive"))
    }

    async fn lease_time_to_live(&self, _req: Request<LeaseTimeToLiveRequest>) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        Err(later("LeaseTimeToLive"))
    }

    async fn lease_leases(&self, _req: Request<LeaseLeasesRequest>) -> Result<Response<LeaseLeasesResponse>, Status> {
        Err(later("LeaseLeases"))
    }
}
