//! Member IDs and the cluster ID live in each member's data dir, not in its flags.

use super::*;

/// Every member stops (SIGTERM) and starts again: same member IDs, same cluster ID, same list.
pub(super) async fn restart_keeps_member_and_cluster_ids(mut cluster: Cluster) {
    let ctl = etcdctl_for(&cluster, 0);
    let before = ctl.json(&["member", "list"]).await;
    client_for(&cluster, 0)
        .await
        .put("restart/k", "v", None)
        .await
        .expect("put");

    for index in 0..cluster.size() {
        cluster.stop(index).await.expect("SIGTERM");
    }
    for index in 0..cluster.size() {
        cluster.relaunch(index).expect("start again");
    }
    cluster
        .wait_for_leader(START_TIMEOUT)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "the members restart: {error:#}\n{}",
                cluster.all_log_tails()
            )
        });

    let cluster_id = as_u64(&before["header"], "cluster_id");
    for index in 0..cluster.size() {
        let status = cluster.status(index).await.expect("status");
        let header = status.header().expect("a header");
        assert_eq!(
            (header.member_id(), header.cluster_id()),
            (cluster.member_id(index), cluster_id),
            "member {index} keeps its ID and its cluster"
        );
        let after = etcdctl_for(&cluster, index).json(&["member", "list"]).await;
        assert_eq!(after["members"], before["members"], "member {index}");
        assert_eq!(as_u64(&after["header"], "cluster_id"), cluster_id);
    }
    let kept = pairs(&cluster, 0, "restart/").await;
    assert_eq!(
        kept,
        BTreeMap::from([("restart/k".to_owned(), "v".to_owned())])
    );
}
