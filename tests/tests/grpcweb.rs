//! grpc-web as a web page speaks it. The Node suite in `tests/grpcweb/` calls a single member
//! through Connect's grpc-web transport, the client code a browser runs: unary KV calls, the
//! browser service's server-streaming Watch and KeepAlive, and etcd's errors. From Rust, with
//! raw HTTP/1.1: CORS as a browser checks it, and grpc-web-text, which Connect does not speak
//! (its `useBinaryFormat: false` is grpc-web+json).
//!
//! The Node suite needs Node.js 20 or newer (`node` and `npm` on PATH, or `$NODE` and `$NPM`);
//! without it the test fails and says so. It installs the locked packages (`npm ci`) when
//! `tests/grpcweb/node_modules` is missing or older than the lock file, and generates the
//! JavaScript for Cairn's .proto files at every run.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{bail, ensure};
use base64::Engine;
use cairn_tests::http::{self, Answer, Request};
use cairn_tests::{wait_until, Backend, Cluster};
use etcd_client::CompactionOptions;
use tokio::process::Command;

/// How long `npm ci` may take (a cold cache downloads a few MB).
const NPM_CI_TIMEOUT: Duration = Duration::from_secs(300);
/// How long generating the JavaScript from the .proto files may take.
const GENERATE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the whole Node suite may take; each of its calls has its own, shorter deadline.
const NODE_SUITE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one raw HTTP exchange may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const NODE_MAJOR: u32 = 20;
/// A page's origin, other than the member's.
const ORIGIN: &str = "http://console.example";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_web_suite() {
    let node = node_binary();
    let dir = cairn_tests::package_dir().join("grpcweb");
    install_packages(&dir).await;
    let mut generate = Command::new(&node);
    generate.arg("generate.mjs").current_dir(&dir).kill_on_drop(true);
    run(&mut generate, GENERATE_TIMEOUT, "generating the JavaScript (node generate.mjs)").await;
    let cluster = cairn().await;
    let mut suite = Command::new(&node);
    suite.arg("grpcweb.test.mjs").arg(cluster.endpoint(0)).current_dir(&dir).kill_on_drop(true);
    let output = run(&mut suite, NODE_SUITE_TIMEOUT, "the grpc-web Node suite (node grpcweb.test.mjs)").await;
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains("# fail 0") && !report.contains("# pass 0"), "the Node suite ran no test or hid a failure:\n{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_lets_a_page_call_grpc_web_and_read_its_status() {
    let cluster = cairn().await;
    let endpoint = cluster.endpoint(0);

    // What a browser sends before a cross-origin grpc-web call with Connect's headers.
    let asked = "content-type,x-grpc-web,x-user-agent,grpc-timeout";
    let preflight = Request::new("OPTIONS", "/etcdserverpb.KV/Range")
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", asked)
        .body(&[]);
    let resp = http::send(endpoint, &preflight, HTTP_TIMEOUT).await.expect("preflight");
    assert_eq!(resp.status, 200, "preflight: {resp:?}");
    assert_allows_origin(&resp);
    assert!(resp.list("access-control-allow-methods").contains(&"post".to_owned()), "POST allowed: {resp:?}");
    let allowed = resp.list("access-control-allow-headers");
    for header in asked.split(',') {
        assert!(allowed.contains(&header.to_owned()), "{header} allowed: {resp:?}");
    }

    // A call that succeeds: its status is in a trailer frame of the body.
    let put = message(&[bytes(1, b"cors/k"), bytes(2, b"v")]);
    let resp = http::send(endpoint, &grpc_web("/etcdserverpb.KV/Put", "application/grpc-web+proto", Some(ORIGIN), &frame(&put)), HTTP_TIMEOUT).await.expect("put");
    assert_eq!(resp.status, 200, "put: {resp:?}");
    assert_allows_origin(&resp);
    assert_exposes_status(&resp);
    let (_, trailers) = frames(&resp.body).expect("grpc-web frames");
    assert_eq!(trailer(&trailers, "grpc-status"), Some("0"));

    // A call that fails at once: trailers-only, so the status travels in the response headers,
    // which a script reads only because they are exposed.
    let range = message(&[bytes(1, b"cors/k"), varint(4, 1 << 40)]);
    let resp = http::send(endpoint, &grpc_web("/etcdserverpb.KV/Range", "application/grpc-web+proto", Some(ORIGIN), &frame(&range)), HTTP_TIMEOUT).await.expect("range");
    assert_eq!(resp.header("grpc-status"), Some("11"), "future revision: {resp:?}");
    assert_eq!(resp.header("grpc-message").map(percent_decode).as_deref(), Some(FUTURE_REV));
    assert_allows_origin(&resp);
    assert_exposes_status(&resp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_text() {
    let cluster = cairn().await;
    let endpoint = cluster.endpoint(0);
    let mut client = cluster.client().await.expect("client");

    let put = message(&[bytes(1, b"text/k"), bytes(2, b"over base64")]);
    let (messages, trailers) = text_call(endpoint, "/etcdserverpb.KV/Put", &put).await;
    assert_eq!(trailer(&trailers, "grpc-status"), Some("0"), "put trailers: {trailers:?}");
    let put_revision = header_revision(&messages[0]);
    assert!(put_revision > 0);
    let stored = client.get("text/k", None).await.expect("get");
    assert_eq!(stored.kvs()[0].value(), b"over base64", "gRPC reads what grpc-web-text wrote");
    assert_eq!(stored.kvs()[0].mod_revision(), put_revision);

    let (messages, _) = text_call(endpoint, "/etcdserverpb.KV/Range", &message(&[bytes(1, b"text/k")])).await;
    let kv = first_bytes(&messages[0], 2).expect("one key in the range");
    assert_eq!(first_bytes(kv, 5), Some(&b"over base64"[..]));
    assert_eq!(header_revision(&messages[0]), put_revision);

    // A server stream over grpc-web-text: the watcher's start revision is compacted, so the
    // server answers created, then canceled, then ends the call by itself.
    let last = client.put("text/k", "again", None).await.expect("put").header().expect("header").revision();
    client.compact(last, Some(CompactionOptions::new().with_physical())).await.expect("compact");
    let watch = message(&[bytes(1, b"text/k"), varint(3, put_revision as u64)]);
    let (responses, trailers) = text_call(endpoint, "/browserpb.Browser/Watch", &watch).await;
    assert_eq!(trailer(&trailers, "grpc-status"), Some("0"), "watch trailers: {trailers:?}");
    assert_eq!(responses.len(), 2, "created, then canceled");
    assert_eq!(first_varint(&responses[0], 3), Some(1), "created");
    assert_eq!(first_varint(&responses[1], 4), Some(1), "canceled");
    assert_eq!(first_varint(&responses[1], 5), Some(last as u64), "compact_revision");

    let range = message(&[bytes(1, b"text/k"), varint(4, put_revision as u64)]);
    let resp = http::send(endpoint, &grpc_web("/etcdserverpb.KV/Range", "application/grpc-web-text", None, base64(&frame(&range)).as_bytes()), HTTP_TIMEOUT).await.expect("range");
    assert_eq!(resp.header("grpc-status"), Some("11"), "compacted revision: {resp:?}");
    assert_eq!(resp.header("grpc-message").map(percent_decode).as_deref(), Some(COMPACTED));
}

/// A page that opens Browser.Watch and then goes away (the tab closes, the connection drops)
/// leaves no watcher behind: the hub's watcher count, as /metrics reports it, goes up by one
/// while the stream is open and back down once the connection is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_watch_is_released_when_the_page_goes_away() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let cluster = cairn().await;
    let endpoint = cluster.endpoint(0).to_string();
    let before = watchers(&endpoint).await.expect("/metrics answers");

    let watch = message(&[bytes(1, b"page/k")]);
    let request = grpc_web("/browserpb.Browser/Watch", "application/grpc-web+proto", Some(ORIGIN), &frame(&watch));
    let host = http::address(&endpoint).expect("an http:// endpoint");
    let mut socket = tokio::net::TcpStream::connect(host).await.expect("connect");
    socket.write_all(&request.bytes(host)).await.expect("send the call");
    // The created response is a grpc-web data frame after the headers; the stream stays open.
    let mut received = Vec::new();
    tokio::time::timeout(HTTP_TIMEOUT, async {
        let mut chunk = [0u8; 4096];
        while !received.windows(4).any(|w| w == b"\r\n\r\n") || received.len() < 64 {
            let n = socket.read(&mut chunk).await.expect("read the answer");
            assert!(n > 0, "the server closed the watch: {}", String::from_utf8_lossy(&received));
            received.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("the watch answers within the deadline");
    wait_until("the open watch to count as a watcher", HTTP_TIMEOUT, || async {
        let now = watchers(&endpoint).await?;
        ensure!(now == before + 1, "{now} watchers, expected {}", before + 1);
        Ok(())
    })
    .await
    .expect("one more watcher while the page watches");

    drop(socket);
    wait_until("the watcher to be released", HTTP_TIMEOUT, || async {
        let now = watchers(&endpoint).await?;
        ensure!(now == before, "{now} watchers, expected {before}");
        Ok(())
    })
    .await
    .expect("the watcher goes with the connection");
}

/// `etcd_debugging_mvcc_watcher_total` from the member's /metrics.
async fn watchers(endpoint: &str) -> anyhow::Result<i64> {
    let metrics = http::get(endpoint, "/metrics", HTTP_TIMEOUT).await?.text();
    let sample = metrics.lines().find_map(|line| line.strip_prefix("etcd_debugging_mvcc_watcher_total "));
    let Some(value) = sample else { bail!("no etcd_debugging_mvcc_watcher_total sample in /metrics") };
    Ok(value.trim().parse()?)
}

async fn cairn() -> Cluster {
    match Cluster::start(Backend::Cairn, 1).await {
        Ok(Some(cluster)) => cluster,
        Ok(None) => unreachable!("cairn is built, not installed"),
        Err(error) => panic!("could not start a cairn member: {error:#}"),
    }
}

fn from_env_or(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).filter(|v| !v.is_empty()).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// Node.js, checked to be new enough; a missing Node fails the test, it does not skip it.
fn node_binary() -> PathBuf {
    let node = from_env_or("NODE", "node");
    let how_to = format!("the grpc-web test needs Node.js {NODE_MAJOR} or newer with npm, as `node` on PATH or in $NODE (CI installs it)");
    let output = std::process::Command::new(&node).arg("--version").output().unwrap_or_else(|e| panic!("{how_to}: running {}: {e}", node.display()));
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let major: Option<u32> = version.strip_prefix('v').and_then(|v| v.split('.').next()).and_then(|m| m.parse().ok());
    assert!(major.is_some_and(|m| m >= NODE_MAJOR), "{how_to}: {} --version says {version:?}", node.display());
    node
}

/// `npm ci` when the packages are missing or older than the lock file.
async fn install_packages(dir: &Path) {
    let installed = dir.join("node_modules").join(".package-lock.json");
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let lock = modified(&dir.join("package-lock.json")).expect("tests/grpcweb/package-lock.json exists");
    if modified(&installed).is_some_and(|at| at >= lock) {
        return;
    }
    let npm = from_env_or("NPM", "npm");
    let mut command = Command::new(npm);
    command.args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(dir).kill_on_drop(true);
    run(&mut command, NPM_CI_TIMEOUT, "installing the Node packages (npm ci in tests/grpcweb)").await;
}

/// Runs `command` to completion within `timeout`; panics with its output unless it succeeded.
async fn run(command: &mut Command, timeout: Duration, what: &str) -> Output {
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} took over {timeout:?}"))
        .unwrap_or_else(|e| panic!("{what}: could not start: {e}"));
    let printed = format!("--- stdout\n{}\n--- stderr\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{what} failed ({}):\n{printed}", output.status);
    eprintln!("{what}:\n{printed}");
    output
}

/// Trailer names (in lower case) and values, in order.
type Trailers = Vec<(String, String)>;

fn assert_allows_origin(resp: &Answer) {
    let allowed = resp.header("access-control-allow-origin");
    assert!(allowed == Some(ORIGIN) || allowed == Some("*"), "origin {ORIGIN} allowed: {resp:?}");
}

fn assert_exposes_status(resp: &Answer) {
    let exposed = resp.list("access-control-expose-headers");
    for header in ["grpc-status", "grpc-message"] {
        assert!(exposed.contains(&header.to_owned()), "{header} exposed: {resp:?}");
    }
}

/// A grpc-web call as a grpc-web client sends it; `accept` says which encoding the answer
/// should use, as grpc-web's own JavaScript client does (tonic-web follows it).
fn grpc_web(path: &str, content_type: &str, origin: Option<&str>, body: &[u8]) -> Request {
    let mut request = Request::new("POST", path).header("content-type", content_type).header("accept", content_type).header("x-grpc-web", "1");
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.body(body)
}

/// A unary or server-streaming call in grpc-web-text; its messages and trailers.
async fn text_call(endpoint: &str, path: &str, request: &[u8]) -> (Vec<Vec<u8>>, Trailers) {
    let resp = http::send(endpoint, &grpc_web(path, "application/grpc-web-text", None, base64(&frame(request)).as_bytes()), HTTP_TIMEOUT).await.expect(path);
    assert_eq!(resp.status, 200, "{path}: {resp:?}");
    assert!(resp.header("content-type").is_some_and(|t| t.starts_with("application/grpc-web-text")), "{path} answers in text: {resp:?}");
    assert_eq!(resp.header("grpc-status"), None, "{path} failed: {resp:?}");
    let body = unbase64(&resp.body).expect("a base64 body");
    frames(&body).expect("grpc-web frames")
}

fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A grpc-web-text body: base64 pieces, each padded on its own, one after the other.
fn unbase64(text: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for quad in text.chunks(4) {
        out.extend(base64::engine::general_purpose::STANDARD.decode(quad)?);
    }
    Ok(out)
}

/// One uncompressed grpc-web message frame.
fn frame(message: &[u8]) -> Vec<u8> {
    let len = u32::try_from(message.len()).expect("a small message");
    let mut out = vec![0];
    out.extend(len.to_be_bytes());
    out.extend(message);
    out
}

/// A grpc-web body's messages, and the trailers of its final frame.
fn frames(mut body: &[u8]) -> anyhow::Result<(Vec<Vec<u8>>, Trailers)> {
    let mut messages = Vec::new();
    while body.len() >= 5 {
        let len = u32::from_be_bytes(body[1..5].try_into()?) as usize;
        ensure!(body.len() >= 5 + len, "a frame is cut short");
        let payload = &body[5..5 + len];
        if body[0] & 0x80 != 0 {
            let trailers = std::str::from_utf8(payload)?
                .split("\r\n")
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
                .collect();
            return Ok((messages, trailers));
        }
        messages.push(payload.to_vec());
        body = &body[5 + len..];
    }
    bail!("no trailer frame after {} messages", messages.len())
}

fn trailer<'a>(trailers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    trailers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// grpc-message is percent-encoded (gRPC's HTTP/2 protocol).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// Just enough protobuf for the few messages above: varint and length-delimited fields.

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint(field: u32, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, u64::from(field) << 3);
    put_varint(&mut out, value);
    out
}

fn bytes(field: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, u64::from(field) << 3 | 2);
    put_varint(&mut out, value.len() as u64);
    out.extend(value);
    out
}

fn message(fields: &[Vec<u8>]) -> Vec<u8> {
    fields.concat()
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn read_varint(data: &mut &[u8]) -> Option<u64> {
    let mut value = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = data.split_first()?;
        *data = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// The fields of a message, in order; `None` on a wire type these tests never meet.
fn fields(mut data: &[u8]) -> Option<Vec<(u32, Field<'_>)>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let key = read_varint(&mut data)?;
        let field = u32::try_from(key >> 3).ok()?;
        let value = match key & 7 {
            0 => Field::Varint(read_varint(&mut data)?),
            2 => {
                let len = usize::try_from(read_varint(&mut data)?).ok()?;
                let (value, rest) = (data.get(..len)?, data.get(len..)?);
                data = rest;
                Field::Bytes(value)
            }
            _ => return None,
        };
        out.push((field, value));
    }
    Some(out)
}

fn first_varint(message: &[u8], number: u32) -> Option<u64> {
    fields(message)?.into_iter().find_map(|(n, f)| match f {
        Field::Varint(v) if n == number => Some(v),
        _ => None,
    })
}

fn first_bytes(message: &[u8], number: u32) -> Option<&[u8]> {
    fields(message)?.into_iter().find_map(|(n, f)| match f {
        Field::Bytes(b) if n == number => Some(b),
        _ => None,
    })
}

/// `header.revision` of an etcd response (field 1, then field 3).
fn header_revision(response: &[u8]) -> i64 {
    let header = first_bytes(response, 1).expect("a response header");
    first_varint(header, 3).expect("a header revision") as i64
}
