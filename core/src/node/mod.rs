//! Node: one member. The API the gateway calls: KV requests in, etcd responses out. Writes go
//! through the proposer (group commit: many requests, one log entry); linearizable reads wait on
//! the read-index batcher (one leader round for many reads).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_proto::cairnpb::{command, command_result, Command, CommandBatch, CommandResult, ProposeResponse};
use cairn_proto::etcdserverpb::alarm_request::AlarmAction;
use cairn_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, LeaseCheckpoint, LeaseCheckpointRequest,
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::ServerState;
use prost::Message;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::error::{Error, Result};
use crate::lease::{Lessor, DEFAULT_CHECKPOINT_INTERVAL};
use crate::member::{self, Identity};
use crate::mvcc::Mvcc;
use crate::raft::log_store::{InlineSync, LogStore};
use crate::raft::network::{Network, Peers};
use crate::raft::replies::{self, Replies};
pub use crate::raft::network::{error_status, RaftRpc, MAX_PEER_MESSAGE, NOT_LEADER_MESSAGE};
use crate::raft::state_machine::{applied_state, StateMachine};
use crate::raft::types::Proposal;
use crate::raft::{Member, Raft};
use crate::storage::layout::Layout;
use crate::storage::names::META_IDENTITY;
use crate::storage::{RaftDb, StateDb};
use crate::validate;
use crate::watch::{Hub, WatchStream};

mod leader;
mod leases;
mod members;

/// etcd's `--max-request-bytes` default.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// etcd 3.5's `--snapshot-count` default.
pub const DEFAULT_SNAPSHOT_COUNT: u64 = 100_000;
/// Entries kept behind a snapshot so a briefly lagging follower catches up from the log
/// (etcd's catch-up entries).
const CATCH_UP_ENTRIES: u64 = 5_000;

/// etcd's lease TTL ceiling.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

const MAX_BATCH_COMMANDS: usize = 4096;
const MAX_BATCH_BYTES: usize = 8 << 20;
/// Log entries in flight at once; requests arriving meanwhile gather into the next batch.
const MAX_INFLIGHT_BATCHES: usize = 2;
/// Runtime passes a read-index round waits, at most, for more reads to join it.
const MAX_READ_GATHER_PASSES: usize = 4;

/// etcd's `--watch-progress-notify-interval` default.
pub const DEFAULT_PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_secs(600);
/// gRPC's allowance above `--max-request-bytes` (etcd's `grpcOverheadBytes`), also the size at
/// which watch responses are fragmented.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// etcd's `--quota-backend-bytes` default (2 GiB), used when the flag is 0.
pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 << 30;
/// How often a member measures its database against the quota.
const QUOTA_TICK: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    /// `--initial-cluster`: every founding member's name and peer URLs.
    pub initial_cluster: Vec<(String, Vec<String>)>,
    /// `--initial-cluster-state new` (true) or `existing`.
    pub new_cluster: bool,
    pub cluster_token: String,
    pub advertise_peer_urls: Vec<String>,
    pub advertise_client_urls: Vec<String>,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    /// `--snapshot-count`: applied entries between raft snapshots.
    pub snapshot_count: u64,
    pub max_request_bytes: usize,
    /// How long a request may wait for a leader, a commit or a read index.
    pub request_timeout: Duration,
    /// `--watch-progress-notify-interval`.
    pub progress_notify_interval: Duration,
    /// `--experimental-lease-checkpoint-interval`.
    pub lease_checkpoint_interval: Duration,
    /// `--quota-backend-bytes`: past this size the member raises the NOSPACE alarm.
    pub quota_backend_bytes: u64,
    /// Client TLS for `https://` peer URLs; `None` dials plain TCP only.
    pub peer_tls: Option<crate::raft::network::PeerTls>,
}

impl Config {
    pub fn single(name: &str, data_dir: PathBuf, peer_url: &str, client_url: &str) -> Config {
        Config {
            name: name.to_string(),
            data_dir,
            initial_cluster: vec![(name.to_string(), vec![peer_url.to_string()])],
            new_cluster: true,
            cluster_token: "etcd-cluster".into(),
            advertise_peer_urls: vec![peer_url.to_string()],
            advertise_client_urls: vec![client_url.to_string()],
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            snapshot_count: DEFAULT_SNAPSHOT_COUNT,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            request_timeout: Duration::from_secs(7),
            progress_notify_interval: DEFAULT_PROGRESS_NOTIFY_INTERVAL,
            lease_checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            quota_backend_bytes: DEFAULT_QUOTA_BACKEND_BYTES,
            peer_tls: None,
        }
    }
}

/// What Maintenance.Status reports.
#[derive(Debug, Clone)]
pub struct Status {
    pub leader: u64,
    pub raft_index: u64,
    pub raft_term: u64,
    pub raft_applied_index: u64,
    pub db_size: u64,
    pub db_size_in_use: u64,
    pub is_learner: bool,
    pub errors: Vec<String>,
}

struct Pending {
    cmd: Command,
    size: usize,
    reply: oneshot::Sender<Result<CommandResult>>,
}

type ReadWaiter = oneshot::Sender<Result<()>>;

/// State shared by the Node and its background tasks.
struct Shared {
    id: u64,
    raft: Raft,
    mvcc: Arc<Mvcc>,
    hub: Arc<Hub>,
    lessor: Arc<Lessor>,
    peers: Arc<Peers>,
    applied: watch::Receiver<u64>,
    replies: Arc<Replies>,
    reads: mpsc::Sender<ReadWaiter>,
    timeout: Duration,
    /// `--initial-cluster-token`, hashed into the IDs of added members.
    token: String,
    /// The newest read-index round that confirmed this member's leadership; keep-alives
    /// arriving soon after it are renewed without a round of their own (`renew_local`).
    confirmed: std::sync::Mutex<Option<leases::Confirmed>>,
    /// How long after such a round that holds: half an election timeout.
    renew_window: Duration,
}

pub struct Node {
    shared: Arc<Shared>,
    identity: Identity,
    config: Config,
    layout: Layout,
    proposals: mpsc::Sender<Pending>,
    lease_seq: AtomicU64,
    /// The database size last measured, for the quota check before a write is proposed.
    db_size: AtomicU64,
    backup_seq: AtomicU64,
    /// Set once the member finds itself removed from the membership.
    removed: watch::Sender<bool>,
    /// Whether the membership carries this member's name and client URLs.
    published: watch::Sender<bool>,
}

/// The founding membership. Every founding member proposes it at the same log position, so it
/// must be the same on all of them: only what `--initial-cluster` says. Client URLs are
/// published by each member once it runs (members.rs).
fn initial_members(config: &Config, token: &str) -> BTreeMap<u64, Member> {
    config
        .initial_cluster
        .iter()
        .map(|(name, urls)| (member::member_id(urls, token), Member { name: name.clone(), peer_urls: urls.clone(), client_urls: Vec::new() }))
        .collect()
}

/// How long a member joining with `--initial-cluster-state existing` keeps asking the
/// cluster for its ID.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// A member joining a running cluster learns its ID (given when it was added) and the
/// cluster's ID from the members it names in `--initial-cluster`, matching its peer URLs.
async fn join_identity(config: &Config) -> Result<Identity> {
    let mine: std::collections::BTreeSet<&String> = config.advertise_peer_urls.iter().collect();
    let deadline = Instant::now() + JOIN_TIMEOUT;
    let mut last = String::from("no other member in --initial-cluster");
    while Instant::now() < deadline {
        for url in config.initial_cluster.iter().flat_map(|(_, urls)| urls).filter(|u| !mine.contains(u)) {
            match Peers::member_list_at(url, config.peer_tls.as_ref(), Duration::from_secs(2)).await {
                Ok(resp) => {
                    let found = resp.members.iter().find(|m| m.peer_ur_ls.iter().collect::<std::collections::BTreeSet<_>>() == mine);
                    let cluster_id = resp.header.map_or(0, |h| h.cluster_id);
                    match found {
                        Some(m) => return Ok(Identity { name: config.name.clone(), member_id: m.id, cluster_id }),
                        None => last = format!("the cluster at {url} has no member with peer URLs {:?}; add it with `member add` first", config.advertise_peer_urls),
                    }
                }
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(Error::Internal(format!("cannot join the cluster: {last}")))
}

async fn load_identity(db: &RaftDb, config: &Config) -> Result<Identity> {
    if let Some(raw) = db.meta(META_IDENTITY)? {
        let identity: Identity = serde_json::from_slice(&raw).map_err(|e| Error::Storage(format!("identity: {e}")))?;
        return Ok(identity);
    }
    if !config.new_cluster {
        let identity = join_identity(config).await?;
        let raw = serde_json::to_vec(&identity).map_err(|e| Error::Internal(e.to_string()))?;
        db.put_meta_synced(META_IDENTITY, &raw)?;
        return Ok(identity);
    }
    let members = initial_members(config, &config.cluster_token);
    let me = member::member_id(&config.advertise_peer_urls, &config.cluster_token);
    if config.new_cluster && !members.contains_key(&me) {
        return Err(Error::Internal(format!(
            "--initial-cluster has no member named {:?} with the peer URLs {:?} of --initial-advertise-peer-urls",
            config.name, config.advertise_peer_urls
        )));
    }
    let ids: Vec<u64> = members.keys().copied().collect();
    let identity = Identity { name: config.name.clone(), member_id: me, cluster_id: member::cluster_id(&ids) };
    let raw = serde_json::to_vec(&identity).map_err(|e| Error::Internal(e.to_string()))?;
    db.put_meta_synced(META_IDENTITY, &raw)?;
    Ok(identity)
}

fn raft_config(config: &Config) -> Result<openraft::Config> {
    let election = config.election_timeout.as_millis() as u64;
    let raft = openraft::Config {
        cluster_name: config.cluster_token.clone(),
        heartbeat_interval: config.heartbeat_interval.as_millis() as u64,
        election_timeout_min: election,
        election_timeout_max: election * 2,
        install_snapshot_timeout: 10_000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_count.max(1)),
        max_in_snapshot_log_to_keep: config.snapshot_count.clamp(1, CATCH_UP_ENTRIES),
        snapshot_max_chunk_size: 1 << 20,
        ..Default::default()
    };
    raft.validate().map_err(|e| Error::Internal(format!("raft config: {e}")))
}

impl Node {
    /// Opens (or creates) the member's data dir, starts raft and, for a new cluster, bootstraps
    /// its membership.
    pub async fn start(config: Config) -> Result<Arc<Node>> {
        let layout = Layout::new(&config.data_dir)?;
        layout.remove_stale_state_dirs()?;
        let raft_db = Arc::new(RaftDb::open(&layout.raft_dir())?);
        let identity = load_identity(&raft_db, &config).await?;
        let state = StateDb::open(&layout.state_dir()?)?;
        let applied_index = applied_state(&state)?.0.map_or(0, |l| l.index);
        let mvcc = Arc::new(Mvcc::new(state)?);
        let hub = Hub::new(mvcc.clone(), config.max_request_bytes + GRPC_OVERHEAD_BYTES);
        let lessor = Arc::new(Lessor::new(mvcc.leases()?, config.lease_checkpoint_interval));
        let (applied_tx, applied_rx) = watch::channel(applied_index);
        let peers = Arc::new(Peers::new(config.peer_tls.clone()));
        let replies = Arc::new(Replies::new(identity.member_id));
        let sm = StateMachine::new(mvcc.clone(), hub.clone(), lessor.clone(), layout.clone(), applied_tx, replies.clone());
        let log_store = LogStore::new(raft_db);
        let inline_sync = log_store.inline_sync();
        let raft = Raft::new(identity.member_id, Arc::new(raft_config(&config)?), Network { peers: peers.clone() }, log_store, sm)
            .await
            .map_err(|e| Error::Internal(format!("raft start: {e}")))?;
        let initialized = raft.is_initialized().await.map_err(|e| Error::Internal(e.to_string()))?;
        if !initialized && config.new_cluster {
            // Every founding member proposes the same membership at log index 0; it is safe for
            // all of them to do so.
            let members = initial_members(&config, &config.cluster_token);
            if let Err(e) = raft.initialize(members).await {
                tracing::info!("raft initialize: {e}");
            }
        }
        let (proposals, proposal_rx) = mpsc::channel(65_536);
        let (reads, read_rx) = mpsc::channel(65_536);
        let shared = Arc::new(Shared {
            id: identity.member_id,
            raft,
            mvcc,
            hub: hub.clone(),
            lessor,
            peers,
            applied: applied_rx,
            replies,
            reads,
            timeout: config.request_timeout,
            token: config.cluster_token.clone(),
            confirmed: std::sync::Mutex::new(None),
            renew_window: config.election_timeout / 2,
        });
        tokio::spawn(run_proposer(shared.clone(), proposal_rx));
        tokio::spawn(run_read_index(shared.clone(), read_rx));
        tokio::spawn(hub.run(config.progress_notify_interval));
        tokio::spawn(leases::run_lessor(shared.clone(), config.election_timeout));
        tokio::spawn(leader::watch_role(shared.raft.server_metrics(), inline_sync));
        let me = cairn_proto::etcdserverpb::Member {
            id: identity.member_id,
            name: identity.name.clone(),
            peer_ur_ls: config.advertise_peer_urls.clone(),
            client_ur_ls: config.advertise_client_urls.clone(),
            is_learner: false,
        };
        let (removed, _) = watch::channel(false);
        let (published, _) = watch::channel(false);
        tokio::spawn(members::run_membership(shared.clone(), me, removed.clone(), published.clone()));
        let node = Arc::new(Node {
            shared,
            identity,
            config,
            layout,
            proposals,
            lease_seq: AtomicU64::new(0),
            db_size: AtomicU64::new(0),
            backup_seq: AtomicU64::new(0),
            removed,
            published,
        });
        tokio::spawn(run_quota(Arc::downgrade(&node)));
        Ok(node)
    }

    pub fn id(&self) -> u64 {
        self.identity.member_id
    }

    pub fn cluster_id(&self) -> u64 {
        self.identity.cluster_id
    }

    /// The header of Cluster RPCs: cluster and member, revision 0 (etcd-api.md §2).
    pub fn cluster_header(&self) -> ResponseHeader {
        self.header(0)
    }

    pub fn name(&self) -> &str {
        &self.identity.name
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn mvcc(&self) -> &Arc<Mvcc> {
        &self.shared.mvcc
    }

    /// The response header etcd fills for this member at `revision`.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.identity.cluster_id,
            member_id: self.identity.member_id,
            revision,
            raft_term: self.shared.raft.metrics().borrow().current_term,
        }
    }


    /// The leader as etcd would report it. A leader that has heard from no quorum for an
    /// election timeout counts as none: etcd's CheckQuorum makes such a leader step down, while
    /// openraft 0.9 keeps it leading until another member wins. Health, metrics and Status
    /// report this; requests still go to openraft's leader (and time out without a quorum).
    pub fn leader(&self) -> Option<u64> {
        self.reported_leader(&self.shared.raft.metrics().borrow())
    }

    fn reported_leader(&self, metrics: &openraft::RaftMetrics<u64, crate::raft::Member>) -> Option<u64> {
        let leader = metrics.current_leader?;
        let isolated = leader == self.id()
            && metrics.millis_since_quorum_ack.is_some_and(|ms| u128::from(ms) > self.config.election_timeout.as_millis());
        (!isolated).then_some(leader)
    }

    pub async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        validate::range(&req)?;
        if !req.serializable {
            self.read_barrier().await?;
        }
        Ok(self.stamp(self.shared.mvcc.range(&req)?))
    }

    pub async fn put(&self, req: PutRequest) -> Result<PutResponse> {
        validate::put(&req)?;
        self.check_quota(req.key.len() + req.value.len(), true).await?;
        self.submit(command::Op::Put(req), |r| match r {
            command_result::Result::Put(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    pub async fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        validate::delete_range(&req)?;
        self.submit(command::Op::DeleteRange(req), |r| match r {
            command_result::Result::DeleteRange(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    pub async fn txn(&self, req: TxnRequest) -> Result<TxnResponse> {
        validate::txn(&req)?;
        // As etcd (v3_server.go): a txn whose branches only range is served locally, after a
        // read index unless every range is serializable.
        if validate::txn_is_read_only(&req) {
            if !validate::txn_is_serializable(&req) {
                self.read_barrier().await?;
            }
            return Ok(self.stamp(self.shared.mvcc.read_txn(&req)?));
        }
        self.check_quota(req.encoded_len(), validate::txn_puts(&req)).await?;
        self.submit(command::Op::Txn(req), |r| match r {
            command_result::Result::Txn(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    /// Compaction is applied (and physically done) before the response, so `physical` holds.
    pub async fn compact(&self, req: CompactionRequest) -> Result<CompactionResponse> {
        self.submit(command::Op::Compaction(req), |r| match r {
            command_result::Result::Compaction(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    /// etcd's quota check before a write is proposed: past the quota, the NOSPACE alarm is
    /// raised (through the log, so every member refuses writes) and the write is refused.
    /// Writes that add data (`adds`) are refused while NOSPACE is raised; as etcd, any write
    /// is refused while the database is over the quota.
    async fn check_quota(&self, cost: usize, adds: bool) -> Result<()> {
        if adds && self.shared.mvcc.no_space() {
            return Err(Error::NoSpace);
        }
        if self.db_size.load(Ordering::Relaxed) + cost as u64 <= self.config.quota_backend_bytes {
            return Ok(());
        }
        self.raise_no_space().await;
        Err(Error::NoSpace)
    }

    async fn raise_no_space(&self) {
        let req = AlarmRequest { action: AlarmAction::Activate as i32, member_id: self.id(), alarm: AlarmType::Nospace as i32 };
        if let Err(e) = self.propose(command::Op::Alarm(req)).await {
            tracing::warn!("raising the NOSPACE alarm: {e}");
        }
    }

    /// Maintenance.Alarm: GET lists the active alarms; ACTIVATE and DEACTIVATE go through the
    /// log and answer with the alarms they changed.
    pub async fn alarm(&self, req: AlarmRequest) -> Result<AlarmResponse> {
        if AlarmAction::try_from(req.action) == Ok(AlarmAction::Get) {
            let alarms = self.shared.mvcc.alarms().into_iter().filter(|a| req.alarm == AlarmType::None as i32 || a.alarm == req.alarm).collect();
            return Ok(AlarmResponse { header: Some(self.header(self.shared.mvcc.current_revision())), alarms });
        }
        self.submit(command::Op::Alarm(req), |r| match r {
            command_result::Result::Alarm(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    /// `(hash, current revision, compact revision)` of the key space at `revision`.
    pub async fn hash_kv(&self, revision: i64) -> Result<(u32, i64, i64)> {
        let mvcc = self.shared.mvcc.clone();
        tokio::task::spawn_blocking(move || mvcc.hash_kv(revision)).await.map_err(|e| Error::Internal(e.to_string()))?
    }

    pub async fn hash(&self) -> Result<(u32, i64)> {
        let mvcc = self.shared.mvcc.clone();
        tokio::task::spawn_blocking(move || mvcc.hash()).await.map_err(|e| Error::Internal(e.to_string()))?
    }

    pub async fn defragment(&self) -> Result<()> {
        let mvcc = self.shared.mvcc.clone();
        tokio::task::spawn_blocking(move || mvcc.defragment()).await.map_err(|e| Error::Internal(e.to_string()))??;
        self.db_size.store(self.shared.mvcc.size(), Ordering::Relaxed);
        Ok(())
    }

    /// Writes a backup of this member's state (see [`crate::backup`]) and returns its path;
    /// the caller streams it and removes it.
    pub async fn backup(&self) -> Result<PathBuf> {
        let db = self.shared.mvcc.db();
        let dir = self.layout.snapshot_dir();
        let name = format!("backup-{}", self.backup_seq.fetch_add(1, Ordering::Relaxed));
        tokio::task::spawn_blocking(move || crate::backup::write(&db, &dir, &name)).await.map_err(|e| Error::Internal(e.to_string()))?
    }

    /// Opens a watch stream on this member.
    /// Open watch streams and watchers on this member.
    pub fn watch_counts(&self) -> crate::watch::WatchCounts {
        self.shared.hub.counts()
    }

    pub fn watch(&self) -> WatchStream {
        self.shared.hub.open()
    }

    /// Proposes `op` and returns its response, `pick`ed out of the command result, with this
    /// member's header.
    async fn submit<T: Headed>(&self, op: command::Op, pick: impl FnOnce(command_result::Result) -> Result<T, command_result::Result>) -> Result<T> {
        let resp = pick(self.propose(op).await?).map_err(|other| Error::Internal(format!("unexpected command result {other:?}")))?;
        Ok(self.stamp(resp))
    }

    /// Fills in the header core left with only a revision.
    fn stamp<T: Headed>(&self, mut resp: T) -> T {
        let header = resp.header_mut();
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.header(revision));
        resp
    }

    pub fn status(&self) -> Status {
        let metrics = self.shared.raft.metrics().borrow().clone();
        let leader = self.reported_leader(&metrics).unwrap_or(0);
        let is_learner = !metrics.membership_config.membership().voter_ids().any(|id| id == self.id())
            && metrics.membership_config.membership().learner_ids().any(|id| id == self.id());
        let mut errors = Vec::new();
        if leader == 0 {
            errors.push("etcdserver: no leader".to_string());
        }
        for alarm in self.shared.mvcc.alarms() {
            let name = AlarmType::try_from(alarm.alarm).map_or("UNKNOWN", |t| t.as_str_name());
            errors.push(format!("memberID:{} alarm:{name} ", alarm.member_id));
        }
        Status {
            leader,
            raft_index: metrics.last_log_index.unwrap_or(0),
            raft_term: metrics.current_term,
            raft_applied_index: metrics.last_applied.map_or(0, |l| l.index),
            db_size: self.shared.mvcc.size(),
            db_size_in_use: self.shared.mvcc.size_in_use(),
            is_learner,
            errors,
        }
    }

    /// Waits until this member has applied everything committed before the call (read index).
    pub async fn read_barrier(&self) -> Result<()> {
        self.shared.read_barrier().await
    }

    async fn propose(&self, op: command::Op) -> Result<command_result::Result> {
        let cmd = Command { op: Some(op) };
        let size = cmd.encoded_len();
        if size > self.config.max_request_bytes {
            return Err(Error::RequestTooLarge);
        }
        let (reply, rx) = oneshot::channel();
        let _pending = crate::metrics::PROPOSALS_PENDING.track();
        self.proposals.send(Pending { cmd, size, reply }).await.map_err(|_| Error::Stopped)?;
        let result = rx.await.map_err(|_| Error::Stopped)?.inspect_err(|_| crate::metrics::PROPOSALS_FAILED.inc())?;
        match result.result {
            Some(command_result::Result::Error(e)) => Err(Error::from_wire(&e)),
            Some(r) => Ok(r),
            None => Err(Error::Internal("empty command result".into())),
        }
    }

    /// The leader side of a forwarded proposal.
    pub async fn handle_propose(&self, batch: CommandBatch) -> Result<ProposeResponse> {
        let (results, log_index) = self.shared.write_local(Arc::new(batch)).await?;
        Ok(ProposeResponse { results, log_index })
    }

    /// The leader side of a follower's read index request.
    pub async fn handle_read_index(&self) -> Result<u64> {
        self.shared.leader_read_index().await
    }

    /// Serves a raft RPC from a peer (bytes in, bytes out; the peer service needs no openraft).
    pub async fn handle_raft_rpc(&self, kind: RaftRpc, data: &[u8]) -> Result<Vec<u8>> {
        crate::raft::network::serve(&self.shared.raft, kind, data).await
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.shared.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }
}

/// A response whose header the member fills in.
trait Headed {
    fn header_mut(&mut self) -> &mut Option<ResponseHeader>;
}

macro_rules! headed {
    ($($t:ty),*) => {
        $(impl Headed for $t {
            fn header_mut(&mut self) -> &mut Option<ResponseHeader> {
                &mut self.header
            }
        })*
    };
}

headed!(RangeResponse, PutResponse, DeleteRangeResponse, TxnResponse, CompactionResponse, LeaseGrantResponse, LeaseRevokeResponse, AlarmResponse);

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send + 'a>>;

impl Shared {
    async fn read_barrier(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.reads.send(tx).await.map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Runs a request on the leader: `local` when this member leads, else `remote` through the
    /// peer service. Retried while leadership moves, until the request timeout.
    async fn on_leader<T>(
        &self,
        local: impl Fn(&Shared) -> BoxFuture<'_, T>,
        remote: impl for<'a> Fn(&'a Peers, u64, &'a Member, Duration) -> BoxFuture<'a, T>,
    ) -> Result<T> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let (leader, member) = self.wait_leader(deadline).await?;
            let attempt = if leader == self.id {
                local(self).await
            } else {
                remote(&self.peers, leader, &member, deadline.saturating_duration_since(Instant::now())).await
            };
            match attempt {
                Err(Error::NotLeader) | Err(Error::LeaderChanged) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(Error::NotLeader) | Err(Error::LeaderChanged) => return Err(Error::Timeout),
                other => return other,
            }
        }
    }

    fn leader(&self) -> Option<(u64, Member)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let id = m.current_leader?;
        let member = m.membership_config.membership().get_node(&id).cloned().unwrap_or_default();
        Some((id, member))
    }

    /// The current leader, waiting for one to be elected until `deadline`.
    async fn wait_leader(&self, deadline: Instant) -> Result<(u64, Member)> {
        let mut metrics = self.raft.metrics();
        loop {
            if let Some(leader) = self.leader() {
                return Ok(leader);
            }
            match tokio::time::timeout_at(deadline.into(), metrics.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(Error::Stopped),
                Err(_) => return Err(Error::NoLeader),
            }
        }
    }

    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<()> {
        let mut applied = self.applied.clone();
        let reached = tokio::time::timeout_at(deadline.into(), applied.wait_for(|i| *i >= index)).await.map(|r| r.is_ok());
        match reached {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Stopped),
            Err(_) => Err(Error::Timeout),
        }
    }

    /// Proposes on this member, which must be the leader.
    async fn write_local(&self, batch: Arc<CommandBatch>) -> Result<(Vec<CommandResult>, u64)> {
        match self.raft.client_write(Proposal(batch)).await {
            Ok(resp) => Ok((resp.data.0, resp.log_id.index)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(Error::NotLeader),
            Err(RaftError::APIError(e)) => Err(Error::Internal(e.to_string())),
            Err(RaftError::Fatal(_)) => Err(Error::Stopped),
        }
    }

    /// Commits a batch through whichever member leads, retrying only where nothing was proposed.
    async fn commit(&self, batch: &Arc<CommandBatch>) -> Result<Vec<CommandResult>> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let (leader, member) = self.wait_leader(deadline).await?;
            let attempt = if leader == self.id {
                self.write_local(batch.clone()).await.map(|(results, _)| results)
            } else {
                let remaining = deadline.saturating_duration_since(Instant::now());
                match self.peers.propose(leader, &member, CommandBatch::clone(batch), remaining).await {
                    Ok(resp) => {
                        // Read-your-writes on this member: answer once it has applied the entry.
                        self.wait_applied(resp.log_index, deadline).await?;
                        Ok(resp.results)
                    }
                    Err(e) => Err(e),
                }
            };
            match attempt {
                Err(Error::NotLeader) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(Error::NotLeader) => return Err(Error::Timeout),
                other => return other,
            }
        }
    }

    async fn leader_read_index(&self) -> Result<u64> {
        // Taken before the heartbeats go out: a quorum's answers prove this member led at
        // least until then.
        let started = Instant::now();
        let term = self.raft.metrics().borrow().current_term;
        match self.raft.get_read_log_id().await {
            Ok((read_log_id, _)) => {
                let index = read_log_id.map_or(0, |l| l.index);
                self.confirm_leadership(leases::Confirmed { term, at: started, index });
                Ok(index)
            }
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => Err(Error::NotLeader),
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => Err(Error::Timeout),
            Err(RaftError::Fatal(_)) => Err(Error::Stopped),
        }
    }

    /// One read-index round: the leader confirms its leadership with a quorum and names the
    /// index this member must apply before it serves the reads waiting on this round.
    async fn read_index(&self) -> Result<u64> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let (leader, member) = self.wait_leader(deadline).await?;
            let attempt = if leader == self.id {
                self.leader_read_index().await
            } else {
                let remaining = deadline.saturating_duration_since(Instant::now());
                self.peers.read_index(leader, &member, remaining).await
            };
            match attempt {
                Err(Error::NotLeader) | Err(Error::LeaderChanged) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(Error::NotLeader) | Err(Error::LeaderChanged) => return Err(Error::Timeout),
                Ok(index) => return Ok(index),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Group commit: takes every request waiting when a slot frees up and proposes them as one
/// log entry, so concurrent writes share one raft round and one fsync.
async fn run_proposer(shared: Arc<Shared>, mut rx: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(MAX_INFLIGHT_BATCHES));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let mut bytes = first.size;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_COMMANDS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.size;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let (commands, waiting): (Vec<Command>, Vec<_>) = batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
            let batch = shared.replies.register(commands, waiting);
            let outcome = shared.commit(&batch).await;
            drop(permit);
            // Normally the apply has answered already; what is left is an error, or a batch this
            // member did not apply itself (it installed a snapshot past it).
            let Some(waiting) = shared.replies.take(&batch) else { return };
            match outcome {
                Ok(results) => replies::answer(waiting, results),
                Err(e) => replies::fail(waiting, &e),
            }
        });
    }
}

/// Measures the database for the quota check, and raises the NOSPACE alarm once it is past
/// the quota (etcd raises it on the next write; measuring ahead keeps writes cheap).
async fn run_quota(node: std::sync::Weak<Node>) {
    let mut tick = tokio::time::interval(QUOTA_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(node) = node.upgrade() else { return };
        let size = node.shared.mvcc.size();
        node.db_size.store(size, Ordering::Relaxed);
        if size > node.config.quota_backend_bytes && !node.shared.mvcc.no_space() {
            node.raise_no_space().await;
        }
    }
}

/// Batches linearizable reads: every read waiting when a round starts is served by that round;
/// reads that arrive during it wait for the next one (a round must start after the read).
///
/// A round costs a heartbeat to every follower and its answer: a send, a receive and a wake-up
/// on each side, whatever the number of reads it serves. So before a round starts, the batcher
/// yields to the runtime while that lets more reads in: requests already read off the sockets
/// are parsed and join this round instead of waiting out the next one. It stops at the first
/// pass that brings none, so an idle member starts its round at once. Against one leader with
/// 100 clients this made rounds a third larger (20 to 31 reads) and reads 15% cheaper in CPU.
async fn run_read_index(shared: Arc<Shared>, mut rx: mpsc::Receiver<ReadWaiter>) {
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        for _ in 0..MAX_READ_GATHER_PASSES {
            tokio::task::yield_now().await;
            let before = waiters.len();
            while let Ok(w) = rx.try_recv() {
                waiters.push(w);
            }
            if waiters.len() == before {
                break;
            }
        }
        let round = shared.read_index().await;
        // The wait for apply runs on its own, so the next round can start at once.
        let shared = shared.clone();
        tokio::spawn(async move {
            let outcome = match round {
                Ok(index) => shared.wait_applied(index, Instant::now() + shared.timeout).await,
                Err(e) => Err(e),
            };
            for w in waiters {
                let _ = w.send(outcome.clone());
            }
        });
    }
}
