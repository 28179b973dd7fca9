//! Malformed input thrown at a member's gateway: every answer is a 4xx with etcd's error body
//! (or, for a bad first request on a bidirectional stream, etcd's 500 with code 2), none takes
//! long, and the member serves normally afterwards.

use std::time::Duration;

use cairn_tests::http::{self, Answer, Request};
use cairn_tests::Cluster;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::fuzz::{self, Rng};
use super::{assert_error, b64, text, EXCHANGE_TIMEOUT};

const SEED: u64 = 0x00e7_cd35_0001;
const MUTATIONS: usize = 300;
const CONCURRENT: usize = 64;
/// Connections left holding a body that never ends while the member serves others.
const STALLED: usize = 8;

pub async fn malformed_input(cluster: Cluster) {
    let endpoint = cluster.endpoint(0);
    let address = http::address(endpoint).expect("a plain http:// endpoint");
    exact_answers(endpoint).await;
    mutated_requests(endpoint).await;
    garbage_on_the_socket(address).await;
    bodies_that_never_end(endpoint, address).await;
    concurrent_bad_requests(endpoint).await;
    still_serving(&cluster, endpoint).await;
}

async fn send(endpoint: &str, request: &Request) -> Answer {
    http::send(endpoint, request, EXCHANGE_TIMEOUT).await.unwrap_or_else(|e| panic!("an answer: {e:#}"))
}

/// A `POST` of `body`, labelled JSON whatever it is.
async fn post(endpoint: &str, path: &str, body: &[u8]) -> Answer {
    send(endpoint, &Request::new("POST", path).json(body)).await
}

/// grpc-gateway v1's HTTP status for a gRPC code.
fn http_status(code: i64) -> u16 {
    match code {
        1 => 408,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

async fn exact_answers(endpoint: &str) {
    for &(path, body, status, code, message) in fuzz::EXACT {
        assert_error(&post(endpoint, path, body.as_bytes()).await, status, code, message);
    }
    let deep = post(endpoint, "/v3/kv/put", &fuzz::too_deep()).await;
    assert_error(&deep, 400, 3, fuzz::TOO_DEEP_MESSAGE);

    // A value far over the request limit, in a body many times the limit.
    let huge = json!({"key": b64("fuzz/huge"), "value": b64(&"x".repeat(12 << 20))}).to_string();
    let answer = post(endpoint, "/v3/kv/put", huge.as_bytes()).await;
    let body = answer.json();
    let message = body["message"].as_str().unwrap_or_default();
    assert_eq!((answer.status, &body["code"]), (429, &json!(8)), "{body}");
    assert!(message.starts_with("grpc: received message larger than max (") && body["error"] == body["message"], "{body}");

    let unknown = post(endpoint, "/v3/kv/nope", b"{}").await;
    assert_eq!((unknown.status, unknown.text().as_str()), (404, "Not Found\n"));
    let beta = post(endpoint, "/v3beta/nope", b"{}").await;
    assert_eq!((beta.status, beta.text().as_str()), (404, "Not Found\n"));
    for method in ["GET", "PUT", "DELETE"] {
        let wrong = send(endpoint, &Request::new(method, "/v3/kv/range").json(b"")).await;
        assert_eq!((wrong.status, wrong.text().as_str()), (405, "Method Not Allowed\n"), "{method}");
    }
}

/// Seeded mutations of valid requests: each is either still valid (200) or refused with
/// grpc-gateway's error body under the status its code maps to.
async fn mutated_requests(endpoint: &str) {
    for case in fuzz::mutations(SEED, MUTATIONS) {
        let answer = post(endpoint, case.path, &case.body).await;
        check_answer(&answer, &format!("{} {:?}", case.path, String::from_utf8_lossy(&case.body)));
    }
}

fn check_answer(answer: &Answer, what: &str) {
    match answer.status {
        200 => assert!(answer.json().is_object(), "{what}: {}", answer.text()),
        400..=499 => {
            assert_eq!(answer.header("content-type"), Some("application/json"), "{what}");
            let body = answer.json();
            let fields = body.as_object().unwrap_or_else(|| panic!("{what}: an object, got {body}"));
            let code = body["code"].as_i64().unwrap_or_else(|| panic!("{what}: a code in {body}"));
            assert!(body["message"].is_string() && body["error"] == body["message"] && fields.len() == 3, "{what}: {body}");
            assert_eq!(answer.status, http_status(code), "{what}: {body}");
        }
        status => panic!("{what}: {status} {}", answer.text()),
    }
}

/// Bytes that are not HTTP: the server refuses them (a 4xx) or hangs up, at once.
async fn garbage_on_the_socket(address: &str) {
    let mut rng = Rng::new(SEED);
    let mut inputs: Vec<Vec<u8>> = vec![
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec(),
        b"POST /v3/kv/range HTTP/9.9\r\n\r\n".to_vec(),
        b"POST /v3/kv/range HTTP/1.1\r\nno colon here\r\n\r\n".to_vec(),
        b"POST /v3/kv/range HTTP/1.1\r\nContent-Length: -5\r\n\r\n{}".to_vec(),
        b"POST /v3/kv/range HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".to_vec(),
    ];
    for _ in 0..8 {
        let len = 1 + rng.below(2048);
        inputs.push((0..len).map(|_| rng.next() as u8).collect());
    }
    for input in inputs {
        let received = raw_exchange(address, &input).await;
        assert!(received.is_empty() || received.starts_with(b"HTTP/1.1 4"), "{:?} answered {:?}", String::from_utf8_lossy(&input), String::from_utf8_lossy(&received));
    }
    // An HTTP/2 preface, then frames of noise: the connection is torn down, not kept hanging.
    let mut h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    h2.extend((0..512).map(|_| rng.next() as u8));
    raw_exchange(address, &h2).await;
}

/// Sends `bytes`, half-closes, and reads until the server hangs up. Not an [`http::send`]:
/// garbage has no end the server could find but the half-close, and any hang-up is an answer.
async fn raw_exchange(address: &str, bytes: &[u8]) -> Vec<u8> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        stream.write_all(bytes).await?;
        stream.shutdown().await?;
        let mut received = Vec::new();
        // A reset after the answer is an ending too.
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut received).await;
        anyhow::Ok(received)
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("the server hung up on {:?} within {EXCHANGE_TIMEOUT:?}", String::from_utf8_lossy(bytes)))
        .unwrap_or_default()
}

/// Clients that announce a large body and stall in it, or hang up halfway, hold up no one.
async fn bodies_that_never_end(endpoint: &str, address: &str) {
    let mut stalled = Vec::new();
    for i in 0..STALLED {
        let mut stream = TcpStream::connect(address).await.expect("connects");
        let head = if i % 2 == 0 {
            format!("POST /v3/kv/put HTTP/1.1\r\nHost: {address}\r\nContent-Length: 100000000\r\n\r\n{{\"key\":\"Zm9v\",\"value\":\"")
        } else {
            format!("POST /v3/watch HTTP/1.1\r\nHost: {address}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{{\"cre\r\n")
        };
        stream.write_all(head.as_bytes()).await.expect("writes");
        stalled.push(stream);
    }
    let put = post(endpoint, "/v3/kv/put", json!({"key": b64("fuzz/alive"), "value": b64("1")}).to_string().as_bytes()).await;
    assert_eq!(put.status, 200, "{}", put.text());
    // Hanging up halfway through a body.
    for stream in &mut stalled {
        stream.write_all(b"AAAA").await.expect("writes");
    }
    drop(stalled);
}

/// Many bad requests at once all get their answers.
async fn concurrent_bad_requests(endpoint: &str) {
    let requests = (0..CONCURRENT).map(|i| {
        let (path, body, status, code, message) = fuzz::EXACT[i % fuzz::EXACT.len()];
        async move {
            let answer = post(endpoint, path, body.as_bytes()).await;
            assert_error(&answer, status, code, message);
        }
    });
    tokio::time::timeout(EXCHANGE_TIMEOUT, futures::future::join_all(requests)).await.expect("every concurrent request is answered in time");
}

async fn still_serving(cluster: &Cluster, endpoint: &str) {
    let body = json!({"key": b64("fuzz/after"), "value": b64("still here")}).to_string();
    let put = post(endpoint, "/v3/kv/put", body.as_bytes()).await;
    assert_eq!(put.status, 200, "{}", put.text());
    let range = post(endpoint, "/v3/kv/range", json!({"key": b64("fuzz/after")}).to_string().as_bytes()).await;
    assert_eq!(text(&range.json()["kvs"][0]["value"]), "still here");
    let mut client = cluster.client().await.expect("a gRPC client");
    let reply = tokio::time::timeout(Duration::from_secs(10), client.get("fuzz/after", None)).await.expect("gRPC answers").expect("get");
    assert_eq!(reply.kvs()[0].value(), b"still here");
}
