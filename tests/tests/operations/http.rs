//! A minimal HTTP/1.1 client for the operations endpoints: one request per connection, the
//! whole answer read within a timeout, so that a server that hangs fails the attempt instead
//! of the test.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An answer: status, headers (names lower-cased) and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// `GET endpoint+path`.
pub async fn get(endpoint: &str, path: &str, timeout: Duration) -> anyhow::Result<Reply> {
    request("GET", endpoint, path, &[], timeout).await
}

/// `method endpoint+path` with `headers`, answered within `timeout`.
pub async fn request(method: &str, endpoint: &str, path: &str, headers: &[(&str, &str)], timeout: Duration) -> anyhow::Result<Reply> {
    let what = format!("{method} {endpoint}{path}");
    tokio::time::timeout(timeout, exchange(method, endpoint, path, headers))
        .await
        .with_context(|| format!("{what}: no answer within {timeout:?}"))?
        .with_context(|| what)
}

async fn exchange(method: &str, endpoint: &str, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Reply> {
    let host = endpoint.strip_prefix("http://").context("a plain http:// endpoint")?;
    let mut stream = TcpStream::connect(host).await?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    parse(&raw, method == "HEAD")
}

/// An answer; `headers_only` for the answer to HEAD, which has none of the body it describes.
fn parse(raw: &[u8], headers_only: bool) -> anyhow::Result<Reply> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).context("headers are not UTF-8")?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().context("no status line")?;
    let mut parts = status_line.splitn(3, ' ');
    ensure!(parts.next().is_some_and(|v| v.starts_with("HTTP/1.")), "not an HTTP/1 answer: {status_line}");
    let status = parts.next().context("no status code")?.parse()?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').with_context(|| format!("bad header line {line:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let reply = Reply { status, headers, body: String::new() };
    let body = if headers_only {
        ensure!(rest.is_empty(), "a body in the answer to HEAD");
        Vec::new()
    } else if reply.header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = reply.header("content-length") {
        let length: usize = length.parse()?;
        ensure!(rest.len() == length, "content-length {length} but {} bytes", rest.len());
        rest.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Reply { body: String::from_utf8(body).context("the body is not UTF-8")?, ..reply })
}

fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n").context("a chunk size line")?;
        let size_line = std::str::from_utf8(&rest[..end])?;
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            bail!("a chunk of {size} bytes is cut short");
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}
