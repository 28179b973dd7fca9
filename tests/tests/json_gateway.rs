//! etcd's HTTP/JSON gateway (reference/etcd-api.md §6), against Cairn and etcd 3.5.1 alike:
//!
//! - the curl recipes of etcd's docs, with the real `curl` over HTTP/1.1 (and over h2c on
//!   Cairn: etcd 3.5's plain client port hands every HTTP/2 connection to its gRPC server);
//! - Python's etcd3gw, the gateway's best-known client (`tests/python/etcd3gw_client.py`);
//! - malformed input of every kind, each answered with etcd's error body and never a hang,
//!   after which the member still serves;
//! - and one run of the same requests, valid and malformed, against both, whose answers must
//!   match byte for byte once IDs are set aside.

use std::time::Duration;

use base64::Engine;
use cairn_tests::http::Answer;
use cairn_tests::Backend;
use serde_json::{json, Value};

#[path = "json_gateway/curl.rs"]
mod curl;
#[path = "json_gateway/etcd3gw.rs"]
mod etcd3gw;
#[path = "json_gateway/fuzz.rs"]
mod fuzz;
#[path = "json_gateway/malformed.rs"]
mod malformed;
#[path = "json_gateway/recipes.rs"]
mod recipes;
#[path = "json_gateway/versus_etcd.rs"]
mod versus_etcd;

/// How long one HTTP exchange may take; the gateway answers bad input at once.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
const KEY_NOT_PROVIDED: &str = "etcdserver: key is not provided";

macro_rules! on_both {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cairn() {
                cairn_tests::run_scenario(cairn_tests::Backend::Cairn, 1, super::$scenario).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn etcd() {
                cairn_tests::run_scenario(cairn_tests::Backend::Etcd, 1, super::$scenario).await;
            }
        }
    };
}

on_both!(curl_recipes);
on_both!(etcd3gw_client);
on_both!(malformed_input);

use etcd3gw::etcd3gw_client;
use malformed::malformed_input;
use recipes::curl_recipes;

/// The recipes over HTTP/2 without TLS; Cairn only (see the module docs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_recipes_h2c() {
    cairn_tests::run_scenario(Backend::Cairn, 1, recipes::curl_recipes_h2c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_match_etcd() {
    versus_etcd::answers_match_etcd().await;
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A base64 JSON string decoded as text.
fn text(value: &Value) -> String {
    let encoded = value.as_str().unwrap_or_else(|| panic!("a base64 string, got {value}"));
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).expect("valid base64")).expect("UTF-8")
}

/// An int64 the gateway wrote as a JSON string.
fn int(value: &Value) -> i64 {
    value.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("an int64 string, got {value}"))
}

/// grpc-gateway v1's error body, under the HTTP status it maps `code` to.
fn assert_error(answer: &Answer, status: u16, code: i64, message: &str) {
    assert_eq!(answer.status, status, "status of {}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.json(), json!({"error": message, "code": code, "message": message}));
}
