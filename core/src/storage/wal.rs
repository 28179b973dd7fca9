//! The raft log's entries, in segment files of our own under `<data-dir>/raft/wal/`, as etcd
//! keeps its `wal/`. RocksDB held them before; its write-ahead log grows its file on every write,
//! so each fsync also commits the file's new size to the file system's journal, and every entry
//! was then written twice more (memtable flush, compaction) only to be deleted by a purge.
//!
//! A segment is allocated whole when it is created (`SEGMENT_BYTES`, with `fallocate`, so it
//! reads as zeros past what was written), and records are written into it in place: an fsync
//! then flushes data blocks only. Each record is
//!
//! ```text
//! [payload length: u32 LE][crc32 of index and payload: u32 LE][index: u64 LE][payload]
//! ```
//!
//! and a segment's records end at the first all-zero header. A segment is named by the index of
//! its first entry (`{first:020}.wal`), and the entries of all segments, oldest first, are
//! consecutive. On open, a record that does not check in the newest segment (a write cut short
//! by a crash, never acknowledged as durable) ends the log: it and whatever follows are zeroed,
//! so that later appends cannot be followed by leftovers of older ones. In an older segment,
//! which was synced whole before the next one began, it is damage, and the open fails.
//!
//! Entries at or below the purge point are never read; a segment is deleted once all of its
//! entries are purged and it is not the one being written.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};

/// How big a segment is allocated. A batch that does not fit starts the next segment; one
/// larger than a whole segment grows the file past it.
pub const SEGMENT_BYTES: u64 = 64 << 20;

const HEADER: usize = 16;
const SUFFIX: &str = ".wal";
/// Zeros are written in chunks of this size.
const ZEROS: usize = 1 << 20;

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Storage(format!("raft log: {what} {}: {e}", path.display()))
}

fn checksum(index: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&index.to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn put_record(buf: &mut Vec<u8>, index: u64, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&checksum(index, payload).to_le_bytes());
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// A record's header: `(payload length, checksum, index)`.
fn header(raw: &[u8]) -> (usize, u32, u64) {
    let u32_at = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().expect("4 bytes"));
    (u32_at(0) as usize, u32_at(4), u64::from_le_bytes(raw[8..16].try_into().expect("8 bytes")))
}

/// The payload of the record at the start of `raw`, if it is a whole record of entry `index`
/// and its checksum holds.
fn record(raw: &[u8], index: u64) -> Option<&[u8]> {
    let (len, sum, at) = header(raw.get(..HEADER)?);
    raw.get(HEADER..HEADER + len).filter(|p| len > 0 && at == index && checksum(index, p) == sum)
}

/// The file name of the segment whose first entry is `first`.
fn file_name(first: u64) -> String {
    format!("{first:020}{SUFFIX}")
}

struct Segment {
    first: u64,
    path: PathBuf,
    file: Arc<File>,
    /// Where each entry's record starts: entry `first + i` at `offsets[i]`.
    offsets: Vec<u64>,
    /// Bytes written; every byte past it is zero.
    end: u64,
}

impl Segment {
    fn next(&self) -> u64 {
        self.first + self.offsets.len() as u64
    }

    /// The bytes of the records of entries `[from, to)`, all of them in this segment.
    fn span(&self, from: u64, to: u64) -> (u64, u64) {
        let at = |i: u64| if i == self.next() { self.end } else { self.offsets[(i - self.first) as usize] };
        (at(from), at(to))
    }
}

struct Log {
    segments: VecDeque<Segment>,
    /// Entries at or below this index are gone.
    purged: Option<u64>,
}

impl Log {
    fn first_unpurged(&self) -> u64 {
        self.purged.map_or(0, |p| p + 1)
    }

    /// The index after the newest entry, if there is one (purged or not).
    fn next(&self) -> Option<u64> {
        self.segments.iter().rev().find(|s| !s.offsets.is_empty()).map(Segment::next)
    }
}

pub struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    log: Mutex<Log>,
}

impl Wal {
    /// Opens the segments in `dir` (created if missing); `purged` is the purge point recorded
    /// beside them.
    pub fn open(dir: &Path, purged: Option<u64>, segment_bytes: u64) -> Result<Wal> {
        fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
        let mut named = Vec::new();
        for item in fs::read_dir(dir).map_err(|e| io("list", dir, e))? {
            let path = item.map_err(|e| io("list", dir, e))?.path();
            let first = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(SUFFIX)).and_then(|n| n.parse::<u64>().ok());
            if let Some(first) = first {
                named.push((first, path));
            }
        }
        named.sort();
        // Segments before the newest one that starts at or below the purge point hold only
        // purged entries.
        if let Some(keep) = purged.and_then(|p| named.iter().rposition(|(first, _)| *first <= p + 1)) {
            for (_, path) in named.drain(..keep) {
                fs::remove_file(&path).map_err(|e| io("remove", &path, e))?;
            }
        }
        let count = named.len();
        let mut log = Log { segments: VecDeque::new(), purged };
        let mut cut = false;
        for (k, (first, path)) in named.into_iter().enumerate() {
            if cut {
                // Past the end of the log: a segment that followed a record cut short, or one
                // that does not continue the entries before it.
                tracing::warn!("raft log: removing {}, which is past the log's end", path.display());
                fs::remove_file(&path).map_err(|e| io("remove", &path, e))?;
                continue;
            }
            let file = OpenOptions::new().read(true).write(true).open(&path).map_err(|e| io("open", &path, e))?;
            if log.segments.back().is_some_and(|prev| prev.next() != first) {
                cut = true;
                tracing::warn!("raft log: removing {}, which does not continue the log", path.display());
                fs::remove_file(&path).map_err(|e| io("remove", &path, e))?;
                continue;
            }
            let (offsets, end, whole) = scan(&file, first).map_err(|e| io("read", &path, e))?;
            if !whole && k + 1 < count {
                // A segment was synced whole before the next one was started: this is not a
                // write cut short but damage, and what follows it was acknowledged.
                return Err(Error::Storage(format!("raft log: {} is corrupt at byte {end}, before the segments after it", path.display())));
            }
            if !whole {
                cut = true;
                tracing::warn!("raft log: {} ends in a record cut short at byte {end}; the log ends before it", path.display());
                zero_from(&file, end).map_err(|e| io("zero", &path, e))?;
            }
            log.segments.push_back(Segment { first, path, file: Arc::new(file), offsets, end });
        }
        Ok(Wal { dir: dir.to_path_buf(), segment_bytes, log: Mutex::new(log) })
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().expect("the raft log lock is never poisoned: nothing panics under it")
    }

    /// Appends encoded entries with consecutive indexes, continuing the log (or, once all of
    /// it is purged, from past the purge point). Written at once, durable after `sync`.
    pub fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<()> {
        let Some(&(first, _)) = entries.first() else { return Ok(()) };
        let mut buf = Vec::with_capacity(entries.iter().map(|(_, p)| HEADER + p.len()).sum());
        let mut starts = Vec::with_capacity(entries.len());
        for (i, (index, payload)) in entries.iter().enumerate() {
            if *index != first + i as u64 || payload.is_empty() || payload.len() > u32::MAX as usize {
                return Err(Error::Storage(format!("raft log: bad append of entry {index} (from {first})")));
            }
            starts.push(buf.len() as u64);
            put_record(&mut buf, *index, payload);
        }
        let mut log = self.log();
        let from = log.first_unpurged();
        match log.next() {
            Some(next) if next != first && !(next <= from && first == from) => {
                return Err(Error::Storage(format!("raft log: an append from entry {first} does not continue the log at {next}")));
            }
            _ => {}
        }
        let roll = match log.segments.back() {
            None => true,
            Some(s) if s.offsets.is_empty() => s.first != first,
            Some(s) => s.next() != first || s.end + buf.len() as u64 > self.segment_bytes,
        };
        if roll {
            self.roll(&mut log, first)?;
        }
        let s = log.segments.back_mut().expect("rolled or continued");
        s.file.write_all_at(&buf, s.end).map_err(|e| io("write", &s.path, e))?;
        s.offsets.extend(starts.iter().map(|at| s.end + at));
        s.end += buf.len() as u64;
        Ok(())
    }

    /// Starts a new segment whose first entry will be `first`. The one being written is synced
    /// first (the syncer only ever syncs the newest).
    fn roll(&self, log: &mut Log, first: u64) -> Result<()> {
        if let Some(s) = log.segments.back() {
            if s.offsets.is_empty() {
                let s = log.segments.pop_back().expect("checked");
                fs::remove_file(&s.path).map_err(|e| io("remove", &s.path, e))?;
            } else {
                s.file.sync_data().map_err(|e| io("sync", &s.path, e))?;
            }
        }
        let path = self.dir.join(file_name(first));
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).map_err(|e| io("create", &path, e))?;
        match rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, self.segment_bytes) {
            Ok(()) => {}
            // A file system without fallocate gets a sparse file: correct, only slower to sync.
            Err(rustix::io::Errno::OPNOTSUPP) => file.set_len(self.segment_bytes).map_err(|e| io("size", &path, e))?,
            Err(e) => return Err(io("allocate", &path, e.into())),
        }
        file.sync_all().map_err(|e| io("sync", &path, e))?;
        sync_dir(&self.dir)?;
        log.segments.push_back(Segment { first, path, file: Arc::new(file), offsets: Vec::new(), end: 0 });
        self.remove_purged(log)
    }

    /// Deletes every segment but the newest whose entries are all purged.
    fn remove_purged(&self, log: &mut Log) -> Result<()> {
        while log.segments.len() > 1 && log.segments.front().is_some_and(|s| s.next() <= log.first_unpurged()) {
            let s = log.segments.pop_front().expect("checked");
            fs::remove_file(&s.path).map_err(|e| io("remove", &s.path, e))?;
        }
        Ok(())
    }

    /// Makes every append made so far durable.
    pub fn sync(&self) -> Result<()> {
        // The newest segment is the only one with unsynced writes (`roll` syncs the one before);
        // its handle is taken so that appends go on while it syncs.
        let newest = self.log().segments.back().map(|s| (s.file.clone(), s.path.clone()));
        match newest {
            Some((file, path)) => file.sync_data().map_err(|e| io("sync", &path, e)),
            None => Ok(()),
        }
    }

    /// Deletes every entry with index >= `from`, durably before it returns.
    pub fn truncate(&self, from: u64) -> Result<()> {
        let mut log = self.log();
        // Whole segments first (they hold only entries >= from), then the tail of the one
        // that holds `from`.
        let mut removed = false;
        while log.segments.back().is_some_and(|s| s.first >= from && (log.segments.len() > 1 || s.first > from)) {
            let s = log.segments.pop_back().expect("checked");
            fs::remove_file(&s.path).map_err(|e| io("remove", &s.path, e))?;
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        let Some(s) = log.segments.back_mut() else { return Ok(()) };
        if from >= s.next() {
            return Ok(());
        }
        // The loop above leaves a newest segment with `first <= from`.
        let kept = (from - s.first) as usize;
        let at = s.offsets[kept];
        zero_range(&s.file, at, s.end).map_err(|e| io("zero", &s.path, e))?;
        s.file.sync_data().map_err(|e| io("sync", &s.path, e))?;
        s.offsets.truncate(kept);
        s.end = at;
        Ok(())
    }

    /// Forgets every entry with index <= `upto` (the caller has recorded the purge point) and
    /// deletes the segments left with none.
    pub fn purge(&self, upto: u64) -> Result<()> {
        let mut log = self.log();
        log.purged = Some(log.purged.map_or(upto, |p| p.max(upto)));
        self.remove_purged(&mut log)
    }

    /// The encoded entries with index in `[start, end)`, in order. Read under the lock, so that
    /// a truncation cannot zero what is being read (the newest entries are read from the log
    /// store's cache, so this is the rare path: a lagging follower, a replay at start).
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        let log = self.log();
        let start = start.max(log.first_unpurged());
        let mut out = Vec::new();
        for s in &log.segments {
            let (from, to) = (start.max(s.first), end.min(s.next()));
            if from >= to {
                continue;
            }
            let (lo, hi) = s.span(from, to);
            let mut raw = vec![0; (hi - lo) as usize];
            s.file.read_exact_at(&mut raw, lo).map_err(|e| io("read", &s.path, e))?;
            let mut rest = &raw[..];
            for index in from..to {
                let Some(payload) = record(rest, index) else {
                    return Err(Error::Storage(format!("raft log: entry {index} in {} is corrupt", s.path.display())));
                };
                out.push((index, payload.to_vec()));
                rest = &rest[HEADER + payload.len()..];
            }
        }
        Ok(out)
    }

    /// The newest entry, unless it is purged.
    pub fn last(&self) -> Result<Option<Vec<u8>>> {
        let last = {
            let log = self.log();
            log.next().filter(|&n| n > log.first_unpurged()).map(|n| n - 1)
        };
        match last {
            Some(index) => Ok(self.entries(index, index + 1)?.pop().map(|(_, e)| e)),
            None => Ok(None),
        }
    }

    /// Deletes every segment (the log is about to be written again from elsewhere).
    pub fn clear(&self) -> Result<()> {
        let mut log = self.log();
        for s in log.segments.drain(..) {
            fs::remove_file(&s.path).map_err(|e| io("remove", &s.path, e))?;
        }
        sync_dir(&self.dir)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("sync", dir, e))
}

/// Reads a segment's records: their offsets, the end of the last good one, and whether the
/// records ended cleanly (at a zero header or the file's end) rather than at a bad record.
fn scan(file: &File, first: u64) -> std::io::Result<(Vec<u64>, u64, bool)> {
    let len = file.metadata()?.len();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let (mut offsets, mut pos, mut raw) = (Vec::new(), 0u64, vec![0u8; HEADER]);
    loop {
        if pos + HEADER as u64 > len {
            return Ok((offsets, pos, true));
        }
        raw.resize(HEADER, 0);
        reader.read_exact(&mut raw)?;
        if raw.iter().all(|&b| b == 0) {
            return Ok((offsets, pos, true));
        }
        let (size, _, _) = header(&raw);
        if size == 0 || pos + (HEADER + size) as u64 > len {
            return Ok((offsets, pos, false));
        }
        raw.resize(HEADER + size, 0);
        reader.read_exact(&mut raw[HEADER..])?;
        if record(&raw, first + offsets.len() as u64).is_none() {
            return Ok((offsets, pos, false));
        }
        offsets.push(pos);
        pos += (HEADER + size) as u64;
    }
}

/// Zeros `[from, to)` of a file.
fn zero_range(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; ZEROS.min((to.saturating_sub(from)) as usize)];
    let mut at = from;
    while at < to {
        let n = zeros.len().min((to - at) as usize);
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Zeros a file from `from` to its end (only the chunks that are not zero already) and syncs it.
fn zero_from(file: &File, from: u64) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    let mut chunk = vec![0u8; ZEROS];
    let mut at = from;
    while at < len {
        let n = ZEROS.min((len - at) as usize);
        file.read_exact_at(&mut chunk[..n], at)?;
        if chunk[..n].iter().any(|&b| b != 0) {
            zero_range(file, at, at + n as u64)?;
        }
        at += n as u64;
    }
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: u64 = 4096;

    fn rows(range: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
        range.map(|i| (i, format!("entry {i} ").repeat(1 + (i % 7) as usize).into_bytes())).collect()
    }

    fn indexes(wal: &Wal) -> Vec<u64> {
        wal.entries(0, u64::MAX).expect("read").iter().map(|(i, _)| *i).collect()
    }

    /// A log in small segments holding `entries`, appended five at a time.
    fn small_segments_of(dir: &Path, entries: std::ops::Range<u64>) -> Wal {
        let wal = Wal::open(dir, None, SMALL).expect("open");
        for chunk in rows(entries).chunks(5) {
            wal.append(chunk).expect("append");
        }
        wal
    }

    /// Writes `bytes` over a segment file at `at`, as damage or a torn write would leave it.
    fn overwrite(path: &Path, at: u64, bytes: &[u8]) {
        let file = OpenOptions::new().write(true).open(path).expect("open segment");
        file.write_all_at(bytes, at).expect("overwrite");
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir).expect("list").map(|e| e.expect("entry").file_name().into_string().expect("utf-8")).collect();
        names.sort();
        names
    }

    #[test]
    fn entries_read_back_across_segments_and_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wal = Wal::open(dir.path(), None, SMALL).expect("open");
        assert_eq!(wal.last().expect("last"), None);
        for chunk in rows(0..200).chunks(9) {
            wal.append(chunk).expect("append");
        }
        wal.sync().expect("sync");
        assert!(files(dir.path()).len() >= 3, "small segments roll: {:?}", files(dir.path()));
        assert_eq!(wal.entries(0, u64::MAX).expect("read"), rows(0..200));
        assert_eq!(wal.entries(37, 151).expect("read"), rows(37..151));
        assert_eq!(wal.entries(199, 400).expect("read"), rows(199..200));
        assert_eq!(wal.last().expect("last"), Some(rows(199..200).remove(0).1));
        drop(wal);
        let wal = Wal::open(dir.path(), None, SMALL).expect("reopen");
        assert_eq!(wal.entries(0, u64::MAX).expect("read"), rows(0..200));
        wal.append(&rows(200..210)).expect("append after reopen");
        assert_eq!(indexes(&wal), (0..210).collect::<Vec<_>>());
    }

    #[test]
    fn a_segment_is_allocated_whole_and_written_in_place() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wal = Wal::open(dir.path(), None, 1 << 20).expect("open");
        wal.append(&rows(5..10)).expect("append");
        let path = dir.path().join(file_name(5));
        assert_eq!(fs::metadata(&path).expect("segment").len(), 1 << 20, "the size does not change as records are written");
        // A batch larger than a segment grows the file past its allocation.
        wal.append(&[(10, vec![7; 3 << 20])]).expect("append a large entry");
        assert_eq!(indexes(&wal), (5..11).collect::<Vec<_>>());
    }

    #[test]
    fn truncated_entries_never_come_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wal = Wal::open(dir.path(), None, SMALL).expect("open");
        wal.append(&rows(1..120)).expect("append");
        for chunk in rows(120..300).chunks(10) {
            wal.append(chunk).expect("append");
        }
        let before = files(dir.path()).len();
        wal.truncate(130).expect("truncate");
        assert!(files(dir.path()).len() < before, "segments past the cut are removed");
        assert_eq!(indexes(&wal), (1..130).collect::<Vec<_>>());
        // New entries at the same indexes and of the same sizes: the reopened log must not run
        // on into the old ones that followed them.
        let newer: Vec<(u64, Vec<u8>)> = rows(130..135).into_iter().map(|(i, raw)| (i, raw.to_ascii_uppercase())).collect();
        wal.append(&newer).expect("append");
        drop(wal);
        let wal = Wal::open(dir.path(), None, SMALL).expect("reopen");
        assert_eq!(indexes(&wal), (1..135).collect::<Vec<_>>());
        assert_eq!(wal.entries(130, 135).expect("read"), newer);
        // Truncating at a segment's first entry, and everything.
        wal.truncate(1).expect("truncate all");
        assert_eq!(indexes(&wal), Vec::<u64>::new());
        wal.append(&rows(1..3)).expect("append");
        assert_eq!(indexes(&wal), vec![1, 2]);
    }

    #[test]
    fn a_record_cut_short_ends_the_log_and_is_zeroed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wal = Wal::open(dir.path(), None, 1 << 16).expect("open");
        wal.append(&rows(0..50)).expect("append");
        let (lo, _) = wal.log().segments[0].span(40, 41);
        drop(wal);
        overwrite(&dir.path().join(file_name(0)), lo + HEADER as u64 + 2, b"garbage");
        let wal = Wal::open(dir.path(), None, 1 << 16).expect("reopen");
        assert_eq!(indexes(&wal), (0..40).collect::<Vec<_>>());
        // Entries 41.. were well formed, but follow the bad record: gone, and zeroed, so that a
        // new entry 40 of the same size cannot be followed by the old 41.
        let same_size = rows(40..41);
        wal.append(&same_size).expect("append");
        drop(wal);
        let wal = Wal::open(dir.path(), None, 1 << 16).expect("reopen again");
        assert_eq!(indexes(&wal), (0..41).collect::<Vec<_>>());
    }

    #[test]
    fn damage_is_an_error_where_it_cannot_be_a_write_cut_short() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wal = small_segments_of(dir.path(), 0..200);
        let (lo, _) = wal.log().segments[0].span(3, 4);
        let path = dir.path().join(file_name(0));
        overwrite(&path, lo + HEADER as u64, b"rot");
        let read = wal.entries(0, 10).expect_err("a damaged entry is not returned");
        assert!(read.to_string().contains("entry 3"), "{read}");
        drop(wal);
        let opened = Wal::open(dir.path(), None, SMALL).err().expect("a damaged sealed segment stops the open");
        assert!(opened.to_string().contains("corrupt"), "{opened}");
        assert!(path.exists(), "nothing is removed or zeroed");
    }

    #[test]
    fn purged_segments_are_removed_and_purged_entries_never_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wal = small_segments_of(dir.path(), 0..200);
        let before = files(dir.path()).len();
        wal.purge(150).expect("purge");
        assert!(files(dir.path()).len() < before);
        assert_eq!(indexes(&wal), (151..200).collect::<Vec<_>>());
        drop(wal);
        let wal = Wal::open(dir.path(), Some(150), SMALL).expect("reopen");
        assert_eq!(indexes(&wal), (151..200).collect::<Vec<_>>());
        // A snapshot past the log's end purges all of it; the log goes on after the snapshot.
        wal.purge(500).expect("purge past the end");
        assert_eq!(wal.last().expect("last"), None);
        assert!(wal.append(&rows(600..601)).is_err(), "a gap past the purge point is refused");
        wal.append(&rows(501..505)).expect("append after the snapshot");
        assert_eq!(indexes(&wal), (501..505).collect::<Vec<_>>());
        assert_eq!(files(dir.path()), vec![file_name(501)]);
        drop(wal);
        let wal = Wal::open(dir.path(), Some(500), SMALL).expect("reopen");
        assert_eq!(indexes(&wal), (501..505).collect::<Vec<_>>());
    }

    #[test]
    fn a_gap_in_the_log_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wal = Wal::open(dir.path(), None, SMALL).expect("open");
        wal.append(&rows(0..5)).expect("append");
        assert!(wal.append(&rows(6..8)).is_err());
        assert!(wal.append(&[(5, vec![1]), (7, vec![2])]).is_err(), "indexes within a batch are consecutive");
        assert!(wal.append(&[(5, vec![])]).is_err(), "an empty entry could not be told from the end");
        assert_eq!(indexes(&wal), (0..5).collect::<Vec<_>>());
    }

    #[test]
    fn a_segment_that_does_not_continue_the_log_is_dropped_on_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let wal = Wal::open(dir.path(), None, SMALL).expect("open");
            wal.append(&rows(0..10)).expect("append");
        }
        {
            // Left by a crash in the middle of a truncation, say.
            let stray = Wal::open(&dir.path().join("stray"), None, SMALL).expect("open");
            stray.append(&rows(20..25)).expect("append");
        }
        fs::rename(dir.path().join("stray").join(file_name(20)), dir.path().join(file_name(20))).expect("move");
        let wal = Wal::open(dir.path(), None, SMALL).expect("reopen");
        assert_eq!(indexes(&wal), (0..10).collect::<Vec<_>>());
        assert!(!dir.path().join(file_name(20)).exists());
    }
}
