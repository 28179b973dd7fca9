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
    // Every member has seen two leaders: the first one elected, and the one it moved to.
    for member in 0..cluster.size() {
        let what = format!("member {member} to count the move as a leader change");
        cairn_tests::wait::wait_until(&what, ELECTION_TIMEOUT, || async {
            let seen = leader_changes(cluster.endpoint(member)).await?;
            anyhow::ensure!(seen >= 2.0, "etcd_server_leader_changes_seen_total is {seen}");
            Ok(())
        })
        .await
        .expect("leader changes counted");
    }

    let refused = all.fails(&["move-leader", "1234"]).await;
    assert!(refused.contains("etcdserver: bad leader transferee"), "an unknown member is refused: {refused}");
}

/// `etcd_server_leader_changes_seen_total` as member `endpoint` exposes it on `/metrics`.
async fn leader_changes(endpoint: &str) -> anyhow::Result<f64> {
    let reply = cairn_tests::http::get(endpoint, "/metrics", Duration::from_secs(5)).await?;
    let text = String::from_utf8(reply.body)?;
    let line = text.lines().find_map(|l| l.strip_prefix("etcd_server_leader_changes_seen_total "));
    Ok(line.ok_or_else(|| anyhow::anyhow!("no etcd_server_leader_changes_seen_total"))?.trim().parse()?)
}
