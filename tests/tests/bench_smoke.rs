//! A short cairn-bench run against a single Cairn member: the tool works end to end and the
//! server answers every operation. Throughput is not asserted (that belongs in BENCHMARKS.md).

use std::process::Command;

use cairn_tests::{cluster_or_skip, Backend};

const OPS: u64 = 300;

fn bench(endpoint: &str, args: &[&str]) -> serde_json::Value {
    let total = OPS.to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_cairn-bench"))
        .args(args)
        .args(["--endpoints", endpoint, "--clients", "10", "--conns", "2", "--total", &total, "--key-space", "50", "--timeout", "10"])
        .output()
        .expect("run cairn-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "cairn-bench {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let last = stdout.lines().last().expect("cairn-bench prints a JSON line last");
    serde_json::from_str(last).expect("the last line is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_bench_smoke() {
    let Some(cluster) = cluster_or_skip(Backend::Cairn, 1).await else {
        return;
    };
    let endpoint = cluster.endpoint(0).to_string();
    for args in [&["put"][..], &["range", "--consistency", "l"], &["range", "--consistency", "s"], &["txn-put"], &["mixed"]] {
        let report = bench(&endpoint, args);
        assert_eq!(report["errors"], 0, "{args:?}: {report}");
        assert_eq!(report["ops"], OPS, "{args:?}: {report}");
        eprintln!("{args:?}: {} ops/s", report["ops_per_s"]);
        assert!(report["ops_per_s"].as_f64().is_some_and(|r| r > 0.0), "{args:?}: {report}");
    }
}
