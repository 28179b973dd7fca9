//! Raft snapshots as files: a dump of every table of the state database, written from a
//! checkpoint (a consistent, hard-linked copy) and read back in chunks, so that neither side ever
//! holds a whole snapshot in memory.
//!
//! Format: the magic, then records `[table u8][key len u32][key][value len u32][value]`, then
//! the end tag.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::storage::{StateBatch, StateDb, Table};

const MAGIC: &[u8; 8] = b"CAIRNSS1";
const END: u8 = 0xFF;
const INSTALL_BATCH_BYTES: usize = 4 << 20;

fn io(e: std::io::Error) -> Error {
    Error::Storage(format!("snapshot: {e}"))
}

/// Writes every row of `db` to `path`, and fsyncs the file.
pub fn dump(db: &StateDb, path: &Path) -> Result<()> {
    let file = File::create(path).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(MAGIC).map_err(io)?;
    for table in Table::ALL {
        db.scan(table, &[], None, |k, v| {
            out.write_all(&[table.id()]).map_err(io)?;
            for part in [k, v] {
                out.write_all(&(part.len() as u32).to_be_bytes()).map_err(io)?;
                out.write_all(part).map_err(io)?;
            }
            Ok(true)
        })?;
    }
    out.write_all(&[END]).map_err(io)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)
}

fn read_part(input: &mut impl Read) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len).map_err(io)?;
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    input.read_exact(&mut buf).map_err(io)?;
    Ok(buf)
}

/// Loads a snapshot file into an empty state database, in bounded batches.
pub fn load(file: File, db: &StateDb) -> Result<()> {
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic).map_err(io)?;
    if &magic != MAGIC {
        return Err(Error::Storage("not a cairn snapshot".into()));
    }
    let mut batch = StateBatch::default();
    let mut bytes = 0usize;
    loop {
        let mut tag = [0u8; 1];
        input.read_exact(&mut tag).map_err(io)?;
        if tag[0] == END {
            break;
        }
        let table = Table::from_id(tag[0]).ok_or_else(|| Error::Storage(format!("snapshot: unknown table {}", tag[0])))?;
        let key = read_part(&mut input)?;
        let value = read_part(&mut input)?;
        bytes += key.len() + value.len();
        db.put(&mut batch, table, &key, &value);
        if bytes >= INSTALL_BATCH_BYTES {
            db.write(std::mem::take(&mut batch))?;
            bytes = 0;
        }
    }
    db.write(batch)?;
    db.flush()
}
