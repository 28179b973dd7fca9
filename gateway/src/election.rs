//! v3electionpb.Election: etcd's server-side election (server/etcdserver/api/v3election), run
//! on this member with the concurrency recipe of coord.rs. Its errors are plain text with code
//! Unknown, as etcd's.

use std::pin::Pin;
use std::sync::Arc;

use cairn_core::mvcc::keys::KeyRange;
use cairn_core::watch::WatchSpec;
use cairn_core::Node;
use cairn_proto::etcdserverpb::{ResponseHeader, TxnRequest};
use cairn_proto::mvccpb::event::EventType;
use cairn_proto::mvccpb::KeyValue;
use cairn_proto::v3electionpb::election_server::Election;
use cairn_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest, ProclaimResponse, ResignRequest,
    ResignResponse,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::coord::{
    self, contender_key, create_revision_is, first_created, header_revision, op_delete, op_get, op_put, prefix, prefix_end, range_of,
    MISSING_LEADER_KEY, NOT_LEADER, NO_LEADER,
};

#[derive(Clone)]
pub struct ElectionService {
    pub node: Arc<Node>,
}

/// Replaces the leader's value while it still holds the key it was elected with.
async fn proclaim(node: &Node, leader: &LeaderKey, value: &[u8]) -> Result<Option<ResponseHeader>, Status> {
    let resp = coord::txn(
        node,
        TxnRequest { compare: vec![create_revision_is(&leader.key, leader.rev)], success: vec![op_put(&leader.key, value, leader.lease)], failure: vec![] },
    )
    .await?;
    if !resp.succeeded {
        return Err(Status::unknown(NOT_LEADER));
    }
    Ok(resp.header)
}

async fn resign(node: &Node, leader: &LeaderKey) -> Result<Option<ResponseHeader>, Status> {
    let resp = coord::txn(
        node,
        TxnRequest { compare: vec![create_revision_is(&leader.key, leader.rev)], success: vec![op_delete(&leader.key)], failure: vec![] },
    )
    .await?;
    Ok(resp.header)
}

/// The oldest contender's key: the leader.
async fn current_leader(node: &Node, name: &[u8]) -> Result<(Option<ResponseHeader>, Option<KeyValue>), Status> {
    let resp = coord::range(node, first_created(&prefix(name))).await?;
    Ok((resp.header, resp.kvs.into_iter().next()))
}

fn watch_from(range: KeyRange, start_revision: i64) -> WatchSpec {
    WatchSpec { range, start_revision, watch_id: 0, prev_kv: false, no_put: false, no_delete: false, progress_notify: false, fragment: false }
}

/// `Observe`: sends the leader, then every new value it proclaims; when it goes, waits for
/// the next one.
async fn observe(node: Arc<Node>, name: Vec<u8>, tx: mpsc::Sender<Result<LeaderResponse, Status>>) -> Result<(), Status> {
    let pfx = prefix(&name);
    loop {
        let (header, leader) = current_leader(&node, &name).await?;
        let (header, kv) = match leader {
            Some(kv) => (header.unwrap_or_default(), kv),
            None => {
                // Wait for the first put under the prefix; its revision heads the response.
                let stream = node.watch();
                stream.create(watch_from(KeyRange::new(&pfx, &prefix_end(&pfx)), header_revision(&header)));
                let kv = loop {
                    let resp = stream.next().await.ok_or_else(stopped)?;
                    if let Some(e) = resp.events.iter().find(|e| e.r#type == EventType::Put as i32) {
                        break coord::kv_of(e);
                    }
                };
                (node.header(kv.mod_revision), kv)
            }
        };
        let from = header.revision + 1;
        let key = kv.key.clone();
        if tx.send(Ok(LeaderResponse { header: Some(header), kv: Some(kv) })).await.is_err() {
            return Ok(());
        }
        let stream = node.watch();
        stream.create(watch_from(KeyRange::new(&key, b""), from));
        'leader: loop {
            let resp = stream.next().await.ok_or_else(stopped)?;
            if resp.canceled {
                break;
            }
            let revision = header_revision(&resp.header);
            for e in &resp.events {
                if e.r#type == EventType::Delete as i32 {
                    break 'leader;
                }
                if tx.send(Ok(LeaderResponse { header: Some(node.header(revision)), kv: Some(coord::kv_of(e)) })).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

fn stopped() -> Status {
    Status::unavailable("etcdserver: server stopped")
}

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(&self, req: Request<CampaignRequest>) -> Result<Response<CampaignResponse>, Status> {
        let req = req.into_inner();
        let node = &self.node;
        let key = contender_key(&req.name, req.lease);
        let attempt = coord::txn(
            node,
            TxnRequest { compare: vec![create_revision_is(&key, 0)], success: vec![op_put(&key, &req.value, req.lease)], failure: vec![op_get(&key)] },
        )
        .await?;
        let mut leader = LeaderKey { name: req.name.clone(), key: key.clone(), rev: header_revision(&attempt.header), lease: req.lease };
        if !attempt.succeeded {
            let existing = range_of(&attempt, 0).and_then(|r| r.kvs.first()).cloned().unwrap_or_default();
            leader.rev = existing.create_revision;
            if existing.value != req.value {
                if let Err(e) = proclaim(node, &leader, &req.value).await {
                    let _ = resign(node, &leader).await;
                    return Err(e);
                }
            }
        }
        coord::wait_deletes(node, &prefix(&req.name), leader.rev - 1).await?;
        Ok(Response::new(CampaignResponse { header: attempt.header, leader: Some(leader) }))
    }

    async fn proclaim(&self, req: Request<ProclaimRequest>) -> Result<Response<ProclaimResponse>, Status> {
        let req = req.into_inner();
        let leader = req.leader.ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        let header = proclaim(&self.node, &leader, &req.value).await?;
        Ok(Response::new(ProclaimResponse { header }))
    }

    async fn leader(&self, req: Request<LeaderRequest>) -> Result<Response<LeaderResponse>, Status> {
        let (header, kv) = current_leader(&self.node, &req.into_inner().name).await?;
        let kv = kv.ok_or_else(|| Status::unknown(NO_LEADER))?;
        Ok(Response::new(LeaderResponse { header, kv: Some(kv) }))
    }

    type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

    async fn observe(&self, req: Request<LeaderRequest>) -> Result<Response<Self::ObserveStream>, Status> {
        let name = req.into_inner().name;
        let (tx, rx) = mpsc::channel(64);
        let node = self.node.clone();
        tokio::spawn(async move {
            let failed = tx.clone();
            // The watch waits end when the client goes away.
            tokio::select! {
                outcome = observe(node, name, tx) => {
                    if let Err(e) = outcome {
                        let _ = failed.send(Err(e)).await;
                    }
                }
                _ = failed.closed() => {}
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(&self, req: Request<ResignRequest>) -> Result<Response<ResignResponse>, Status> {
        let leader = req.into_inner().leader.ok_or_else(|| Status::unknown(MISSING_LEADER_KEY))?;
        let header = resign(&self.node, &leader).await?;
        Ok(Response::new(ResignResponse { header }))
    }
}
