//! Runs the etcdctl binary (v3 API) against a cluster, bounded by a timeout.

use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::binary;

/// etcdctl's own dial (2 s) and command (5 s) timeouts come first; this only stops a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// What etcdctl reads on its standard input.
pub enum Input<'a> {
    Nothing,
    Text(&'a str),
    File(File),
}

/// What one etcdctl run printed.
#[derive(Debug)]
pub struct Ran {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Clone, Debug)]
pub struct Etcdctl {
    binary: PathBuf,
    endpoints: String,
}

impl Etcdctl {
    /// `None` when no etcdctl is installed (see [`binary::etcdctl`]).
    pub fn find(endpoints: &[String]) -> Option<Etcdctl> {
        let endpoints = endpoints
            .iter()
            .map(|url| url.trim_start_matches("http://"))
            .collect::<Vec<_>>()
            .join(",");
        binary::etcdctl().map(|binary| Etcdctl { binary, endpoints })
    }

    /// The `--endpoints` value, as etcdctl echoes it back (`127.0.0.1:port`).
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// Runs `etcdctl --endpoints=.. <args>`.
    pub async fn run(&self, args: &[&str], input: Input<'_>) -> anyhow::Result<Ran> {
        let mut command = Command::new(&self.binary);
        command
            .env("ETCDCTL_API", "3")
            // etcdctl reads every ETCDCTL_* variable as a flag and warns about unknown ones.
            .env_remove("ETCDCTL_BIN")
            .arg(format!("--endpoints={}", self.endpoints))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let text = match input {
            Input::Nothing => {
                command.stdin(Stdio::null());
                None
            }
            Input::Text(text) => {
                command.stdin(Stdio::piped());
                Some(text)
            }
            Input::File(file) => {
                command.stdin(file);
                None
            }
        };
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        if let Some(text) = text {
            let mut stdin = child.stdin.take().context("etcdctl's stdin")?;
            stdin.write_all(text.as_bytes()).await?;
        }
        let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| format!("etcdctl {args:?} did not finish within {RUN_TIMEOUT:?}"))??;
        Ok(Ran {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs a command that must succeed; returns its stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let ran = self.run(args, Input::Nothing).await.expect("etcdctl runs");
        assert!(ran.success, "etcdctl {args:?} failed: {}", ran.stderr);
        ran.stdout
    }

    /// Runs a command that must fail; returns its stderr.
    pub async fn fails(&self, args: &[&str]) -> String {
        let ran = self.run(args, Input::Nothing).await.expect("etcdctl runs");
        assert!(!ran.success, "etcdctl {args:?} succeeded: {}", ran.stdout);
        ran.stderr
    }

    /// Runs a command with `-w json` and parses what it prints.
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let args: Vec<&str> = args.iter().copied().chain(["-w", "json"]).collect();
        let stdout = self.ok(&args).await;
        serde_json::from_str(&stdout)
            .unwrap_or_else(|error| panic!("etcdctl printed bad JSON ({error}): {stdout}"))
    }

    /// Whether this etcdctl knows a flag of `get` (3.4 lacks `--count-only`).
    pub async fn get_supports(&self, flag: &str) -> bool {
        self.run(&["get", "--help"], Input::Nothing)
            .await
            .map(|ran| ran.stdout.contains(flag) || ran.stderr.contains(flag))
            .unwrap_or(false)
    }
}
