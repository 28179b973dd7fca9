//! The gateway as etcd's docs drive it with curl: KV, txn, compaction, leases (and the
//! `/v3/kv/lease/*` aliases etcd3gw calls), a keep-alive and a watch stream, membership,
//! status, `/v3beta/`, and the answers to bad paths and methods.

use cairn_tests::Cluster;
use serde_json::{json, Value};

use super::curl::{Curl, Version};
use super::{assert_error, b64, int, text, COMPACTED, DUPLICATE_KEY, FUTURE_REV, LEASE_NOT_FOUND};

pub async fn curl_recipes(cluster: Cluster) {
    run(&cluster, Version::Http1).await;
}

pub async fn curl_recipes_h2c(cluster: Cluster) {
    run(&cluster, Version::H2c).await;
}

async fn run(cluster: &Cluster, version: Version) {
    let curl = Curl::new(cluster.endpoint(0), version);
    kv(&curl).await;
    txn(&curl).await;
    compaction(&curl).await;
    leases(&curl).await;
    watch(&curl).await;
    locks_and_elections(&curl).await;
    snapshot(&curl).await;
    membership_and_status(&curl, cluster).await;
    paths(&curl).await;
}

async fn post(curl: &Curl, path: &str, body: Value) -> Value {
    let answer = curl.post(path, &body.to_string()).await;
    assert_eq!(answer.status, 200, "POST {path} {body}: {}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/json"));
    answer.json()
}

fn keys(range: &Value) -> Vec<String> {
    range["kvs"].as_array().map(|kvs| kvs.iter().map(|kv| text(&kv["key"])).collect()).unwrap_or_default()
}

async fn kv(curl: &Curl) {
    let put = post(curl, "/v3/kv/put", json!({"key": b64("kv/a"), "value": b64("1")})).await;
    let header = put["header"].as_object().expect("a header");
    for field in ["cluster_id", "member_id", "revision", "raft_term"] {
        assert!(header[field].is_string(), "{field} is an int64 string: {put}");
    }
    assert!(put.get("prev_kv").is_none(), "{put}");
    let fresh = post(curl, "/v3/kv/put", json!({"key": b64("kv/b"), "value": b64("2"), "prev_kv": true})).await;
    assert!(fresh.get("prev_kv").is_none(), "no previous value: {fresh}");
    let again = post(curl, "/v3/kv/put", json!({"key": b64("kv/a"), "value": b64("3"), "prev_kv": true})).await;
    assert_eq!(text(&again["prev_kv"]["value"]), "1");
    assert_eq!(again["prev_kv"]["version"], "1");
    post(curl, "/v3/kv/put", json!({"key": b64("kv/c"), "value": b64("4")})).await;
    post(curl, "/v3/kv/put", json!({"key": b64("kv0"), "value": b64("outside")})).await;

    let prefix = json!({"key": b64("kv/"), "range_end": b64("kv0")});
    let range = post(curl, "/v3/kv/range", prefix.clone()).await;
    assert_eq!(keys(&range), ["kv/a", "kv/b", "kv/c"]);
    assert_eq!(range["count"], "3");
    assert!(range.get("more").is_none(), "more:false is left out: {range}");
    let a = &range["kvs"][0];
    assert_eq!((text(&a["value"]), &a["version"]), ("3".to_string(), &json!("2")));
    assert!(int(&a["mod_revision"]) > int(&a["create_revision"]));
    assert!(a.get("lease").is_none(), "lease 0 is left out: {a}");

    let limited = post(curl, "/v3/kv/range", json!({"key": b64("kv/"), "range_end": b64("kv0"), "limit": 2, "sort_order": "DESCEND"})).await;
    assert_eq!(keys(&limited), ["kv/c", "kv/b"]);
    assert_eq!((&limited["more"], &limited["count"]), (&json!(true), &json!("3")));
    let keys_only = post(curl, "/v3/kv/range", json!({"key": b64("kv/"), "range_end": b64("kv0"), "keysOnly": true})).await;
    assert!(keys_only["kvs"].as_array().expect("kvs").iter().all(|kv| kv.get("value").is_none()), "{keys_only}");
    let count_only = post(curl, "/v3/kv/range", json!({"key": b64("kv/"), "range_end": b64("kv0"), "count_only": true})).await;
    assert!(count_only.get("kvs").is_none() && count_only["count"] == "3", "{count_only}");
    let missing = post(curl, "/v3/kv/range", json!({"key": b64("kv/none")})).await;
    assert_eq!(missing.as_object().map(|m| m.len()), Some(1), "only a header for no match: {missing}");

    let deleted = post(curl, "/v3/kv/deleterange", json!({"key": b64("kv/c"), "prev_kv": true})).await;
    assert_eq!(deleted["deleted"], "1");
    assert_eq!(text(&deleted["prev_kvs"][0]["key"]), "kv/c");
    let nothing = post(curl, "/v3/kv/deleterange", json!({"key": b64("kv/c")})).await;
    assert!(nothing.get("deleted").is_none(), "deleted:0 is left out: {nothing}");
}

async fn txn(curl: &Curl) {
    let range = post(curl, "/v3/kv/range", json!({"key": b64("kv/a")})).await;
    let (created, modified) = (int(&range["kvs"][0]["create_revision"]), int(&range["kvs"][0]["mod_revision"]));
    let compare = json!([
        {"key": b64("kv/a"), "result": "EQUAL", "target": "MOD", "mod_revision": modified.to_string()},
        {"key": b64("kv/a"), "result": "EQUAL", "target": "CREATE", "create_revision": created},
    ]);
    let success = json!([{"request_put": {"key": b64("txn/t"), "value": b64("ok")}}, {"request_range": {"key": b64("kv/a")}}]);
    let done = post(curl, "/v3/kv/txn", json!({"compare": compare, "success": success})).await;
    assert_eq!(done["succeeded"], true, "{done}");
    assert!(done["responses"][0]["response_put"]["header"]["revision"].is_string(), "{done}");
    assert_eq!(text(&done["responses"][1]["response_range"]["kvs"][0]["key"]), "kv/a");

    // etcd3gw's create(): the compare holds a zero create_revision, which must still count.
    let create = json!({
        "compare": [{"key": b64("kv/a"), "result": "EQUAL", "target": "CREATE", "create_revision": 0}],
        "success": [{"request_put": {"key": b64("kv/a"), "value": b64("clobbered")}}],
        "failure": [{"request_range": {"key": b64("kv/a")}}],
    });
    let failed = post(curl, "/v3/kv/txn", create).await;
    assert!(failed.get("succeeded").is_none(), "succeeded:false is left out: {failed}");
    assert_eq!(text(&failed["responses"][0]["response_range"]["kvs"][0]["value"]), "3");

    let duplicate = json!({"success": [{"request_put": {"key": b64("txn/d")}}, {"request_put": {"key": b64("txn/d")}}]});
    assert_error(&curl.post("/v3/kv/txn", &duplicate.to_string()).await, 400, 3, DUPLICATE_KEY);
}

async fn compaction(curl: &Curl) {
    let before = int(&post(curl, "/v3/kv/put", json!({"key": b64("compact/k"), "value": b64("1")})).await["header"]["revision"]);
    let now = int(&post(curl, "/v3/kv/put", json!({"key": b64("compact/k"), "value": b64("2")})).await["header"]["revision"]);
    let compacted = post(curl, "/v3/kv/compaction", json!({"revision": now})).await;
    assert_eq!(compacted.as_object().map(|m| m.len()), Some(1), "{compacted}");
    let old = curl.post("/v3/kv/range", &json!({"key": b64("compact/k"), "revision": before}).to_string()).await;
    assert_error(&old, 400, 11, COMPACTED);
    assert_error(&curl.post("/v3/kv/compaction", &json!({"revision": now}).to_string()).await, 400, 11, COMPACTED);
    assert_error(&curl.post("/v3/kv/compaction", &json!({"revision": now + 1000}).to_string()).await, 400, 11, FUTURE_REV);
}

async fn leases(curl: &Curl) {
    let grant = post(curl, "/v3/lease/grant", json!({"TTL": 60})).await;
    let id = grant["ID"].as_str().expect("an ID string").to_string();
    assert_eq!(grant["TTL"], "60");
    post(curl, "/v3/kv/put", json!({"key": b64("lease/k"), "value": b64("v"), "lease": id})).await;

    // One request, one answer, and the answer ends: etcd3gw's refresh() depends on it.
    let keepalive = curl.post("/v3/lease/keepalive", &json!({"ID": id}).to_string()).await;
    assert_eq!(keepalive.status, 200);
    let lines = keepalive.lines();
    assert_eq!(lines.len(), 1, "{}", keepalive.text());
    assert_eq!((&lines[0]["result"]["ID"], &lines[0]["result"]["TTL"]), (&json!(id), &json!("60")));

    let ttl = post(curl, "/v3/kv/lease/timetolive", json!({"ID": id, "keys": true})).await;
    assert_eq!(ttl["grantedTTL"], "60");
    assert!((1..=60).contains(&int(&ttl["TTL"])), "{ttl}");
    assert_eq!(ttl["keys"].as_array().map(|k| k.iter().map(text).collect::<Vec<_>>()), Some(vec!["lease/k".to_string()]));
    assert_eq!(post(curl, "/v3/lease/timetolive", json!({"ID": id})).await["grantedTTL"], "60");
    for path in ["/v3/kv/lease/leases", "/v3/lease/leases"] {
        let leases = post(curl, path, json!({})).await;
        assert!(leases["leases"].as_array().expect("leases").contains(&json!({"ID": id})), "{leases}");
    }

    post(curl, "/v3/kv/lease/revoke", json!({"ID": id})).await;
    assert!(post(curl, "/v3/kv/range", json!({"key": b64("lease/k")})).await.get("kvs").is_none());
    assert_error(&curl.post("/v3/lease/revoke", &json!({"ID": id}).to_string()).await, 404, 5, LEASE_NOT_FOUND);
    assert_eq!(post(curl, "/v3/lease/timetolive", json!({"ID": id})).await["TTL"], "-1");
    let gone = curl.post("/v3/lease/keepalive", &json!({"ID": id}).to_string()).await.lines();
    assert!(gone[0]["result"].get("TTL").is_none(), "no TTL for a lease that is gone: {gone:?}");
}

async fn watch(curl: &Curl) {
    let create = json!({"create_request": {"key": b64("watch/"), "range_end": b64("watch0"), "prev_kv": true}});
    let mut stream = curl.stream("/v3/watch", &create.to_string()).await;
    let created = stream.next().await;
    assert_eq!(created["result"]["created"], true, "{created}");
    assert!(created["result"]["header"]["revision"].is_string());

    post(curl, "/v3/kv/put", json!({"key": b64("watch/k"), "value": b64("x")})).await;
    let put = stream.next().await;
    let event = &put["result"]["events"][0];
    assert!(event.get("type").is_none(), "PUT (0) is left out: {put}");
    assert_eq!((text(&event["kv"]["key"]), text(&event["kv"]["value"])), ("watch/k".to_string(), "x".to_string()));

    post(curl, "/v3/kv/deleterange", json!({"key": b64("watch/k")})).await;
    let delete = stream.next().await;
    let event = &delete["result"]["events"][0];
    assert_eq!(event["type"], "DELETE", "{delete}");
    assert_eq!(text(&event["prev_kv"]["value"]), "x");
}

async fn locks_and_elections(curl: &Curl) {
    let lease = post(curl, "/v3/lease/grant", json!({"TTL": 60})).await["ID"].clone();
    let lock = post(curl, "/v3/lock/lock", json!({"name": b64("lock"), "lease": lease})).await;
    let key = lock["key"].clone();
    assert!(text(&key).starts_with("lock/"), "{lock}");
    post(curl, "/v3/lock/unlock", json!({"key": key})).await;

    let campaign = post(curl, "/v3/election/campaign", json!({"name": b64("election"), "lease": lease, "value": b64("one")})).await;
    let leader = campaign["leader"].clone();
    assert_eq!((text(&leader["name"]), &leader["lease"]), ("election".to_string(), &lease), "{campaign}");
    let mut observe = curl.stream("/v3/election/observe", &json!({"name": b64("election")}).to_string()).await;
    assert_eq!(text(&observe.next().await["result"]["kv"]["value"]), "one");
    post(curl, "/v3/election/proclaim", json!({"leader": leader, "value": b64("two")})).await;
    assert_eq!(text(&observe.next().await["result"]["kv"]["value"]), "two");
    let current = post(curl, "/v3/election/leader", json!({"name": b64("election")})).await;
    assert_eq!(text(&current["kv"]["value"]), "two");
    post(curl, "/v3/election/resign", json!({"leader": leader})).await;
    post(curl, "/v3/lease/revoke", json!({"ID": lease})).await;
}

/// A server stream: `{"result":{"blob":..}}` lines whose bytes end in the SHA-256 that
/// etcdctl checks (N*512 + 32 bytes in all).
async fn snapshot(curl: &Curl) {
    let answer = curl.post("/v3/maintenance/snapshot", "{}").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let mut bytes = 0;
    for line in answer.lines() {
        let blob = line["result"]["blob"].as_str().unwrap_or_else(|| panic!("a blob: {line}"));
        bytes += base64::Engine::decode(&base64::engine::general_purpose::STANDARD, blob).expect("base64").len();
    }
    assert!(bytes > 32 && (bytes - 32) % 512 == 0, "{bytes} snapshot bytes");
}

async fn membership_and_status(curl: &Curl, cluster: &Cluster) {
    let list = post(curl, "/v3/cluster/member/list", json!({})).await;
    let members = list["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{list}");
    assert_eq!(members[0]["clientURLs"], json!([cluster.endpoint(0)]));
    assert_eq!(members[0]["name"], "m0");
    assert!(members[0]["peerURLs"].as_array().is_some_and(|urls| !urls.is_empty()), "{list}");
    assert_eq!(members[0]["ID"], list["header"]["member_id"]);
    assert_eq!(members[0]["ID"], cluster.member_id(0).to_string());

    let status = post(curl, "/v3/maintenance/status", json!({})).await;
    assert_eq!(status["leader"], status["header"]["member_id"], "{status}");
    assert!(status["version"].as_str().is_some_and(|v| v.starts_with("3.")), "{status}");
    for field in ["dbSize", "raftIndex", "raftTerm"] {
        assert!(int(&status[field]) > 0, "{field}: {status}");
    }
}

async fn paths(curl: &Curl) {
    let query = json!({"key": b64("kv/"), "range_end": b64("kv0")});
    let v3 = post(curl, "/v3/kv/range", query.clone()).await;
    let beta = post(curl, "/v3beta/kv/range", query).await;
    assert_eq!(beta["kvs"], v3["kvs"]);

    let unknown = curl.post("/v3/kv/nope", "{}").await;
    assert_eq!((unknown.status, unknown.text().as_str()), (404, "Not Found\n"));
    let get = curl.send("GET", "/v3/kv/range").await;
    assert_eq!((get.status, get.text().as_str()), (405, "Method Not Allowed\n"));
}
