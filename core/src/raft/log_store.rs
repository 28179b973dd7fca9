//! openraft's log storage over the raft database. Every append and vote is fsynced before
//! openraft hears that it is durable (reference/architecture-anchors.md §1.4, pitfall 1).
//!
//! An append is written at once, unsynced, so its entries are readable (and replicable) before
//! they are durable; a syncer thread then fsyncs the write-ahead log and only then reports the
//! append flushed. Appends that arrive while a sync runs share the next one (group commit).

// openraft's trait fixes the error type (StorageError, over 200 bytes); boxing it is not ours
// to choose.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, Vote};
use serde::de::DeserializeOwned;

use super::types::{Entry, LogId, StorageError, TypeConfig};
use crate::metrics;
use crate::storage::names::{META_COMMITTED, META_LAST_PURGED, META_VOTE};
use crate::storage::RaftDb;

#[derive(Clone)]
pub struct LogStore {
    db: Arc<RaftDb>,
    syncs: std::sync::mpsc::Sender<LogFlushed<TypeConfig>>,
}

fn io_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(subject, verb, std::io::Error::other(e.to_string()))
}

fn decode<T: DeserializeOwned>(subject: ErrorSubject<u64>, raw: &[u8]) -> Result<T, StorageError> {
    bincode::deserialize(raw).map_err(|e| io_err(subject, ErrorVerb::Read, e))
}

fn encode<T: serde::Serialize>(subject: ErrorSubject<u64>, v: &T) -> Result<Vec<u8>, StorageError> {
    bincode::serialize(v).map_err(|e| io_err(subject, ErrorVerb::Write, e))
}

impl LogStore {
    pub fn new(db: Arc<RaftDb>) -> Self {
        let (syncs, pending) = std::sync::mpsc::channel();
        let syncer_db = db.clone();
        std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || run_syncer(&syncer_db, &pending))
            .expect("a thread can be started at boot");
        LogStore { db, syncs }
    }

    fn meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageError> {
        let raw = self.db.meta(key).map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))?;
        raw.map(|r| decode(ErrorSubject::Store, &r)).transpose()
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(&mut self, range: RB) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => e.saturating_add(1),
            Bound::Excluded(e) => *e,
            Bound::Unbounded => u64::MAX,
        };
        let rows = self.db.entries(start, end).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        rows.iter().map(|(_, raw)| decode(ErrorSubject::Logs, raw)).collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.meta(META_LAST_PURGED)?;
        let last = self.db.last_entry().map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        let last_log_id = match last {
            Some(raw) => Some(decode::<Entry>(ErrorSubject::Logs, &raw)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        let raw = encode(ErrorSubject::Vote, vote)?;
        let db = &self.db;
        metrics::WAL_FSYNC.time(|| tokio::task::block_in_place(|| db.put_meta_synced(META_VOTE, &raw))).map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.meta(META_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let raw = encode(ErrorSubject::Store, &committed)?;
        metrics::COMMITTED_INDEX.set(committed.map_or(0, |l| l.index) as i64);
        self.db.put_meta(META_COMMITTED, &raw).map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed = self.meta::<Option<LogId>>(META_COMMITTED)?.flatten();
        metrics::COMMITTED_INDEX.set(committed.map_or(0, |l| l.index) as i64);
        Ok(committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let rows = entries
            .into_iter()
            .map(|e| Ok((e.log_id.index, encode(ErrorSubject::Logs, &e)?)))
            .collect::<Result<Vec<_>, StorageError>>()?;
        metrics::WAL_WRITE_BYTES.add(rows.iter().map(|(_, raw)| raw.len() as u64).sum());
        self.db.append(&rows).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        // The syncer outlives every store handle, so the send fails only during shutdown.
        if let Err(std::sync::mpsc::SendError(callback)) = self.syncs.send(callback) {
            callback.log_io_completed(Err(std::io::Error::other("the raft log is shutting down")));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.db.truncate_from(log_id.index).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let raw = encode(ErrorSubject::Logs, &log_id)?;
        self.db.purge_upto(log_id.index, &raw).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

/// Fsyncs the log's write-ahead log for every append handed over, one sync for all that are
/// waiting, then reports each of them in order. Ends when every store handle is gone.
fn run_syncer(db: &RaftDb, pending: &std::sync::mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = pending.recv() {
        let mut waiting = vec![first];
        waiting.extend(pending.try_iter());
        let synced = metrics::WAL_FSYNC.time(|| db.sync());
        for callback in waiting {
            callback.log_io_completed(synced.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string())));
        }
    }
}
