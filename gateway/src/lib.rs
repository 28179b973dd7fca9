//! cairn-gateway: the client and peer ports of a Cairn member, and the `cairn` binary.

pub mod browser;
pub mod cluster;
pub mod coord;
pub mod election;
pub mod error;
pub mod flags;
pub mod http;
pub mod kv;
pub mod learner;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod metrics;
pub mod peer;
pub mod routes;
pub mod server;
pub mod tls;
pub mod watch;
