//! `/health`, `/version` and the gRPC health service: healthy, without quorum, with an alarm.

use std::time::Duration;

use anyhow::ensure;
use cairn_tests::{wait_until, Cluster, ELECTION_TIMEOUT};
use etcd_client::{AlarmAction, AlarmOptions, AlarmType};
use serde_json::Value;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::HealthCheckRequest;

use super::*;

/// How long a member may take to notice it lost its leader and say so: an election timeout
/// to miss the leader, plus a health read that may wait out the request timeout meanwhile.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(45);

/// A healthy three-member cluster answers `/health` and gRPC Check on every member; once two
/// members are gone, the survivor reports `RAFT NO LEADER`, promptly and from then on, while
/// (on Cairn) its serializable health, liveness and local reads stay good.
pub(super) async fn health_without_quorum(mut cluster: Cluster) {
    for index in 0..cluster.size() {
        let endpoint = cluster.endpoint(index);
        let reply = http::get(endpoint, "/health", HTTP_TIMEOUT).await.expect("/health answers");
        assert_healthy(&reply, &format!("member {index}"));
        assert_eq!(grpc_check(endpoint, "").await, Ok(ServingStatus::Serving), "member {index}");
    }
    let unknown = grpc_check(cluster.endpoint(0), "no.such.Service").await;
    assert_eq!(unknown, Err((Code::NotFound, "unknown service".to_owned())), "grpc-go's answer for an unknown service");

    let leader = cluster.wait_for_leader(ELECTION_TIMEOUT).await.expect("a leader");
    let followers: Vec<usize> = cluster.running().filter(|&i| i != leader).collect();
    let (survivor, other) = (followers[0], followers[1]);
    let endpoint = cluster.endpoint(survivor).to_owned();
    let mut watch = health_client(&endpoint).await.watch(HealthCheckRequest::default()).await.expect("Watch").into_inner();
    let first = watch.message().await.expect("a first status").expect("the stream is open");
    assert_eq!(first.status, ServingStatus::Serving as i32, "Watch starts with the current status");

    cluster.kill(leader).expect("kill the leader");
    cluster.kill(other).expect("kill a follower");
    wait_for_no_leader(&endpoint, "the survivor").await;
    let again = http::get(&endpoint, "/health", ANSWER_BOUND).await.expect("a member that knows it has no leader answers at once");
    assert_unhealthy(&again, "RAFT NO LEADER", "asked again");
    // `?serializable=true` (skip the leader check, read locally) came after etcd 3.5.1, which
    // ignores it.
    let local = http::get(&endpoint, "/health?serializable=true", HTTP_TIMEOUT).await.expect("/health?serializable=true answers");
    if is_cairn(&cluster) {
        assert_healthy(&local, "serializable health needs no leader");
    } else {
        assert_unhealthy(&local, "RAFT NO LEADER", "etcd 3.5.1 without ?serializable");
    }

    // etcd 3.5 serves the gRPC health service as SERVING for as long as it runs; Cairn ties it
    // to the leader, as /health does.
    let expected = if is_cairn(&cluster) { ServingStatus::NotServing } else { ServingStatus::Serving };
    assert_eq!(grpc_check(&endpoint, "").await, Ok(expected), "gRPC Check without quorum");
    if is_cairn(&cluster) {
        let next = tokio::time::timeout(HTTP_TIMEOUT, watch.message()).await.expect("Watch reports the change");
        let next = next.expect("the stream is healthy").expect("the stream is open");
        assert_eq!(next.status, ServingStatus::NotServing as i32, "Watch reports losing the leader");
        readiness_without_quorum(&endpoint).await;
    }
}

/// An active alarm fails `/health` with its name unless excluded; clearing it heals.
/// A leader whose followers are all gone reports `RAFT NO LEADER` too: etcd's leader steps
/// down after an election timeout without a quorum (CheckQuorum), and Cairn reports such a
/// leader as none (its `/health`, `has_leader` and Status).
pub(super) async fn health_of_an_isolated_leader(mut cluster: Cluster) {
    let leader = cluster.wait_for_leader(ELECTION_TIMEOUT).await.expect("a leader");
    let endpoint = cluster.endpoint(leader).to_owned();
    assert_healthy(&http::get(&endpoint, "/health", HTTP_TIMEOUT).await.expect("/health answers"), "the leader");
    for follower in (0..cluster.size()).filter(|&i| i != leader) {
        cluster.kill(follower).expect("kill a follower");
    }
    wait_for_no_leader(&endpoint, "the isolated leader").await;
    let status = cluster.status(leader).await.expect("Status answers");
    assert_eq!(status.leader(), 0, "Status of an isolated leader");
}

/// Waits until `who`'s `/health` answers 503 `RAFT NO LEADER`.
async fn wait_for_no_leader(endpoint: &str, who: &str) {
    let reply = wait_until(&format!("{who}'s /health to report no leader"), NOTICE_TIMEOUT, || async {
        let reply = http::get(endpoint, "/health", HTTP_TIMEOUT).await?;
        ensure!(reply.status == 503 && reply.text() == unhealthy_body("RAFT NO LEADER"), "{} {}", reply.status, reply.text());
        Ok(reply)
    })
    .await
    .unwrap_or_else(|e| panic!("{who} without quorum reports no leader: {e:#}"));
    assert_unhealthy(&reply, "RAFT NO LEADER", who);
}

pub(super) async fn health_alarms(cluster: Cluster) {
    let endpoint = cluster.endpoint(0);
    let mut client = cluster.client().await.expect("a client");
    let mut member = AlarmOptions::new();
    member.with_member(cluster.member_id(0));
    client.alarm(AlarmAction::Activate, AlarmType::Nospace, Some(member.clone())).await.expect("raise NOSPACE");

    let get = |path: &'static str| http::get(endpoint, path, HTTP_TIMEOUT);
    assert_unhealthy(&get("/health").await.expect("/health"), "ALARM NOSPACE", "with NOSPACE");
    assert_healthy(&get("/health?exclude=NOSPACE").await.expect("/health"), "NOSPACE excluded");
    assert_unhealthy(&get("/health?exclude=CORRUPT").await.expect("/health"), "ALARM NOSPACE", "another alarm excluded");
    assert_healthy(&get("/health?exclude=CORRUPT&exclude=NOSPACE").await.expect("/health"), "both excluded");
    assert_unhealthy(&get("/health?serializable=true").await.expect("/health"), "ALARM NOSPACE", "alarms count for serializable health");
    if is_cairn(&cluster) {
        let ready = get("/readyz").await.expect("/readyz");
        assert_eq!((ready.status, ready.text().as_str()), (200, "ok\n"), "readiness only fails on CORRUPT");
    }

    client.alarm(AlarmAction::Deactivate, AlarmType::Nospace, Some(member)).await.expect("clear NOSPACE");
    assert_healthy(&get("/health").await.expect("/health"), "alarm cleared");
}

/// `/version` agrees with Maintenance.Status and is plain numbers; the health and version
/// endpoints refuse other methods as etcd does.
pub(super) async fn health_and_version_formats(cluster: Cluster) {
    let endpoint = cluster.endpoint(0);
    let status_version = cluster.status(0).await.expect("Status").version().to_owned();
    let reply = http::get(endpoint, "/version", HTTP_TIMEOUT).await.expect("/version");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.text().starts_with(r#"{"etcdserver":""#), "etcd's field order: {}", reply.text());
    let json: Value = serde_json::from_slice(&reply.body).expect("JSON");
    let server = json["etcdserver"].as_str().expect("etcdserver");
    let cluster_version = json["etcdcluster"].as_str().expect("etcdcluster");
    assert_eq!(server, status_version, "/version and Status agree");
    assert!(is_plain_version(server) && is_plain_version(cluster_version), "{json}");
    let minor = |v: &str| v.rsplit_once('.').map(|(mm, _)| mm.to_owned());
    assert_eq!(minor(cluster_version), minor(server), "{json}");
    assert!(cluster_version.ends_with(".0"), "{json}");
    assert_eq!(json.as_object().map(|o| o.len()), Some(2), "{json}");

    assert_healthy(&http::get(endpoint, "/health", HTTP_TIMEOUT).await.expect("/health"), "healthy");
    for (method, path) in [("POST", "/health"), ("HEAD", "/health"), ("PUT", "/version"), ("DELETE", "/version")] {
        let reply = http::send(endpoint, &http::Request::new(method, path).body(b""), HTTP_TIMEOUT).await.expect("an answer");
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.header("allow"), Some("GET"), "{method} {path}");
        if method != "HEAD" {
            assert_eq!(reply.text(), "Method Not Allowed\n", "{method} {path}");
        }
    }
}
