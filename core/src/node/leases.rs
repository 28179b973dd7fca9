//! The Node's lease API: grants and revokes through the log; keep-alives and time-to-live on
//! the leader, whose lessor tracks expiry; and the leader's lessor duties.

use super::*;

/// How often the leader looks for expired leases and due checkpoints (etcd: 500 ms).
const LEASE_TICK: Duration = Duration::from_millis(100);
/// Expired leases revoked per tick at most: etcd keeps revocation under 1,000 per second.
const MAX_REVOKES_PER_TICK: usize = 75;
/// Remaining TTLs per checkpoint entry (etcd's `maxLeaseCheckpointBatchSize`).
const MAX_CHECKPOINTS_PER_ENTRY: usize = 1000;

impl Node {
    pub async fn lease_grant(&self, mut req: LeaseGrantRequest) -> Result<LeaseGrantResponse> {
        if req.ttl > MAX_LEASE_TTL {
            return Err(Error::LeaseTtlTooLarge);
        }
        req.ttl = req.ttl.max(self.min_lease_ttl());
        self.check_quota(0, true).await?;
        if req.id == 0 {
            req.id = self.next_lease_id();
        }
        self.submit(command::Op::LeaseGrant(req), |r| match r {
            command_result::Result::LeaseGrant(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    pub async fn lease_revoke(&self, req: LeaseRevokeRequest) -> Result<LeaseRevokeResponse> {
        self.submit(command::Op::LeaseRevoke(req), |r| match r {
            command_result::Result::LeaseRevoke(resp) => Ok(resp),
            other => Err(other),
        })
        .await
    }

    /// One keep-alive: renewed on the leader. An unknown or expired lease gets TTL 0 and no
    /// error; the header is taken before the renewal, as etcd does.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAliveResponse> {
        let header = self.header(self.shared.mvcc.current_revision());
        let resp = self.shared.on_leader(|shared| Box::pin(shared.renew_local(id)), |peers, leader, member, t| {
            Box::pin(peers.lease_renew(leader, member, LeaseKeepAliveRequest { id }, t))
        });
        let ttl = resp.await?.ttl;
        Ok(LeaseKeepAliveResponse { header: Some(header), id, ttl })
    }

    /// The lease's remaining TTL, measured on the leader; an unknown lease gets TTL -1 and no
    /// error.
    pub async fn lease_time_to_live(&self, req: LeaseTimeToLiveRequest) -> Result<LeaseTimeToLiveResponse> {
        let resp = self
            .shared
            .on_leader(move |shared| Box::pin(shared.time_to_live_local(req)), move |peers, leader, member, t| {
                Box::pin(peers.lease_time_to_live(leader, member, req, t))
            })
            .await?;
        let revision = self.shared.mvcc.current_revision();
        Ok(LeaseTimeToLiveResponse { header: Some(self.header(revision)), ..resp })
    }

    pub async fn lease_leases(&self) -> Result<LeaseLeasesResponse> {
        self.read_barrier().await?;
        let leases = self.shared.lessor.ids().into_iter().map(|id| LeaseStatus { id }).collect();
        Ok(LeaseLeasesResponse { header: Some(self.header(self.shared.mvcc.current_revision())), leases })
    }

    /// The leader side of a forwarded keep-alive.
    pub async fn handle_lease_renew(&self, req: LeaseKeepAliveRequest) -> Result<LeaseKeepAliveResponse> {
        self.shared.renew_local(req.id).await
    }

    /// The leader side of a forwarded time-to-live request.
    pub async fn handle_lease_time_to_live(&self, req: LeaseTimeToLiveRequest) -> Result<LeaseTimeToLiveResponse> {
        self.shared.time_to_live_local(req).await
    }

    /// etcd's minimum lease TTL: 1.5 election timeouts, rounded up to whole seconds.
    fn min_lease_ttl(&self) -> i64 {
        let ms = self.config.election_timeout.as_millis() as i64 * 3 / 2;
        (ms + 999) / 1000
    }

    /// A positive, member-unique lease ID, chosen before proposing (apply stays deterministic).
    fn next_lease_id(&self) -> i64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let seq = self.lease_seq.fetch_add(1, Ordering::Relaxed);
        let id = ((self.identity.member_id & 0xFFFF) << 47) | ((now << 8) & 0x7FFF_FFFF_FF00) | (seq & 0xFF);
        (id & i64::MAX as u64).max(1) as i64
    }

}

impl Shared {
    /// Renews a lease on this member, which must lead. It first makes sure that it still leads
    /// and has applied everything committed (so a lease granted or revoked by an earlier leader
    /// is known): by a read-index round, unless one confirmed both recently enough.
    async fn renew_local(&self, id: i64) -> Result<LeaseKeepAliveResponse> {
        if !self.leadership_fresh() {
            self.read_barrier().await?;
        }
        let ttl = match self.lessor.renew(id)? {
            None => 0,
            Some(renewal) => {
                if renewal.clear_checkpoint {
                    self.propose_checkpoints(vec![LeaseCheckpoint { id, remaining_ttl: 0 }]);
                }
                renewal.ttl
            }
        };
        Ok(LeaseKeepAliveResponse { header: None, id, ttl })
    }

    /// Whether a read-index round of this member's current term confirmed its leadership less
    /// than `renew_window` ago, and everything up to that round's index is applied.
    ///
    /// Why a renewal may then skip a round of its own: a quorum answered heartbeats sent after
    /// `at`, so any other leader is elected after `at` (a member that answered us votes for a
    /// rival only afterwards). A new leader starts every lease clock when it takes over, extended
    /// by an election timeout (`Lessor::promote`), so a renewal here before `at + renew_window`
    /// (half an election timeout) never outlives the lease at the new leader. A leader cut off
    /// from its quorum, or whose raft core is stuck (etcd issue 15247), completes no more rounds
    /// and stops renewing once the window has passed. etcd skips its own leadership check the
    /// same way while its raft loop is live (etcd PR 18428, in 3.4 and 3.5 since 2024).
    fn leadership_fresh(&self) -> bool {
        let Some(confirmed) = *self.confirmed.lock().unwrap_or_else(|e| e.into_inner()) else {
            return false;
        };
        if confirmed.at.elapsed() >= self.renew_window || *self.applied.borrow() < confirmed.index {
            return false;
        }
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_term == confirmed.term
    }

    /// Records a read-index round that this member led and a quorum answered.
    pub(super) fn confirm_leadership(&self, round: Confirmed) {
        let mut confirmed = self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        if confirmed.is_none_or(|c| c.at < round.at) {
            *confirmed = Some(round);
        }
    }

    async fn time_to_live_local(&self, req: LeaseTimeToLiveRequest) -> Result<LeaseTimeToLiveResponse> {
        self.read_barrier().await?;
        if !self.lessor.is_primary() {
            return Err(Error::NotLeader);
        }
        let Some((remaining, granted)) = self.lessor.time_to_live(req.id) else {
            return Ok(LeaseTimeToLiveResponse { header: None, id: req.id, ttl: -1, granted_ttl: 0, keys: Vec::new() });
        };
        let keys = if req.keys { self.mvcc.lease_keys(req.id)? } else { Vec::new() };
        Ok(LeaseTimeToLiveResponse { header: None, id: req.id, ttl: remaining, granted_ttl: granted, keys })
    }

    /// Proposes the lessor's commands on this member only, in the background: a deposed
    /// leader must not forward a revoke to its successor, whose lease clocks differ.
    fn propose_here(&self, commands: Vec<Command>) {
        let raft = self.raft.clone();
        tokio::spawn(async move {
            if let Err(e) = raft.client_write(Proposal(Arc::new(CommandBatch { commands, ..Default::default() }))).await {
                tracing::debug!("lessor proposal not committed: {e}");
            }
        });
    }

    fn propose_checkpoints(&self, checkpoints: Vec<LeaseCheckpoint>) {
        self.propose_here(vec![Command { op: Some(command::Op::LeaseCheckpoint(LeaseCheckpointRequest { checkpoints })) }]);
    }

}

/// A read-index round that confirmed this member's leadership: in which term, when its
/// heartbeats went out, and the index it read.
#[derive(Clone, Copy, Debug)]
pub(super) struct Confirmed {
    pub term: u64,
    pub at: Instant,
    pub index: u64,
}

/// The leader's lessor duties: promote and demote with leadership, revoke expired leases and
/// record remaining TTLs, all by proposing on this member.
pub(super) async fn run_lessor(shared: Arc<Shared>, election_timeout: Duration) {
    let mut tick = tokio::time::interval(LEASE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading_term = None;
    loop {
        tick.tick().await;
        let (leading, term) = {
            let metrics = shared.raft.metrics();
            let m = metrics.borrow();
            (m.state == ServerState::Leader, m.current_term)
        };
        if !leading {
            if leading_term.take().is_some() {
                shared.lessor.demote();
            }
            continue;
        }
        if leading_term != Some(term) {
            shared.lessor.promote(election_timeout);
            leading_term = Some(term);
        }
        let expired = shared.lessor.expired(MAX_REVOKES_PER_TICK);
        if !expired.is_empty() {
            crate::metrics::LEASES_EXPIRED.add(expired.len() as u64);
            let commands = expired.into_iter().map(|id| Command { op: Some(command::Op::LeaseRevoke(LeaseRevokeRequest { id })) }).collect();
            shared.propose_here(commands);
        }
        let due = shared.lessor.due_checkpoints(MAX_CHECKPOINTS_PER_ENTRY);
        if !due.is_empty() {
            shared.propose_checkpoints(due);
        }
    }
}
