//! Python's etcd3gw (`pip install etcd3gw`) through `tests/python/etcd3gw_client.py`: KV,
//! prefixes, a prefix watch, a lease's grant, keep-alive and revocation, and a lock.

use std::time::Duration;

use cairn_tests::Cluster;
use tokio::process::Command;

/// The script bounds each of its own waits; this only stops a hung interpreter.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

pub async fn etcd3gw_client(cluster: Cluster) {
    // Not a skip: .ci/run installs etcd3gw, and a missing client must not pass unnoticed.
    let probe = Command::new("python3").args(["-c", "import etcd3gw"]).kill_on_drop(true).output().await;
    assert!(probe.is_ok_and(|out| out.status.success()), "python3 cannot import etcd3gw: run `python3 -m pip install etcd3gw==2.7.0`");
    let script = cairn_tests::package_dir().join("python/etcd3gw_client.py");
    let run = Command::new("python3").arg(&script).arg(cluster.endpoint(0)).kill_on_drop(true).output();
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("{} did not finish within {SCRIPT_TIMEOUT:?}", script.display()))
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "etcd3gw against {} failed ({}):\n{stdout}\n{stderr}", cluster.backend().name(), output.status);
    eprintln!("{stdout}");
}
