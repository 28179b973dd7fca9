//! Every column-family and meta-key name, in one place (see DESIGN.md "Storage").

/// The raft database (`<data-dir>/raft`): written with sync, like etcd's `wal/`. The log's
/// entries live in segment files beside it (`wal.rs`); `raft_log` is read only to move the
/// entries of a data dir written before them.
pub const CF_RAFT_LOG: &str = "raft_log";
pub const CF_RAFT_META: &str = "raft_meta";
pub const RAFT_CFS: [&str; 2] = [CF_RAFT_LOG, CF_RAFT_META];

pub const META_VOTE: &[u8] = b"vote";
pub const META_COMMITTED: &[u8] = b"committed";
pub const META_LAST_PURGED: &[u8] = b"last_purged";
/// The index of `META_LAST_PURGED`, as 8 bytes big-endian, for the segment log to read at open.
pub const META_PURGED_INDEX: &[u8] = b"purged_index";
/// This member's identity: written once at bootstrap and read back on every restart.
pub const META_IDENTITY: &[u8] = b"identity";

/// The state database (`<data-dir>/state-*`): unsynced, rebuilt by log replay past
/// `last_applied`, like etcd's `db`.
pub const CF_META: &str = "meta";
pub const CF_KV_REV: &str = "kv_rev";
pub const CF_KEY_INDEX: &str = "key_index";
pub const CF_LEASE: &str = "lease";
pub const CF_LEASE_KEYS: &str = "lease_keys";
pub const STATE_CFS: [&str; 5] = [CF_META, CF_KV_REV, CF_KEY_INDEX, CF_LEASE, CF_LEASE_KEYS];

pub const META_LAST_APPLIED: &[u8] = b"last_applied";
pub const META_MEMBERSHIP: &[u8] = b"last_membership";
pub const META_CURRENT_REV: &[u8] = b"current_rev";
pub const META_COMPACT_REV: &[u8] = b"compact_rev";
/// The active alarms (an encoded etcdserverpb.AlarmResponse without header).
pub const META_ALARMS: &[u8] = b"alarms";
/// Members added as voters that are still learners (their IDs, 8 bytes each, big-endian).
pub const META_PENDING_VOTERS: &[u8] = b"pending_voters";

/// The file in the data dir that names the live state directory; swapped atomically when a
/// raft snapshot is installed.
pub const STATE_POINTER: &str = "state.current";
pub const RAFT_DIR: &str = "raft";
/// The raft log's segment files, inside `RAFT_DIR`.
pub const WAL_DIR: &str = "wal";
pub const SNAPSHOT_DIR: &str = "snapshots";
