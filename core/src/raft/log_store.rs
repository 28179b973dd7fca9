//! openraft's log storage over the raft database. Every append and vote is fsynced before
//! openraft hears that it is durable (reference/architecture-anchors.md §1.4, pitfall 1).
//!
//! An append is written at once, unsynced, so its entries are readable (and replicable) before
//! they are durable; a syncer thread then fsyncs the log's segment file (`storage/wal.rs`) and
//! only then reports the append flushed. Appends that arrive while a sync runs share the next
//! one (group commit).
//!
//! A follower may instead sync an append on the raft core's own thread, as etcd's raft loop
//! does (`InlineSync`): it answers the leader only once the append is durable and has nothing
//! else to do for raft meanwhile, and the two hand-offs to the syncer thread and back each wait
//! for a sleeping thread to wake, which a put's round trip through the cluster pays in full.
//! So may a leader with no other voter, which has nothing to overlap its sync with.
//!
//! The newest entries also stay in memory, as appended (`LogCache`): replicating them to the
//! followers and applying them read them from there instead of decoding them back from RocksDB.

// openraft's trait fixes the error type (StorageError, over 200 bytes); boxing it is not ours
// to choose.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    syncer: Arc<Syncer>,
    cache: Arc<Mutex<LogCache>>,
    inline: Arc<InlineSync>,
}

/// The syncer thread and the way to it. Dropped with the last store handle: the thread is
/// stopped and joined then, so the database is closed by the time the store is gone (a member
/// reopening its data dir in the same process finds it unlocked).
struct Syncer {
    pending: Option<std::sync::mpsc::Sender<LogFlushed<TypeConfig>>>,
    /// Appends handed to the thread and not yet reported flushed.
    queued: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Whether this member syncs an append on the raft core's thread instead of the syncer's.
///
/// A follower does, and a leader with no other voter; a leader of several does not, as its
/// sync runs beside the replication of the same entries, which openraft starts only once the
/// append returns. And only while the syncer has nothing in hand, so appends are reported
/// flushed in order, and while appends come apart: the last one returned at least as long ago
/// as the last inline sync took. The thread is the member's runtime worker, which also applies,
/// serves reads and delivers watch events; a member under load gets its appends back to back
/// and hands every sync to the syncer thread, one whose appends come apart spends at most half
/// of its time in inline syncs.
#[derive(Default)]
pub struct InlineSync {
    /// Set by the node from raft's metrics: this member follows a leader, or leads alone.
    allowed: AtomicBool,
    pace: Mutex<Pace>,
}

#[derive(Default)]
struct Pace {
    /// When the last append returned: after its inline sync, or at once.
    returned: Option<Instant>,
    /// How long the last inline sync took; none yet if never.
    took: Option<Duration>,
}

impl InlineSync {
    pub fn allow(&self, allowed: bool) {
        self.allowed.store(allowed, Ordering::Relaxed);
    }

    /// Whether an append has been synced inline.
    #[cfg(test)]
    pub fn synced_inline(&self) -> bool {
        self.lock().took.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.pace.lock().expect("the inline sync lock is never poisoned: nothing panics under it")
    }
}

impl Pace {
    /// Whether an append arriving `now` comes apart from the one before.
    fn apart(&self, now: Instant) -> bool {
        self.returned.is_none_or(|returned| now.saturating_duration_since(returned) >= self.took.unwrap_or_default())
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.pending.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// At most this many bytes (encoded) of the newest entries are kept in memory.
const CACHE_BYTES: usize = 32 << 20;

/// The newest log entries, with consecutive indexes ending at the log's last entry (or none):
/// every change to the log's tail (append, truncate, purge) is made here too.
#[derive(Default)]
struct LogCache {
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl LogCache {
    fn first(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    fn next(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.log_id.index + 1)
    }

    fn append(&mut self, entries: Vec<(Entry, usize)>) {
        let Some((first, _)) = entries.first() else { return };
        if self.next().is_some_and(|next| next != first.log_id.index) {
            // Not a continuation of what is cached (cannot happen after truncate): start over.
            self.entries.clear();
            self.bytes = 0;
        }
        for (entry, size) in entries {
            self.bytes += size;
            self.entries.push_back((entry, size));
        }
        while self.bytes > CACHE_BYTES {
            let Some((_, size)) = self.entries.pop_front() else { break };
            self.bytes -= size;
        }
    }

    /// Drops the entries with index >= `from`.
    fn truncate(&mut self, from: u64) {
        while self.entries.back().is_some_and(|(e, _)| e.log_id.index >= from) {
            let (_, size) = self.entries.pop_back().expect("checked above");
            self.bytes -= size;
        }
    }

    /// Drops the entries with index <= `upto`.
    fn purge(&mut self, upto: u64) {
        while self.entries.front().is_some_and(|(e, _)| e.log_id.index <= upto) {
            let (_, size) = self.entries.pop_front().expect("checked above");
            self.bytes -= size;
        }
    }

    /// The entries `[start, end)` if all of them are cached (`end` past the last entry means
    /// up to the last entry, as in the database).
    fn get(&self, start: u64, end: u64) -> Option<Vec<Entry>> {
        let (first, next) = (self.first()?, self.next()?);
        if start < first {
            return None;
        }
        let end = end.min(next);
        let from = usize::try_from(start - first).ok()?;
        let to = usize::try_from(end.saturating_sub(first)).ok()?;
        Some(self.entries.range(from.min(to)..to).map(|(e, _)| e.clone()).collect())
    }
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
        let (tx, pending) = std::sync::mpsc::channel();
        let (syncer_db, queued) = (db.clone(), Arc::new(AtomicUsize::new(0)));
        let syncer_queued = queued.clone();
        let thread = std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || run_syncer(&syncer_db, &pending, &syncer_queued))
            .expect("a thread can be started at boot");
        let syncer = Arc::new(Syncer { pending: Some(tx), queued, thread: Some(thread) });
        LogStore { db, syncer, cache: Arc::default(), inline: Arc::default() }
    }

    /// Whether this member syncs its appends inline, for the node to set as the member's role
    /// changes.
    pub fn inline_sync(&self) -> Arc<InlineSync> {
        self.inline.clone()
    }

    /// Syncs the log on this thread and reports `callback` flushed, if `InlineSync` allows
    /// it now; otherwise hands `callback` back.
    fn sync_inline(&self, callback: LogFlushed<TypeConfig>) -> Option<LogFlushed<TypeConfig>> {
        // A leader of several never syncs inline: its appends skip the pacing (a stale pace
        // allows at most one inline sync once the member follows).
        if !self.inline.allowed.load(Ordering::Relaxed) {
            return Some(callback);
        }
        let mut pace = self.inline.lock();
        let started = Instant::now();
        let inline = self.syncer.queued.load(Ordering::Acquire) == 0 && pace.apart(started);
        if !inline {
            pace.returned = Some(started);
            return Some(callback);
        }
        let synced = metrics::WAL_FSYNC.time(|| self.db.sync());
        let ended = Instant::now();
        *pace = Pace { returned: Some(ended), took: Some(ended - started) };
        drop(pace);
        callback.log_io_completed(synced.map_err(|e| std::io::Error::other(e.to_string())));
        None
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LogCache> {
        self.cache.lock().expect("the log cache lock is never poisoned: nothing panics under it")
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
        if let Some(cached) = self.cache().get(start, end) {
            return Ok(cached);
        }
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
        let entries: Vec<Entry> = entries.into_iter().collect();
        let rows = entries
            .iter()
            .map(|e| Ok((e.log_id.index, encode(ErrorSubject::Logs, e)?)))
            .collect::<Result<Vec<_>, StorageError>>()?;
        metrics::WAL_WRITE_BYTES.add(rows.iter().map(|(_, raw)| raw.len() as u64).sum());
        // The cache changes under its lock together with the database, so a reader never sees
        // one without the other.
        let mut cache = self.cache();
        self.db.append(&rows).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        cache.append(entries.into_iter().zip(rows.iter().map(|(_, raw)| raw.len())).collect());
        drop(cache);
        let Some(callback) = self.sync_inline(callback) else { return Ok(()) };
        self.syncer.queued.fetch_add(1, Ordering::Release);
        // The syncer thread outlives every store handle, so the send fails only if it died.
        if let Some(Err(std::sync::mpsc::SendError(callback))) = self.syncer.pending.as_ref().map(|p| p.send(callback)) {
            self.syncer.queued.fetch_sub(1, Ordering::Release);
            callback.log_io_completed(Err(std::io::Error::other("the raft log is shutting down")));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut cache = self.cache();
        cache.truncate(log_id.index);
        self.db.truncate_from(log_id.index).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let raw = encode(ErrorSubject::Logs, &log_id)?;
        let mut cache = self.cache();
        cache.purge(log_id.index);
        self.db.purge_upto(log_id.index, &raw).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

/// Fsyncs the log for every append handed over, one sync for all that are
/// waiting, then reports each of them in order and takes them off `queued`. Ends when every
/// store handle is gone.
fn run_syncer(db: &RaftDb, pending: &std::sync::mpsc::Receiver<LogFlushed<TypeConfig>>, queued: &AtomicUsize) {
    while let Ok(first) = pending.recv() {
        let mut waiting = vec![first];
        waiting.extend(pending.try_iter());
        let synced = metrics::WAL_FSYNC.time(|| db.sync());
        let reported = waiting.len();
        for callback in waiting {
            callback.log_io_completed(synced.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string())));
        }
        queued.fetch_sub(reported, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::Proposal;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> (Entry, usize) {
        let log_id = LogId::new(CommittedLeaderId::new(1, 1), index);
        (Entry { log_id, payload: EntryPayload::Normal(Proposal::default()) }, 1 << 20)
    }

    fn indexes(got: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        got.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn appends_come_apart_when_the_gap_outlasts_the_last_inline_sync() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let pace = |returned_ago: Option<Duration>, took: Option<Duration>| Pace { returned: returned_ago.map(|ago| now - ago), took };
        assert!(pace(None, None).apart(now), "the first append");
        assert!(pace(Some(ms(0)), None).apart(now), "no inline sync yet to space them by");
        assert!(pace(Some(ms(3)), Some(ms(2))).apart(now));
        assert!(pace(Some(ms(2)), Some(ms(2))).apart(now));
        assert!(!pace(Some(ms(1)), Some(ms(2))).apart(now), "back to back: the syncer's");
        let later = Pace { returned: Some(now + ms(1)), took: Some(ms(1)) };
        assert!(!later.apart(now), "a return stamped after `now` counts as none since");
    }

    #[test]
    fn the_cache_follows_the_log_tail() {
        let mut cache = LogCache::default();
        assert_eq!(indexes(cache.get(0, u64::MAX)), None);
        cache.append((5..10).map(entry).collect());
        assert_eq!(indexes(cache.get(6, 8)), Some(vec![6, 7]));
        assert_eq!(indexes(cache.get(8, u64::MAX)), Some(vec![8, 9]));
        assert_eq!(indexes(cache.get(4, 8)), None, "older entries come from the database");
        assert_eq!(indexes(cache.get(12, 20)), Some(vec![]), "past the end, like the database");
        cache.truncate(8);
        assert_eq!(indexes(cache.get(5, u64::MAX)), Some(vec![5, 6, 7]));
        cache.append((8..9).map(entry).collect());
        cache.purge(6);
        assert_eq!(indexes(cache.get(7, u64::MAX)), Some(vec![7, 8]));
        assert_eq!(cache.bytes, 2 << 20);
        // A gap (never made by openraft) empties the cache rather than leaving a hole.
        cache.append((20..21).map(entry).collect());
        assert_eq!(indexes(cache.get(7, u64::MAX)), None);
        assert_eq!(indexes(cache.get(20, u64::MAX)), Some(vec![20]));
    }

    #[test]
    fn the_cache_keeps_its_byte_budget() {
        let mut cache = LogCache::default();
        cache.append((1..=40).map(entry).collect());
        assert!(cache.bytes <= CACHE_BYTES);
        assert_eq!(cache.next(), Some(41));
        assert_eq!(cache.first(), Some(41 - (CACHE_BYTES >> 20) as u64));
    }
}
