//! The raft storage adapters: openraft's conformance suite, a snapshot moved from one member to
//! another, and the log store across a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use cairn_proto::cairnpb::{command, command_result, Command, CommandBatch};
use cairn_proto::etcdserverpb::{DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest};
use cairn_proto::mvccpb::KeyValue;
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{log_id, StoreBuilder, Suite};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, Membership, RaftLogReader, RaftSnapshotBuilder, Vote};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::log_store::{InlineSync, LogStore};
use super::state_machine::StateMachine;
use super::types::{Applied, Entry, Member, Proposal, SnapshotMeta, StorageError, TypeConfig};
use crate::mvcc::Mvcc;
use crate::storage::layout::Layout;
use crate::storage::{RaftDb, StateDb};

fn storage_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Read, std::io::Error::other(e.to_string()))
}

/// One member's storage over a data dir, opened as `Node::start` opens it.
fn open_member(root: &Path) -> crate::Result<(LogStore, StateMachine, Arc<Mvcc>)> {
    let layout = Layout::new(root)?;
    layout.remove_stale_state_dirs()?;
    let log = LogStore::new(Arc::new(RaftDb::open(&layout.raft_dir())?));
    let mvcc = Arc::new(Mvcc::new(StateDb::open(&layout.state_dir()?)?)?);
    let hub = crate::watch::Hub::new(mvcc.clone(), 1 << 20);
    let lessor = Arc::new(crate::lease::Lessor::new(mvcc.leases()?, crate::lease::DEFAULT_CHECKPOINT_INTERVAL));
    let sm = StateMachine::new(mvcc.clone(), hub, lessor, layout, tokio::sync::watch::channel(0).0, Arc::new(crate::raft::replies::Replies::new(1)));
    Ok((log, sm, mvcc))
}

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(storage_err)?;
        let (log, sm, _) = open_member(dir.path()).map_err(storage_err)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    // The suite starts its own multi-threaded runtimes (apply uses block_in_place).
    Suite::test_all(Builder).expect("openraft's storage suite passes");
}

/// Stores of a follower, which syncs its appends inline (`InlineSync`). Keeps each store's
/// switch to see that the inline path ran.
#[derive(Default)]
struct FollowerBuilder(Arc<std::sync::Mutex<Vec<Arc<InlineSync>>>>);

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for FollowerBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let (dir, log, sm) = Builder.build().await?;
        let inline = log.inline_sync();
        inline.allow(true);
        self.0.lock().expect("not poisoned").push(inline);
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_as_a_follower() {
    let stores = Arc::default();
    Suite::test_all(FollowerBuilder(Arc::clone(&stores))).expect("openraft's storage suite passes with inline syncs");
    let stores = stores.lock().expect("not poisoned");
    assert!(stores.iter().any(|s| s.synced_inline()), "some append was synced inline");
}

fn put(key: &[u8], value: &[u8]) -> Command {
    Command { op: Some(command::Op::Put(PutRequest { key: key.to_vec(), value: value.to_vec(), ..Default::default() })) }
}

fn put_leased(key: &[u8], lease: i64) -> Command {
    Command { op: Some(command::Op::Put(PutRequest { key: key.to_vec(), value: b"v".to_vec(), lease, ..Default::default() })) }
}

fn delete(key: &[u8]) -> Command {
    Command { op: Some(command::Op::DeleteRange(DeleteRangeRequest { key: key.to_vec(), ..Default::default() })) }
}

fn grant(id: i64) -> Command {
    Command { op: Some(command::Op::LeaseGrant(LeaseGrantRequest { ttl: 10, id })) }
}

fn normal(index: u64, commands: Vec<Command>) -> Entry {
    Entry { log_id: log_id(1, 1, index), payload: EntryPayload::Normal(Proposal(Arc::new(CommandBatch { commands, ..Default::default() }))) }
}

fn membership(index: u64) -> Entry {
    let m1 = Member { name: "m1".into(), peer_urls: vec!["http://127.0.0.1:2380".into()], client_urls: Vec::new() };
    let config = Membership::new(vec![BTreeSet::from([1])], BTreeMap::from([(1, m1)]));
    Entry { log_id: log_id(1, 1, index), payload: EntryPayload::Membership(config) }
}

/// Every live pair, with its revisions, version and lease.
fn state(mvcc: &Mvcc) -> Vec<KeyValue> {
    let all = RangeRequest { key: b"\0".to_vec(), range_end: b"\0".to_vec(), ..Default::default() };
    mvcc.range(&all).expect("range").kvs
}

fn put_revision(applied: &Applied, i: usize) -> i64 {
    match &applied.0[i].result {
        Some(command_result::Result::Put(r)) => r.header.as_ref().expect("header").revision,
        other => panic!("expected a put response, got {other:?}"),
    }
}

async fn snapshot_bytes(sm: &mut StateMachine) -> (SnapshotMeta, Vec<u8>) {
    let mut snap = sm.get_current_snapshot().await.expect("read the current snapshot").expect("a current snapshot");
    let mut bytes = Vec::new();
    snap.snapshot.read_to_end(&mut bytes).await.expect("read the snapshot file");
    (snap.meta, bytes)
}

/// A leader with some history (membership at 1, writes at 2 and 3) and a follower that has
/// applied something else, which the snapshot must replace.
async fn leader_and_follower(dirs: &(TempDir, TempDir)) -> ((StateMachine, Arc<Mvcc>), (StateMachine, Arc<Mvcc>)) {
    let (_, mut leader, leader_mvcc) = open_member(dirs.0.path()).expect("open the leader");
    let (_, mut follower, follower_mvcc) = open_member(dirs.1.path()).expect("open the follower");
    let applied = leader
        .apply(vec![
            membership(1),
            normal(2, vec![grant(7), put(b"a", b"1"), put(b"b", b"1"), put_leased(b"l", 7)]),
            normal(3, vec![put(b"a", b"2"), delete(b"b"), put(b"c", b"1")]),
        ])
        .await
        .expect("the leader applies");
    assert_eq!(applied.len(), 3, "one result per entry");
    assert_eq!((applied[1].0.len(), applied[2].0.len()), (4, 3), "one result per command");
    assert_eq!((put_revision(&applied[1], 1), put_revision(&applied[2], 2)), (2, 7));
    follower.apply(vec![normal(1, vec![put(b"stale", b"x")])]).await.expect("the follower applies");
    ((leader, leader_mvcc), (follower, follower_mvcc))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_carries_the_whole_state_to_another_member() {
    let dirs = (tempfile::tempdir().expect("temp dir"), tempfile::tempdir().expect("temp dir"));
    let ((mut leader, leader_mvcc), (mut follower, follower_mvcc)) = leader_and_follower(&dirs).await;

    let built = leader.get_snapshot_builder().await.build_snapshot().await.expect("build a snapshot");
    assert_eq!(built.meta.last_log_id, Some(log_id(1, 1, 3)));
    assert_eq!(built.meta.last_membership.log_id(), &Some(log_id(1, 1, 1)));
    let (meta, bytes) = snapshot_bytes(&mut leader).await;
    assert_eq!(meta, built.meta, "the built snapshot is the current one");

    // As openraft receives it: chunks written into the handle, no flush, then install.
    let mut received = follower.begin_receiving_snapshot().await.expect("begin receiving");
    for chunk in bytes.chunks(bytes.len() / 3 + 1) {
        received.write_all(chunk).await.expect("write a chunk");
    }
    follower.install_snapshot(&meta, received).await.expect("install the snapshot");

    assert_eq!(follower.applied_state().await.expect("applied state"), leader.applied_state().await.expect("applied state"));
    assert_eq!(state(&follower_mvcc), state(&leader_mvcc), "the follower's own writes are gone");
    assert_eq!(state(&follower_mvcc).into_iter().map(|kv| kv.key).collect::<Vec<_>>(), vec![b"a".to_vec(), b"c".to_vec(), b"l".to_vec()]);
    assert_eq!(follower_mvcc.current_revision(), leader_mvcc.current_revision());
    let (served_meta, served) = snapshot_bytes(&mut follower).await;
    assert_eq!(served_meta, meta, "the installed snapshot is the follower's current one");
    assert_eq!(served, bytes, "the follower serves the same snapshot on");

    let next = follower.apply(vec![normal(4, vec![put(b"d", b"1"), put_leased(b"m", 7)])]).await.expect("apply after install");
    assert_eq!(put_revision(&next[0], 0), leader_mvcc.current_revision() + 1, "revisions go on from the snapshot's");
    assert_eq!(put_revision(&next[0], 1), leader_mvcc.current_revision() + 2, "the snapshot carried the lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_snapshot_survives_a_restart() {
    let dirs = (tempfile::tempdir().expect("temp dir"), tempfile::tempdir().expect("temp dir"));
    let ((mut leader, leader_mvcc), (mut follower, follower_mvcc)) = leader_and_follower(&dirs).await;
    leader.get_snapshot_builder().await.build_snapshot().await.expect("build a snapshot");
    let (meta, bytes) = snapshot_bytes(&mut leader).await;
    let mut received = follower.begin_receiving_snapshot().await.expect("begin receiving");
    received.write_all(&bytes).await.expect("write");
    follower.install_snapshot(&meta, received).await.expect("install");
    let (want_state, want_applied) = (state(&leader_mvcc), follower.applied_state().await.expect("applied state"));
    drop((follower, follower_mvcc));

    let (_, mut reopened, mvcc) = open_member(dirs.1.path()).expect("reopen the follower");
    assert_eq!(state(&mvcc), want_state);
    assert_eq!(reopened.applied_state().await.expect("applied state"), want_applied);
    assert_eq!(mvcc.current_revision(), leader_mvcc.current_revision());
    assert_eq!(snapshot_bytes(&mut reopened).await, (meta, bytes));
    let leftovers: Vec<_> = std::fs::read_dir(dirs.1.path())
        .expect("list the data dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state-"))
        .collect();
    assert_eq!(leftovers.len(), 1, "the replaced state dir is removed at start: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_a_point_in_time() {
    let dirs = (tempfile::tempdir().expect("temp dir"), tempfile::tempdir().expect("temp dir"));
    let ((mut leader, _), (mut follower, follower_mvcc)) = leader_and_follower(&dirs).await;
    let mut builder = leader.get_snapshot_builder().await;
    leader.apply(vec![normal(4, vec![put(b"late", b"1")])]).await.expect("apply after the checkpoint");
    let built = builder.build_snapshot().await.expect("build");
    assert_eq!(built.meta.last_log_id, Some(log_id(1, 1, 3)), "the snapshot is of the state when the builder was taken");
    let (meta, bytes) = snapshot_bytes(&mut leader).await;
    let mut received = follower.begin_receiving_snapshot().await.expect("begin receiving");
    received.write_all(&bytes).await.expect("write");
    follower.install_snapshot(&meta, received).await.expect("install");
    assert!(!state(&follower_mvcc).iter().any(|kv| kv.key == b"late"), "a write after the checkpoint is not in it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_store_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let entries = [membership(1), normal(2, vec![put(b"a", b"1"), delete(b"b")]), normal(3, vec![put(b"c", b"\xff\0")])];
    {
        // LogFlushed cannot be built outside openraft (the suite covers LogStore::append), so
        // the entries go in as append writes them: bincode rows keyed by index.
        let raft = RaftDb::open(&Layout::new(dir.path()).expect("layout").raft_dir()).expect("open the raft db");
        let rows: Vec<(u64, Vec<u8>)> = entries.iter().map(|e| (e.log_id.index, bincode::serialize(e).expect("encode"))).collect();
        raft.append(&rows).expect("append");
    }
    {
        let (mut log, _, _) = open_member(dir.path()).expect("open");
        log.save_vote(&Vote::new_committed(3, 1)).await.expect("save the vote");
        log.save_committed(Some(log_id(1, 1, 3))).await.expect("save committed");
        log.purge(log_id(1, 1, 1)).await.expect("purge");
    }
    let (mut log, _, _) = open_member(dir.path()).expect("reopen");
    assert_eq!(log.read_vote().await.expect("read the vote"), Some(Vote::new_committed(3, 1)));
    assert_eq!(log.read_committed().await.expect("read committed"), Some(log_id(1, 1, 3)));
    let state = log.get_log_state().await.expect("log state");
    assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(1, 1, 1)), Some(log_id(1, 1, 3))));
    let read = log.try_get_log_entries(0..10).await.expect("read entries");
    assert_eq!(read, entries[1..].to_vec(), "normal payloads round trip, purged ones are gone");
}
