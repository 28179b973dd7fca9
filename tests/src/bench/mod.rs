//! `cairn-bench`, a load generator for etcd-compatible servers in the spirit of etcd's
//! `benchmark` tool. It speaks only through `etcd-client`, so it measures etcd and Cairn alike.
//! The binary is `src/bin/cairn-bench.rs`; `tests/bench/compare.py` runs it against both and
//! BENCHMARKS.md has the results.

mod channel;
mod cpu;
mod driver;
mod keys;
mod kv;
mod lease;
mod options;
mod record;
mod report;
mod watch;

use std::time::Duration;

use etcd_client::{Client, GetOptions};
use futures::future::join_all;

use self::driver::measure;
use self::kv::{Mixed, Put, Range, TxnPut};
use self::lease::KeepAlive;
pub use self::options::{Cli, Workload};
use self::record::error_message;
pub use self::report::Report;

/// Runs the workload `cli` names and reports on it; a run that cannot start reports why.
pub async fn run(cli: &Cli) -> Report {
    let common = &cli.common;
    let timeout = cli.timeout();
    let conns = match connect(&common.endpoints, common.conns, common.clients > common.conns, timeout).await {
        Ok(conns) => conns,
        Err(message) => return Report::failed(cli, message),
    };
    let (total, pids) = (common.total, common.server_pids.as_slice());
    let consistency = cli.workload.consistency();
    let measured = match &cli.workload {
        Workload::Put => measure(kv::workers(common, &conns, None, Put), total, timeout, pids).await,
        Workload::TxnPut => measure(kv::workers(common, &conns, None, TxnPut), total, timeout, pids).await,
        Workload::Range(_) => {
            kv::after_preload(common, &conns, timeout, kv::workers(common, &conns, consistency, Range)).await
        }
        Workload::Mixed(_) => {
            kv::after_preload(common, &conns, timeout, kv::workers(common, &conns, consistency, Mixed)).await
        }
        Workload::Watch(args) => watch::run(common, args, &conns, timeout).await,
        Workload::LeaseKeepalive(args) => {
            let workers: Vec<KeepAlive> = (0..common.clients)
                .map(|c| KeepAlive::new(conns[c % conns.len()].clone(), args.lease_ttl))
                .collect();
            measure(workers, total, timeout, pids).await
        }
    };
    Report::new(cli, measured)
}

/// Opens `conns` connections, spread over the endpoints in turn, and makes one serializable read
/// on each, so that they are all established before the clock starts and an unreachable server
/// fails fast, once. `shared`: more clients than connections, so the connections coalesce writes.
async fn connect(endpoints: &[String], conns: usize, shared: bool, timeout: Duration) -> Result<Vec<Client>, String> {
    let endpoints: Vec<&str> = endpoints.iter().map(|e| e.trim()).filter(|e| !e.is_empty()).collect();
    let mut clients = Vec::with_capacity(conns);
    for endpoint in endpoints.iter().cycle().take(conns) {
        let client = channel::connect(endpoint, timeout, shared)
            .await
            .map_err(|e| format!("connect to {endpoint}: {e}"))?;
        clients.push(client);
    }
    let probes = join_all(clients.iter().map(|client| {
        let mut client = client.clone();
        async move {
            let probe = client.get("cairn-bench/probe", Some(GetOptions::new().with_serializable()));
            match tokio::time::timeout(timeout, probe).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(error_message(&e)),
                Err(_) => Err(driver::timed_out(timeout)),
            }
        }
    }))
    .await;
    match probes.into_iter().find_map(Result::err) {
        Some(message) => Err(format!("connect to {}: {message}", endpoints.join(","))),
        None => Ok(clients),
    }
}
