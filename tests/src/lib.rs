//! Whole-system tests for Cairn. The harness starts real server processes (`cairn`, or a real
//! `etcd` to learn etcd's behaviour) on loopback ports chosen at run time; the suites in
//! `tests/` are written once against `etcd-client` and run against every backend
//! (see STYLE.md §2).
//!
//! Run them with `cargo build --release --bin cairn` and then
//! `cargo test --release -p cairn-tests`. The binaries come from `CAIRN_BIN`, `ETCD_BIN` and
//! `ETCDCTL_BIN` when set (see [`binary`]); etcd tests print `skipped: no etcd installed` and pass
//! when the machine has none.

pub mod bench;
pub mod binary;
pub mod cluster;
pub mod etcdctl;
pub mod grpc;
pub mod suite;
pub mod wait;

pub use cluster::{cluster_or_skip, connect, Backend, Cluster, ELECTION_TIMEOUT, START_TIMEOUT};
pub use etcdctl::{Etcdctl, Input, Ran};
pub use grpc::{assert_grpc_error, grpc_code, grpc_message, grpc_status};
pub use suite::{run_checks, Check, CheckContext, CheckFuture};
pub use wait::wait_until;

/// Starts a cluster (or skips, see [`cluster_or_skip`]) and hands it to `scenario`.
pub async fn run_scenario<F, Fut>(backend: Backend, size: usize, scenario: F)
where
    F: FnOnce(Cluster) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if let Some(cluster) = cluster_or_skip(backend, size).await {
        scenario(cluster).await;
    }
}
