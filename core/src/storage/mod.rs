//! RocksDB: the two databases of a member and the byte layouts inside them. The only module
//! that names RocksDB.

pub mod codec;
pub mod layout;
pub mod names;
mod newest;
mod wal;

pub use newest::Lookup;

use std::path::Path;

use rocksdb::{
    checkpoint::Checkpoint, BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DBRawIteratorWithThreadMode, Options, ReadOptions, SnapshotWithThreadMode, WriteBatch, WriteOptions, DB,
};

use crate::error::{Error, Result};
use codec::{Revision, REV_KEY_LEN};
use names::*;
use newest::{Change, Newest};
use wal::Wal;

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

fn db_options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.set_max_background_jobs(2);
    opts.set_write_buffer_size(32 << 20);
    opts.set_keep_log_file_num(4);
    opts
}

fn cf_options(point_lookups: bool) -> Options {
    let mut opts = db_options();
    if point_lookups {
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        opts.set_block_based_table_factory(&table);
    }
    opts
}

fn open(path: &Path, cfs: &[&str]) -> Result<DB> {
    let descriptors = cfs.iter().map(|name| ColumnFamilyDescriptor::new(*name, cf_options(*name == CF_KV_REV)));
    Ok(DB::open_cf_descriptors(&db_options(), path, descriptors)?)
}

fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    db.cf_handle(name).expect("every column family is created at open")
}

fn synced() -> WriteOptions {
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    wo
}

/// The raft database: the vote and the log's metadata in RocksDB, every write fsynced before
/// it returns, and the log's entries in segment files (`wal.rs`), durable after `sync`.
pub struct RaftDb {
    db: DB,
    wal: Wal,
}

impl RaftDb {
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, wal::SEGMENT_BYTES)
    }

    fn open_with(path: &Path, segment_bytes: u64) -> Result<Self> {
        let db = open(path, &RAFT_CFS)?;
        let purged = db.get_cf(cf(&db, CF_RAFT_META), META_PURGED_INDEX)?.map(|raw| codec::read_u64(&raw).ok_or_else(|| Error::Storage("corrupt purge index".into()))).transpose()?;
        let wal = Wal::open(&path.join(WAL_DIR), purged, segment_bytes)?;
        let raft = RaftDb { db, wal };
        raft.move_rocksdb_log()?;
        Ok(raft)
    }

    /// Moves the entries a data dir written before the segment log kept in RocksDB into
    /// segments, then deletes them there. Until that delete, RocksDB's copy is the log: a move
    /// cut short by a crash starts over.
    fn move_rocksdb_log(&self) -> Result<()> {
        let log = cf(&self.db, CF_RAFT_LOG);
        let mut iter = self.db.raw_iterator_cf(log);
        iter.seek_to_first();
        if !iter.valid() {
            return iter.status().map_err(Error::from);
        }
        self.wal.clear()?;
        let mut batch = Vec::new();
        while let Some((k, v)) = iter.item() {
            let index = codec::read_u64(k).ok_or_else(|| Error::Storage("corrupt raft log key".into()))?;
            batch.push((index, v.to_vec()));
            if batch.len() == 1024 {
                self.wal.append(&std::mem::take(&mut batch))?;
            }
            iter.next();
        }
        iter.status()?;
        self.wal.append(&batch)?;
        self.wal.sync()?;
        let mut delete = WriteBatch::default();
        delete.delete_range_cf(log, 0u64.to_be_bytes(), u64::MAX.to_be_bytes());
        delete.delete_cf(log, u64::MAX.to_be_bytes());
        self.db.write_opt(delete, &synced())?;
        tracing::info!("raft log: moved from RocksDB into segment files");
        Ok(())
    }

    pub fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(cf(&self.db, CF_RAFT_META), key)?)
    }

    /// Writes a meta key and fsyncs it (the vote must be durable before openraft hears back).
    pub fn put_meta_synced(&self, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.db.put_cf_opt(cf(&self.db, CF_RAFT_META), key, value, &synced())?)
    }

    pub fn put_meta(&self, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.db.put_cf(cf(&self.db, CF_RAFT_META), key, value)?)
    }

    /// Appends log entries, readable at once but durable only after `sync`.
    pub fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<()> {
        self.wal.append(entries)
    }

    /// Fsyncs every append made so far.
    pub fn sync(&self) -> Result<()> {
        self.wal.sync()
    }

    /// Deletes every entry with index >= `from`, durably.
    pub fn truncate_from(&self, from: u64) -> Result<()> {
        self.wal.truncate(from)
    }

    /// Records the purge point (durably), then deletes every entry with index <= `upto`.
    pub fn purge_upto(&self, upto: u64, last_purged: &[u8]) -> Result<()> {
        let meta = cf(&self.db, CF_RAFT_META);
        let mut batch = WriteBatch::default();
        batch.put_cf(meta, META_LAST_PURGED, last_purged);
        batch.put_cf(meta, META_PURGED_INDEX, upto.to_be_bytes());
        self.db.write_opt(batch, &synced())?;
        self.wal.purge(upto)
    }

    /// Entries with index in `[start, end)`, in order.
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        self.wal.entries(start, end)
    }

    pub fn last_entry(&self) -> Result<Option<Vec<u8>>> {
        self.wal.last()
    }
}

/// The state database: the MVCC store, leases and the applied position.
pub struct StateDb {
    db: DB,
    /// Each key's newest `key_index` row, once `index_newest` has built it.
    newest: Newest,
}

/// A consistent read view of the state database.
pub struct StateView<'a> {
    db: &'a DB,
    snap: SnapshotWithThreadMode<'a, DB>,
    newest: &'a Newest,
}

/// A cursor over `key_index`.
pub struct IndexCursor<'a> {
    it: DBRawIteratorWithThreadMode<'a, DB>,
}

impl IndexCursor<'_> {
    pub fn seek(&mut self, key: &[u8]) {
        self.it.seek(key);
    }
    pub fn next(&mut self) {
        self.it.next();
    }
    /// The current `(index key, tag)`, or `None` at the end.
    pub fn current(&self) -> Option<(&[u8], u8)> {
        let (k, v) = self.it.item()?;
        Some((k, v.first().copied().unwrap_or(codec::TAG_PUT)))
    }
    pub fn status(&self) -> Result<()> {
        Ok(self.it.status()?)
    }
}

/// Reads shared by the live database (apply) and a snapshot view (client reads).
pub trait StateRead {
    fn index_cursor(&self, upper: Option<Vec<u8>>) -> IndexCursor<'_>;
    /// What the in-memory map of newest rows says of the user key `key`. A `Known` row may be
    /// newer than a view (never older); only the live database says `Absent` (`newest.rs`).
    fn newest(&self, key: &[u8]) -> Lookup;
    fn kv_get(&self, rev: Revision) -> Result<Option<Vec<u8>>>;
    fn kv_multi_get(&self, revs: &[Revision]) -> Result<Vec<Option<Vec<u8>>>>;
    /// Calls `f(revision, row)` for every `kv_rev` row with main revision in `[from, to]`, in
    /// order, until `f` returns false.
    fn kv_scan(&self, from: i64, to: i64, f: &mut dyn FnMut(Revision, &[u8]) -> Result<bool>) -> Result<()>;
}

fn kv_scan_with(mut it: DBRawIteratorWithThreadMode<'_, DB>, from: i64, f: &mut dyn FnMut(Revision, &[u8]) -> Result<bool>) -> Result<()> {
    it.seek(codec::rev_key(Revision::new(from, 0)));
    while let Some((k, v)) = it.item() {
        let rev = codec::decode_rev_key(k).ok_or_else(|| Error::Storage("corrupt kv_rev key".into()))?;
        if !f(rev, v)? {
            return Ok(());
        }
        it.next();
    }
    Ok(it.status()?)
}

fn kv_scan_options(to: i64) -> ReadOptions {
    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(codec::rev_key(Revision::new(to.saturating_add(1), 0)).to_vec());
    ro
}

fn index_read_options(upper: Option<Vec<u8>>) -> ReadOptions {
    let mut ro = ReadOptions::default();
    if let Some(upper) = upper {
        ro.set_iterate_upper_bound(upper);
    }
    ro
}

impl StateRead for StateView<'_> {
    fn index_cursor(&self, upper: Option<Vec<u8>>) -> IndexCursor<'_> {
        IndexCursor { it: self.snap.raw_iterator_cf_opt(cf(self.db, CF_KEY_INDEX), index_read_options(upper)) }
    }
    fn newest(&self, key: &[u8]) -> Lookup {
        match self.newest.get(key) {
            // The key may have been compacted away after this view was taken.
            Lookup::Absent => Lookup::Unknown,
            known => known,
        }
    }
    fn kv_get(&self, rev: Revision) -> Result<Option<Vec<u8>>> {
        Ok(self.snap.get_cf(cf(self.db, CF_KV_REV), codec::rev_key(rev))?)
    }
    fn kv_multi_get(&self, revs: &[Revision]) -> Result<Vec<Option<Vec<u8>>>> {
        let kv = cf(self.db, CF_KV_REV);
        self.snap.multi_get_cf(revs.iter().map(|r| (kv, codec::rev_key(*r)))).into_iter().map(|r| r.map_err(Error::from)).collect()
    }
    fn kv_scan(&self, from: i64, to: i64, f: &mut dyn FnMut(Revision, &[u8]) -> Result<bool>) -> Result<()> {
        kv_scan_with(self.snap.raw_iterator_cf_opt(cf(self.db, CF_KV_REV), kv_scan_options(to)), from, f)
    }
}

impl StateRead for StateDb {
    fn index_cursor(&self, upper: Option<Vec<u8>>) -> IndexCursor<'_> {
        IndexCursor { it: self.db.raw_iterator_cf_opt(cf(&self.db, CF_KEY_INDEX), index_read_options(upper)) }
    }
    /// Exact, as the live database is read only by the applier, between its writes.
    fn newest(&self, key: &[u8]) -> Lookup {
        self.newest.get(key)
    }
    fn kv_get(&self, rev: Revision) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(cf(&self.db, CF_KV_REV), codec::rev_key(rev))?)
    }
    fn kv_multi_get(&self, revs: &[Revision]) -> Result<Vec<Option<Vec<u8>>>> {
        let kv = cf(&self.db, CF_KV_REV);
        self.db.multi_get_cf(revs.iter().map(|r| (kv, codec::rev_key(*r)))).into_iter().map(|r| r.map_err(Error::from)).collect()
    }
    fn kv_scan(&self, from: i64, to: i64, f: &mut dyn FnMut(Revision, &[u8]) -> Result<bool>) -> Result<()> {
        kv_scan_with(self.db.raw_iterator_cf_opt(cf(&self.db, CF_KV_REV), kv_scan_options(to)), from, f)
    }
}

/// One atomic write to the state database.
#[derive(Default)]
pub struct StateBatch {
    batch: WriteBatch,
    /// What the batch does to `key_index`, for the newest-row map (only while it is built).
    index: Vec<Change>,
}

impl StateBatch {
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

/// Which part of the state a batch or scan touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Meta,
    KvRev,
    KeyIndex,
    Lease,
    LeaseKeys,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Meta => CF_META,
            Table::KvRev => CF_KV_REV,
            Table::KeyIndex => CF_KEY_INDEX,
            Table::Lease => CF_LEASE,
            Table::LeaseKeys => CF_LEASE_KEYS,
        }
    }
    pub const ALL: [Table; 5] = [Table::Meta, Table::KvRev, Table::KeyIndex, Table::Lease, Table::LeaseKeys];
    pub fn from_id(id: u8) -> Option<Table> {
        Table::ALL.get(id as usize).copied()
    }
    pub fn id(self) -> u8 {
        Table::ALL.iter().position(|t| *t == self).expect("listed") as u8
    }
}

impl StateDb {
    pub fn open(path: &Path) -> Result<Self> {
        Ok(StateDb { db: open(path, &STATE_CFS)?, newest: Newest::default() })
    }

    /// Builds the in-memory map of each key's newest `key_index` row (a scan of the whole
    /// index), after which one-key reads at or above a key's newest revision skip the seek. Done
    /// for the live database only: a copy opened to be dumped or restored has no use for it.
    pub fn index_newest(&self) -> Result<()> {
        let mut builder = newest::Builder::default();
        let mut it = self.db.raw_iterator_cf(cf(&self.db, CF_KEY_INDEX));
        it.seek_to_first();
        while let Some((k, v)) = it.item() {
            builder.row(k, v.first().copied().unwrap_or(codec::TAG_PUT))?;
            it.next();
        }
        it.status()?;
        self.newest.install(builder);
        Ok(())
    }

    pub fn view(&self) -> StateView<'_> {
        StateView { db: &self.db, snap: self.db.snapshot(), newest: &self.newest }
    }

    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(cf(&self.db, table.name()), key)?)
    }

    pub fn put(&self, batch: &mut StateBatch, table: Table, key: &[u8], value: &[u8]) {
        if table == Table::KeyIndex && self.newest.enabled() {
            batch.index.push(Change::of_row(key, Some(value.first().copied().unwrap_or(codec::TAG_PUT))));
        }
        batch.batch.put_cf(cf(&self.db, table.name()), key, value);
    }

    /// Writes the `key_index` row of the user key `key` at `rev` (what `put` would do with the
    /// encoded row, without decoding the key back for the newest-row map).
    pub fn put_index(&self, batch: &mut StateBatch, key: &[u8], rev: Revision, tag: u8) {
        if self.newest.enabled() {
            batch.index.push(Change::Put { key: key.into(), rev, tag });
        }
        batch.batch.put_cf(cf(&self.db, CF_KEY_INDEX), codec::index_key(key, rev), [tag]);
    }

    pub fn delete(&self, batch: &mut StateBatch, table: Table, key: &[u8]) {
        if table == Table::KeyIndex && self.newest.enabled() {
            batch.index.push(Change::of_row(key, None));
        }
        batch.batch.delete_cf(cf(&self.db, table.name()), key);
    }

    /// Applies a batch. Not synced: the raft log is the durable record, and the applied index
    /// travels in the same batch, so a lost tail is re-applied at start.
    ///
    /// The batch's `key_index` changes reach the newest-row map first: a reader may find a row
    /// there before RocksDB has it (and then seeks, as it is above its read revision), never
    /// after. If the write fails the map may be ahead for good, so it stops answering.
    pub fn write(&self, batch: StateBatch) -> Result<()> {
        let staged = !batch.index.is_empty();
        if staged {
            self.newest.stage(batch.index);
        }
        let written = self.db.write(batch.batch);
        if written.is_err() && staged {
            self.newest.disable();
        }
        Ok(written?)
    }

    /// Every `(key, value)` of `table` with `start <= key < end`, in order, in chunks handed to `f`
    /// (so a large scan never sits whole in memory). `f` returns false to stop.
    pub fn scan(&self, table: Table, start: &[u8], end: Option<&[u8]>, mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>) -> Result<()> {
        let mut ro = ReadOptions::default();
        if let Some(end) = end {
            ro.set_iterate_upper_bound(end.to_vec());
        }
        let mut it = self.db.raw_iterator_cf_opt(cf(&self.db, table.name()), ro);
        it.seek(start);
        while let Some((k, v)) = it.item() {
            if !f(k, v)? {
                return Ok(());
            }
            it.next();
        }
        Ok(it.status()?)
    }

    /// A hard-linked copy of the database at `path`: a consistent point-in-time view for snapshots.
    pub fn checkpoint(&self, path: &Path) -> Result<()> {
        Ok(Checkpoint::new(&self.db)?.create_checkpoint(path)?)
    }

    /// Persists everything written so far (before the raft log behind it is purged).
    pub fn flush(&self) -> Result<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// On-disk size in bytes (SST files plus memtables), for Status.dbSize.
    pub fn size(&self) -> u64 {
        let prop = |name: &str| -> u64 {
            STATE_CFS
                .iter()
                .filter_map(|c| self.db.property_int_value_cf(cf(&self.db, c), name).ok().flatten())
                .sum()
        };
        prop("rocksdb.total-sst-files-size") + prop("rocksdb.cur-size-all-mem-tables")
    }

    /// Bytes held by live data (estimate), for Status.dbSizeInUse.
    pub fn size_in_use(&self) -> u64 {
        STATE_CFS
            .iter()
            .filter_map(|c| self.db.property_int_value_cf(cf(&self.db, c), "rocksdb.estimate-live-data-size").ok().flatten())
            .sum::<u64>()
            + STATE_CFS
                .iter()
                .filter_map(|c| self.db.property_int_value_cf(cf(&self.db, c), "rocksdb.cur-size-all-mem-tables").ok().flatten())
                .sum::<u64>()
    }

    /// Rewrites every table's files, dropping deleted rows and their tombstones (etcd's
    /// defragment): the space freed by compaction is returned to the file system.
    pub fn defragment(&self) -> Result<()> {
        let mut options = rocksdb::CompactOptions::default();
        options.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        for name in STATE_CFS {
            self.db.flush_cf(cf(&self.db, name))?;
            self.db.compact_range_cf_opt(cf(&self.db, name), None::<&[u8]>, None::<&[u8]>, &options);
        }
        Ok(())
    }

    /// Deletes the rows of `table` with key in `[start, end)` (compaction of whole ranges).
    pub fn delete_range(&self, batch: &mut StateBatch, table: Table, start: &[u8], end: &[u8]) {
        if table == Table::KeyIndex && self.newest.enabled() {
            batch.index.push(Change::Unknown);
        }
        batch.batch.delete_range_cf(cf(&self.db, table.name()), start, end);
    }
}

pub const REV_KEY_SIZE: usize = REV_KEY_LEN;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_kept_in_rocksdb_moves_into_segments() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rows: Vec<(u64, Vec<u8>)> = (3..2500).map(|i| (i, format!("entry {i}").into_bytes())).collect();
        {
            let db = open(dir.path(), &RAFT_CFS).expect("open");
            let mut batch = WriteBatch::default();
            for (index, raw) in &rows {
                batch.put_cf(cf(&db, CF_RAFT_LOG), index.to_be_bytes(), raw);
            }
            db.write(batch).expect("write");
        }
        {
            // A segment left by a move cut short: the move starts over.
            let wal = Wal::open(&dir.path().join(WAL_DIR), None, 4096).expect("open the segments");
            wal.append(&rows[..10]).expect("append");
        }
        let raft = RaftDb::open_with(dir.path(), 4096).expect("open and move");
        assert_eq!(raft.entries(0, u64::MAX).expect("read"), rows);
        assert!(raft.db.iterator_cf(cf(&raft.db, CF_RAFT_LOG), rocksdb::IteratorMode::Start).next().is_none(), "RocksDB's copy is gone");
        drop(raft);
        let raft = RaftDb::open_with(dir.path(), 4096).expect("reopen");
        assert_eq!(raft.entries(0, u64::MAX).expect("read"), rows);
        assert_eq!(raft.last_entry().expect("last"), rows.last().map(|(_, raw)| raw.clone()));
        raft.purge_upto(2000, b"meta").expect("purge");
        drop(raft);
        let raft = RaftDb::open_with(dir.path(), 4096).expect("reopen after a purge");
        assert_eq!(raft.entries(0, u64::MAX).expect("read"), rows[1998..].to_vec(), "the purge point is read back at open");
    }
}
