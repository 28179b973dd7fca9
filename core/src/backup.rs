//! Backups: the file `etcdctl snapshot save` receives from Maintenance.Snapshot, and
//! `cairn snapshot restore`, which builds a new member's data dir from one.
//!
//! The file is a state-database dump (the raft snapshot format), zero-padded to a multiple of
//! 512 bytes and followed by the SHA-256 of everything before it: etcdctl refuses a download
//! whose length is not `N * 512 + 32` or whose trailer does not match (reference/etcd-api.md §0).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::raft::snapshot;
use crate::storage::layout::Layout;
use crate::storage::names::{META_ALARMS, META_LAST_APPLIED, META_MEMBERSHIP};
use crate::storage::{StateBatch, StateDb, Table};

const BLOCK: u64 = 512;
const CHECKSUM_BYTES: u64 = 32;

fn io(e: std::io::Error) -> Error {
    Error::Storage(format!("backup: {e}"))
}

/// Writes a backup of `db` into `dir` and returns its path: a checkpoint (a consistent view,
/// taken at once) is dumped, padded and sealed with its checksum. The caller removes the file.
pub fn write(db: &StateDb, dir: &Path, name: &str) -> Result<PathBuf> {
    let checkpoint = dir.join(format!("{name}.checkpoint"));
    let _ = std::fs::remove_dir_all(&checkpoint);
    db.checkpoint(&checkpoint)?;
    let path = dir.join(format!("{name}.snap"));
    let dumped = StateDb::open(&checkpoint).and_then(|copy| snapshot::dump(&copy, &path));
    let _ = std::fs::remove_dir_all(&checkpoint);
    dumped?;
    seal(&path)?;
    Ok(path)
}

/// Pads the file to whole blocks and appends the SHA-256 of its contents.
fn seal(path: &Path) -> Result<()> {
    let mut file = std::fs::OpenOptions::new().read(true).append(true).open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let padding = (BLOCK - len % BLOCK) % BLOCK;
    file.write_all(&vec![0u8; padding as usize]).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let digest = sha256_of(&mut file, len + padding)?;
    file.write_all(&digest).map_err(io)?;
    file.sync_all().map_err(io)
}

fn sha256_of(input: &mut impl Read, len: u64) -> Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut reader = BufReader::with_capacity(1 << 20, input.take(len));
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Checks a backup's length and trailer.
pub fn verify(path: &Path) -> Result<()> {
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len < CHECKSUM_BYTES || !(len - CHECKSUM_BYTES).is_multiple_of(BLOCK) {
        return Err(Error::Storage(format!("{}: not a snapshot file (no checksum trailer)", path.display())));
    }
    let digest = sha256_of(&mut file, len - CHECKSUM_BYTES)?;
    let mut trailer = [0u8; 32];
    file.seek(SeekFrom::Start(len - CHECKSUM_BYTES)).map_err(io)?;
    file.read_exact(&mut trailer).map_err(io)?;
    if digest != trailer {
        return Err(Error::Storage(format!("{}: snapshot checksum mismatch", path.display())));
    }
    Ok(())
}

/// Builds the state of a new member in `data_dir` (which must not exist or be empty) from a
/// backup. The raft log, membership and alarms of the old cluster are left behind: the member
/// is started with `--initial-cluster-state new` and founds a new cluster with the old data.
/// Returns the store's revision.
pub fn restore(backup: &Path, data_dir: &Path) -> Result<i64> {
    verify(backup)?;
    if std::fs::read_dir(data_dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(Error::Storage(format!("data-dir {:?} exists", data_dir.display().to_string())));
    }
    let layout = Layout::new(data_dir)?;
    let db = StateDb::open(&layout.state_dir()?)?;
    snapshot::load(File::open(backup).map_err(io)?, &db)?;
    let mut batch = StateBatch::default();
    for key in [META_LAST_APPLIED, META_MEMBERSHIP, META_ALARMS] {
        db.delete(&mut batch, Table::Meta, key);
    }
    db.write(batch)?;
    db.flush()?;
    let revision = crate::mvcc::Mvcc::new(db)?.current_revision();
    Ok(revision)
}

#[cfg(test)]
mod tests {
    use cairn_proto::cairnpb::{command, Command};
    use cairn_proto::etcdserverpb::{PutRequest, RangeRequest};

    use super::*;
    use crate::mvcc::Mvcc;

    #[test]
    fn a_backup_restores_every_version_and_rejects_tampering() {
        let source = tempfile::tempdir().expect("temp dir");
        let mvcc = Mvcc::new(StateDb::open(&source.path().join("state")).expect("open")).expect("load");
        for i in 0..50 {
            let put = PutRequest { key: format!("k{}", i % 7).into(), value: vec![b'v'; 100 + i], ..Default::default() };
            mvcc.apply(|a| drop(a.apply(&Command { op: Some(command::Op::Put(put)) }))).expect("apply");
        }
        let file = write(&mvcc.db(), source.path(), "backup").expect("backup");
        let len = std::fs::metadata(&file).expect("stat").len();
        assert_eq!((len - 32) % 512, 0, "N * 512 + 32 bytes");

        let target = tempfile::tempdir().expect("temp dir");
        let dir = target.path().join("member");
        assert_eq!(restore(&file, &dir).expect("restore"), 51);
        let restored = Mvcc::new(StateDb::open(&Layout::new(&dir).expect("layout").state_dir().expect("dir")).expect("open")).expect("load");
        let all = RangeRequest { key: vec![0], range_end: vec![0], ..Default::default() };
        assert_eq!(restored.range(&all).expect("range").kvs, mvcc.range(&all).expect("range").kvs);
        let old = RangeRequest { revision: 10, ..all };
        assert_eq!(restored.range(&old).expect("range").kvs, mvcc.range(&old).expect("range").kvs);
        drop(restored);
        assert!(restore(&file, &dir).is_err(), "an existing data dir is refused");

        let mut bytes = std::fs::read(&file).expect("read");
        bytes[10] ^= 1;
        std::fs::write(&file, bytes).expect("write");
        assert!(verify(&file).is_err(), "a damaged file is refused");
    }
}
