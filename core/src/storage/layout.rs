//! Where a member keeps its files under `--data-dir`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::names::{RAFT_DIR, SNAPSHOT_DIR, STATE_POINTER};
use crate::error::{Error, Result};

const FIRST_STATE_DIR: &str = "state-0";

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

fn io(e: std::io::Error) -> Error {
    Error::Storage(e.to_string())
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Result<Layout> {
        let layout = Layout { root: root.into() };
        fs::create_dir_all(layout.snapshot_dir()).map_err(io)?;
        Ok(layout)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn raft_dir(&self) -> PathBuf {
        self.root.join(RAFT_DIR)
    }

    pub fn snapshot_dir(&self) -> PathBuf {
        self.root.join(SNAPSHOT_DIR)
    }

    /// The live state directory, as named by the pointer file.
    pub fn state_dir(&self) -> Result<PathBuf> {
        match fs::read_to_string(self.root.join(STATE_POINTER)) {
            Ok(name) => Ok(self.root.join(name.trim())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(self.root.join(FIRST_STATE_DIR)),
            Err(e) => Err(io(e)),
        }
    }

    /// A fresh directory name for a state database being installed from a snapshot.
    pub fn next_state_dir(&self) -> Result<PathBuf> {
        let current = self.state_dir()?;
        let n: u64 = current
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("state-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let next = self.root.join(format!("state-{}", n + 1));
        if next.exists() {
            fs::remove_dir_all(&next).map_err(io)?;
        }
        Ok(next)
    }

    /// Makes `dir` the live state directory: the pointer is replaced atomically and fsynced.
    pub fn switch_state_dir(&self, dir: &Path) -> Result<()> {
        let name = dir.file_name().and_then(|n| n.to_str()).ok_or_else(|| Error::Storage("bad state dir".into()))?;
        let tmp = self.root.join(format!("{STATE_POINTER}.tmp"));
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(name.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, self.root.join(STATE_POINTER)).map_err(io)?;
        fs::File::open(&self.root).and_then(|d| d.sync_all()).map_err(io)
    }

    /// Removes state directories that are no longer live (left by an earlier install).
    pub fn remove_stale_state_dirs(&self) -> Result<()> {
        let live = self.state_dir()?;
        for entry in fs::read_dir(&self.root).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let is_state = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("state-"));
            if is_state && path != live && path.is_dir() {
                fs::remove_dir_all(&path).map_err(io)?;
            }
        }
        Ok(())
    }
}
