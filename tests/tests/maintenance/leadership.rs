//! `etcdctl move-leader`: leadership moves to the named voter and the cluster carries on; a
//! member that is not a voter of the cluster is refused.

use super::*;

pub(super) async fn move_leader(cluster: Cluster) {
    let leader = cluster.wait_for_leader(ELECTION_TIMEOUT).await.expect("a leader");
    let target = (leader + 1) % cluster.size();
    let target_id = format!("{:x}", cluster.member_id(target));
    // etcdctl finds the leader among the endpoints and asks it.
    let all = etcdctl(&cluster.endpoints());
    let out = all.ok(&["move-leader", &target_id]).await;
    let expected = format!("Leadership transferred from {:x} to {target_id}", cluster.member_id(leader));
    assert_eq!(out.trim(), expected);
    assert_eq!(cluster.wait_for_leader(ELECTION_TIMEOUT).await.expect("a leader"), target, "the named member leads");
    let mut client = cluster.client().await.expect("a client");
    client.put("after-move", "v", None).await.expect("writes go on under the new leader");

    let refused = all.fails(&["move-leader", "1234"]).await;
    assert!(refused.contains("etcdserver: bad leader transferee"), "an unknown member is refused: {refused}");
}
