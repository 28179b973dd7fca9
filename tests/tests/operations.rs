//! The operations side of the client port (reference/etcd-api.md §6.3 and §9): `/health`,
//! `/readyz`, `/livez`, `/version`, `/metrics` and the standard gRPC health service. Each
//! scenario runs against Cairn and, where etcd 3.5 behaves the same, against a real etcd;
//! `/readyz` and `/livez` came in etcd 3.5.11, so only Cairn answers them here.

use std::time::Duration;

use cairn_tests::{http, Backend, Cluster};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[path = "operations/exposition.rs"]
mod exposition;
#[path = "operations/health.rs"]
mod health;
#[path = "operations/metrics.rs"]
mod metrics;
#[path = "operations/probes.rs"]
mod probes;
#[path = "operations/process.rs"]
mod process;

use health::*;
use metrics::*;
use probes::*;
use process::*;

/// How long one HTTP request may take: longer than the 7 s a health read may wait for a
/// leader or a read index (etcd's request timeout), so a slow answer is still an answer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// How soon a member that knows it has no leader must answer `/health`: it reads nothing.
const ANSWER_BOUND: Duration = Duration::from_secs(3);
const HEALTHY: &str = r#"{"health":"true","reason":""}"#;
const TEXT: &str = "text/plain; charset=utf-8";

macro_rules! scenario {
    ($scenario:ident, $members:expr) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cairn() {
                cairn_tests::run_scenario(cairn_tests::Backend::Cairn, $members, super::$scenario).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn etcd() {
                cairn_tests::run_scenario(cairn_tests::Backend::Etcd, $members, super::$scenario).await;
            }
        }
    };
}

/// A scenario for Cairn alone: etcd 3.5.1 has no such endpoint.
macro_rules! cairn_scenario {
    ($scenario:ident, $members:expr) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cairn() {
                cairn_tests::run_scenario(cairn_tests::Backend::Cairn, $members, super::$scenario).await;
            }
        }
    };
}

scenario!(health_without_quorum, 3);
scenario!(health_of_an_isolated_leader, 3);
scenario!(health_alarms, 1);
scenario!(health_and_version_formats, 1);
scenario!(metrics_names_and_types, 1);
scenario!(metrics_move, 1);
cairn_scenario!(readyz_and_livez, 1);
cairn_scenario!(allocator_purge_delay, 1);

fn is_cairn(cluster: &Cluster) -> bool {
    cluster.backend() == Backend::Cairn
}

/// Asserts a `/health` answer of 200 with etcd's healthy body.
#[track_caller]
fn assert_healthy(reply: &http::Answer, what: &str) {
    assert_eq!((reply.status, reply.text().as_str()), (200, HEALTHY), "{what}: {reply:?}");
    assert_eq!(reply.header("content-type"), Some(TEXT), "{what}");
}

/// A `/health` failure as etcd writes it (Go's `http.Error`: a trailing newline).
fn unhealthy_body(reason: &str) -> String {
    format!("{{\"health\":\"false\",\"reason\":\"{reason}\"}}\n")
}

#[track_caller]
fn assert_unhealthy(reply: &http::Answer, reason: &str, what: &str) {
    assert_eq!((reply.status, reply.text().as_str()), (503, unhealthy_body(reason).as_str()), "{what}");
    assert_eq!(reply.header("content-type"), Some(TEXT), "{what}");
}

async fn health_client(endpoint: &str) -> HealthClient<Channel> {
    let channel = Channel::from_shared(endpoint.to_owned()).expect("a URI").connect().await.expect("a gRPC connection");
    HealthClient::new(channel)
}

/// `grpc.health.v1.Health/Check` for `service`: the status, or the error's code and message.
async fn grpc_check(endpoint: &str, service: &str) -> Result<ServingStatus, (tonic::Code, String)> {
    let mut client = health_client(endpoint).await;
    let request = HealthCheckRequest { service: service.to_owned() };
    let reply = tokio::time::timeout(HTTP_TIMEOUT, client.check(request)).await.expect("Check answers");
    let reply = reply.map_err(|status| (status.code(), status.message().to_owned()))?;
    Ok(ServingStatus::try_from(reply.into_inner().status).expect("a known status"))
}

/// A plain `x.y.z` version, which clients parse (etcd-api.md §0).
fn is_plain_version(version: &str) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}
