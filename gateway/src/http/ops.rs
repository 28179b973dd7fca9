//! Operations endpoints: `/health`, `/readyz`, `/livez`, `/version`, `/metrics`, with etcd's
//! formats and status codes (reference/etcd-api.md §6.3; etcd's
//! server/etcdserver/api/etcdhttp/{health,version,metrics}.go).

pub mod checks;
pub mod grpc_health;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{Method, StatusCode, Uri};
use serde::Serialize;

use self::checks::Check;
use super::HttpState;
use crate::maintenance::SERVER_VERSION;
use crate::metrics;

pub const HEALTH: &str = "/health";
pub const READYZ: &str = "/readyz";
pub const LIVEZ: &str = "/livez";
pub const VERSION: &str = "/version";
pub const METRICS: &str = "/metrics";

const TEXT: &str = "text/plain; charset=utf-8";

pub fn router() -> Router<HttpState> {
    Router::new()
        .route(HEALTH, any(health))
        .route(READYZ, any(|state: State<HttpState>, method: Method, uri: Uri| probe(state, method, uri, checks::READYZ)))
        .route(
            "/readyz/{*check}",
            any(|state: State<HttpState>, method: Method, uri: Uri, check: Path<String>| one_check(state, method, uri, check, checks::READYZ)),
        )
        .route(LIVEZ, any(|state: State<HttpState>, method: Method, uri: Uri| probe(state, method, uri, checks::LIVEZ)))
        .route(
            "/livez/{*check}",
            any(|state: State<HttpState>, method: Method, uri: Uri, check: Path<String>| one_check(state, method, uri, check, checks::LIVEZ)),
        )
        .route(VERSION, any(version))
        .route(METRICS, get(scrape))
}

/// Go's `http.Error`: plain text, not to be sniffed, the message and a newline.
fn http_error(status: StatusCode, message: &str) -> Response {
    (status, [(CONTENT_TYPE, TEXT), (X_CONTENT_TYPE_OPTIONS, "nosniff")], format!("{message}\n")).into_response()
}

/// etcd's answer to anything but GET on its health and version endpoints.
fn method_not_allowed() -> Response {
    let mut resp = http_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    resp.headers_mut().insert(ALLOW, HeaderValue::from_static("GET"));
    resp
}

/// The query's pairs in order; a repeated name (`?exclude=a&exclude=b`) appears once per value.
fn query(uri: &Uri) -> Vec<(String, String)> {
    Query::<Vec<(String, String)>>::try_from_uri(uri).map(|q| q.0).unwrap_or_default()
}

/// The non-empty values of `name`.
fn values<'a>(pairs: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    pairs.iter().filter(move |(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
}

#[derive(Serialize)]
struct HealthJson<'a> {
    health: &'a str,
    reason: &'a str,
}

/// `GET /health[?exclude=ALARM…][&serializable=true]`: 200 with `{"health":"true","reason":""}`,
/// or 503 with `"false"` and etcd's reason.
async fn health(State(state): State<HttpState>, method: Method, uri: Uri) -> Response {
    if method != Method::GET {
        return method_not_allowed();
    }
    let pairs = query(&uri);
    let excluded: Vec<String> = values(&pairs, "exclude").map(str::to_string).collect();
    // Go's Query().Get: the first value counts.
    let serializable = pairs.iter().find(|(k, _)| k == "serializable").is_some_and(|(_, v)| v == "true");
    let outcome = checks::health(&state.node, &excluded, serializable).await;
    let json = |health, reason| serde_json::to_string(&HealthJson { health, reason }).expect("two strings serialize");
    match outcome {
        Ok(()) => (StatusCode::OK, [(CONTENT_TYPE, TEXT)], json("true", "")).into_response(),
        Err(reason) => http_error(StatusCode::SERVICE_UNAVAILABLE, &json("false", &reason)),
    }
}

/// `GET /readyz` or `/livez[?verbose][&exclude=check…]`: runs the probe's checks.
async fn probe(State(state): State<HttpState>, method: Method, uri: Uri, all: &'static [Check]) -> Response {
    if method != Method::GET {
        return method_not_allowed();
    }
    let pairs = query(&uri);
    let excluded: Vec<&str> = values(&pairs, "exclude").collect();
    // As etcd, excluding a check that does not exist is not an error.
    let checks = all.iter().copied().filter(|c| !excluded.contains(&c.name()));
    let verbose = pairs.iter().any(|(k, _)| k == "verbose");
    probe_answer(checks::probe(&state.node, checks).await, verbose)
}

/// `GET /readyz/<check>` or `/livez/<check>`: that check alone.
async fn one_check(State(state): State<HttpState>, method: Method, uri: Uri, Path(name): Path<String>, all: &'static [Check]) -> Response {
    let Some(check) = all.iter().copied().find(|c| c.name() == name) else {
        return http_error(StatusCode::NOT_FOUND, "404 page not found");
    };
    if method != Method::GET {
        return method_not_allowed();
    }
    let verbose = query(&uri).iter().any(|(k, _)| k == "verbose");
    probe_answer(checks::probe(&state.node, [check]).await, verbose)
}

/// etcd's probe answer: `ok` (after every check's line when verbose), or 503 with the lines.
fn probe_answer((ok, report): (bool, String), verbose: bool) -> Response {
    if !ok {
        return http_error(StatusCode::SERVICE_UNAVAILABLE, &report);
    }
    let body = if verbose { report + "ok\n" } else { "ok\n".to_string() };
    (StatusCode::OK, [(CONTENT_TYPE, TEXT), (X_CONTENT_TYPE_OPTIONS, "nosniff")], body).into_response()
}

#[derive(Serialize)]
struct VersionJson<'a> {
    etcdserver: &'a str,
    etcdcluster: &'a str,
}

/// `GET /version`: the version Maintenance.Status reports, and the cluster's.
async fn version(method: Method) -> Response {
    if method != Method::GET {
        return method_not_allowed();
    }
    let cluster = metrics::cluster_version();
    let body = serde_json::to_string(&VersionJson { etcdserver: SERVER_VERSION, etcdcluster: &cluster }).expect("two strings serialize");
    (StatusCode::OK, [(CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /metrics`: a Prometheus scrape.
async fn scrape(State(state): State<HttpState>) -> Response {
    ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], state.metrics.render()).into_response()
}
