//! openraft's state machine: applies entries through the MVCC store and builds and installs
//! snapshots of the state database.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use tokio::io::AsyncSeekExt;
use tokio::sync::watch;

use super::replies::{self, Replies};
use super::snapshot;
use super::types::{Applied, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::error::Error;
use cairn_proto::cairnpb::CommandBatch;
use crate::lease::Lessor;
use crate::mvcc::Mvcc;
use crate::storage::layout::Layout;
use crate::storage::names::{META_LAST_APPLIED, META_MEMBERSHIP};
use crate::storage::{StateDb, Table};
use crate::watch::Hub;

/// Batches of at most this many commands are applied without `block_in_place`.
const APPLY_IN_PLACE_COMMANDS: usize = 32;

const SNAPSHOT_FILE: &str = "current.snap";
const SNAPSHOT_META: &str = "current.meta";
/// A snapshot being received from the leader (one at a time).
const RECEIVING_FILE: &str = "receiving.snap";

fn bin<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    bincode::serialize(v).map_err(|e| Error::Storage(e.to_string()))
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(ErrorSubject::StateMachine, verb, std::io::Error::other(e.to_string()))
}

fn snap_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(ErrorSubject::Snapshot(None), verb, std::io::Error::other(e.to_string()))
}

pub struct StateMachine {
    mvcc: Arc<Mvcc>,
    hub: Arc<Hub>,
    lessor: Arc<Lessor>,
    layout: Layout,
    applied: watch::Sender<u64>,
    snapshot_seq: Arc<AtomicU64>,
    replies: Arc<Replies>,
}

/// The applied position recorded in the state database.
pub fn applied_state(db: &StateDb) -> Result<(Option<LogId>, StoredMembership), Error> {
    let decode = |key: &[u8]| -> Result<Option<Vec<u8>>, Error> { db.get(Table::Meta, key) };
    let last = match decode(META_LAST_APPLIED)? {
        Some(raw) => bincode::deserialize(&raw).map_err(|e| Error::Storage(e.to_string()))?,
        None => None,
    };
    let membership = match decode(META_MEMBERSHIP)? {
        Some(raw) => bincode::deserialize(&raw).map_err(|e| Error::Storage(e.to_string()))?,
        None => StoredMembership::default(),
    };
    Ok((last, membership))
}

impl StateMachine {
    pub fn new(mvcc: Arc<Mvcc>, hub: Arc<Hub>, lessor: Arc<Lessor>, layout: Layout, applied: watch::Sender<u64>, replies: Arc<Replies>) -> Self {
        StateMachine { mvcc, hub, lessor, layout, applied, snapshot_seq: Arc::new(AtomicU64::new(0)), replies }
    }

    fn snapshot_paths(&self) -> (PathBuf, PathBuf) {
        let dir = self.layout.snapshot_dir();
        (dir.join(SNAPSHOT_FILE), dir.join(SNAPSHOT_META))
    }
}

pub struct SnapshotBuilder {
    checkpoint: PathBuf,
    layout: Layout,
    seq: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let checkpoint = self.checkpoint.clone();
        let dir = self.layout.snapshot_dir();
        let seq = self.seq;
        let built = tokio::task::spawn_blocking(move || -> Result<SnapshotMeta, Error> {
            let db = StateDb::open(&checkpoint)?;
            let (last_log_id, last_membership) = applied_state(&db)?;
            let tmp = dir.join(format!("build-{seq}.snap"));
            snapshot::dump(&db, &tmp)?;
            drop(db);
            let _ = std::fs::remove_dir_all(&checkpoint);
            let snapshot_id = match &last_log_id {
                Some(id) => format!("{}-{}-{seq}", id.leader_id, id.index),
                None => format!("none-{seq}"),
            };
            let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id };
            publish(&dir, &tmp, &meta)?;
            Ok(meta)
        })
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))?
        .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let file = tokio::fs::File::open(self.layout.snapshot_dir().join(SNAPSHOT_FILE)).await.map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(Snapshot { meta: built, snapshot: Box::new(file) })
    }
}

/// Makes `file` the current snapshot, with `meta` beside it (both replaced atomically).
fn publish(dir: &std::path::Path, file: &std::path::Path, meta: &SnapshotMeta) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Storage(e.to_string());
    let meta_tmp = dir.join(format!("{SNAPSHOT_META}.tmp"));
    std::fs::write(&meta_tmp, serde_json::to_vec(meta).map_err(|e| Error::Storage(e.to_string()))?).map_err(io)?;
    std::fs::rename(file, dir.join(SNAPSHOT_FILE)).map_err(io)?;
    std::fs::rename(&meta_tmp, dir.join(SNAPSHOT_META)).map_err(io)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        applied_state(&self.mvcc.db()).map_err(|e| sm_err(ErrorVerb::Read, e))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let Some(last) = entries.last().map(|e| e.log_id) else {
            return Ok(Vec::new());
        };
        let mvcc = self.mvcc.clone();
        let batches: Vec<Option<Arc<CommandBatch>>> = entries.iter().map(|e| if let EntryPayload::Normal(p) = &e.payload { Some(p.0.clone()) } else { None }).collect();
        let commands: usize = entries.iter().map(|e| if let EntryPayload::Normal(p) = &e.payload { p.0.commands.len() } else { 1 }).sum();
        let run = move || {
            mvcc.apply(|applier| -> Result<Vec<Applied>, Error> {
                let mut out = Vec::with_capacity(entries.len());
                let mut membership = None;
                for entry in &entries {
                    match &entry.payload {
                        EntryPayload::Blank => out.push(Applied::default()),
                        EntryPayload::Normal(p) => out.push(Applied(p.0.commands.iter().map(|c| applier.apply(c)).collect())),
                        EntryPayload::Membership(m) => {
                            membership = Some(StoredMembership::new(Some(entry.log_id), m.clone()));
                            out.push(Applied::default());
                        }
                    }
                }
                applier.put_meta(META_LAST_APPLIED, &bin(&Some(last))?);
                if let Some(m) = membership {
                    applier.put_meta(META_MEMBERSHIP, &bin(&m)?);
                }
                Ok(out)
            })
        };
        // A few commands apply in tens of microseconds, less than handing this worker's other
        // tasks to another thread would cost; a large batch runs with the worker handed off.
        let applied = if commands <= APPLY_IN_PLACE_COMMANDS { run() } else { tokio::task::block_in_place(run) };
        let (mut results, effects) = applied.and_then(|(r, effects)| Ok((r?, effects))).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        self.lessor.applied(&effects.leases);
        // This member's own clients first (the lessor already knows a lease they were granted),
        // then the watchers. openraft's reply for an answered batch carries no results.
        for (batch, applied) in batches.iter().zip(results.iter_mut()) {
            if let Some(waiting) = batch.as_ref().and_then(|b| self.replies.take(b)) {
                replies::answer(waiting, std::mem::take(&mut applied.0));
            }
        }
        self.hub.notify(&effects.events, effects.revision);
        self.applied.send_replace(last.index);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // The checkpoint is taken here, between two applies, so the snapshot is one consistent
        // state even though openraft builds it while apply goes on.
        let seq = self.snapshot_seq.fetch_add(1, Ordering::SeqCst);
        let checkpoint = self.layout.snapshot_dir().join(format!("checkpoint-{seq}"));
        let _ = std::fs::remove_dir_all(&checkpoint);
        if let Err(e) = self.mvcc.db().checkpoint(&checkpoint) {
            tracing::error!("snapshot checkpoint failed: {e}");
        }
        SnapshotBuilder { checkpoint, layout: self.layout.clone(), seq }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let path = self.layout.snapshot_dir().join(RECEIVING_FILE);
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, mut snapshot: Box<tokio::fs::File>) -> Result<(), StorageError> {
        snapshot.sync_all().await.map_err(|e| snap_err(ErrorVerb::Write, e))?;
        snapshot.seek(SeekFrom::Start(0)).await.map_err(|e| snap_err(ErrorVerb::Read, e))?;
        let file = snapshot.into_std().await;
        let layout = self.layout.clone();
        let meta = meta.clone();
        let mvcc = self.mvcc.clone();
        let (hub, lessor) = (self.hub.clone(), self.lessor.clone());
        let applied = tokio::task::spawn_blocking(move || -> Result<Option<LogId>, Error> {
            // Load into a new directory, then switch the pointer: a crash leaves either the old
            // state or the new one, never a mix.
            let dir = layout.next_state_dir()?;
            let db = StateDb::open(&dir)?;
            snapshot::load(file, &db)?;
            layout.switch_state_dir(&dir)?;
            mvcc.replace(db)?;
            lessor.reload(mvcc.leases()?);
            hub.reset();
            // The received file becomes the snapshot this member serves to others.
            publish(&layout.snapshot_dir(), &layout.snapshot_dir().join(RECEIVING_FILE), &meta)?;
            Ok(meta.last_log_id)
        })
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))?
        .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        if let Some(last) = applied {
            self.applied.send_replace(last.index);
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let (file, meta) = self.snapshot_paths();
        let raw = match tokio::fs::read(&meta).await {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(snap_err(ErrorVerb::Read, e)),
        };
        let meta: SnapshotMeta = serde_json::from_slice(&raw).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        let file = tokio::fs::File::open(&file).await.map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(file) }))
    }
}
