//! etcdserverpb.Cluster: membership, changed on the leader (core/src/members.rs).

use std::sync::Arc;

use cairn_core::Node;
use cairn_proto::cairnpb::member_change_request::Op;
use cairn_proto::etcdserverpb::cluster_server::Cluster;
use cairn_proto::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest, MemberPromoteResponse,
    MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use crate::error::status;

#[derive(Clone)]
pub struct ClusterService {
    pub node: Arc<Node>,
}

impl ClusterService {
    async fn change(&self, op: Op) -> Result<cairn_proto::cairnpb::MemberChangeResponse, Status> {
        self.node.member_change(op).await.map_err(status)
    }
}

/// Cluster RPCs carry the cluster and member but revision 0 (etcd-api.md §2).
#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, req: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        let changed = self.change(Op::Add(req.into_inner())).await?;
        Ok(Response::new(MemberAddResponse { header: Some(self.node.cluster_header()), member: changed.member, members: changed.members }))
    }

    async fn member_remove(&self, req: Request<MemberRemoveRequest>) -> Result<Response<MemberRemoveResponse>, Status> {
        let changed = self.change(Op::Remove(req.into_inner())).await?;
        Ok(Response::new(MemberRemoveResponse { header: Some(self.node.cluster_header()), members: changed.members }))
    }

    async fn member_update(&self, req: Request<MemberUpdateRequest>) -> Result<Response<MemberUpdateResponse>, Status> {
        let changed = self.change(Op::Update(req.into_inner())).await?;
        Ok(Response::new(MemberUpdateResponse { header: Some(self.node.cluster_header()), members: changed.members }))
    }

    async fn member_list(&self, req: Request<MemberListRequest>) -> Result<Response<MemberListResponse>, Status> {
        if req.get_ref().linearizable {
            self.node.read_barrier().await.map_err(status)?;
        }
        Ok(Response::new(MemberListResponse { header: Some(self.node.cluster_header()), members: self.node.member_list() }))
    }

    async fn member_promote(&self, req: Request<MemberPromoteRequest>) -> Result<Response<MemberPromoteResponse>, Status> {
        let changed = self.change(Op::Promote(req.into_inner())).await?;
        Ok(Response::new(MemberPromoteResponse { header: Some(self.node.cluster_header()), members: changed.members }))
    }
}
