//! Starts `cairn` or a real `etcd` as separate processes on loopback ports picked at run time.
//! Both take etcd's flags, so one harness drives either.

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::PoisonError;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use etcd_client::{Client, ConnectOptions, GetOptions, StatusResponse};
use rustix::process::{kill_process, Pid, Signal};
use tempfile::TempDir;
use tokio::sync::{Mutex, MutexGuard};

use crate::binary;
use crate::wait::wait_until;

/// How long a cluster may take to start and elect a leader.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an election may take after a leader dies.
pub const ELECTION_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a member may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `snapshot restore` may take to build one member's data dir.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(30);
/// Per-request timeout for clients the harness hands out.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-request timeout for the harness's own probes, short so a wait keeps polling.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const LOG_TAIL_LINES: usize = 40;

/// Clusters run one at a time (this is a 2-core machine): each holds this for its lifetime.
static TURN: Mutex<()> = Mutex::const_new(());
static CLUSTER_SEQ: AtomicU32 = AtomicU32::new(0);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Cairn,
    Etcd,
    /// Debian's etcd 3.4: the reference where etcd 3.5.1 has a known bug.
    Etcd34,
}

impl Backend {
    /// The server binary; `Ok(None)` means an optional backend (etcd) is not installed.
    fn binary(self) -> anyhow::Result<Option<PathBuf>> {
        match self {
            Backend::Cairn => binary::cairn().map(Some),
            Backend::Etcd => Ok(binary::etcd()),
            Backend::Etcd34 => Ok(binary::etcd34()),
        }
    }

    /// The command that builds a data dir from a snapshot file, up to its flags: `cairn snapshot
    /// restore`, or etcdctl's for etcd (etcdctl 3.4 and 3.5 still restore; 3.6 moved it to etcdutl).
    fn restore_command(self, server: &Path) -> anyhow::Result<tokio::process::Command> {
        let mut command = match self {
            Backend::Cairn => tokio::process::Command::new(server),
            Backend::Etcd | Backend::Etcd34 => {
                let etcdctl =
                    binary::etcdctl().context("no etcdctl installed to restore etcd with")?;
                let mut command = tokio::process::Command::new(etcdctl);
                // etcdctl reads every ETCDCTL_* variable as a flag and warns about unknown ones.
                command.env("ETCDCTL_API", "3").env_remove("ETCDCTL_BIN");
                command
            }
        };
        command.args(["snapshot", "restore"]).kill_on_drop(true);
        Ok(command)
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Cairn => "cairn",
            Backend::Etcd => "etcd",
            Backend::Etcd34 => "etcd 3.4",
        }
    }
}

/// Which of a cluster's URLs speak TLS. The harness itself always reaches members over a
/// plain client URL; a TLS client URL is an extra listener beside it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Schemes {
    /// Each member also listens on an `https://` client URL ([`Cluster::tls_endpoint`]).
    pub client_tls: bool,
    /// Peer URLs are `https://`.
    pub peer_tls: bool,
}

struct Member {
    client_url: String,
    tls_client_url: Option<String>,
    args: Vec<String>,
    log: PathBuf,
    /// Behind a lock only so that liveness can be checked through `&self` while waiting.
    process: std::sync::Mutex<Option<Child>>,
    id: u64,
}

impl Member {
    fn process(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.process.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take_process(&mut self) -> Option<Child> {
        self.process
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

pub struct Cluster {
    backend: Backend,
    binary: PathBuf,
    members: Vec<Member>,
    /// Data dirs and logs; removed on drop, after the processes are killed.
    _dir: TempDir,
    _turn: MutexGuard<'static, ()>,
}

/// Starts a cluster for a test, or returns `None` after printing a skip notice when the backend
/// is etcd and none is installed. Panics (with the members' log tails) if it cannot start.
pub async fn cluster_or_skip(backend: Backend, members: usize) -> Option<Cluster> {
    match Cluster::start(backend, members).await {
        Ok(Some(cluster)) => Some(cluster),
        Ok(None) => {
            eprintln!("skipped: no {} installed", backend.name());
            None
        }
        Err(error) => panic!(
            "could not start a {members}-member {} cluster: {error:#}",
            backend.name()
        ),
    }
}

impl Cluster {
    /// Starts `size` members and waits until each answers and agrees on a leader. Waits for any
    /// other cluster in this test binary to be dropped first, so a test must hold one at a time.
    pub async fn start(backend: Backend, size: usize) -> anyhow::Result<Option<Cluster>> {
        Cluster::start_with(backend, size, &[]).await
    }

    /// Like [`Cluster::start`], with extra flags (etcd's names) for every member.
    pub async fn start_with(backend: Backend, size: usize, extra: &[&str]) -> anyhow::Result<Option<Cluster>> {
        Cluster::start_tls(backend, size, Schemes::default(), extra).await
    }

    /// Like [`Cluster::start_with`], with TLS on the URLs `schemes` names; `extra` carries the
    /// certificate flags.
    pub async fn start_tls(backend: Backend, size: usize, schemes: Schemes, extra: &[&str]) -> anyhow::Result<Option<Cluster>> {
        let Some(mut cluster) = Cluster::plan(backend, size, schemes, extra).await? else {
            return Ok(None);
        };
        cluster.launch().await?;
        Ok(Some(cluster))
    }

    /// Etcd's disaster recovery: builds every member's data dir from `snapshot` (a file written
    /// by `etcdctl snapshot save`) with `snapshot restore`, given the same `--name`,
    /// `--data-dir`, `--initial-cluster`, `--initial-cluster-token` and
    /// `--initial-advertise-peer-urls` the member then starts with, then starts the members as a
    /// new cluster like [`Cluster::start`] does. The snapshot must live outside any cluster's
    /// directory, since a dropped cluster removes its own.
    pub async fn start_restored(
        backend: Backend,
        size: usize,
        snapshot: &Path,
    ) -> anyhow::Result<Option<Cluster>> {
        let Some(mut cluster) = Cluster::plan(backend, size, Schemes::default(), &[]).await? else {
            return Ok(None);
        };
        for index in 0..size {
            cluster.restore(index, snapshot).await?;
        }
        cluster.launch().await?;
        Ok(Some(cluster))
    }

    /// Picks ports and data dirs for `size` members without starting any.
    async fn plan(
        backend: Backend,
        size: usize,
        schemes: Schemes,
        extra: &[&str],
    ) -> anyhow::Result<Option<Cluster>> {
        let Some(binary) = backend.binary()? else {
            return Ok(None);
        };
        let turn = TURN.lock().await;
        let dir = tempfile::Builder::new()
            .prefix(&format!("cairn-tests-{}-", backend.name()))
            .tempdir()?;
        let members = plan_members(dir.path(), size, schemes, extra)?;
        Ok(Some(Cluster {
            backend,
            binary,
            members,
            _dir: dir,
            _turn: turn,
        }))
    }

    /// Starts every planned member and waits until they answer and agree on a leader.
    async fn launch(&mut self) -> anyhow::Result<()> {
        for index in 0..self.members.len() {
            self.spawn(index)?;
        }
        if let Err(error) = self.wait_ready(START_TIMEOUT).await {
            bail!("{error:#}\n{}", self.all_log_tails());
        }
        Ok(())
    }

    /// Runs `snapshot restore` for member `index`, which must not have started, with the flags
    /// it shares with the server; what it prints goes to the member's log.
    async fn restore(&self, index: usize, snapshot: &Path) -> anyhow::Result<()> {
        let member = &self.members[index];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)?;
        let restore_flags = member.args.iter().filter(|arg| {
            RESTORE_FLAGS.iter().any(|flag| {
                arg.strip_prefix(flag)
                    .is_some_and(|rest| rest.starts_with('='))
            })
        });
        let mut command = self.backend.restore_command(&self.binary)?;
        command
            .arg(snapshot)
            .args(restore_flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let status = tokio::time::timeout(RESTORE_TIMEOUT, command.status())
            .await
            .with_context(|| format!("restoring member {index} took over {RESTORE_TIMEOUT:?}"))?
            .context("running snapshot restore")?;
        ensure!(
            status.success(),
            "snapshot restore for member {index} failed ({status}):\n{}",
            self.log_tail(index)
        );
        Ok(())
    }

    /// Member `index`'s `--data-dir`.
    pub fn data_dir(&self, index: usize) -> PathBuf {
        self._dir.path().join(format!("m{index}"))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Client URL of member `index`, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self, index: usize) -> &str {
        &self.members[index].client_url
    }

    /// Member `index`'s `https://` client URL (a cluster started with client TLS).
    pub fn tls_endpoint(&self, index: usize) -> &str {
        self.members[index].tls_client_url.as_deref().expect("the cluster was started with client TLS")
    }

    /// Client URLs of the members that are running.
    pub fn endpoints(&self) -> Vec<String> {
        self.running()
            .map(|index| self.members[index].client_url.clone())
            .collect()
    }

    /// The member ID that member `index` reports in its response headers.
    pub fn member_id(&self, index: usize) -> u64 {
        self.members[index].id
    }

    /// The process ID of member `index`, while it runs.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.members[index].process().as_ref().map(Child::id)
    }

    pub fn is_running(&self, index: usize) -> bool {
        self.members[index].process().is_some()
    }

    pub fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.members.len()).filter(|&index| self.is_running(index))
    }

    /// A client balanced over every running member.
    pub async fn client(&self) -> anyhow::Result<Client> {
        connect(&self.endpoints(), REQUEST_TIMEOUT).await
    }

    /// A client that talks to member `index` only.
    pub async fn member_client(&self, index: usize) -> anyhow::Result<Client> {
        connect(&[self.endpoint(index)], REQUEST_TIMEOUT).await
    }

    pub async fn status(&self, index: usize) -> anyhow::Result<StatusResponse> {
        let mut client = connect(&[self.endpoint(index)], PROBE_TIMEOUT).await?;
        Ok(client.status().await?)
    }

    /// The leader's index, if every running member names the same running member as leader.
    pub async fn leader(&self) -> anyhow::Result<usize> {
        let mut named = Vec::new();
        for index in self.running() {
            let leader_id = self.status(index).await?.leader();
            ensure!(leader_id != 0, "member {index} knows no leader");
            named.push(leader_id);
        }
        let first = *named.first().context("no member is running")?;
        ensure!(
            named.iter().all(|&id| id == first),
            "members disagree on the leader: {named:x?}"
        );
        self.running()
            .find(|&index| self.members[index].id == first)
            .with_context(|| format!("the named leader {first:x} is not a running member"))
    }

    pub async fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<usize> {
        wait_until(
            "a leader that every running member agrees on",
            timeout,
            || self.leader(),
        )
        .await
    }

    /// Indexes of the running members that are not the leader.
    pub async fn followers(&self) -> anyhow::Result<Vec<usize>> {
        let leader = self.wait_for_leader(ELECTION_TIMEOUT).await?;
        Ok(self.running().filter(|&index| index != leader).collect())
    }

    /// Waits until member `index` has applied `revision`, judged by a serializable (local) read.
    pub async fn wait_for_revision(
        &self,
        index: usize,
        revision: i64,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let what = format!("member {index} to reach revision {revision}");
        wait_until(&what, timeout, || async move {
            let mut client = connect(&[self.endpoint(index)], PROBE_TIMEOUT).await?;
            let reply = client
                .get("health", Some(GetOptions::new().with_serializable()))
                .await?;
            let reached = reply.header().map_or(0, |header| header.revision());
            ensure!(
                reached >= revision,
                "member {index} is at revision {reached}"
            );
            Ok(())
        })
        .await
    }

    /// SIGKILL: the member gets no chance to flush or say goodbye.
    pub fn kill(&mut self, index: usize) -> anyhow::Result<()> {
        let mut process = self.members[index]
            .take_process()
            .with_context(|| format!("member {index} is not running"))?;
        process.kill()?;
        process.wait()?;
        Ok(())
    }

    /// SIGTERM, then waits for the member to exit; SIGKILL and an error if it does not.
    pub async fn stop(&mut self, index: usize) -> anyhow::Result<()> {
        let mut process = self.members[index]
            .take_process()
            .with_context(|| format!("member {index} is not running"))?;
        kill_process(Pid::from_child(&process), Signal::TERM)?;
        let exited = wait_until("the member to exit after SIGTERM", STOP_TIMEOUT, || {
            let status = process.try_wait();
            async move {
                status?.context("still running")?;
                Ok(())
            }
        })
        .await;
        if exited.is_err() {
            process.kill()?;
            process.wait()?;
        }
        exited
    }

    /// Starts a stopped member again with its data dir and original flags (including
    /// `--initial-cluster-state=new`, as etcd's docs do), without waiting for it.
    pub fn relaunch(&mut self, index: usize) -> anyhow::Result<()> {
        ensure!(!self.is_running(index), "member {index} is already running");
        self.spawn(index)
    }

    /// [`Cluster::relaunch`], then waits until the member answers and knows a leader.
    pub async fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        self.relaunch(index)?;
        let rejoined = wait_until(&format!("member {index} to rejoin"), START_TIMEOUT, || {
            self.probe_member(index)
        })
        .await;
        if let Err(error) = rejoined {
            bail!("{error:#}\n{}", self.log_tail(index));
        }
        Ok(())
    }

    /// The last lines of member `index`'s stdout and stderr.
    pub fn log_tail(&self, index: usize) -> String {
        let log = std::fs::read_to_string(&self.members[index].log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        format!(
            "--- {} member {index} log tail ---\n{tail}",
            self.backend.name()
        )
    }

    pub fn all_log_tails(&self) -> String {
        (0..self.members.len())
            .map(|index| self.log_tail(index))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn spawn(&mut self, index: usize) -> anyhow::Result<()> {
        let member = &mut self.members[index];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)?;
        let process = Command::new(&self.binary)
            .args(&member.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        *member.process() = Some(process);
        Ok(())
    }

    async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        for index in 0..self.members.len() {
            let what = format!("member {index} to answer with a leader");
            self.members[index].id =
                wait_until(&what, timeout, || self.probe_member(index)).await?;
        }
        self.wait_for_leader(timeout).await?;
        Ok(())
    }

    /// The member's ID once it answers Status and knows a leader; fails fast if it has exited.
    async fn probe_member(&self, index: usize) -> anyhow::Result<u64> {
        self.check_alive(index)?;
        let status = self.status(index).await?;
        ensure!(status.leader() != 0, "member {index} knows no leader yet");
        let id = status.header().map_or(0, |header| header.member_id());
        ensure!(id != 0, "member {index} reports member_id 0");
        Ok(id)
    }

    fn check_alive(&self, index: usize) -> anyhow::Result<()> {
        let exit = match self.members[index].process().as_mut() {
            None => bail!("member {index} is not running"),
            Some(process) => process.try_wait()?,
        };
        if let Some(status) = exit {
            bail!(
                "member {index} exited ({status}):\n{}",
                self.log_tail(index)
            );
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.all_log_tails());
        }
        for member in &mut self.members {
            if let Some(mut process) = member.take_process() {
                let _ = process.kill();
                let _ = process.wait();
            }
        }
    }
}

/// The server flags that `snapshot restore` takes too, so that it builds the data dir of exactly
/// the member they describe.
const RESTORE_FLAGS: [&str; 5] = [
    "--name",
    "--data-dir",
    "--initial-cluster",
    "--initial-cluster-token",
    "--initial-advertise-peer-urls",
];

fn plan_members(dir: &Path, size: usize, schemes: Schemes, extra: &[&str]) -> anyhow::Result<Vec<Member>> {
    // Per member: client, peer and (with client TLS) the https client port.
    let ports = free_ports(3 * size)?;
    let url = |port: u16| format!("http://127.0.0.1:{port}");
    let peer_url = |index: usize| {
        let scheme = if schemes.peer_tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", ports[3 * index + 1])
    };
    let names: Vec<String> = (0..size).map(|index| format!("m{index}")).collect();
    let initial_cluster = names
        .iter()
        .enumerate()
        .map(|(index, name)| format!("{name}={}", peer_url(index)))
        .collect::<Vec<_>>()
        .join(",");
    let token = format!(
        "cairn-tests-{}-{}",
        std::process::id(),
        CLUSTER_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let members = names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let client_url = url(ports[3 * index]);
            let peer_url = peer_url(index);
            let tls_client_url = schemes
                .client_tls
                .then(|| format!("https://127.0.0.1:{}", ports[3 * index + 2]));
            let listen_client_urls = match &tls_client_url {
                Some(tls) => format!("{client_url},{tls}"),
                None => client_url.clone(),
            };
            let mut args = vec![
                format!("--name={name}"),
                format!("--data-dir={}", dir.join(name).display()),
                format!("--listen-client-urls={listen_client_urls}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster={initial_cluster}"),
                "--initial-cluster-state=new".to_owned(),
                format!("--initial-cluster-token={token}"),
            ];
            args.extend(extra.iter().map(|flag| flag.to_string()));
            Member {
                client_url,
                tls_client_url,
                args,
                log: dir.join(format!("{name}.log")),
                process: std::sync::Mutex::new(None),
                id: 0,
            }
        })
        .collect();
    Ok(members)
}

/// Ports the OS reports free right now; all listeners are held until every port is chosen so
/// that none repeats.
fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

pub async fn connect<E: AsRef<str>>(endpoints: &[E], timeout: Duration) -> anyhow::Result<Client> {
    let options = ConnectOptions::new()
        .with_connect_timeout(PROBE_TIMEOUT)
        .with_timeout(timeout);
    Ok(Client::connect(endpoints, Some(options)).await?)
}

/// Adding a member to a running cluster (`Cluster::plan_member`, `Cluster::join`).
mod grow;
