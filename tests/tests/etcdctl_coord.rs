//! etcdctl (v3 API) lease, watch, lock and elect commands against each backend: what a user types
//! and reads (reference/etcd-api.md §7). `watch`, `lock` and `elect` run until stopped, so they
//! run as child processes whose output is read line by line with a deadline.
//!
//! `lock` and `elect` are client-side recipes (Txn, Range sorted by create revision, Watch,
//! Lease), not calls to the Lock and Election services (§1.8).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::ensure;
use cairn_tests::etcdctl::Streaming;
use cairn_tests::{
    binary, check, cluster_or_skip, run_checks, wait_until, Backend, Check, CheckContext, Etcdctl,
};
use etcd_client::{Client, GetOptions, SortOrder, SortTarget};
use serde_json::Value;

/// How long a running etcdctl may take to print what is expected of it, or to exit.
const OUTPUT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a waiting `lock` or `elect` may take to put its key.
const WAITER_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_TTL: i64 = 9_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn() {
    etcdctl_suite(Backend::Cairn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd() {
    etcdctl_suite(Backend::Etcd).await;
}

async fn etcdctl_suite(backend: Backend) {
    let Some(cluster) = cluster_or_skip(backend, 1).await else {
        return;
    };
    let Some(etcdctl) = Etcdctl::find(&cluster.endpoints()) else {
        eprintln!("skipped: no etcdctl installed");
        return;
    };
    let ctx = Ctl {
        etcdctl,
        client: cluster.client().await.expect("a client"),
        prefix: String::new(),
    };
    run_checks(
        &format!("etcdctl coordination against {}", backend.name()),
        &ctx,
        &checks(),
    )
    .await;
}

fn checks() -> Vec<Check<Ctl>> {
    vec![
        check!(lease_grant),
        check!(lease_grant_too_large_ttl),
        check!(put_with_lease_and_timetolive),
        check!(lease_keep_alive_once),
        check!(lease_list),
        check!(lease_revoke),
        check!(watch_from_revision_with_prev_kv),
        check!(lock_runs_command_while_holding),
        check!(lock_passes_on_command_failure),
        check!(lock_waits_for_holder),
        check!(elect_and_listen),
    ]
}

#[derive(Clone)]
struct Ctl {
    etcdctl: Etcdctl,
    /// For reading revisions and keys, so checks can compare what etcdctl prints with the store.
    client: Client,
    prefix: String,
}

impl CheckContext for Ctl {
    fn scoped(&self, check: &str) -> Self {
        Ctl {
            prefix: format!("{}{check}/", self.prefix),
            ..self.clone()
        }
    }
}

impl Ctl {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    async fn ok(&self, args: &[&str]) -> String {
        self.etcdctl.ok(args).await
    }

    fn spawn(&self, args: &[&str]) -> Streaming {
        self.etcdctl.spawn(args).expect("etcdctl starts")
    }

    /// `lease grant <ttl>`; returns the ID after checking the whole line.
    async fn grant(&self, ttl: i64, granted_ttl: i64) -> i64 {
        let stdout = self.ok(&["lease", "grant", &ttl.to_string()]).await;
        let hex = stdout
            .strip_prefix("lease ")
            .and_then(|rest| rest.split_once(' '))
            .map(|(hex, _)| hex)
            .unwrap_or_else(|| panic!("unexpected grant output: {stdout:?}"));
        let id = i64::from_str_radix(hex, 16).expect("a hex lease ID");
        assert_eq!(
            stdout,
            format!("lease {id:016x} granted with TTL({granted_ttl}s)\n")
        );
        id
    }

    /// Puts through the client; returns the revision of the write.
    async fn put(&self, name: &str, value: &str) -> i64 {
        let reply = self
            .client
            .clone()
            .put(self.key(name), value, None)
            .await
            .expect("put");
        reply.header().expect("a header").revision()
    }

    async fn exists(&self, name: &str) -> bool {
        let reply = self
            .client
            .clone()
            .get(self.key(name), None)
            .await
            .expect("get");
        reply.count() == 1
    }

    /// The keys under `name/`, oldest first: the contenders of a lock or an election.
    async fn contenders(&self, name: &str) -> Vec<String> {
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Create, SortOrder::Ascend);
        let reply = self
            .client
            .clone()
            .get(format!("{name}/"), Some(options))
            .await
            .expect("get");
        reply
            .kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect()
    }

    /// Waits until `count` contenders have put their keys under `name/`; returns the keys.
    async fn wait_for_contenders(&self, name: &str, count: usize) -> Vec<String> {
        let what = format!("{count} keys under {name}/");
        wait_until(&what, WAITER_TIMEOUT, || async {
            let keys = self.contenders(name).await;
            ensure!(keys.len() == count, "found {keys:?}");
            Ok(keys)
        })
        .await
        .expect("the contenders register")
    }
}

/// A lock or election key as the recipes write it: the name, `/`, the session's lease in hex.
#[track_caller]
fn assert_owner_key(key: &str, name: &str) {
    let lease = key
        .strip_prefix(&format!("{name}/"))
        .unwrap_or_else(|| panic!("{key:?} is not under {name}/"));
    assert!(
        !lease.is_empty()
            && lease
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{key:?} does not end in a lowercase hex lease"
    );
}

fn as_i64(value: &Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("not an integer: {value}"))
}

async fn lease_grant(ctx: Ctl) {
    let id = ctx.grant(100, 100).await;
    let status = ctx
        .client
        .clone()
        .lease_time_to_live(id, None)
        .await
        .expect("time to live");
    assert_eq!(
        status.granted_ttl(),
        100,
        "etcdctl printed the lease it made"
    );
    let short = ctx.grant(1, 2).await;
    assert_ne!(short, id);
    ctx.ok(&["lease", "revoke", &format!("{id:x}")]).await;
}

async fn lease_grant_too_large_ttl(ctx: Ctl) {
    let stderr = ctx
        .etcdctl
        .fails(&["lease", "grant", &(MAX_TTL + 1).to_string()])
        .await;
    assert!(
        stderr.contains("Error: failed to grant lease (etcdserver: too large lease TTL)"),
        "{stderr}"
    );
}

async fn put_with_lease_and_timetolive(ctx: Ctl) {
    let id = ctx.grant(100, 100).await;
    let hex = format!("{id:016x}");
    for (name, value) in [("a", "1"), ("b", "2")] {
        let lease = format!("--lease={hex}");
        assert_eq!(
            ctx.ok(&["put", &lease, &ctx.key(name), value]).await,
            "OK\n"
        );
    }
    let plain = ctx.ok(&["lease", "timetolive", &hex]).await;
    let head = format!("lease {hex} granted with TTL(100s), remaining(");
    let remaining = plain
        .strip_prefix(&head)
        .and_then(|rest| rest.strip_suffix("s)\n"))
        .unwrap_or_else(|| panic!("unexpected timetolive output: {plain:?}"));
    let remaining: i64 = remaining.parse().expect("remaining seconds");
    assert!((1..=100).contains(&remaining), "{plain}");

    let with_keys = ctx.ok(&["lease", "timetolive", "--keys", &hex]).await;
    let keys = with_keys
        .split_once(", attached keys([")
        .and_then(|(_, rest)| rest.strip_suffix("])\n"))
        .unwrap_or_else(|| panic!("unexpected timetolive --keys output: {with_keys:?}"));
    // etcd lists the keys in no particular order.
    let keys: BTreeSet<&str> = keys.split(' ').collect();
    let (a, b) = (ctx.key("a"), ctx.key("b"));
    assert_eq!(keys, BTreeSet::from([a.as_str(), b.as_str()]));

    let json = ctx
        .etcdctl
        .json(&["lease", "timetolive", "--keys", &hex])
        .await;
    assert_eq!(as_i64(&json["id"]), id);
    assert_eq!(as_i64(&json["granted-ttl"]), 100);
    assert!((1..=100).contains(&as_i64(&json["ttl"])), "{json}");
    assert_eq!(json["keys"].as_array().map(Vec::len), Some(2), "{json}");
    ctx.ok(&["lease", "revoke", &hex]).await;
}

async fn lease_keep_alive_once(ctx: Ctl) {
    let id = ctx.grant(100, 100).await;
    let hex = format!("{id:016x}");
    assert_eq!(
        ctx.ok(&["lease", "keep-alive", "--once", &hex]).await,
        format!("lease {hex} keepalived with TTL(100)\n")
    );
    ctx.ok(&["lease", "revoke", &hex]).await;
    // The server answers TTL 0 without an error; etcdctl's client turns that into this error.
    let stderr = ctx
        .etcdctl
        .fails(&["lease", "keep-alive", "--once", &hex])
        .await;
    assert!(
        stderr.contains("Error: etcdserver: requested lease not found"),
        "{stderr}"
    );
}

async fn lease_list(ctx: Ctl) {
    let kept = ctx.grant(100, 100).await;
    let revoked = ctx.grant(100, 100).await;
    ctx.ok(&["lease", "revoke", &format!("{revoked:x}")]).await;
    let stdout = ctx.ok(&["lease", "list"]).await;
    let mut lines = stdout.lines();
    let listed: Vec<&str> = lines.by_ref().skip(1).collect();
    assert_eq!(
        stdout.lines().next(),
        Some(format!("found {} leases", listed.len()).as_str()),
        "{stdout}"
    );
    assert!(
        listed.contains(&format!("{kept:016x}").as_str()),
        "{stdout}"
    );
    assert!(
        !listed.contains(&format!("{revoked:016x}").as_str()),
        "{stdout}"
    );
    ctx.ok(&["lease", "revoke", &format!("{kept:x}")]).await;
}

async fn lease_revoke(ctx: Ctl) {
    let id = ctx.grant(100, 100).await;
    let hex = format!("{id:016x}");
    ctx.ok(&["put", &format!("--lease={hex}"), &ctx.key("k"), "v"])
        .await;
    assert_eq!(
        ctx.ok(&["lease", "revoke", &hex]).await,
        format!("lease {hex} revoked\n")
    );
    assert!(!ctx.exists("k").await, "the lease's key went with it");
    let stderr = ctx.etcdctl.fails(&["lease", "revoke", &hex]).await;
    assert!(
        stderr.contains("Error: failed to revoke lease (etcdserver: requested lease not found)"),
        "{stderr}"
    );
    assert_eq!(
        ctx.ok(&["lease", "timetolive", &hex]).await,
        format!("lease {hex} already expired\n")
    );
    let stderr = ctx
        .etcdctl
        .fails(&["put", &format!("--lease={hex}"), &ctx.key("k"), "v"])
        .await;
    assert!(
        stderr.contains("Error: etcdserver: requested lease not found"),
        "{stderr}"
    );
}

/// History from `--rev` first (each PUT or DELETE line, then the previous pair, then the pair),
/// then live events; a key beside the prefix never shows.
async fn watch_from_revision_with_prev_kv(ctx: Ctl) {
    let first = ctx.put("w/a", "1").await;
    ctx.put("w/a", "2").await;
    ctx.put("w/b", "3").await;
    ctx.client
        .clone()
        .delete(ctx.key("w/a"), None)
        .await
        .expect("delete");
    ctx.put("wx", "beside the prefix").await;
    let rev = format!("--rev={first}");
    let prefix = ctx.key("w/");
    let mut watch = ctx.spawn(&["watch", &rev, "--prefix", "--prev-kv", &prefix]);
    let (a, b, c) = (ctx.key("w/a"), ctx.key("w/b"), ctx.key("w/c"));
    let history = [
        "PUT", &a, "1", //
        "PUT", &a, "1", &a, "2", //
        "PUT", &b, "3", //
        "DELETE", &a, "2", &a, "",
    ];
    let printed = watch
        .lines(history.len(), OUTPUT_TIMEOUT)
        .await
        .expect("the history");
    assert_eq!(printed, history);
    ctx.put("w/c", "4").await;
    let printed = watch.lines(3, OUTPUT_TIMEOUT).await.expect("a live event");
    assert_eq!(printed, ["PUT", c.as_str(), "4"]);
    assert!(watch.printed().is_empty(), "nothing more");
}

/// The command sees `ETCD_LOCK_KEY`, and the key exists while it runs; it is gone after.
async fn lock_runs_command_while_holding(ctx: Ctl) {
    let name = ctx.key("lock");
    let etcdctl = binary::etcdctl().expect("etcdctl is installed");
    let etcdctl = etcdctl.to_str().expect("a UTF-8 path");
    let script =
        r#"echo "$ETCD_LOCK_KEY"; exec "$0" --endpoints="$1" get --keys-only "$ETCD_LOCK_KEY""#;
    let endpoints = ctx.etcdctl.endpoints().to_owned();
    let stdout = ctx
        .ok(&["lock", &name, "--", "sh", "-c", script, etcdctl, &endpoints])
        .await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout:?}");
    assert_owner_key(lines[0], &name);
    assert_eq!(
        (lines[1], lines[2]),
        (lines[0], ""),
        "the key exists while the command runs"
    );
    assert!(
        ctx.contenders(&name).await.is_empty(),
        "the key is gone once the command is done"
    );
}

async fn lock_passes_on_command_failure(ctx: Ctl) {
    let name = ctx.key("lock");
    let stderr = ctx
        .etcdctl
        .fails(&["lock", &name, "--", "sh", "-c", "exit 3"])
        .await;
    assert!(stderr.contains("Error: exit status 3"), "{stderr}");
    assert!(
        ctx.contenders(&name).await.is_empty(),
        "the lock is released"
    );
}

async fn lock_waits_for_holder(ctx: Ctl) {
    let name = ctx.key("lock");
    let mut holder = ctx.spawn(&["lock", &name]);
    let printed = holder
        .lines(2, OUTPUT_TIMEOUT)
        .await
        .expect("the holder prints its key");
    assert_owner_key(&printed[0], &name);
    assert_eq!(printed[1], "", "then the key's empty value");

    let mut waiter = ctx.spawn(&["lock", &name, "echo", "second"]);
    let keys = ctx.wait_for_contenders(&name, 2).await;
    assert_eq!(keys[0], printed[0], "the holder's key is the oldest");
    assert!(
        waiter.printed().is_empty() && !waiter.has_exited(),
        "the second lock did not wait for the first"
    );
    holder
        .interrupt(OUTPUT_TIMEOUT)
        .await
        .expect("the holder stops");
    let ran = waiter
        .wait(OUTPUT_TIMEOUT)
        .await
        .expect("the second lock runs its command");
    assert!(ran.success, "{}", ran.stderr);
    assert_eq!(ran.stdout, "second\n");
    assert!(ctx.contenders(&name).await.is_empty(), "both released");
}

/// Two candidates and a listener: the listener (started first, on an empty election) prints
/// each leader's key and proposal as it takes office.
async fn elect_and_listen(ctx: Ctl) {
    let name = ctx.key("election");
    let mut listener = ctx.spawn(&["elect", "--listen", &name]);
    let mut first = ctx.spawn(&["elect", &name, "p1"]);
    let elected = first
        .lines(2, OUTPUT_TIMEOUT)
        .await
        .expect("the first wins");
    assert_owner_key(&elected[0], &name);
    assert_eq!(elected[1], "p1");
    assert_eq!(
        listener
            .lines(2, OUTPUT_TIMEOUT)
            .await
            .expect("the listener"),
        elected
    );

    let mut second = ctx.spawn(&["elect", &name, "p2"]);
    let keys = ctx.wait_for_contenders(&name, 2).await;
    assert_eq!(keys[0], elected[0], "the leader's key is the oldest");
    assert!(
        second.printed().is_empty(),
        "the second candidate won while the first led"
    );
    first
        .interrupt(OUTPUT_TIMEOUT)
        .await
        .expect("the first resigns");
    let next = second
        .lines(2, OUTPUT_TIMEOUT)
        .await
        .expect("the second wins");
    assert_eq!(next, [keys[1].as_str(), "p2"]);
    assert_eq!(
        listener
            .lines(2, OUTPUT_TIMEOUT)
            .await
            .expect("the listener"),
        next
    );
    second
        .interrupt(OUTPUT_TIMEOUT)
        .await
        .expect("the second resigns");
    assert!(ctx.contenders(&name).await.is_empty(), "both resigned");
    assert!(listener.printed().is_empty(), "no leader, nothing to print");
}
