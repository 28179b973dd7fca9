//! etcd's MVCC model over the state database: revisions `{main, sub}`, create/mod revisions,
//! versions, tombstones, all history until compaction.

mod apply;
pub mod keys;
mod overlay;
mod read;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use prost::Message;
use cairn_proto::etcdserverpb::{AlarmMember, AlarmResponse, AlarmType, RangeRequest, RangeResponse, TxnRequest, TxnResponse};
use cairn_proto::mvccpb::{event::EventType, Event};

pub(crate) use apply::Applier;
pub use read::RangeResult;

use crate::error::{Error, Result};
use crate::lease::LeaseRow;
use crate::storage::codec::{self, TAG_TOMBSTONE};
use crate::storage::names::{META_ALARMS, META_COMPACT_REV, META_CURRENT_REV, META_PENDING_VOTERS};
use crate::storage::{StateBatch, StateDb, StateRead, Table};

/// An empty store is at revision 1, so the first write makes revision 2 (etcd-api.md §1.1).
pub const FIRST_REVISION: i64 = 1;

/// At most this many revisions per watch catch-up read (etcd's `watchBatchMaxRevs`).
pub const HISTORY_BATCH_REVISIONS: i64 = 1000;

/// A slice of watch history.
#[derive(Debug)]
pub struct History {
    pub events: Vec<Event>,
    /// The last revision the slice covers (events or not).
    pub through: i64,
}

/// Rows deleted per batch by a physical compaction.
const COMPACTION_BATCH: usize = 10_000;

/// A change to the set of leases, in apply order, for the lessor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseChange {
    Granted { id: i64, ttl: i64 },
    Revoked { id: i64 },
    Checkpointed { id: i64, remaining_ttl: i64 },
}

/// What one apply did that others must hear of: events for the watch hub (in revision order,
/// each with the key's previous version) and lease changes for the lessor.
#[derive(Debug, Default)]
pub struct Effects {
    pub events: Vec<Event>,
    pub leases: Vec<LeaseChange>,
    /// The store's revision after the apply.
    pub revision: i64,
    /// The active alarms, when the apply changed them.
    pub alarms: Option<Vec<AlarmMember>>,
}

pub struct Mvcc {
    db: RwLock<Arc<StateDb>>,
    current_rev: AtomicI64,
    compact_rev: AtomicI64,
    alarms: RwLock<Vec<AlarmMember>>,
    /// Whether `alarms` holds a NOSPACE alarm (checked on every write).
    no_space: AtomicBool,
    /// Held by `apply`: the applier reads the live database, whose map of newest rows is exact
    /// only between writes (storage/newest.rs). The state machine applies one entry at a time
    /// anyway; the lock makes that a property of this type rather than of its caller.
    applying: Mutex<()>,
}

fn meta_i64(db: &StateDb, key: &[u8]) -> Result<Option<i64>> {
    Ok(db.get(Table::Meta, key)?.as_deref().and_then(codec::read_u64).map(|v| v as i64))
}

impl Mvcc {
    pub fn new(db: StateDb) -> Result<Mvcc> {
        db.index_newest()?;
        let mvcc = Mvcc {
            db: RwLock::new(Arc::new(db)),
            current_rev: AtomicI64::new(FIRST_REVISION),
            compact_rev: AtomicI64::new(0),
            alarms: RwLock::default(),
            no_space: AtomicBool::new(false),
            applying: Mutex::new(()),
        };
        mvcc.load_revisions()?;
        Ok(mvcc)
    }

    fn load_revisions(&self) -> Result<()> {
        let db = self.db();
        let current = meta_i64(&db, META_CURRENT_REV)?.unwrap_or(FIRST_REVISION);
        let compact = meta_i64(&db, META_COMPACT_REV)?.unwrap_or(0);
        self.current_rev.store(current, Ordering::SeqCst);
        self.compact_rev.store(compact, Ordering::SeqCst);
        let alarms = match db.get(Table::Meta, META_ALARMS)? {
            Some(raw) => AlarmResponse::decode(raw.as_slice()).map_err(|e| Error::Storage(format!("corrupt alarms: {e}")))?.alarms,
            None => Vec::new(),
        };
        self.set_alarms(alarms);
        // A compaction interrupted by a crash is finished now; it is idempotent.
        if compact > 0 {
            compact_physically(&db, compact)?;
        }
        Ok(())
    }

    /// The live state database.
    pub fn db(&self) -> Arc<StateDb> {
        self.db.read().expect("the state lock is never poisoned: nothing panics under it").clone()
    }

    /// Swaps in a new state database (a raft snapshot was installed).
    pub fn replace(&self, db: StateDb) -> Result<()> {
        db.index_newest()?;
        *self.db.write().expect("the state lock is never poisoned") = Arc::new(db);
        self.load_revisions()
    }

    /// Members added as voters that are still learners, to be promoted once caught up.
    pub fn pending_voters(&self) -> Result<Vec<u64>> {
        Ok(self.db().get(Table::Meta, META_PENDING_VOTERS)?.as_deref().map(decode_ids).unwrap_or_default())
    }

    /// The active alarms.
    pub fn alarms(&self) -> Vec<AlarmMember> {
        self.alarms.read().expect("the alarm lock is never poisoned").clone()
    }

    pub fn no_space(&self) -> bool {
        self.no_space.load(Ordering::SeqCst)
    }

    fn set_alarms(&self, alarms: Vec<AlarmMember>) {
        let no_space = alarms.iter().any(|a| a.alarm == AlarmType::Nospace as i32);
        *self.alarms.write().expect("the alarm lock is never poisoned") = alarms;
        self.no_space.store(no_space, Ordering::SeqCst);
    }

    pub fn current_revision(&self) -> i64 {
        self.current_rev.load(Ordering::SeqCst)
    }

    pub fn compact_revision(&self) -> i64 {
        self.compact_rev.load(Ordering::SeqCst)
    }

    /// A Range on the local state. `header.revision` is the current revision, also for a
    /// historical read; the caller fills in the rest of the header.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        crate::metrics::RANGES.inc();
        let db = self.db();
        // Order matters: the revision is published after its batch is written, and a compaction
        // revision before its rows are deleted; so a snapshot taken between the two loads holds
        // everything at or below `current` and everything at or above `compact`.
        let current = self.current_revision();
        let view = db.view();
        let compact = self.compact_revision();
        let rev = if req.revision <= 0 { current } else { req.revision };
        if rev > current {
            return Err(Error::FutureRev);
        }
        if rev < compact {
            return Err(Error::Compacted);
        }
        let result = read::range(&view, None, req, rev)?;
        Ok(RangeResponse { header: apply::header(current), kvs: result.kvs, more: result.more, count: result.count })
    }

    /// A txn with only range ops, served from a snapshot of the local state without the log
    /// (etcd's read-only txn path). The caller has already waited for a read index if needed.
    pub fn read_txn(&self, req: &TxnRequest) -> Result<TxnResponse> {
        crate::metrics::TXNS.inc();
        let db = self.db();
        let current = self.current_revision();
        let view = db.view();
        let compact = self.compact_revision();
        Applier::read_only(&db, &view, current, compact).txn(req)
    }

    /// Runs `f` with an applier over the current state, then writes everything it did in one
    /// batch and publishes the new revision.
    pub(crate) fn apply<T>(&self, f: impl FnOnce(&mut Applier<'_>) -> T) -> Result<(T, Effects)> {
        let _applying = self.applying.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let db = self.db();
        let mut applier = Applier::new(&db, self.current_revision(), self.compact_revision()).with_alarms(self.alarms());
        let out = f(&mut applier);
        let (batch, compaction, effects) = applier.finish();
        let rev = effects.revision;
        if let Some(compact) = compaction {
            self.compact_rev.store(compact, Ordering::SeqCst);
        }
        crate::metrics::BACKEND_COMMIT.time(|| db.write(batch))?;
        self.current_rev.store(rev, Ordering::SeqCst);
        if let Some(alarms) = &effects.alarms {
            self.set_alarms(alarms.clone());
        }
        if let Some(compact) = compaction {
            compact_physically(&db, compact)?;
        }
        Ok((out, effects))
    }

    /// Watch history: every event of revisions `[from, to]`, read from one snapshot, at most
    /// [`HISTORY_BATCH_REVISIONS`] revisions (the caller asks again from the returned revision).
    /// `prev_kv` fills each event's previous version. Fails with `Compacted` if `from` is below
    /// the compaction point.
    pub fn history(&self, from: i64, to: i64, prev_kv: bool) -> Result<History> {
        let db = self.db();
        let view = db.view();
        if from < self.compact_revision() {
            return Err(Error::Compacted);
        }
        let to = to.min(from.saturating_add(HISTORY_BATCH_REVISIONS - 1));
        let mut events = Vec::new();
        view.kv_scan(from, to, &mut |_, row| {
            let (tag, kv) = read::decode_kv(row)?;
            let kind = if tag == TAG_TOMBSTONE { EventType::Delete } else { EventType::Put };
            events.push(Event { r#type: kind as i32, kv: Some(kv), prev_kv: None });
            Ok(true)
        })?;
        if prev_kv {
            for event in &mut events {
                let kv = event.kv.as_ref().expect("history events are built with a kv");
                event.prev_kv = read::get(&view, None, &kv.key, kv.mod_revision - 1)?;
            }
        }
        Ok(History { events, through: to })
    }

    /// Every lease in the store, with its TTLs.
    pub fn leases(&self) -> Result<Vec<(i64, LeaseRow)>> {
        let mut out = Vec::new();
        self.db().scan(Table::Lease, &[], None, |k, v| {
            let id = codec::read_u64(k).ok_or_else(|| Error::Storage("corrupt lease key".into()))? as i64;
            out.push((id, LeaseRow::decode(v)?));
            Ok(true)
        })?;
        Ok(out)
    }

    /// The keys attached to lease `id`.
    pub fn lease_keys(&self, id: i64) -> Result<Vec<Vec<u8>>> {
        apply::linked_keys(&self.db(), id)
    }

    /// etcd's HashKV: a hash of every stored version at or below `revision` (0: the current
    /// one). Members that applied the same log agree on it at the same revision, so a member
    /// whose store diverged shows up. Returns `(hash, current revision, compact revision)`;
    /// as etcd, the compact revision is -1 before any compaction, and the compacted revision
    /// itself can no longer be hashed.
    pub fn hash_kv(&self, revision: i64) -> Result<(u32, i64, i64)> {
        let db = self.db();
        let current = self.current_revision();
        let view = db.view();
        let compact = self.compact_revision();
        let rev = if revision <= 0 { current } else { revision };
        if rev > current {
            return Err(Error::FutureRev);
        }
        if compact > 0 && rev <= compact {
            return Err(Error::Compacted);
        }
        let mut hasher = crc32fast::Hasher::new();
        view.kv_scan(0, rev, &mut |r, row| {
            hasher.update(&codec::rev_key(r));
            hasher.update(row);
            Ok(true)
        })?;
        Ok((hasher.finalize(), current, if compact > 0 { compact } else { -1 }))
    }

    /// etcd's Hash: a hash of the whole key space and the leases (everything but this
    /// member's own bookkeeping).
    pub fn hash(&self) -> Result<(u32, i64)> {
        let db = self.db();
        let rev = self.current_revision();
        let mut hasher = crc32fast::Hasher::new();
        for table in [Table::KvRev, Table::KeyIndex, Table::Lease, Table::LeaseKeys] {
            hasher.update(&[table.id()]);
            db.scan(table, &[], None, |k, v| {
                hasher.update(k);
                hasher.update(v);
                Ok(true)
            })?;
        }
        Ok((hasher.finalize(), rev))
    }

    pub fn defragment(&self) -> Result<()> {
        self.db().defragment()
    }

    pub fn size(&self) -> u64 {
        self.db().size()
    }

    pub fn size_in_use(&self) -> u64 {
        self.db().size_in_use()
    }
}

pub(crate) fn decode_ids(raw: &[u8]) -> Vec<u64> {
    raw.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().expect("chunks of 8"))).collect()
}

/// Deletes every version superseded at `compact`: for each key the newest version at or below
/// `compact` stays (unless it is a tombstone), older ones go, from both the index and `kv_rev`.
fn compact_physically(db: &StateDb, compact: i64) -> Result<()> {
    let mut batch = StateBatch::default();
    let mut pending = 0usize;
    let mut cursor = db.index_cursor(None);
    cursor.seek(&[]);
    let mut current: Option<Vec<u8>> = None;
    let mut kept = false;
    while let Some((raw, tag)) = cursor.current() {
        let (esc, rev) = codec::split_index_key(raw).ok_or_else(|| Error::Storage("corrupt key_index row".into()))?;
        if current.as_deref() != Some(esc) {
            current = Some(esc.to_vec());
            kept = false;
        }
        if rev.main <= compact {
            if kept || tag == TAG_TOMBSTONE {
                db.delete(&mut batch, Table::KeyIndex, raw);
                db.delete(&mut batch, Table::KvRev, &codec::rev_key(rev));
                pending += 1;
            }
            kept = true;
        }
        if pending >= COMPACTION_BATCH {
            db.write(std::mem::take(&mut batch))?;
            pending = 0;
        }
        cursor.next();
    }
    cursor.status()?;
    drop(cursor);
    if !batch.is_empty() {
        db.write(batch)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
