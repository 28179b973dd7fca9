//! cairn-bench: a load generator for etcd-compatible servers (Cairn or etcd), in the spirit of
//! etcd's `benchmark` tool. `cairn-bench --help` lists the workloads and options;
//! BENCHMARKS.md has recipes. The summary goes to stdout, and its last line is one JSON object.
//!
//! cairn-bench put   --endpoints 127.0.0.1:2379 --conns 100 --clients 1000 --total 100000
//! cairn-bench range --endpoints 127.0.0.1:2379 --clients 100 --total 100000 --consistency s
//! cairn-bench watch --watchers 100 --conns 10 --total 2000 --server-pids 123,456,789

use std::process::ExitCode;

use cairn_tests::bench::{self, Cli};
use clap::Parser;

/// The servers' allocator, so that the bench's own share of the CPU stays small.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(message) = cli.check() {
        eprintln!("cairn-bench: {message}");
        return ExitCode::from(2);
    }
    let report = bench::run(&cli).await;
    print!("{}", report.human());
    println!("{}", report.json_line());
    // A run with errors is still a result; one in which nothing succeeded is a failure.
    if report.ops == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
