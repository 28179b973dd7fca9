//! A bare HTTP/1.1 client over TCP, shared by the suites that speak HTTP to a member (the JSON
//! gateway, the operations endpoints, grpc-web): one request on a fresh connection, answered
//! within a deadline, so that a server that hangs fails the exchange instead of the test. Bare
//! so that a test controls what it sends (any method, any header, any bytes as the body) and
//! sees every byte of the answer.

use std::fmt;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `host:port` of a plain `http://` endpoint.
pub fn address(endpoint: &str) -> anyhow::Result<&str> {
    let address = endpoint.strip_prefix("http://").with_context(|| format!("a plain http:// endpoint, got {endpoint:?}"))?;
    Ok(address.trim_end_matches('/'))
}

/// One request, which asks the server to close the connection after its answer.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl Request {
    /// `method path` with no headers of its own and no body (so no `Content-Length`).
    pub fn new(method: &str, path: &str) -> Request {
        Request { method: method.to_owned(), path: path.to_owned(), headers: Vec::new(), body: None }
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `body` as it is (any bytes), with its `Content-Length`.
    pub fn body(mut self, body: &[u8]) -> Request {
        self.body = Some(body.to_vec());
        self
    }

    /// A body labelled JSON, as the gateway's clients send it, whether or not it is.
    pub fn json(self, body: &[u8]) -> Request {
        self.header("Content-Type", "application/json").body(body)
    }

    /// The bytes on the wire to `host`.
    pub fn bytes(&self, host: &str) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n", self.method, self.path);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = &self.body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend(self.body.as_deref().unwrap_or_default());
        bytes
    }
}

/// `GET endpoint+path`, answered within `timeout`.
pub async fn get(endpoint: &str, path: &str, timeout: Duration) -> anyhow::Result<Answer> {
    send(endpoint, &Request::new("GET", path), timeout).await
}

/// Sends `request` to `endpoint` on a new connection and reads the answer until the server
/// closes it, all within `timeout`.
pub async fn send(endpoint: &str, request: &Request, timeout: Duration) -> anyhow::Result<Answer> {
    let what = format!("{} {endpoint}{}", request.method, request.path);
    let host = address(endpoint)?;
    let received = tokio::time::timeout(timeout, exchange(host, request.bytes(host)))
        .await
        .with_context(|| format!("{what}: no answer within {timeout:?}"))?
        .with_context(|| what.clone())?;
    // The answer to HEAD describes a body it does not carry.
    let framing = if request.method == "HEAD" { Framing::HeadersOnly } else { Framing::Wire };
    parse(&received, framing).with_context(|| what)
}

/// Writes `raw` and reads until the server closes the connection. The sending runs beside the
/// reading, so that a server that answers before the whole request is in (a refused body) is
/// heard. The write half stays open until the answer is in: a server may drop the request of a
/// client that hangs up.
async fn exchange(host: &str, raw: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let stream = TcpStream::connect(host).await.with_context(|| format!("connecting to {host}"))?;
    let (mut reader, mut writer) = stream.into_split();
    let sending = tokio::spawn(async move {
        // The server may close early (after refusing the request); that is its answer.
        let _ = writer.write_all(&raw).await;
        let _ = writer.flush().await;
        writer
    });
    let mut received = Vec::new();
    let read = reader.read_to_end(&mut received).await;
    drop(sending.await);
    if let Err(e) = read {
        // A reset after the answer is an ending too.
        ensure!(!received.is_empty(), "reading the answer: {e}");
    }
    Ok(received)
}

/// What the server answered. Header names are in lower case.
#[derive(Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// A comma-separated header's items, in lower case.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.header(name).unwrap_or_default().split(',').map(|item| item.trim().to_ascii_lowercase()).collect()
    }

    /// The body as text, for comparing and for messages (an answer that is not UTF-8 shows as
    /// such instead of hiding the rest of the failure).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as one JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("a JSON body ({e}), got {} {:?}", self.status, self.text()))
    }

    /// A streamed body: one JSON value per line (the last may lack its newline).
    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("a JSON line ({e}): {line:?}")))
            .collect()
    }
}

/// The body as text, so that a failed assertion shows what the server said.
impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer").field("status", &self.status).field("headers", &self.headers).field("body", &String::from_utf8_lossy(&self.body)).finish()
    }
}

/// How the body follows the headers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// As sent on the connection: chunked, or as long as `Content-Length` says.
    Wire,
    /// Not at all: the answer to HEAD.
    HeadersOnly,
    /// Already decoded, as `curl -i` prints it.
    Decoded,
}

/// Parses a whole answer, skipping interim (1xx) ones.
pub fn parse(mut raw: &[u8], framing: Framing) -> anyhow::Result<Answer> {
    loop {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").with_context(|| format!("no end of headers in {:?}", String::from_utf8_lossy(raw)))?;
        let head = std::str::from_utf8(&raw[..end]).context("headers are not UTF-8")?;
        let rest = &raw[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        // curl prints `HTTP/2` for an answer over h2c.
        ensure!(parts.next().is_some_and(|v| v.starts_with("HTTP/")), "not an HTTP answer: {status_line:?}");
        let status: u16 = parts.next().and_then(|s| s.parse().ok()).with_context(|| format!("status line {status_line:?}"))?;
        if (100..200).contains(&status) {
            raw = rest;
            continue;
        }
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line.split_once(':').with_context(|| format!("bad header line {line:?}"))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let answer = Answer { status, headers, body: Vec::new() };
        let body = match framing {
            Framing::Decoded => rest.to_vec(),
            Framing::HeadersOnly => {
                ensure!(rest.is_empty(), "a body in the answer to HEAD");
                Vec::new()
            }
            Framing::Wire if answer.header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) => dechunk(rest)?,
            Framing::Wire => {
                if let Some(length) = answer.header("content-length") {
                    let length: usize = length.parse()?;
                    ensure!(rest.len() == length, "content-length {length} but {} bytes", rest.len());
                }
                rest.to_vec()
            }
        };
        return Ok(Answer { body, ..answer });
    }
}

fn dechunk(mut raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let end = raw.windows(2).position(|w| w == b"\r\n").context("a chunk size line")?;
        let size_line = std::str::from_utf8(&raw[..end])?;
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or_default().trim(), 16)?;
        raw = &raw[end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if raw.len() < size + 2 {
            bail!("a chunk of {size} bytes is cut short");
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}
