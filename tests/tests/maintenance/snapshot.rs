//! Snapshots: `etcdctl snapshot save`, and etcd's disaster recovery, where every member is lost
//! and a new cluster is restored from the file (reference/etcd-api.md §0 #1, §1.6).

use std::collections::BTreeMap;
use std::path::Path;

use super::*;

/// etcdctl 3.5+ refuses a snapshot whose size is not `N*512 + 32`: the data padded to 512-byte
/// blocks, then its SHA-256.
const SHA256_BYTES: u64 = 32;
const BLOCK: u64 = 512;

/// `etcdctl snapshot save FILE` against one member; returns what it printed on stdout.
async fn save(etcdctl: &Etcdctl, file: &Path) -> String {
    let path = file.to_str().expect("a UTF-8 temp path");
    let ran = etcdctl
        .run(&["snapshot", "save", path], Input::Nothing)
        .await
        .expect("etcdctl runs");
    assert!(ran.success, "snapshot save failed: {}", ran.stderr);
    ran.stdout
}

pub(super) async fn snapshot_save(cluster: Cluster) {
    let client = cluster.client().await.expect("a client");
    let pairs = (0..500)
        .map(|key| (format!("snap/k{key:03}"), format!("value {key}")))
        .collect();
    put_all(&client, pairs).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("backup.db");

    let stdout = save(&etcdctl_for(&cluster, 0), &file).await;
    assert_eq!(stdout, format!("Snapshot saved at {}\n", file.display()));
    let size = std::fs::metadata(&file).expect("the snapshot file").len();
    assert!(size > SHA256_BYTES, "{size} bytes");
    assert_eq!(size % BLOCK, SHA256_BYTES, "{size} bytes is not N*512 + 32");

    // Clients read the stream as bytes; where etcd cuts its chunks is not part of the contract.
    let mut stream = client
        .clone()
        .snapshot()
        .await
        .expect("the Snapshot stream");
    let (mut streamed, mut remaining) = (0, None);
    while let Some(chunk) = stream.message().await.expect("a snapshot chunk") {
        streamed += chunk.blob().len() as u64;
        remaining = Some(chunk.remaining_bytes());
    }
    assert_eq!(remaining, Some(0), "the last message has nothing remaining");
    assert_eq!(streamed, size, "the stream holds what etcdctl saved");
}

/// Every pair in the store with its history counters: key → (value, create, mod, version).
type Dump = BTreeMap<String, (String, i64, i64, i64)>;

/// Compares two dumps, naming a few keys that differ rather than printing both.
#[track_caller]
fn assert_same(actual: &Dump, expected: &Dump, what: &str) {
    let missing_or_changed = expected
        .iter()
        .filter(|(key, pair)| actual.get(*key) != Some(pair))
        .map(|(key, pair)| format!("{key}: expected {pair:?}, found {:?}", actual.get(key)));
    let unexpected = actual
        .keys()
        .filter(|key| !expected.contains_key(*key))
        .map(|key| format!("{key}: not expected"));
    let differing: Vec<String> = missing_or_changed.chain(unexpected).collect();
    assert!(
        differing.is_empty(),
        "{what}: {} of {} keys differ, first: {:#?}",
        differing.len(),
        expected.len(),
        &differing[..differing.len().min(5)]
    );
}

/// The whole store at `revision` (0: now) and the store's revision.
async fn dump(client: &mut Client, revision: i64, serializable: bool) -> (Dump, i64) {
    let mut options = GetOptions::new().with_all_keys().with_revision(revision);
    if serializable {
        options = options.with_serializable();
    }
    let reply = client
        .get("\0", Some(options))
        .await
        .expect("read every key");
    let pairs = reply
        .kvs()
        .iter()
        .map(|kv| {
            let value = kv.value_str().expect("utf-8 value").to_owned();
            let history = (value, kv.create_revision(), kv.mod_revision(), kv.version());
            (kv.key_str().expect("utf-8 key").to_owned(), history)
        })
        .collect();
    (pairs, reply.header().expect("a header").revision())
}

const DR_KEYS: usize = 300;

/// Three rounds over every key, deletes of every seventh, a compaction at the end of the second
/// round, then a fourth round over every third key (re-creating some deleted ones), so pairs
/// differ in value, create revision, mod revision and version. Returns the compacted revision.
async fn write_history(client: &Client) -> i64 {
    let round = |round: usize, step: usize| {
        (0..DR_KEYS)
            .step_by(step)
            .map(|key| (format!("dr/k{key:03}"), format!("round {round} of {key}")))
            .collect::<Vec<_>>()
    };
    put_all(client, round(0, 1)).await;
    put_all(client, round(1, 1)).await;
    let compacted = client
        .clone()
        .get("dr/", None)
        .await
        .expect("get")
        .header()
        .expect("a header")
        .revision();
    put_all(client, round(2, 1)).await;
    for key in (0..DR_KEYS).step_by(7) {
        client
            .clone()
            .delete(format!("dr/k{key:03}"), None)
            .await
            .expect("delete");
    }
    compact_physically(client, compacted).await;
    put_all(client, round(3, 3)).await;
    compacted
}

/// Every member lost; a new cluster restored from `etcdctl snapshot save` holds the same keys,
/// history counters, revision and (uncompacted) history.
pub(super) async fn disaster_recovery(cluster: Cluster) {
    let backend = cluster.backend();
    let mut client = cluster.client().await.expect("a client");
    let compacted = write_history(&client).await;
    let (before, revision) = dump(&mut client, 0, false).await;
    let history_revision = compacted + DR_KEYS as i64 / 2;
    let (history, _) = dump(&mut client, history_revision, false).await;
    let old_cluster_id = client
        .status()
        .await
        .expect("status")
        .header()
        .expect("a header")
        .cluster_id();
    all_caught_up(&cluster).await;

    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("backup.db");
    save(&etcdctl_for(&cluster, 0), &file).await;
    drop(client);
    drop(cluster);

    let restored = Cluster::start_restored(backend, 3, &file).await;
    let restored = restored
        .unwrap_or_else(|error| panic!("could not restore a {} cluster: {error:#}", backend.name()))
        .expect("the backend was installed a moment ago");
    let mut client = restored.client().await.expect("a client");
    let (after, restored_revision) = dump(&mut client, 0, false).await;
    assert_eq!(restored_revision, revision, "the store revision survives");
    assert_same(
        &after,
        &before,
        "every value, create/mod revision and version survives",
    );

    for index in 0..restored.size() {
        restored
            .wait_for_revision(index, revision, CATCH_UP_TIMEOUT)
            .await
            .expect("every restored member holds the snapshot");
        let mut member = restored.member_client(index).await.expect("a client");
        let (local, local_revision) = dump(&mut member, 0, true).await;
        assert_eq!(local_revision, revision, "member {index}");
        assert_same(&local, &before, &format!("member {index} holds every pair"));
    }
    let (restored_history, _) = dump(&mut client, history_revision, false).await;
    assert_same(
        &restored_history,
        &history,
        "history after the compacted revision survives",
    );
    let before_compaction = client
        .get("dr/", Some(GetOptions::new().with_revision(compacted - 1)))
        .await;
    assert_grpc_error(before_compaction, Code::OutOfRange, COMPACTED);

    let status = client.status().await.expect("status");
    assert_ne!(
        status.header().expect("a header").cluster_id(),
        old_cluster_id,
        "a restored cluster is a new cluster"
    );
    let reply = client
        .put("dr/after", "1", None)
        .await
        .expect("a write to the restored cluster");
    assert_eq!(reply.header().expect("a header").revision(), revision + 1);
}
