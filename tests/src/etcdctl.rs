//! Runs the etcdctl binary (v3 API) against a cluster, bounded by a timeout.

use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context};
use rustix::process::{kill_process, Pid, Signal};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

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

    /// `etcdctl --endpoints=.. <args>` with its output piped, killed if dropped.
    fn command(&self, args: &[&str]) -> Command {
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
        command
    }

    /// Runs `etcdctl --endpoints=.. <args>`.
    pub async fn run(&self, args: &[&str], input: Input<'_>) -> anyhow::Result<Ran> {
        let mut command = self.command(args);
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

/// An etcdctl that runs until stopped (`watch`, `lock`, `elect`): its stdout is read line by line
/// as it arrives. Dropping it kills the process.
pub struct Streaming {
    child: Child,
    args: Vec<String>,
    lines: mpsc::UnboundedReceiver<String>,
    /// What it has printed on stderr so far; complete once `stderr_done` has finished.
    stderr: Arc<StdMutex<String>>,
    stderr_done: JoinHandle<()>,
}

impl Etcdctl {
    /// Starts `etcdctl --endpoints=.. <args>` without waiting for it to finish.
    pub fn spawn(&self, args: &[&str]) -> anyhow::Result<Streaming> {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        let stdout = child.stdout.take().context("etcdctl's stdout")?;
        let stderr = child.stderr.take().context("etcdctl's stderr")?;
        let (sender, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = stdout.next_line().await {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let printed = Arc::new(StdMutex::new(String::new()));
        let sink = Arc::clone(&printed);
        let stderr_done = tokio::spawn(async move {
            let mut stderr = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = stderr.next_line().await {
                let mut text = sink.lock().unwrap_or_else(PoisonError::into_inner);
                text.push_str(&line);
                text.push('\n');
            }
        });
        Ok(Streaming {
            child,
            args: args.iter().map(|arg| (*arg).to_owned()).collect(),
            lines,
            stderr: printed,
            stderr_done,
        })
    }
}

impl Streaming {
    /// The next `count` lines of stdout, all within `timeout`.
    pub async fn lines(&mut self, count: usize, timeout: Duration) -> anyhow::Result<Vec<String>> {
        let mut lines = Vec::with_capacity(count);
        let deadline = Instant::now() + timeout;
        while lines.len() < count {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => lines.push(line),
                Ok(None) => bail!(
                    "etcdctl {:?} closed its stdout after {lines:?}; stderr: {}",
                    self.args,
                    self.stderr_so_far()
                ),
                Err(_) => bail!(
                    "etcdctl {:?} printed only {lines:?} of {count} lines within {timeout:?}; \
                     stderr: {}",
                    self.args,
                    self.stderr_so_far()
                ),
            }
        }
        Ok(lines)
    }

    /// The lines printed so far and not yet taken, without waiting.
    pub fn printed(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.lines.try_recv().ok()).collect()
    }

    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits (at most `timeout`) for etcdctl to exit by itself; `stdout` holds the lines not yet
    /// taken.
    pub async fn wait(mut self, timeout: Duration) -> anyhow::Result<Ran> {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .with_context(|| {
                format!("etcdctl {:?} did not exit within {timeout:?}", self.args)
            })??;
        tokio::time::timeout(timeout, &mut self.stderr_done)
            .await
            .context("etcdctl's stderr did not close")??;
        let stderr = self.stderr_so_far();
        let mut stdout = String::new();
        let drained = tokio::time::timeout(timeout, async {
            while let Some(line) = self.lines.recv().await {
                stdout.push_str(&line);
                stdout.push('\n');
            }
        });
        drained.await.context("etcdctl's stdout did not close")?;
        Ok(Ran {
            success: status.success(),
            stdout,
            stderr,
        })
    }

    /// SIGINT, on which `lock` unlocks and `elect` resigns, then [`Streaming::wait`].
    pub async fn interrupt(self, timeout: Duration) -> anyhow::Result<Ran> {
        let pid = self
            .child
            .id()
            .and_then(|id| Pid::from_raw(id as i32))
            .context("etcdctl has already exited")?;
        kill_process(pid, Signal::INT)?;
        self.wait(timeout).await
    }

    fn stderr_so_far(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
