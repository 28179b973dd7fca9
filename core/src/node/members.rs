//! Cluster membership: etcd's Cluster service over openraft's membership changes. Changes run
//! on the leader (followers forward them). A member added as a voter first joins as a learner
//! and is promoted once it has caught up, so adding a member never costs the cluster its
//! quorum while the new process is still starting (etcd's 1 → 2 pitfall).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_proto::cairnpb::{
    command, member_change_request::Op, Command, CommandBatch, MemberChangeRequest, MemberChangeResponse, TransferRequest, VoterIntent,
};
use cairn_proto::etcdserverpb::Member as PbMember;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};

use super::{Node, Shared};
use crate::error::{Error, Result};
use crate::member;
use crate::raft::Member;

/// etcd's rule for promoting a learner: it has at least 90 % of the leader's log.
const LEARNER_READY_FRACTION: f64 = 0.9;
/// etcd's `--max-learners` default.
const MAX_LEARNERS: usize = 1;
const MEMBERSHIP_TICK: Duration = Duration::from_millis(200);

/// A snapshot of the membership as this member sees it.
struct View {
    nodes: BTreeMap<u64, Member>,
    voters: BTreeSet<u64>,
    pending: BTreeSet<u64>,
}

impl View {
    fn is_learner(&self, id: u64) -> bool {
        !self.voters.contains(&id) && !self.pending.contains(&id)
    }

    fn members(&self) -> Vec<PbMember> {
        self.nodes
            .iter()
            .map(|(id, m)| PbMember {
                id: *id,
                name: m.name.clone(),
                peer_ur_ls: m.peer_urls.clone(),
                client_ur_ls: m.client_urls.clone(),
                is_learner: self.is_learner(*id),
            })
            .collect()
    }

    fn owner_of(&self, urls: &[String]) -> Option<u64> {
        self.nodes.iter().find(|(_, m)| m.peer_urls.iter().any(|u| urls.contains(u))).map(|(id, _)| *id)
    }
}

fn valid_urls(urls: &[String]) -> Result<()> {
    let valid = |u: &String| {
        let rest = u.strip_prefix("http://").or_else(|| u.strip_prefix("https://"));
        rest.and_then(|r| r.rsplit_once(':')).is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
    };
    if urls.is_empty() || !urls.iter().all(valid) {
        return Err(Error::InvalidMemberUrls);
    }
    Ok(())
}

fn change_error(e: RaftError<u64, ClientWriteError<u64, Member>>) -> Error {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => Error::NotLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => Error::Internal(format!("membership change: {e}")),
        RaftError::Fatal(_) => Error::Stopped,
    }
}

impl Shared {
    fn view(&self) -> View {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        View {
            nodes: membership.nodes().map(|(id, n)| (*id, n.clone())).collect(),
            voters: membership.voter_ids().collect(),
            pending: self.mvcc.pending_voters().unwrap_or_default().into_iter().collect(),
        }
    }

    fn leads(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// Whether learner `id` has caught up enough to vote (leader only).
    fn learner_ready(&self, id: u64) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let last = m.last_log_index.unwrap_or(0) as f64;
        let matched = m.replication.as_ref().and_then(|r| r.get(&id).cloned().flatten()).map(|l| l.index);
        matched.is_some_and(|matched| matched as f64 >= last * LEARNER_READY_FRACTION)
    }

    async fn change(&self, changes: ChangeMembers<u64, Member>) -> Result<()> {
        self.raft.change_membership(changes, false).await.map(drop).map_err(change_error)
    }

    async fn set_intent(&self, id: u64, pending: bool) -> Result<()> {
        let cmd = Command { op: Some(command::Op::VoterIntent(VoterIntent { id, pending })) };
        self.write_local(Arc::new(CommandBatch { commands: vec![cmd], ..Default::default() })).await.map(drop)
    }

    /// A membership change, on this member, which must lead.
    async fn change_members(&self, op: Op) -> Result<MemberChangeResponse> {
        if !self.leads() {
            return Err(Error::NotLeader);
        }
        let view = self.view();
        let member = match op {
            Op::Add(req) => Some(self.add(&view, req.peer_ur_ls, req.is_learner).await?),
            Op::Remove(req) => {
                if !view.nodes.contains_key(&req.id) {
                    return Err(Error::MemberNotFound);
                }
                let change = if view.voters.contains(&req.id) {
                    ChangeMembers::RemoveVoters(BTreeSet::from([req.id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([req.id]))
                };
                self.change(change).await?;
                if view.pending.contains(&req.id) {
                    self.set_intent(req.id, false).await?;
                }
                if let Some(gone) = view.nodes.get(&req.id).cloned() {
                    let (peers, id) = (self.peers.clone(), req.id);
                    tokio::spawn(async move {
                        if let Err(e) = peers.removed(id, &gone, Duration::from_secs(2)).await {
                            tracing::debug!("telling member {id:x} it was removed: {e}");
                        }
                    });
                }
                None
            }
            Op::Update(req) => {
                valid_urls(&req.peer_ur_ls)?;
                let old = view.nodes.get(&req.id).ok_or(Error::MemberNotFound)?;
                if view.owner_of(&req.peer_ur_ls).is_some_and(|owner| owner != req.id) {
                    return Err(Error::PeerUrlExists);
                }
                let updated = Member { peer_urls: req.peer_ur_ls, ..old.clone() };
                self.change(ChangeMembers::SetNodes(BTreeMap::from([(req.id, updated)]))).await?;
                None
            }
            Op::Promote(req) => {
                if !view.nodes.contains_key(&req.id) {
                    return Err(Error::MemberNotFound);
                }
                if !view.is_learner(req.id) {
                    return Err(Error::MemberNotLearner);
                }
                if !self.learner_ready(req.id) {
                    return Err(Error::LearnerNotReady);
                }
                self.change(ChangeMembers::AddVoterIds(BTreeSet::from([req.id]))).await?;
                None
            }
            Op::Publish(me) => {
                let old = view.nodes.get(&me.id).ok_or(Error::MemberNotFound)?;
                if old.name != me.name || old.client_urls != me.client_ur_ls {
                    let published = Member { name: me.name, client_urls: me.client_ur_ls, ..old.clone() };
                    self.change(ChangeMembers::SetNodes(BTreeMap::from([(me.id, published)]))).await?;
                }
                None
            }
        };
        Ok(MemberChangeResponse { member, members: self.view().members() })
    }

    /// A membership change through whichever member leads.
    async fn member_change(&self, op: Op) -> Result<MemberChangeResponse> {
        let remote = op.clone();
        self.on_leader(move |shared| Box::pin(shared.change_members(op.clone())), move |peers, leader, member, t| {
            Box::pin(peers.member_change(leader, member, MemberChangeRequest { op: Some(remote.clone()) }, t))
        })
        .await
    }

    async fn add(&self, view: &View, peer_urls: Vec<String>, is_learner: bool) -> Result<PbMember> {
        valid_urls(&peer_urls)?;
        if view.owner_of(&peer_urls).is_some() {
            return Err(Error::PeerUrlExists);
        }
        if is_learner && view.nodes.keys().filter(|id| view.is_learner(**id)).count() >= MAX_LEARNERS {
            return Err(Error::TooManyLearners);
        }
        // As etcd: the ID of an added member also hashes the time, so a URL used again later
        // gets a new ID.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let id = member::added_member_id(&peer_urls, &self.token, now);
        let node = Member { name: String::new(), peer_urls: peer_urls.clone(), client_urls: Vec::new() };
        self.raft.add_learner(id, node, false).await.map_err(change_error)?;
        if !is_learner {
            self.set_intent(id, true).await?;
        }
        Ok(PbMember { id, name: String::new(), peer_ur_ls: peer_urls, client_ur_ls: Vec::new(), is_learner })
    }

    /// MoveLeader, on the leader. openraft 0.9 has no leadership transfer, and a follower
    /// refuses to vote while its leader lease (the longest election timeout) runs, so: the
    /// leader stops its heartbeats and its own elections, the other voters hold theirs, and
    /// the target campaigns once every lease has run out. Writes arriving meanwhile renew the
    /// leases and can make the transfer time out, leaving the leader in place.
    async fn move_leader(&self, target: u64) -> Result<()> {
        if !self.leads() {
            return Err(Error::NotLeader);
        }
        let view = self.view();
        if target == self.id {
            return Ok(());
        }
        let Some(target_member) = view.nodes.get(&target).filter(|_| view.voters.contains(&target)).cloned() else {
            return Err(Error::BadLeaderTransferee);
        };
        let lease = Duration::from_millis(self.raft.config().election_timeout_max);
        let deadline = tokio::time::Instant::now() + self.timeout;
        // The target must hold the whole log, or the others will not vote for it.
        loop {
            let (last, matched) = {
                let metrics = self.raft.metrics();
                let m = metrics.borrow();
                (m.last_log_index, m.replication.as_ref().and_then(|r| r.get(&target).cloned().flatten()).map(|l| l.index))
            };
            if matched.is_some() && matched == last {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let wait = lease + Duration::from_millis(200);
        let hold = TransferRequest { wait_ms: (wait + lease).as_millis() as u64, campaign: false };
        for (id, member) in view.nodes.iter().filter(|(id, _)| view.voters.contains(id) && **id != self.id && **id != target) {
            if let Err(e) = self.peers.transfer(*id, member, hold, Duration::from_secs(1)).await {
                tracing::debug!("asking {id:x} to hold its elections: {e}");
            }
        }
        let runtime = self.raft.runtime_config();
        runtime.elect(false);
        runtime.heartbeat(false);
        let campaign = TransferRequest { wait_ms: wait.as_millis() as u64, campaign: true };
        let asked = self.peers.transfer(target, &target_member, campaign, Duration::from_secs(1)).await;
        let moved = match asked {
            Ok(()) => {
                let mut metrics = self.raft.metrics();
                let until = tokio::time::Instant::now() + wait + lease * 2;
                tokio::time::timeout_at(until, metrics.wait_for(|m| m.current_leader == Some(target))).await.is_ok_and(|r| r.is_ok())
            }
            Err(_) => false,
        };
        runtime.heartbeat(true);
        runtime.elect(true);
        if moved {
            Ok(())
        } else {
            Err(Error::Timeout)
        }
    }

    /// The other side of a transfer: campaign after `wait_ms`, or hold elections for it.
    fn transfer_role(self: &Arc<Self>, req: TransferRequest) {
        let shared = self.clone();
        tokio::spawn(async move {
            let wait = Duration::from_millis(req.wait_ms);
            if req.campaign {
                tokio::time::sleep(wait).await;
                if let Err(e) = shared.raft.trigger().elect().await {
                    tracing::warn!("campaign for a leadership transfer: {e}");
                }
            } else {
                shared.raft.runtime_config().elect(false);
                tokio::time::sleep(wait).await;
                shared.raft.runtime_config().elect(true);
            }
        });
    }

    /// Leader duties: promote members added as voters once they have caught up, and forget
    /// intents whose member is a voter already or gone.
    async fn promote_pending(&self) {
        let view = self.view();
        for id in &view.pending {
            let outcome = if view.voters.contains(id) || !view.nodes.contains_key(id) {
                self.set_intent(*id, false).await
            } else if self.learner_ready(*id) {
                self.change(ChangeMembers::AddVoterIds(BTreeSet::from([*id]))).await
            } else {
                Ok(())
            };
            if let Err(e) = outcome {
                tracing::debug!("promoting member {id:x}: {e}");
            }
        }
    }
}

impl Node {
    /// Resolves once the membership carries this member's name and client URLs (etcd serves
    /// clients only from then on), or after `timeout`. False on timeout.
    pub async fn published(&self, timeout: Duration) -> bool {
        let mut published = self.published.subscribe();
        let reached = tokio::time::timeout(timeout, published.wait_for(|p| *p)).await.is_ok_and(|r| r.is_ok());
        reached
    }

    /// Resolves once this member has been removed from the cluster.
    pub async fn removed(&self) {
        let mut removed = self.removed.subscribe();
        let _ = removed.wait_for(|r| *r).await;
    }

    /// MoveLeader: hands leadership to `target`, a voter; this member must lead.
    pub async fn move_leader(&self, target: u64) -> Result<()> {
        self.shared.move_leader(target).await
    }

    /// The peer-service side of a leadership transfer.
    pub fn handle_transfer(&self, req: TransferRequest) {
        self.shared.transfer_role(req);
    }

    /// The leader removed this member (the peer-service side of `Peers::removed`).
    pub fn handle_removed(&self, id: u64) {
        if id == self.id() {
            tracing::warn!("this member has been permanently removed from the cluster");
            self.removed.send_replace(true);
        }
    }

    /// Every member, as this member's membership knows it.
    pub fn member_list(&self) -> Vec<PbMember> {
        self.shared.view().members()
    }

    /// Whether this member is a learner (it then answers only what etcd lets a learner answer).
    /// Asked on every client request (the learner guard), so a voter answers from the raft
    /// server metrics alone, without copying the membership or reading the pending voters. The
    /// server metrics change only with the leader, the vote or the membership; the full metrics
    /// are rewritten on every pass of the raft core, and reading them contends with it.
    pub fn is_learner(&self) -> bool {
        let id = self.id();
        let known_non_voter = {
            let metrics = self.shared.raft.server_metrics();
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            // voter_ids() merges the joint configs into a new set; a lookup in each does not.
            membership.get_node(&id).is_some() && !membership.get_joint_config().iter().any(|voters| voters.contains(&id))
        };
        known_non_voter && !self.shared.mvcc.pending_voters().unwrap_or_default().contains(&id)
    }

    /// A membership change, run on the leader.
    pub async fn member_change(&self, op: Op) -> Result<MemberChangeResponse> {
        self.shared.member_change(op).await
    }

    /// The leader side of a forwarded membership change.
    pub async fn handle_member_change(&self, req: MemberChangeRequest) -> Result<MemberChangeResponse> {
        let op = req.op.ok_or_else(|| Error::Internal("empty membership change".into()))?;
        self.shared.change_members(op).await
    }
}

/// Publishes this member's name and client URLs into the membership (once, and again if they
/// change), and on the leader promotes pending voters.
pub(super) async fn run_membership(shared: Arc<Shared>, me: PbMember, removed: tokio::sync::watch::Sender<bool>, published: tokio::sync::watch::Sender<bool>) {
    let mut tick = tokio::time::interval(MEMBERSHIP_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_member = false;
    loop {
        tick.tick().await;
        let view = shared.view();
        // Once a member it belonged to is applied without it, it has been removed: as etcd, it
        // stops (the gateway shuts down).
        let member = view.nodes.contains_key(&me.id);
        if was_member && !member {
            tracing::warn!("this member has been permanently removed from the cluster");
            removed.send_replace(true);
            return;
        }
        was_member |= member;
        let done = view.nodes.get(&me.id).is_some_and(|m| m.name == me.name && m.client_urls == me.client_ur_ls);
        published.send_replace(done);
        if !done && view.nodes.contains_key(&me.id) && shared.leader().is_some() {
            match shared.member_change(Op::Publish(me.clone())).await {
                Ok(_) => tracing::info!(name = me.name, client_urls = ?me.client_ur_ls, "published this member"),
                Err(e) => tracing::debug!("publishing this member: {e}"),
            }
        }
        if shared.leads() && !view.pending.is_empty() {
            shared.promote_pending().await;
        }
    }
}
