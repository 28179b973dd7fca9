//! Raft: the openraft type configuration, storage adapters and transport. The only module
//! that names openraft.

pub mod framed;
pub mod log_store;
pub mod network;
pub mod replies;
pub(crate) mod snapshot;
pub mod state_machine;
pub mod types;

pub use types::{Member, Raft, TypeConfig};

#[cfg(test)]
mod tests;
