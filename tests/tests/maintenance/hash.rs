//! HashKV: members at the same revision report the same hash (reference/etcd-api.md §1.6).

use etcd_client::HashKvResponse;

use super::*;

/// HashKV of every member at `revision` (0: each member's current revision).
async fn member_hashes(cluster: &Cluster, revision: i64) -> Vec<HashKvResponse> {
    let mut hashes = Vec::new();
    for index in 0..cluster.size() {
        let mut client = cluster.member_client(index).await.expect("a client");
        let reply = client.hash_kv(revision).await.unwrap_or_else(|error| {
            panic!("HashKV at revision {revision} on member {index}: {error}")
        });
        hashes.push(reply);
    }
    hashes
}

/// The one hash every member reports; panics if they differ.
#[track_caller]
fn agreed_hash(hashes: &[HashKvResponse]) -> u32 {
    let all: Vec<u32> = hashes.iter().map(HashKvResponse::hash).collect();
    assert!(
        all.iter().all(|&hash| hash == all[0]),
        "members disagree: {all:?}"
    );
    all[0]
}

/// Members at the same revision report the same HashKV, through etcd-client and through
/// `etcdctl endpoint hashkv`; a hash at an explicit revision does not move when the store does.
pub(super) async fn hash_kv(cluster: Cluster) {
    let client = cluster.client().await.expect("a client");
    for round in 0..3 {
        let pairs = (0..10)
            .map(|key| (format!("hash/k{key}"), format!("v{round}")))
            .collect();
        put_all(&client, pairs).await;
    }
    client
        .clone()
        .delete("hash/k0", None)
        .await
        .expect("delete");
    all_caught_up(&cluster).await;
    let uncompacted = member_hashes(&cluster, 0).await;
    agreed_hash(&uncompacted);
    for reply in &uncompacted {
        assert_eq!(reply.compact_version(), -1, "nothing compacted yet");
    }

    let compacted = all_caught_up(&cluster).await - 5;
    compact_physically(&client, compacted).await;
    client
        .clone()
        .put("hash/after", "1", None)
        .await
        .expect("put");
    let hashed = all_caught_up(&cluster).await;
    let current = member_hashes(&cluster, 0).await;
    let hash = agreed_hash(&current);
    for reply in &current {
        assert_eq!(reply.header().expect("a header").revision(), hashed);
        assert_eq!(reply.compact_version(), compacted);
    }
    assert_eq!(
        agreed_hash(&member_hashes(&cluster, hashed).await),
        hash,
        "0 means the current revision"
    );

    let json = etcdctl_for(&cluster, 0)
        .json(&["endpoint", "hashkv", "--cluster"])
        .await;
    let printed = per_endpoint(&json, "HashKV");
    let members: BTreeSet<usize> = printed
        .iter()
        .map(|(endpoint, _)| member_at(&cluster, endpoint))
        .collect();
    assert_eq!(
        members.len(),
        cluster.size(),
        "--cluster hashes every member: {json}"
    );
    for (endpoint, reply) in printed {
        assert_eq!(
            as_u64(reply, "hash"),
            u64::from(hash),
            "{endpoint}: {reply}"
        );
        assert_eq!(
            as_i64(reply, "compact_revision"),
            compacted,
            "{endpoint}: {reply}"
        );
        assert_eq!(
            as_i64(&reply["header"], "revision"),
            hashed,
            "{endpoint}: {reply}"
        );
    }

    client
        .clone()
        .put("hash/later", "2", None)
        .await
        .expect("put");
    let later = all_caught_up(&cluster).await;
    assert_ne!(
        agreed_hash(&member_hashes(&cluster, 0).await),
        hash,
        "a write changes the hash"
    );
    let again = member_hashes(&cluster, hashed).await;
    assert_eq!(
        agreed_hash(&again),
        hash,
        "the hash at an older revision stays"
    );
    for reply in &again {
        assert_eq!(
            reply.header().expect("a header").revision(),
            later,
            "the header carries the current revision, not the one hashed"
        );
    }

    let mut member = cluster.member_client(0).await.expect("a client");
    for revision in [compacted, compacted - 1] {
        assert_grpc_error(member.hash_kv(revision).await, Code::OutOfRange, COMPACTED);
    }
    assert_grpc_error(
        member.hash_kv(later + 1).await,
        Code::OutOfRange,
        FUTURE_REV,
    );
}
