//! The same requests, valid and malformed, sent in the same order to a fresh etcd 3.5.1 member
//! and then to a fresh Cairn member: status, content type and body must match byte for byte,
//! once the IDs and raft term that legitimately differ are set aside. Revisions are compared:
//! both stores start at revision 1 and see the same writes.

use cairn_tests::{cluster_or_skip, http, Backend, Cluster};
use serde_json::json;

use super::fuzz;
use super::{b64, EXCHANGE_TIMEOUT};

const SEED: u64 = 0x00e7_cd35_0002;
const MUTATIONS: usize = 200;

/// Header fields that differ between any two clusters.
const SCRUBBED: [&str; 3] = ["cluster_id", "member_id", "raft_term"];

/// What Cairn answers differently from etcd 3.5.1 outside the gateway (its KV service follows
/// etcd 3.6 there), as (etcd's status, Cairn's message).
const KNOWN_DEVIATIONS: &[(u16, &str)] = &[(200, "etcdserver: invalid sort option")];

struct Request {
    method: &'static str,
    path: &'static str,
    body: Vec<u8>,
}

fn post_json(path: &'static str, body: serde_json::Value) -> Request {
    Request { method: "POST", path, body: body.to_string().into_bytes() }
}

/// Requests with answers that depend only on the requests before them.
fn corpus() -> Vec<Request> {
    let k = |key: &str| b64(&format!("cmp/{key}"));
    let mut requests = vec![
        post_json("/v3/kv/put", json!({"key": k("a"), "value": b64("1")})),
        post_json("/v3/kv/put", json!({"key": k("b"), "value": b64("2"), "prev_kv": true})),
        post_json("/v3/kv/put", json!({"key": k("a"), "value": b64("3"), "prev_kv": true})),
        post_json("/v3/kv/put", json!({"key": b64("cmp0"), "value": b64("outside")})),
        post_json("/v3/kv/range", json!({"key": k(""), "range_end": b64("cmp0")})),
        post_json("/v3/kv/range", json!({"key": k(""), "range_end": b64("cmp0"), "limit": "1", "sort_order": "DESCEND", "sort_target": "MOD"})),
        post_json("/v3/kv/range", json!({"key": k(""), "range_end": b64("cmp0"), "keysOnly": true})),
        post_json("/v3/kv/range", json!({"key": b64("\0"), "range_end": b64("\0"), "count_only": true})),
        post_json("/v3/kv/range", json!({"key": k("none")})),
        post_json(
            "/v3/kv/txn",
            json!({"compare": [{"key": k("a"), "target": "VERSION", "version": 2}], "success": [{"request_put": {"key": k("t"), "value": b64("ok")}}, {"request_range": {"key": k("a")}}]}),
        ),
        post_json(
            "/v3/kv/txn",
            json!({"compare": [{"key": k("a"), "result": "EQUAL", "target": "CREATE", "create_revision": 0}], "success": [{"request_put": {"key": k("a")}}], "failure": [{"request_range": {"key": k("a")}}]}),
        ),
        post_json("/v3/kv/txn", json!({"success": [{"request_put": {"key": k("d")}}, {"request_put": {"key": k("d")}}]})),
        post_json("/v3/kv/deleterange", json!({"key": k("b"), "prev_kv": true})),
        post_json("/v3/kv/deleterange", json!({"key": k("b")})),
        post_json("/v3/lease/grant", json!({"ID": 4242, "TTL": 60})),
        post_json("/v3/lease/grant", json!({"ID": 4242, "TTL": 60})),
        post_json("/v3/kv/put", json!({"key": k("leased"), "value": b64("v"), "lease": "4242"})),
        post_json("/v3/lease/keepalive", json!({"ID": 4242})),
        post_json("/v3/lease/keepalive", json!({"ID": "4242"})),
        post_json("/v3/kv/lease/leases", json!({})),
        post_json("/v3/kv/lease/revoke", json!({"ID": 4242})),
        post_json("/v3/lease/revoke", json!({"ID": 4242})),
        post_json("/v3/kv/lease/timetolive", json!({"ID": 4242, "keys": true})),
        post_json("/v3/lease/keepalive", json!({"ID": 4242})),
        post_json("/v3/kv/compaction", json!({"revision": 5})),
        post_json("/v3/kv/range", json!({"key": k("a"), "revision": 3})),
        post_json("/v3/kv/compaction", json!({"revision": 5})),
        post_json("/v3/kv/compaction", json!({"revision": 1000})),
        post_json("/v3beta/kv/range", json!({"key": k("a")})),
        post_json("/v3/kv/nope", json!({})),
        Request { method: "GET", path: "/v3/kv/range", body: Vec::new() },
        Request { method: "POST", path: "/v3/kv/put", body: fuzz::too_deep() },
    ];
    for &(path, body, ..) in fuzz::EXACT {
        requests.push(Request { method: "POST", path, body: body.as_bytes().to_vec() });
    }
    // Status and the member list carry sizes, IDs and URLs that differ; they are left to the
    // other scenarios.
    let comparable = fuzz::mutations(SEED, MUTATIONS).into_iter().filter(|case| !matches!(case.path, "/v3/maintenance/status" | "/v3/cluster/member/list"));
    for case in comparable {
        requests.push(Request { method: "POST", path: case.path, body: case.body });
    }
    requests
}

/// Status, content type and scrubbed body of every answer.
async fn answers(cluster: &Cluster) -> Vec<(u16, String, String)> {
    let mut out = Vec::new();
    for r in corpus() {
        let request = http::Request::new(r.method, r.path).json(&r.body);
        let answer = http::send(cluster.endpoint(0), &request, EXCHANGE_TIMEOUT).await.unwrap_or_else(|e| panic!("{} answers {} {}: {e:#}", cluster.backend().name(), r.path, String::from_utf8_lossy(&r.body)));
        out.push((answer.status, answer.header("content-type").unwrap_or_default().to_string(), scrub(&answer.text())));
    }
    out
}

/// `"field":"<digits>"` becomes `"field":"N"` for each [`SCRUBBED`] field.
fn scrub(body: &str) -> String {
    let mut out = body.to_string();
    for field in SCRUBBED {
        let needle = format!("\"{field}\":\"");
        let mut from = 0;
        while let Some(at) = out[from..].find(&needle) {
            let start = from + at + needle.len();
            let end = start + out[start..].find(|c: char| !c.is_ascii_digit()).unwrap_or(out.len() - start);
            out.replace_range(start..end, "N");
            from = start;
        }
    }
    out
}

pub async fn answers_match_etcd() {
    let Some(etcd) = cluster_or_skip(Backend::Etcd, 1).await else { return };
    let expected = answers(&etcd).await;
    drop(etcd);
    let cairn = cluster_or_skip(Backend::Cairn, 1).await.expect("cairn is built");
    let got = answers(&cairn).await;
    let requests = corpus();
    let mut mismatches = Vec::new();
    for ((request, etcd), cairn) in requests.iter().zip(&expected).zip(&got) {
        if etcd == cairn {
            continue;
        }
        let what = format!("{} {} {:?}", request.method, request.path, String::from_utf8_lossy(&request.body));
        if KNOWN_DEVIATIONS.iter().any(|&(status, message)| etcd.0 == status && cairn.2.contains(message)) {
            eprintln!("known deviation: {what}: etcd {etcd:?}, cairn {cairn:?}");
            continue;
        }
        mismatches.push(format!("{what}\n  etcd:  {etcd:?}\n  cairn: {cairn:?}"));
    }
    assert!(mismatches.is_empty(), "{} of {} answers differ from etcd's:\n{}", mismatches.len(), requests.len(), mismatches.join("\n"));
    eprintln!("{} answers match etcd's", requests.len());
}
