//! etcdserverpb.Maintenance: Status (enough for `etcdctl endpoint status`) and the alarm list
//! (`etcdctl endpoint health` reads it). Defragment, hashes, snapshots and leader moves come with
//! the membership and maintenance issue.

use std::pin::Pin;
use std::sync::Arc;

use cairn_core::Node;
use cairn_proto::etcdserverpb::alarm_request::AlarmAction;
use cairn_proto::etcdserverpb::maintenance_server::Maintenance;
use cairn_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest, DowngradeResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest, SnapshotResponse,
    StatusRequest, StatusResponse,
};
use futures::Stream;
use crate::error::later;
use tonic::{Request, Response, Status};

/// The etcd API version Cairn reports: a plain number, which clients parse (etcd-api.md §0).
pub const SERVER_VERSION: &str = "3.5.0";

#[derive(Clone)]
pub struct MaintenanceService {
    pub node: Arc<Node>,
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        match AlarmAction::try_from(req.get_ref().action) {
            // No alarm is ever raised yet (the quota arrives with the maintenance issue).
            Ok(AlarmAction::Get) | Ok(AlarmAction::Deactivate) => Ok(Response::new(AlarmResponse {
                header: Some(self.node.header(self.node.mvcc().current_revision())),
                alarms: Vec::new(),
            })),
            _ => Err(later("Alarm ACTIVATE")),
        }
    }

    async fn status(&self, _req: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let s = self.node.status();
        Ok(Response::new(StatusResponse {
            header: Some(self.node.header(self.node.mvcc().current_revision())),
            version: SERVER_VERSION.to_string(),
            db_size: s.db_size as i64,
            leader: s.leader,
            raft_index: s.raft_index,
            raft_term: s.raft_term,
            raft_applied_index: s.raft_applied_index,
            errors: s.errors,
            db_size_in_use: s.db_size_in_use as i64,
            is_learner: s.is_learner,
        }))
    }

    async fn defragment(&self, _req: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        Err(later("Defragment"))
    }

    async fn hash(&self, _req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(later("Hash"))
    }

    async fn hash_kv(&self, _req: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        Err(later("HashKV"))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

    async fn snapshot(&self, _req: Request<SnapshotRequest>) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(later("Snapshot"))
    }

    async fn move_leader(&self, _req: Request<MoveLeaderRequest>) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(later("MoveLeader"))
    }

    async fn downgrade(&self, _req: Request<DowngradeRequest>) -> Result<Response<DowngradeResponse>, Status> {
        Err(later("Downgrade"))
    }
}
