//! A member added to a cluster whose log was compacted behind a raft snapshot catches up from
//! the snapshot (the entries it would need are gone), then serves every key.

use super::*;

/// Raft snapshots every 100 entries (both servers take etcd's flag), so the log a new member
/// would need is purged long before it joins.
pub(super) const SNAPSHOT_COUNT: &str = "--snapshot-count=100";
/// One put per log entry, several snapshots' worth.
const WRITES_BEFORE_JOIN: usize = 600;

pub(super) async fn new_member_catches_up_by_snapshot(mut cluster: Cluster) {
    let backend = cluster.backend();
    let mut client = client_for(&cluster, 0).await;
    for i in 0..WRITES_BEFORE_JOIN {
        client.put(format!("snap/{i:04}"), format!("v{i}"), None).await.expect("a put");
    }
    let index = cluster.plan_member("late").expect("ports for a new member");
    let peer_url = cluster.peer_url(index).to_owned();
    let reply = reconfigure("MemberAdd to be accepted", || {
        let (mut client, peer_url) = (client.clone(), peer_url.clone());
        async move { client.member_add([peer_url], None).await }
    })
    .await
    .expect("member add");
    let id = reply.member().expect("the added member").id();
    assert_eq!(cluster.join(index).await.expect("the member joins"), id);
    wait_serving(&cluster, index).await;
    let mut late = client_for(&cluster, index).await;
    let keys = late.get("snap/", Some(GetOptions::new().with_prefix().with_count_only())).await.expect("a count");
    assert_eq!(keys.count(), WRITES_BEFORE_JOIN as i64, "the new member has every key");
    let last = late.get("snap/0599", None).await.expect("a get");
    assert_eq!(last.kvs().first().map(|kv| kv.value().to_vec()), Some(b"v599".to_vec()));
    if backend == Backend::Cairn {
        // A member that installed a raft snapshot switched to a new state directory.
        assert!(cluster.data_dir(index).join("state.current").exists(), "the new member caught up from a snapshot, not the log");
    }
}
