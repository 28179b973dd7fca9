//! etcdserverpb.Maintenance: status, alarms, hashes, defragmentation and snapshots.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use cairn_core::Node;
use cairn_proto::etcdserverpb::maintenance_server::Maintenance;
use cairn_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest, DowngradeResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest,
    SnapshotResponse, StatusRequest, StatusResponse,
};
use futures::Stream;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::error::{later, status};

/// The etcd API version Cairn reports: a plain number, which clients parse (etcd-api.md §0).
pub const SERVER_VERSION: &str = "3.5.0";
/// Bytes per snapshot message (etcd's `snapshotSendBufferSize`).
const SNAPSHOT_CHUNK: usize = 32 * 1024;

#[derive(Clone)]
pub struct MaintenanceService {
    pub node: Arc<Node>,
}

/// A backup file that is removed once streamed (or abandoned).
struct Backup(PathBuf);

impl Drop for Backup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn stream_backup(backup: Backup, tx: mpsc::Sender<Result<SnapshotResponse, Status>>) -> std::io::Result<()> {
    let mut file = tokio::fs::File::open(&backup.0).await?;
    let total = file.metadata().await?.len();
    let mut sent = 0u64;
    loop {
        let mut blob = vec![0u8; SNAPSHOT_CHUNK];
        let n = file.read(&mut blob).await?;
        if n == 0 {
            return Ok(());
        }
        blob.truncate(n);
        sent += n as u64;
        let chunk = SnapshotResponse { header: None, remaining_bytes: total - sent, blob };
        if tx.send(Ok(chunk)).await.is_err() {
            return Ok(());
        }
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        self.node.alarm(req.into_inner()).await.map(Response::new).map_err(status)
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

    /// Defragment answers without a header, as etcd's (etcd-api.md §2).
    async fn defragment(&self, _req: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        self.node.defragment().await.map_err(status)?;
        Ok(Response::new(DefragmentResponse { header: None }))
    }

    async fn hash(&self, _req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let (hash, revision) = self.node.hash().await.map_err(status)?;
        Ok(Response::new(HashResponse { header: Some(self.node.header(revision)), hash }))
    }

    async fn hash_kv(&self, req: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        let (hash, revision, compact_revision) = self.node.hash_kv(req.into_inner().revision).await.map_err(status)?;
        // The header carries the current revision, not the hashed one (etcd 3.5).
        Ok(Response::new(HashKvResponse { header: Some(self.node.header(revision)), hash, compact_revision }))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

    /// The backup file, checksum trailer included, in 32 KiB messages.
    async fn snapshot(&self, _req: Request<SnapshotRequest>) -> Result<Response<Self::SnapshotStream>, Status> {
        let backup = Backup(self.node.backup().await.map_err(status)?);
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let failed = tx.clone();
            if let Err(e) = stream_backup(backup, tx).await {
                let _ = failed.send(Err(Status::internal(format!("snapshot: {e}")))).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    /// MoveLeader answers without a header, as etcd's (etcd-api.md §2).
    async fn move_leader(&self, req: Request<MoveLeaderRequest>) -> Result<Response<MoveLeaderResponse>, Status> {
        self.node.move_leader(req.into_inner().target_id).await.map_err(status)?;
        Ok(Response::new(MoveLeaderResponse { header: None }))
    }

    async fn downgrade(&self, _req: Request<DowngradeRequest>) -> Result<Response<DowngradeResponse>, Status> {
        Err(later("Downgrade"))
    }
}
