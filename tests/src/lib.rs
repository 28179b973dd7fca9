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
pub mod http;
pub mod pki;
pub mod suite;
pub mod wait;

pub use cluster::{cluster_or_skip, connect, Backend, Cluster, Schemes, ELECTION_TIMEOUT, START_TIMEOUT};
pub use etcdctl::{Etcdctl, Input, Ran};
pub use grpc::{assert_grpc_error, grpc_code, grpc_message, grpc_status};
pub use suite::{run_checks, Check, CheckContext, CheckFuture};
pub use wait::wait_until;

/// The `tests` package directory, as cargo names it when it runs the tests. Read at run time:
/// a test binary built from a clone elsewhere that shares the target directory (CI's cache)
/// can count as fresh, and would carry that clone's path if it were compiled in.
pub fn package_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

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

/// Starts a cluster with `flags` on every member and hands it to `scenario`; skips (and says
/// so) when etcdctl or the backend is not installed. A cluster that fails to start fails the
/// test.
pub async fn run_etcdctl_scenario<F, Fut>(backend: Backend, size: usize, flags: &[&str], scenario: F)
where
    F: FnOnce(Cluster) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if binary::etcdctl().is_none() {
        eprintln!("skipped: no etcdctl installed");
        return;
    }
    let started = Cluster::start_with(backend, size, flags)
        .await
        .unwrap_or_else(|error| panic!("could not start a {size}-member {} cluster: {error:#}", backend.name()));
    match started {
        Some(cluster) => scenario(cluster).await,
        None => eprintln!("skipped: no {} installed", backend.name()),
    }
}

/// `crash_scenario!(name)` runs `async fn name(cluster: Cluster)` on three members of Cairn
/// and of etcd 3.4, the reference for crash scenarios: etcd 3.5.0-3.5.2 can lose acknowledged
/// writes on a member that crashes and restarts (the consistent index was not saved
/// atomically; fixed in 3.5.3, reference/etcd-api.md §8), and a reference that fails by its
/// own bug would make the suites flaky.
#[macro_export]
macro_rules! crash_scenario {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cairn() {
                $crate::run_scenario($crate::Backend::Cairn, 3, super::$scenario).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn etcd34() {
                $crate::run_scenario($crate::Backend::Etcd34, 3, super::$scenario).await;
            }
        }
    };
}
