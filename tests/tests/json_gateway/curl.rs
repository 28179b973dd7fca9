//! The real `curl` binary as a gateway client, over HTTP/1.1 or HTTP/2 without TLS (h2c with
//! prior knowledge), as the recipes in etcd's docs use it.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use cairn_tests::http::{parse, Answer, Framing};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::Instant;

/// curl's own limit for one request; a stream is read with its own deadline.
const CURL_TIMEOUT: &str = "10";
/// How long a streamed line may take to arrive.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http1,
    H2c,
}

impl Version {
    fn flag(self) -> &'static str {
        match self {
            Version::Http1 => "--http1.1",
            Version::H2c => "--http2-prior-knowledge",
        }
    }
}

#[derive(Clone)]
pub struct Curl {
    endpoint: String,
    version: Version,
}

impl Curl {
    pub fn new(endpoint: &str, version: Version) -> Curl {
        Curl { endpoint: endpoint.trim_end_matches('/').to_string(), version }
    }

    fn command(&self, args: &[&str], path: &str) -> Command {
        let mut command = Command::new("curl");
        command.args(["-sS", self.version.flag()]).args(args).arg(format!("{}{path}", self.endpoint)).kill_on_drop(true);
        command
    }

    /// `curl -X POST --data-binary @-` with `body` on its standard input.
    pub async fn post(&self, path: &str, body: &str) -> Answer {
        let mut command = self.command(&["-i", "--max-time", CURL_TIMEOUT, "-X", "POST", "-H", "content-type: application/json", "--data-binary", "@-"], path);
        self.run(command.stdin(Stdio::piped()), body).await.unwrap_or_else(|e| panic!("curl POST {path} {body}: {e:#}"))
    }

    /// A request with another method and no body.
    pub async fn send(&self, method: &str, path: &str) -> Answer {
        let mut command = self.command(&["-i", "--max-time", CURL_TIMEOUT, "-X", method], path);
        self.run(command.stdin(Stdio::null()), "").await.unwrap_or_else(|e| panic!("curl {method} {path}: {e:#}"))
    }

    async fn run(&self, command: &mut Command, body: &str) -> anyhow::Result<Answer> {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().context("running curl")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(body.as_bytes()).await?;
        }
        let output = child.wait_with_output().await?;
        if !output.status.success() {
            bail!("curl failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
        }
        parse(&output.stdout, Framing::Decoded)
    }

    /// Starts a streaming request (`curl -N`) whose answer is read line by line.
    pub async fn stream(&self, path: &str, body: &str) -> Stream {
        let mut command = self.command(&["-N", "-X", "POST", "--data-binary", "@-"], path);
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("curl runs");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(body.as_bytes()).await.expect("curl reads its body");
        drop(stdin);
        let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Stream { _child: child, lines }
    }
}

/// A streamed answer in progress; dropping it kills curl, which ends the stream.
pub struct Stream {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Stream {
    /// The next `{"result":..}` or `{"error":..}` line, within [`LINE_TIMEOUT`].
    pub async fn next(&mut self) -> Value {
        let deadline = Instant::now() + LINE_TIMEOUT;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("a streamed line within {LINE_TIMEOUT:?}"))
                .expect("reading curl's output")
                .expect("the stream goes on");
            if !line.trim().is_empty() {
                return serde_json::from_str(&line).unwrap_or_else(|e| panic!("a JSON line ({e}): {line:?}"));
            }
        }
    }
}
