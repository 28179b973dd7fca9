//! Who leads, as this member sees it: the changes the metrics count, the gRPC health
//! service's Watch reports, and whether the log store syncs inline.

use openraft::metrics::RaftServerMetrics;

use super::*;

impl Node {
    /// Waits until the leader this member reports ([`Node::leader`]: a leader cut off from its
    /// quorum counts as none) differs from `known` (`None`: no leader) and returns it. Never
    /// returns once raft has stopped.
    pub async fn leader_changed(&self, known: Option<u64>) -> Option<u64> {
        let mut metrics = self.shared.raft.metrics();
        loop {
            let leader = self.reported_leader(&metrics.borrow_and_update());
            if leader != known {
                return leader;
            }
            if metrics.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// Counts leader changes as etcd does: a leader different from the one before, where losing
/// the leader forgets it (so the same leader after an election without one counts again).
/// Also tells the log store whether this member may sync its appends inline (`InlineSync`: it
/// follows, or leads no other voter). Watches the server metrics, which change with the leader
/// and the membership only, not with every entry committed as the full metrics do.
pub(super) async fn watch_role(mut metrics: watch::Receiver<RaftServerMetrics<u64, Member>>, inline_sync: Arc<InlineSync>) {
    let mut last = None;
    loop {
        let (leader, inline) = {
            let m = metrics.borrow_and_update();
            let alone = m.state == ServerState::Leader && m.membership_config.membership().voter_ids().all(|id| id == m.id);
            (m.current_leader, m.state == ServerState::Follower || alone)
        };
        inline_sync.allow(inline);
        if leader.is_some() && leader != last {
            crate::metrics::LEADER_CHANGES.inc();
        }
        last = leader;
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
