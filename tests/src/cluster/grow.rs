//! Growing a running cluster, as an operator does after `etcdctl member add`: a new process
//! with its own name, ports and data dir, started with `--initial-cluster` naming every member
//! the cluster reports plus itself, and `--initial-cluster-state=existing`
//! (reference/etcd-api.md §1.5).
//!
//! The order is the operator's: [`Cluster::plan_member`] picks the URLs, the test adds the
//! member through the Cluster API with [`Cluster::peer_url`], then [`Cluster::join`] starts it.

use std::process::ExitStatus;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, ensure, Context};

use super::{connect, free_ports, Cluster, Member, PROBE_TIMEOUT, START_TIMEOUT};
use crate::wait::wait_until;

/// Flags that describe one member; a joining member takes every other flag (the cluster token,
/// extra flags given to [`Cluster::start_with`]) from an existing member.
const PER_MEMBER_FLAGS: [&str; 8] = [
    "--name",
    "--data-dir",
    "--listen-client-urls",
    "--advertise-client-urls",
    "--listen-peer-urls",
    "--initial-advertise-peer-urls",
    "--initial-cluster",
    "--initial-cluster-state",
];

impl Cluster {
    /// Picks free ports and a data dir for a new member called `name`, without starting it or
    /// telling the cluster; returns its index. Its URLs are [`Cluster::peer_url`] and
    /// [`Cluster::endpoint`]. A planned member that never joins is just an unused peer URL.
    pub fn plan_member(&mut self, name: &str) -> anyhow::Result<usize> {
        let index = self.members.len();
        let like = self
            .members
            .first()
            .context("a cluster to grow has at least one member")?;
        let shared = like
            .args
            .iter()
            .filter(|arg| flag_name(arg).is_none_or(|flag| !PER_MEMBER_FLAGS.contains(&flag)))
            .cloned();
        let ports = free_ports(2)?;
        let client_url = format!("http://127.0.0.1:{}", ports[0]);
        let peer_url = format!("http://127.0.0.1:{}", ports[1]);
        let mut args = vec![
            format!("--name={name}"),
            format!("--data-dir={}", self.data_dir(index).display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            "--initial-cluster-state=existing".to_owned(),
        ];
        args.extend(shared);
        self.members.push(Member {
            client_url,
            tls_client_url: None,
            args,
            log: self._dir.path().join(format!("m{index}.log")),
            process: Mutex::new(None),
            id: 0,
        });
        Ok(index)
    }

    /// Member `index`'s `--name`.
    pub fn name(&self, index: usize) -> &str {
        self.flag(index, "--name")
    }

    /// Member `index`'s peer URL (`--initial-advertise-peer-urls`), e.g. for `member add`.
    pub fn peer_url(&self, index: usize) -> &str {
        self.flag(index, "--initial-advertise-peer-urls")
    }

    /// Starts planned member `index`, which the cluster's membership must already list (after
    /// `member add`), and waits until it answers Status and knows a leader; a learner does too,
    /// so this does not wait for it to serve linearizable reads. Returns the member ID it
    /// reports, which [`Cluster::member_id`] then gives. `--initial-cluster` names every member
    /// the running members list, by name, or by the name the harness gave it if it has not
    /// started yet (as `etcdctl member add` prints it).
    pub async fn join(&mut self, index: usize) -> anyhow::Result<u64> {
        ensure!(
            self.flag_value(index, "--initial-cluster").is_none(),
            "member {index} has joined already; restart it with Cluster::restart"
        );
        let initial_cluster = self.initial_cluster().await?;
        self.members[index]
            .args
            .push(format!("--initial-cluster={initial_cluster}"));
        self.spawn(index)?;
        let what = format!("joining member {index} to answer with a leader");
        let id = match wait_until(&what, START_TIMEOUT, || self.probe_member(index)).await {
            Ok(id) => id,
            Err(error) => bail!("{error:#}\n{}", self.all_log_tails()),
        };
        self.members[index].id = id;
        Ok(id)
    }

    /// `name=peer-url,...` for every member the running members list.
    pub async fn initial_cluster(&self) -> anyhow::Result<String> {
        let mut client = connect(&self.endpoints(), PROBE_TIMEOUT).await?;
        let listed = client.member_list().await.context("listing members")?;
        let entries = listed
            .members()
            .iter()
            .map(|member| {
                let peer_url = member
                    .peer_urls()
                    .first()
                    .with_context(|| format!("member {:x} has no peer URL", member.id()))?;
                let name = if member.name().is_empty() {
                    let index = (0..self.members.len())
                        .find(|&index| self.peer_url(index) == peer_url)
                        .with_context(|| format!("an unstarted member at {peer_url}"))?;
                    self.name(index)
                } else {
                    member.name()
                };
                Ok(format!("{name}={peer_url}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(entries.join(","))
    }

    /// Waits for member `index` to exit by itself (as a member removed from the cluster does)
    /// and returns how it exited; afterwards it counts as stopped.
    pub async fn wait_for_exit(
        &mut self,
        index: usize,
        timeout: Duration,
    ) -> anyhow::Result<ExitStatus> {
        let what = format!("member {index} to exit by itself");
        let status = wait_until(&what, timeout, || {
            let exited = match self.members[index].process().as_mut() {
                None => Err(anyhow::anyhow!("member {index} is not running")),
                Some(process) => process.try_wait().map_err(anyhow::Error::from),
            };
            async move { exited?.context("still running") }
        })
        .await?;
        self.members[index].take_process();
        Ok(status)
    }

    fn flag(&self, index: usize, name: &str) -> &str {
        self.flag_value(index, name)
            .expect("every member is planned with --name and its URLs")
    }

    fn flag_value(&self, index: usize, name: &str) -> Option<&str> {
        self.members[index].args.iter().find_map(|arg| {
            arg.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
        })
    }
}

/// `--flag` of `--flag=value`.
fn flag_name(arg: &str) -> Option<&str> {
    arg.split_once('=').map(|(flag, _)| flag)
}
