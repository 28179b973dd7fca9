//! The peer service (`cairnpb.Raft`): raft traffic from other members, and the calls a
//! follower makes on the leader.

use std::sync::Arc;

use cairn_core::node::{error_status, RaftRpc};
use cairn_core::{Error, Node};
use cairn_proto::cairnpb::raft_server::Raft;
use cairn_proto::cairnpb::{
    CommandBatch, MemberChangeRequest, MemberChangeResponse, ProposeResponse, RaftPayload, ReadIndexRequest, ReadIndexResponse, TransferRequest,
    TransferResponse,
};
use cairn_proto::etcdserverpb::{MemberListRequest, MemberListResponse, MemberRemoveRequest, MemberRemoveResponse};
use cairn_proto::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse};
use futures::Stream;
use std::pin::Pin;
use tonic::{Request, Response, Status, Streaming};

#[derive(Clone)]
pub struct PeerService {
    pub node: Arc<Node>,
}

/// Core errors cross the peer wire whole, so the forwarding member answers its client with
/// the leader's exact error.
fn peer_status(e: Error) -> Status {
    error_status(&e)
}

impl PeerService {
    async fn rpc(&self, kind: RaftRpc, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let data = self.node.handle_raft_rpc(kind, &req.into_inner().data).await.map_err(peer_status)?;
        Ok(Response::new(RaftPayload { data }))
    }
}

#[tonic::async_trait]
impl Raft for PeerService {
    async fn append_entries(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.rpc(RaftRpc::AppendEntries, req).await
    }

    type AppendStreamStream = Pin<Box<dyn Stream<Item = Result<RaftPayload, Status>> + Send>>;

    /// Serves the requests of one append stream in order, one at a time, as raft requires of
    /// one leader's replication to this member. The stream ends at the first error.
    async fn append_stream(&self, req: Request<Streaming<RaftPayload>>) -> Result<Response<Self::AppendStreamStream>, Status> {
        let state = Some((self.node.clone(), req.into_inner()));
        let replies = futures::stream::unfold(state, |state| async move {
            let (node, mut incoming) = state?;
            let reply = match incoming.message().await {
                Ok(Some(req)) => node.handle_raft_rpc(RaftRpc::AppendEntries, &req.data).await.map(|data| RaftPayload { data }).map_err(peer_status),
                Ok(None) => return None,
                Err(status) => Err(status),
            };
            let next = reply.is_ok().then_some((node, incoming));
            Some((reply, next))
        });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.rpc(RaftRpc::Vote, req).await
    }

    async fn install_snapshot(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.rpc(RaftRpc::InstallSnapshot, req).await
    }

    async fn propose(&self, req: Request<CommandBatch>) -> Result<Response<ProposeResponse>, Status> {
        self.node.handle_propose(req.into_inner()).await.map(Response::new).map_err(peer_status)
    }

    async fn read_index(&self, _req: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        let index = self.node.handle_read_index().await.map_err(peer_status)?;
        Ok(Response::new(ReadIndexResponse { index }))
    }

    async fn lease_renew(&self, req: Request<LeaseKeepAliveRequest>) -> Result<Response<LeaseKeepAliveResponse>, Status> {
        self.node.handle_lease_renew(req.into_inner()).await.map(Response::new).map_err(peer_status)
    }

    async fn lease_time_to_live(&self, req: Request<LeaseTimeToLiveRequest>) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        self.node.handle_lease_time_to_live(req.into_inner()).await.map(Response::new).map_err(peer_status)
    }

    async fn member_change(&self, req: Request<MemberChangeRequest>) -> Result<Response<MemberChangeResponse>, Status> {
        self.node.handle_member_change(req.into_inner()).await.map(Response::new).map_err(peer_status)
    }

    async fn transfer(&self, req: Request<TransferRequest>) -> Result<Response<TransferResponse>, Status> {
        self.node.handle_transfer(req.into_inner());
        Ok(Response::new(TransferResponse {}))
    }

    async fn removed(&self, req: Request<MemberRemoveRequest>) -> Result<Response<MemberRemoveResponse>, Status> {
        self.node.handle_removed(req.into_inner().id);
        Ok(Response::new(MemberRemoveResponse::default()))
    }

    async fn member_list(&self, _req: Request<MemberListRequest>) -> Result<Response<MemberListResponse>, Status> {
        let header = self.node.cluster_header();
        Ok(Response::new(MemberListResponse { header: Some(header), members: self.node.member_list() }))
    }
}
