//! etcdctl (v3 API) against each backend: what a user types and reads (reference/etcd-api.md §7).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use cairn_tests::{
    check, cluster_or_skip, run_checks, Backend, Check, CheckContext, Etcdctl, Input,
};
use etcd_client::Client;
use serde_json::Value;

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
        &format!("etcdctl against {}", backend.name()),
        &ctx,
        &checks(),
    )
    .await;
}

fn checks() -> Vec<Check<Ctl>> {
    vec![
        check!(put_and_get),
        check!(put_prev_kv),
        check!(get_prefix),
        check!(get_range_end),
        check!(get_from_key),
        check!(get_rev),
        check!(get_limit),
        check!(get_sort_by),
        check!(get_keys_only),
        check!(get_count),
        check!(get_json),
        check!(del_prev_kv),
        check!(del_prefix),
        check!(txn_from_stdin),
        check!(txn_from_file),
        check!(compaction),
        check!(endpoint_health),
        check!(endpoint_status),
    ]
}

#[derive(Clone)]
struct Ctl {
    etcdctl: Etcdctl,
    /// For reading revisions, so checks can compare what etcdctl prints with the store.
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

    async fn put(&self, name: &str, value: &str) {
        assert_eq!(self.ok(&["put", &self.key(name), value]).await, "OK\n");
    }

    async fn revision(&self) -> i64 {
        let reply = self
            .client
            .clone()
            .get(self.key("\u{1}probe"), None)
            .await
            .expect("get");
        reply.header().expect("a header").revision()
    }

    /// The `simple` output of a get: key and value lines alternating, with this check's prefix
    /// removed from the keys.
    async fn get_lines(&self, args: &[&str]) -> Vec<String> {
        let stdout = self.ok(args).await;
        stdout
            .lines()
            .map(|line| line.strip_prefix(&self.prefix).unwrap_or(line).to_owned())
            .collect()
    }
}

fn base64(text: &str) -> String {
    BASE64.encode(text)
}

fn as_i64(value: &Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("not an integer: {value}"))
}

async fn put_and_get(ctx: Ctl) {
    ctx.put("k", "hello world").await;
    assert_eq!(
        ctx.get_lines(&["get", &ctx.key("k")]).await,
        ["k", "hello world"]
    );
    assert_eq!(
        ctx.ok(&["get", &ctx.key("missing")]).await,
        "",
        "a missing key prints nothing"
    );
    let value_only = ctx.ok(&["get", &ctx.key("k"), "--print-value-only"]).await;
    assert_eq!(value_only, "hello world\n");
}

async fn put_prev_kv(ctx: Ctl) {
    ctx.put("k", "v1").await;
    let stdout = ctx.ok(&["put", &ctx.key("k"), "v2", "--prev-kv"]).await;
    assert_eq!(stdout, format!("OK\n{}\nv1\n", ctx.key("k")));
}

async fn get_prefix(ctx: Ctl) {
    ctx.put("p/a", "1").await;
    ctx.put("p/b", "2").await;
    ctx.put("q", "3").await;
    let lines = ctx.get_lines(&["get", "--prefix", &ctx.key("p/")]).await;
    assert_eq!(lines, ["p/a", "1", "p/b", "2"]);
}

async fn get_range_end(ctx: Ctl) {
    for name in ["a", "b", "c"] {
        ctx.put(name, name).await;
    }
    let lines = ctx.get_lines(&["get", &ctx.key("a"), &ctx.key("c")]).await;
    assert_eq!(lines, ["a", "a", "b", "b"], "the range end is exclusive");
}

async fn get_from_key(ctx: Ctl) {
    for name in ["a", "b", "c"] {
        ctx.put(name, name).await;
    }
    let stdout = ctx
        .ok(&["get", "--from-key", &ctx.key("b"), "--keys-only"])
        .await;
    let keys: Vec<&str> = stdout.lines().filter(|line| !line.is_empty()).collect();
    assert_eq!(keys[..2], [ctx.key("b"), ctx.key("c")]);
    assert!(
        keys.iter().all(|key| *key >= ctx.key("b").as_str()),
        "{keys:?}"
    );
}

async fn get_rev(ctx: Ctl) {
    ctx.put("k", "v1").await;
    let first = ctx.revision().await;
    ctx.put("k", "v2").await;
    let revision = first.to_string();
    let lines = ctx
        .get_lines(&["get", &ctx.key("k"), "--rev", &revision])
        .await;
    assert_eq!(lines, ["k", "v1"]);
    assert_eq!(ctx.get_lines(&["get", &ctx.key("k")]).await, ["k", "v2"]);
}

async fn get_limit(ctx: Ctl) {
    for name in ["a", "b", "c"] {
        ctx.put(name, "v").await;
    }
    let lines = ctx
        .get_lines(&["get", "--prefix", &ctx.prefix, "--limit", "2"])
        .await;
    assert_eq!(lines, ["a", "v", "b", "v"]);
    let json = ctx
        .etcdctl
        .json(&["get", "--prefix", &ctx.prefix, "--limit=2"])
        .await;
    assert_eq!(json["more"], Value::Bool(true));
    assert_eq!(as_i64(&json["count"]), 3);
}

async fn get_sort_by(ctx: Ctl) {
    ctx.put("a", "3").await;
    ctx.put("b", "1").await;
    ctx.put("c", "2").await;
    ctx.put("a", "3").await;
    let keys = |lines: Vec<String>| lines.into_iter().step_by(2).collect::<Vec<_>>();
    let by_mod = ctx
        .get_lines(&[
            "get",
            "--prefix",
            &ctx.prefix,
            "--sort-by=MODIFY",
            "--order=DESCEND",
        ])
        .await;
    assert_eq!(keys(by_mod), ["a", "c", "b"]);
    let by_value = ctx
        .get_lines(&["get", "--prefix", &ctx.prefix, "--sort-by=VALUE"])
        .await;
    assert_eq!(keys(by_value), ["b", "c", "a"]);
    let by_key = ctx
        .get_lines(&[
            "get",
            "--prefix",
            &ctx.prefix,
            "--sort-by=KEY",
            "--order=DESCEND",
        ])
        .await;
    assert_eq!(keys(by_key), ["c", "b", "a"]);
    let by_version = ctx
        .get_lines(&[
            "get",
            "--prefix",
            &ctx.prefix,
            "--sort-by=VERSION",
            "--order=DESCEND",
            "--limit=1",
        ])
        .await;
    assert_eq!(keys(by_version), ["a"]);
}

async fn get_keys_only(ctx: Ctl) {
    ctx.put("a", "value-a").await;
    ctx.put("b", "value-b").await;
    let stdout = ctx
        .ok(&["get", "--prefix", &ctx.prefix, "--keys-only"])
        .await;
    assert_eq!(
        stdout,
        format!("{}\n\n{}\n\n", ctx.key("a"), ctx.key("b")),
        "keys, each followed by a blank line"
    );
}

/// `--count-only` exists from etcdctl 3.5 (and only with `-w fields`); the JSON `count` is
/// checked with any version.
async fn get_count(ctx: Ctl) {
    for name in ["a", "b", "c"] {
        ctx.put(name, "v").await;
    }
    let keys_only = ctx
        .etcdctl
        .json(&["get", "--prefix", &ctx.prefix, "--keys-only", "--limit=1"])
        .await;
    assert_eq!(as_i64(&keys_only["count"]), 3);
    if ctx.etcdctl.get_supports("--count-only").await {
        let fields = ctx
            .ok(&[
                "get",
                "--prefix",
                &ctx.prefix,
                "--count-only",
                "--write-out=fields",
            ])
            .await;
        assert!(
            fields.lines().any(|line| line == "\"Count\" : 3"),
            "{fields}"
        );
        assert!(!fields.contains("\"Key\""), "no pairs: {fields}");
    } else {
        eprintln!("note: this etcdctl has no --count-only");
    }
}

/// etcdctl's JSON prints 64-bit numbers as numbers and bytes as base64 (§7).
async fn get_json(ctx: Ctl) {
    ctx.put("k", "v1").await;
    ctx.put("k", "v2").await;
    let revision = ctx.revision().await;
    let json = ctx.etcdctl.json(&["get", &ctx.key("k")]).await;
    let header = &json["header"];
    assert_eq!(as_i64(&header["revision"]), revision);
    assert!(
        header["cluster_id"].as_u64().is_some_and(|id| id != 0),
        "{header}"
    );
    assert!(
        header["member_id"].as_u64().is_some_and(|id| id != 0),
        "{header}"
    );
    assert!(
        header["raft_term"].as_u64().is_some_and(|term| term > 0),
        "{header}"
    );
    let kv = &json["kvs"][0];
    assert_eq!(kv["key"], Value::String(base64(&ctx.key("k"))));
    assert_eq!(kv["value"], Value::String(base64("v2")));
    assert_eq!(as_i64(&kv["version"]), 2);
    assert_eq!(as_i64(&kv["mod_revision"]), revision);
    assert_eq!(as_i64(&kv["create_revision"]), revision - 1);
    assert_eq!(as_i64(&json["count"]), 1);
}

async fn del_prev_kv(ctx: Ctl) {
    ctx.put("k", "v").await;
    let stdout = ctx.ok(&["del", &ctx.key("k"), "--prev-kv"]).await;
    assert_eq!(stdout, format!("1\n{}\nv\n", ctx.key("k")));
    assert_eq!(
        ctx.ok(&["del", &ctx.key("k")]).await,
        "0\n",
        "nothing left to delete"
    );
}

async fn del_prefix(ctx: Ctl) {
    for name in ["p/a", "p/b", "p/c", "q"] {
        ctx.put(name, "v").await;
    }
    assert_eq!(ctx.ok(&["del", "--prefix", &ctx.key("p/")]).await, "3\n");
    assert_eq!(
        ctx.get_lines(&["get", "--prefix", &ctx.prefix, "--keys-only"])
            .await,
        ["q", ""]
    );
}

/// etcdctl txn reads compares, then success ops, then failure ops, each block ended by a blank
/// line.
fn txn_script(ctx: &Ctl, expected: &str) -> String {
    let k = ctx.key("k");
    format!(
        "val(\"{k}\") = \"{expected}\"\nmod(\"{k}\") > \"0\"\n\nput {k} then\nget {k}\n\nput {k} else\nget {k}\n\n"
    )
}

async fn txn_from_stdin(ctx: Ctl) {
    ctx.put("k", "start").await;
    let ran = ctx
        .etcdctl
        .run(&["txn"], Input::Text(&txn_script(&ctx, "start")))
        .await
        .expect("etcdctl runs");
    assert!(ran.success, "{}", ran.stderr);
    assert_eq!(
        ran.stdout,
        format!("SUCCESS\n\nOK\n\n{}\nthen\n", ctx.key("k"))
    );

    let ran = ctx
        .etcdctl
        .run(&["txn"], Input::Text(&txn_script(&ctx, "start")))
        .await
        .expect("etcdctl runs");
    assert!(ran.success, "{}", ran.stderr);
    assert_eq!(
        ran.stdout,
        format!("FAILURE\n\nOK\n\n{}\nelse\n", ctx.key("k"))
    );
}

async fn txn_from_file(ctx: Ctl) {
    let k = ctx.key("k");
    let script = format!("c(\"{k}\") = \"0\"\n\nput {k} created\n\n\n");
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("txn.txt");
    std::fs::write(&path, script).expect("write the txn file");
    for expected in ["SUCCESS\n\nOK\n", "FAILURE\n"] {
        let file = std::fs::File::open(&path).expect("open the txn file");
        let ran = ctx
            .etcdctl
            .run(&["txn"], Input::File(file))
            .await
            .expect("etcdctl runs");
        assert!(ran.success, "{}", ran.stderr);
        assert_eq!(ran.stdout, expected, "a second run finds the key created");
    }
    assert_eq!(ctx.get_lines(&["get", &k]).await, ["k", "created"]);
}

async fn compaction(ctx: Ctl) {
    ctx.put("k", "v1").await;
    let old = ctx.revision().await;
    ctx.put("k", "v2").await;
    let current = ctx.revision().await;
    let stdout = ctx.ok(&["compaction", &current.to_string()]).await;
    assert_eq!(stdout, format!("compacted revision {current}\n"));
    let stderr = ctx
        .etcdctl
        .fails(&["get", &ctx.key("k"), "--rev", &old.to_string()])
        .await;
    assert!(
        stderr.contains("Error: etcdserver: mvcc: required revision has been compacted"),
        "{stderr}"
    );
    let stderr = ctx
        .etcdctl
        .fails(&["compaction", &current.to_string()])
        .await;
    assert!(
        stderr.contains("required revision has been compacted"),
        "{stderr}"
    );
    assert_eq!(ctx.get_lines(&["get", &ctx.key("k")]).await, ["k", "v2"]);
}

async fn endpoint_health(ctx: Ctl) {
    let ran = ctx
        .etcdctl
        .run(&["endpoint", "health"], Input::Nothing)
        .await
        .expect("etcdctl runs");
    assert!(ran.success, "{}", ran.stderr);
    let printed = format!("{}{}", ran.stdout, ran.stderr);
    let healthy = format!(
        "{} is healthy: successfully committed proposal",
        ctx.etcdctl.endpoints()
    );
    assert!(printed.contains(&healthy), "{printed}");
}

fn is_plain_version(version: &str) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() == 3
        && parts[0] == "3"
        && parts
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

async fn endpoint_status(ctx: Ctl) {
    let json = ctx.etcdctl.json(&["endpoint", "status"]).await;
    let endpoints = json.as_array().expect("one entry per endpoint");
    assert_eq!(endpoints.len(), 1, "{json}");
    assert_eq!(
        endpoints[0]["Endpoint"],
        Value::String(ctx.etcdctl.endpoints().to_owned())
    );
    let status = &endpoints[0]["Status"];
    let version = status["version"].as_str().expect("a version string");
    assert!(
        is_plain_version(version),
        "version must be plain numeric 3.x.y for clients to parse: {version}"
    );
    let member_id = status["header"]["member_id"]
        .as_u64()
        .expect("header.member_id");
    assert_ne!(member_id, 0);
    assert_eq!(
        status["leader"].as_u64(),
        Some(member_id),
        "a single member leads itself"
    );
    assert!(
        status["raftIndex"].as_u64().is_some_and(|index| index > 0),
        "{status}"
    );
    assert!(
        status["raftTerm"].as_u64().is_some_and(|term| term > 0),
        "{status}"
    );
    assert!(
        status["dbSize"].as_u64().is_some_and(|size| size > 0),
        "{status}"
    );
    assert_eq!(as_i64(&status["header"]["revision"]), ctx.revision().await);
}
