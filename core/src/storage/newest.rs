//! Each key's newest `key_index` row, in memory: what etcd's treeIndex gives its point reads.
//!
//! A read of one key at revision `rev` otherwise creates a RocksDB iterator and seeks it (about
//! 5,000 instructions, a third of the MVCC read). Here it is one hash lookup, for every key
//! whose newest version is at or below `rev`, which is the common case; older reads still seek.
//!
//! The map is not a snapshot, so it may only ever be *ahead* of what a reader's view holds,
//! never behind: a batch's changes are staged here before RocksDB writes the batch, and the
//! batch's revision is published after that. A view's reader therefore trusts a row only if it
//! is at or below its read revision (then it is the newest row at that revision, and in its
//! view), and seeks when the map has none: compaction removes a key whose newest row is a
//! tombstone, while a reader holding an older view may still read a revision at which that key
//! was live. The applier alone reads the live database, one batch at a time, between writes;
//! there the map is exact, and a key it does not hold has no row at all (a put of a new key
//! skips its seek too).

use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use rustc_hash::FxHashMap;

use super::codec::{self, Revision};

/// The map is split by key hash into this many shards, each with its own lock and table: a
/// table grows by doubling, and a small one leaves a small old table behind when it does.
const SHARDS: usize = 64;

/// A key's newest row, packed into 16 bytes. A row whose sub-revision does not fit (more than
/// 4 billion changes in one revision) turns the map off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    main: i64,
    sub: u32,
    tag: u8,
}

impl Row {
    fn new(rev: Revision, tag: u8) -> Option<Row> {
        Some(Row { main: rev.main, sub: u32::try_from(rev.sub).ok()?, tag })
    }

    fn rev(self) -> Revision {
        Revision::new(self.main, i64::from(self.sub))
    }
}

type Shard = FxHashMap<Box<[u8]>, Row>;

fn shard_of(key: &[u8]) -> usize {
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write(key);
    (hasher.finish() >> 58) as usize % SHARDS
}

/// What the map says of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Its newest row: revision and tag.
    Known(Revision, u8),
    /// It has no row at all. Only the live database, read by the applier between writes, may
    /// say so: a view's reader cannot trust it (see the module's comment).
    Absent,
    /// The map cannot tell; the index decides.
    Unknown,
}

/// A change to `key_index` that a batch will make, by user key.
#[derive(Debug)]
pub(super) enum Change {
    Put { key: Box<[u8]>, rev: Revision, tag: u8 },
    Delete { key: Box<[u8]>, rev: Revision },
    /// A change the map cannot follow (a range deletion of index rows): it stops answering.
    Unknown,
}

impl Change {
    /// The change a write of the raw `key_index` row `raw` makes; `tag` is `None` for a delete.
    pub(super) fn of_row(raw: &[u8], tag: Option<u8>) -> Change {
        let Some((esc, rev)) = codec::split_index_key(raw) else { return Change::Unknown };
        let Some(key) = codec::unescape_key(esc) else { return Change::Unknown };
        let key = key.into_boxed_slice();
        match tag {
            Some(tag) => Change::Put { key, rev, tag },
            None => Change::Delete { key, rev },
        }
    }
}

/// Gathers each key's newest row from the rows of `key_index` in key order, where a key's
/// newest row comes first.
pub(super) struct Builder {
    shards: Vec<Shard>,
    /// False once a row could not be packed: the map would be incomplete.
    complete: bool,
    /// The escaped key of the previous row (never empty once there was one: escaping pads).
    last: Vec<u8>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder { shards: (0..SHARDS).map(|_| Shard::default()).collect(), complete: true, last: Vec::new() }
    }
}

impl Builder {
    pub(super) fn row(&mut self, raw: &[u8], tag: u8) -> crate::error::Result<()> {
        let (esc, rev) = codec::split_index_key(raw).ok_or_else(|| crate::error::Error::Storage("corrupt key_index row".into()))?;
        if self.last == esc {
            return Ok(());
        }
        self.last.clear();
        self.last.extend_from_slice(esc);
        let key = codec::unescape_key(esc).ok_or_else(|| crate::error::Error::Storage("corrupt key_index key".into()))?;
        match Row::new(rev, tag) {
            Some(row) => drop(self.shards[shard_of(&key)].insert(key.into_boxed_slice(), row)),
            None => self.complete = false,
        }
        Ok(())
    }
}

/// The newest `key_index` row of every key, once [`Newest::install`] has filled it in. Until then
/// (and after a write it could not follow) it answers nothing and records nothing.
pub(super) struct Newest {
    shards: Vec<RwLock<Shard>>,
    enabled: AtomicBool,
}

impl Default for Newest {
    fn default() -> Self {
        Newest { shards: (0..SHARDS).map(|_| RwLock::default()).collect(), enabled: AtomicBool::new(false) }
    }
}

impl Newest {
    pub(super) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    fn shard(&self, key: &[u8]) -> &RwLock<Shard> {
        &self.shards[shard_of(key)]
    }

    /// What the map says of `key`.
    pub(super) fn get(&self, key: &[u8]) -> Lookup {
        if !self.enabled() {
            return Lookup::Unknown;
        }
        match self.shard(key).read().expect("the newest-row lock is never poisoned").get(key) {
            Some(row) => Lookup::Known(row.rev(), row.tag),
            None => Lookup::Absent,
        }
    }

    /// Replaces the map with what `builder` gathered, and starts answering if it is complete.
    pub(super) fn install(&self, builder: Builder) {
        for (lock, shard) in self.shards.iter().zip(builder.shards) {
            *lock.write().expect("the newest-row lock is never poisoned") = shard;
        }
        self.enabled.store(builder.complete, Ordering::Release);
    }

    /// Applies a batch's changes; called before the batch is written.
    pub(super) fn stage(&self, changes: Vec<Change>) {
        for change in changes {
            match change {
                Change::Put { key, rev, tag } => {
                    let Some(row) = Row::new(rev, tag) else {
                        self.disable();
                        continue;
                    };
                    let mut shard = self.shard(&key).write().expect("the newest-row lock is never poisoned");
                    let newest = shard.entry(key).or_insert(row);
                    if newest.rev() < rev {
                        *newest = row;
                    }
                }
                // Deleting an older row leaves the newest where it is; deleting the newest
                // (compaction drops a key whose newest row is a tombstone) leaves no row.
                Change::Delete { key, rev } => {
                    let mut shard = self.shard(&key).write().expect("the newest-row lock is never poisoned");
                    if shard.get(&key).is_some_and(|row| row.rev() == rev) {
                        shard.remove(&key);
                    }
                }
                Change::Unknown => self.disable(),
            }
        }
    }

    /// Stops answering for good: every read seeks again.
    pub(super) fn disable(&self) {
        self.enabled.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::codec::{index_key, TAG_PUT, TAG_TOMBSTONE};

    fn rev(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    fn put(key: &[u8], main: i64, tag: u8) -> Change {
        Change::of_row(&index_key(key, rev(main)), Some(tag))
    }

    fn delete(key: &[u8], main: i64) -> Change {
        Change::of_row(&index_key(key, rev(main)), None)
    }

    fn built(rows: &[(&[u8], i64, u8)]) -> Newest {
        let mut raw: Vec<(Vec<u8>, u8)> = rows.iter().map(|(k, m, t)| (index_key(k, rev(*m)), *t)).collect();
        raw.sort();
        let mut builder = Builder::default();
        for (row, tag) in &raw {
            builder.row(row, *tag).expect("a well-formed row");
        }
        let newest = Newest::default();
        newest.install(builder);
        newest
    }

    #[test]
    fn build_keeps_each_keys_newest_row() {
        let newest = built(&[(b"a", 2, TAG_PUT), (b"a", 5, TAG_TOMBSTONE), (b"a", 3, TAG_PUT), (b"ab", 4, TAG_PUT), (b"b", 6, TAG_PUT)]);
        assert_eq!(newest.get(b"a"), Lookup::Known(rev(5), TAG_TOMBSTONE));
        assert_eq!(newest.get(b"ab"), Lookup::Known(rev(4), TAG_PUT));
        assert_eq!(newest.get(b"b"), Lookup::Known(rev(6), TAG_PUT));
        assert_eq!(newest.get(b"c"), Lookup::Absent);
    }

    #[test]
    fn answers_nothing_until_built() {
        let newest = Newest::default();
        newest.stage(vec![put(b"a", 2, TAG_PUT)]);
        assert_eq!(newest.get(b"a"), Lookup::Unknown);
    }

    #[test]
    fn a_newer_row_replaces_an_older_one_and_never_the_reverse() {
        let newest = built(&[(b"a", 2, TAG_PUT)]);
        newest.stage(vec![put(b"a", 4, TAG_PUT), put(b"a", 3, TAG_PUT), put(b"b", 4, TAG_PUT)]);
        assert_eq!(newest.get(b"a"), Lookup::Known(rev(4), TAG_PUT));
        assert_eq!(newest.get(b"b"), Lookup::Known(rev(4), TAG_PUT));
        newest.stage(vec![Change::of_row(&index_key(b"a", Revision::new(4, 1)), Some(TAG_TOMBSTONE))]);
        assert_eq!(newest.get(b"a"), Lookup::Known(Revision::new(4, 1), TAG_TOMBSTONE));
    }

    #[test]
    fn only_deleting_the_newest_row_removes_the_key() {
        let newest = built(&[(b"a", 2, TAG_PUT), (b"a", 5, TAG_TOMBSTONE)]);
        newest.stage(vec![delete(b"a", 2)]);
        assert_eq!(newest.get(b"a"), Lookup::Known(rev(5), TAG_TOMBSTONE));
        newest.stage(vec![delete(b"a", 5)]);
        assert_eq!(newest.get(b"a"), Lookup::Absent);
    }

    #[test]
    fn a_row_it_cannot_pack_turns_it_off() {
        let huge = Revision::new(3, i64::from(u32::MAX) + 1);
        let newest = built(&[(b"a", 2, TAG_PUT)]);
        newest.stage(vec![Change::of_row(&index_key(b"b", huge), Some(TAG_PUT))]);
        assert_eq!((newest.get(b"a"), newest.get(b"b")), (Lookup::Unknown, Lookup::Unknown));
        let mut builder = Builder::default();
        builder.row(&index_key(b"a", huge), TAG_PUT).expect("a well-formed row");
        newest.install(builder);
        assert!(!newest.enabled(), "a map missing a key must not say the key is absent");
    }

    #[test]
    fn a_change_it_cannot_follow_turns_it_off() {
        let newest = built(&[(b"a", 2, TAG_PUT)]);
        newest.stage(vec![Change::of_row(b"short", Some(TAG_PUT))]);
        assert!(!newest.enabled());
        assert_eq!(newest.get(b"a"), Lookup::Unknown);
    }
}
