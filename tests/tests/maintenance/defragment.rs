//! Defragment: per member, not replicated; gives back the space compaction freed
//! (reference/etcd-api.md §1.6).

use super::*;

fn defragmented(endpoint: &str) -> String {
    format!("Finished defragmenting etcd member[{endpoint}]")
}

/// `etcdctl defrag` over the endpoints given and with `--cluster`; every member keeps its data.
pub(super) async fn defrag(cluster: Cluster) {
    let client = cluster.client().await.expect("a client");
    let pairs: Vec<(String, String)> = (0..50)
        .map(|key| (format!("defrag/k{key:02}"), format!("v{key}")))
        .collect();
    put_all(&client, pairs.clone()).await;
    put_all(&client, pairs[..25].to_vec()).await;
    let current = all_caught_up(&cluster).await;
    compact_physically(&client, current).await;

    let stdout = etcdctl(&cluster.endpoints()).ok(&["defrag"]).await;
    let expected: Vec<String> = (0..cluster.size())
        .map(|index| defragmented(cluster.endpoint(index).trim_start_matches("http://")))
        .collect();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        expected,
        "one line per endpoint, in order"
    );

    let stdout = etcdctl_for(&cluster, 1).ok(&["defrag", "--cluster"]).await;
    let printed: BTreeSet<&str> = stdout.lines().collect();
    let expected: BTreeSet<String> = (0..cluster.size())
        .map(|index| defragmented(cluster.endpoint(index)))
        .collect();
    assert_eq!(
        printed,
        expected.iter().map(String::as_str).collect(),
        "--cluster defragments every member"
    );

    for index in 0..cluster.size() {
        let mut member = cluster.member_client(index).await.expect("a client");
        let reply = member.defragment().await.expect("defragment");
        assert!(
            reply.header().is_none(),
            "etcd's Defragment reply has no header"
        );
        let local = member
            .get(
                "defrag/",
                Some(GetOptions::new().with_prefix().with_serializable()),
            )
            .await
            .expect("a serializable read");
        let held: Vec<(&str, &str)> = local
            .kvs()
            .iter()
            .map(|kv| (kv.key_str().expect("utf-8"), kv.value_str().expect("utf-8")))
            .collect();
        let expected: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        assert_eq!(
            held, expected,
            "member {index} keeps every key through defrag"
        );
        assert_eq!(local.header().expect("a header").revision(), current);
    }
    client
        .clone()
        .put("defrag/after", "1", None)
        .await
        .expect("a write after defrag");
    assert_eq!(all_caught_up(&cluster).await, current + 1);
}

const CHURN_ROUNDS: usize = 100;
const CHURN_KEYS: usize = 20;
const CHURN_VALUE_BYTES: usize = 4 * 1024;

/// Many overwrites of a few keys, compacted away: defrag gives the space back.
pub(super) async fn defrag_shrinks_the_database(cluster: Cluster) {
    let client = cluster.client().await.expect("a client");
    for round in 0..CHURN_ROUNDS {
        let value = format!("{round:>width$}", width = CHURN_VALUE_BYTES);
        let pairs = (0..CHURN_KEYS)
            .map(|key| (format!("churn/k{key:02}"), value.clone()))
            .collect();
        put_all(&client, pairs).await;
    }
    let current = all_caught_up(&cluster).await;
    compact_physically(&client, current).await;
    let before = cluster.status(0).await.expect("status").db_size();

    let stdout = etcdctl_for(&cluster, 0).ok(&["defrag"]).await;
    assert_eq!(
        stdout,
        format!(
            "{}\n",
            defragmented(cluster.endpoint(0).trim_start_matches("http://"))
        )
    );
    let after = cluster.status(0).await.expect("status");
    eprintln!("dbSize {before} before defrag, {} after", after.db_size());
    assert!(
        after.db_size() < before,
        "defrag gives space back: {before} -> {}",
        after.db_size()
    );
    assert!(after.raft_used_db_size() <= after.db_size());

    let reply = client
        .clone()
        .get("churn/", Some(GetOptions::new().with_prefix()))
        .await
        .expect("get");
    assert_eq!(reply.count(), CHURN_KEYS as i64);
    let last = format!("{:>width$}", CHURN_ROUNDS - 1, width = CHURN_VALUE_BYTES);
    assert!(
        reply.kvs().iter().all(|kv| kv.value() == last.as_bytes()),
        "the last round survives"
    );
    assert_eq!(reply.header().expect("a header").revision(), current);
}
