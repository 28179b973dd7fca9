//! The server process itself: the allocator settings it runs with.

use cairn_tests::Cluster;

/// A member runs with mimalloc's purge delay at ten seconds (gateway/src/main.rs), or at the
/// operator's value when the environment already names one; and it serves with the arguments
/// it was started with, which it keeps when it runs itself again to set the delay.
pub(super) async fn allocator_purge_delay(cluster: Cluster) {
    let expected = std::env::var("MIMALLOC_PURGE_DELAY").unwrap_or_else(|_| "10000".to_owned());
    let pid = cluster.pid(0).expect("member 0 runs");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("the member's environment");
    let delays: Vec<String> = environ
        .split(|b| *b == 0)
        .filter_map(|var| var.strip_prefix(b"MIMALLOC_PURGE_DELAY="))
        .map(|value| String::from_utf8_lossy(value).into_owned())
        .collect();
    assert_eq!(delays, [expected], "MIMALLOC_PURGE_DELAY of member 0");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("the member's command line");
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
    assert!(args.iter().any(|a| a.starts_with(b"--data-dir")), "{:?}", String::from_utf8_lossy(&cmdline));
    let mut client = cluster.client().await.expect("a client");
    client.put("purge-delay", "kept", None).await.expect("the member serves");
}
