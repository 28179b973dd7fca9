//! Who leads, as this member sees it: the changes the metrics count and the gRPC health
//! service's Watch reports.

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
/// Watches the server metrics, which change with the leader and the membership only, not with
/// every entry committed as the full metrics do.
pub(super) async fn count_leader_changes(mut metrics: watch::Receiver<RaftServerMetrics<u64, Member>>) {
    let mut last = None;
    loop {
        let leader = metrics.borrow_and_update().current_leader;
        if leader.is_some() && leader != last {
            crate::metrics::LEADER_CHANGES.inc();
        }
        last = leader;
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
