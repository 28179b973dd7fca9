//! cairn-core: the replicated state machine of one Cairn member. It stores etcd's MVCC model in
//! RocksDB, replicates writes with openraft and answers the etcd KV API. No servers here: the
//! gateway calls [`node::Node`].

pub mod backup;
pub mod error;
pub mod lease;
pub mod member;
pub mod metrics;
pub mod mvcc;
pub mod node;
pub mod raft;
pub mod storage;
pub mod watch;
mod validate;

pub use error::{Error, Result};
pub use node::{Config, Node, Status};
