//! The `cairn` command line: etcd's flag names, so a script written for etcd starts Cairn by
//! changing the program name.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(name = "cairn", version, about = "Cairn: a distributed, strongly consistent key-value store that speaks the etcd v3 API")]
pub struct Flags {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: ${name}.cairn).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// URLs to listen on for client traffic.
    #[arg(long, default_value = "http://localhost:2379", value_delimiter = ',')]
    pub listen_client_urls: Vec<String>,
    /// Client URLs of this member, advertised to the cluster.
    #[arg(long, default_value = "http://localhost:2379", value_delimiter = ',')]
    pub advertise_client_urls: Vec<String>,
    /// URLs to listen on for peer traffic.
    #[arg(long, default_value = "http://localhost:2380", value_delimiter = ',')]
    pub listen_peer_urls: Vec<String>,
    /// Peer URLs of this member, advertised to the cluster.
    #[arg(long, default_value = "http://localhost:2380", value_delimiter = ',')]
    pub initial_advertise_peer_urls: Vec<String>,
    /// Initial cluster configuration for bootstrapping: name=peerURL,name=peerURL...
    #[arg(long)]
    pub initial_cluster: Option<String>,
    /// Initial cluster state: new or existing.
    #[arg(long, default_value = "new", value_parser = ["new", "existing"])]
    pub initial_cluster_state: String,
    /// Initial cluster token, which makes member and cluster IDs unique to the cluster.
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, default_value_t = 1000)]
    pub election_timeout: u64,
    /// Number of committed raft entries between raft snapshots (and log purges). etcd 3.5's
    /// default: a snapshot dumps the whole state, so it should not come often.
    #[arg(long, default_value_t = cairn_core::node::DEFAULT_SNAPSHOT_COUNT)]
    pub snapshot_count: u64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, default_value_t = cairn_core::node::DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,
    /// Log level: debug, info, warn, error.
    /// Period of the progress notifications watchers asked for with progress_notify (a Go
    /// duration such as `10m0s` or `500ms`).
    /// (etcd 3.5 calls it `--experimental-watch-progress-notify-interval`; both are accepted.)
    #[arg(long, default_value = "10m0s", value_parser = parse_duration, alias = "experimental-watch-progress-notify-interval")]
    pub watch_progress_notify_interval: Duration,
    /// How often the leader records the remaining TTL of leases longer than this interval, so a
    /// new leader does not give them their full TTL again. Cairn always checkpoints.
    #[arg(long, default_value = "5m0s", value_parser = parse_duration)]
    pub experimental_lease_checkpoint_interval: Duration,
    /// Accepted for etcd compatibility: Cairn always checkpoints lease TTLs.
    #[arg(long, default_value_t = false)]
    pub experimental_enable_lease_checkpoint: bool,
    /// Raise the NOSPACE alarm when the database exceeds this many bytes (0: the 2 GiB default).
    #[arg(long, default_value_t = 0)]
    pub quota_backend_bytes: u64,
    #[command(flatten)]
    pub tls: TlsFlags,
    /// Threads that serve requests and run raft (default: half the cores, at least one). Cairn's
    /// blocking work (applying large batches, the log fsync, RocksDB's flushes and compactions)
    /// runs on threads of its own. Not an etcd flag.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Accepted for etcd compatibility; Cairn always logs to stderr.
    #[arg(long, default_value = "zap")]
    pub logger: String,
}

impl Flags {
    /// `--worker-threads`, or half of `cores`.
    pub fn worker_threads(&self, cores: usize) -> usize {
        self.worker_threads.map_or((cores / 2).max(1), usize::from)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}.cairn", self.name)))
    }

    /// `--initial-cluster`, defaulting (as etcd) to this member alone at its advertised URLs.
    pub fn initial_cluster(&self) -> Result<Vec<(String, Vec<String>)>, String> {
        parse_initial_cluster(self.initial_cluster.as_deref(), &self.name, &self.initial_advertise_peer_urls)
    }

    pub fn core_config(&self) -> Result<cairn_core::Config, String> {
        Ok(cairn_core::Config {
            name: self.name.clone(),
            data_dir: self.data_dir(),
            initial_cluster: self.initial_cluster()?,
            new_cluster: self.initial_cluster_state == "new",
            cluster_token: self.initial_cluster_token.clone(),
            advertise_peer_urls: self.initial_advertise_peer_urls.clone(),
            advertise_client_urls: self.advertise_client_urls.clone(),
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval),
            election_timeout: Duration::from_millis(self.election_timeout),
            snapshot_count: self.snapshot_count,
            max_request_bytes: self.max_request_bytes,
            request_timeout: Duration::from_millis(5000 + 2 * self.election_timeout),
            // etcd's floor for the progress interval.
            progress_notify_interval: self.watch_progress_notify_interval.max(Duration::from_millis(100)),
            lease_checkpoint_interval: self.experimental_lease_checkpoint_interval.max(Duration::from_secs(1)),
            quota_backend_bytes: match self.quota_backend_bytes {
                0 => cairn_core::node::DEFAULT_QUOTA_BACKEND_BYTES,
                bytes => bytes,
            },
            // Built by the server from the --peer-* flags (it may generate certificates).
            peer_tls: None,
        })
    }
}

/// TLS under etcd's flag names: `--cert-file` … for the client port's `https://` listeners,
/// `--peer-*` for the peer port and for dialling other members' `https://` peer URLs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsFlags {
    /// Path to the client server TLS cert file.
    #[arg(long)]
    pub cert_file: Option<PathBuf>,
    /// Path to the client server TLS key file.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Require a client certificate signed by --trusted-ca-file on https client listeners.
    #[arg(long, default_value_t = false)]
    pub client_cert_auth: bool,
    /// Path to the client server TLS trusted CA cert file.
    #[arg(long)]
    pub trusted_ca_file: Option<PathBuf>,
    /// Client TLS using a generated self-signed certificate (kept in <data-dir>/fixtures/client).
    #[arg(long, default_value_t = false)]
    pub auto_tls: bool,
    /// Path to the peer server TLS cert file (also presented when dialling other members).
    #[arg(long)]
    pub peer_cert_file: Option<PathBuf>,
    /// Path to the peer server TLS key file.
    #[arg(long)]
    pub peer_key_file: Option<PathBuf>,
    /// Require a peer certificate signed by --peer-trusted-ca-file on the peer port.
    #[arg(long, default_value_t = false)]
    pub peer_client_cert_auth: bool,
    /// Path to the peer server TLS trusted CA file: verifies other members' certificates.
    #[arg(long)]
    pub peer_trusted_ca_file: Option<PathBuf>,
    /// Peer TLS using generated self-signed certificates (kept in <data-dir>/fixtures/peer).
    /// As etcd, members then do not verify each other's certificates.
    #[arg(long, default_value_t = false)]
    pub peer_auto_tls: bool,
    /// Validity of the self-signed certificates --auto-tls and --peer-auto-tls make, in years.
    #[arg(long, default_value_t = 1)]
    pub self_signed_cert_validity: u32,
}

/// A listen URL: `http://host:port` or `https://host:port`.
/// `--initial-cluster name=url,...`: each member's name and peer URLs. Without the flag, the
/// cluster is this member alone.
pub fn parse_initial_cluster(spec: Option<&str>, name: &str, peer_urls: &[String]) -> Result<Vec<(String, Vec<String>)>, String> {
    let Some(spec) = spec else {
        return Ok(vec![(name.to_string(), peer_urls.to_vec())]);
    };
    let mut members: Vec<(String, Vec<String>)> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, url) = part.split_once('=').ok_or_else(|| format!("--initial-cluster: {part:?} is not name=url"))?;
        parse_url(url)?;
        match members.iter_mut().find(|(n, _)| n == name) {
            Some((_, urls)) => urls.push(url.to_string()),
            None => members.push((name.to_string(), vec![url.to_string()])),
        }
    }
    Ok(members)
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Work with snapshot files taken with `etcdctl snapshot save`.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum SnapshotCommand {
    /// Build a new member's data dir from a snapshot file (etcdutl's `snapshot restore`). Run it
    /// once per member of the new cluster with the same file, then start each member with the
    /// same flags and `--initial-cluster-state new`.
    Restore(RestoreArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    /// The snapshot file.
    pub file: PathBuf,
    /// The new member's name.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Where to build the data dir (default: ${name}.cairn); it must not exist or be empty.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The new cluster's members, as name=peer-url pairs.
    #[arg(long)]
    pub initial_cluster: Option<String>,
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    #[arg(long, default_value = "http://localhost:2380", value_delimiter = ',')]
    pub initial_advertise_peer_urls: Vec<String>,
}

impl RestoreArgs {
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}.cairn", self.name)))
    }

    /// Checks that the new cluster names this member with its peer URLs, as etcd does.
    pub fn validate(&self) -> Result<(), String> {
        let members = parse_initial_cluster(self.initial_cluster.as_deref(), &self.name, &self.initial_advertise_peer_urls)?;
        match members.iter().find(|(n, _)| *n == self.name) {
            Some((_, urls)) if *urls == self.initial_advertise_peer_urls => Ok(()),
            Some((_, urls)) => Err(format!(
                "--initial-cluster has {} with peer URLs {urls:?}, but --initial-advertise-peer-urls is {:?}",
                self.name, self.initial_advertise_peer_urls
            )),
            None => Err(format!("--initial-cluster has no member named {:?}", self.name)),
        }
    }
}

/// A Go `time.Duration` string: numbers with units h, m, s, ms, us (or µs) and ns, such as
/// `10m0s`, `1.5s` or `100ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {text:?}");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += value * seconds;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

pub fn parse_url(url: &str) -> Result<ListenUrl, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("unix://") {
        return Err(format!("{url}: unix sockets are not supported (got {r})"));
    } else {
        return Err(format!("{url}: URL must start with http:// or https://"));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| format!("{url}: missing port"))?;
    let port: u16 = port.parse().map_err(|_| format!("{url}: bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    Ok(ListenUrl { tls, host, port })
}

impl ListenUrl {
    pub async fn resolve(&self) -> Result<SocketAddr, String> {
        let host = if self.host.is_empty() { "0.0.0.0" } else { self.host.as_str() };
        let mut addrs = tokio::net::lookup_host((host, self.port)).await.map_err(|e| format!("{}: {e}", self.host))?;
        let all: Vec<SocketAddr> = addrs.by_ref().collect();
        all.iter().find(|a| a.is_ipv4()).or(all.first()).copied().ok_or_else(|| format!("{}: no address", self.host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_style_flags_parse() {
        let f = Flags::parse_from([
            "cairn",
            "--name=n1",
            "--initial-cluster=n1=http://127.0.0.1:2380,n2=http://127.0.0.1:2480",
            "--listen-client-urls=http://127.0.0.1:2379,http://127.0.0.1:3379",
        ]);
        assert_eq!(f.data_dir(), PathBuf::from("n1.cairn"));
        let c = f.initial_cluster().expect("valid");
        assert_eq!(c.len(), 2);
        assert_eq!(c[1], ("n2".to_string(), vec!["http://127.0.0.1:2480".to_string()]));
        assert_eq!(f.listen_client_urls.len(), 2);
    }

    #[test]
    fn worker_threads_default_to_half_the_cores() {
        let f = Flags::parse_from(["cairn"]);
        assert_eq!([1, 2, 3, 4, 16].map(|cores| f.worker_threads(cores)), [1, 1, 1, 2, 8]);
        assert_eq!(Flags::parse_from(["cairn", "--worker-threads=3"]).worker_threads(2), 3);
        assert!(Flags::try_parse_from(["cairn", "--worker-threads=0"]).is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("10m0s"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h2m3.5s"), Ok(Duration::from_millis(3_723_500)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(parse_url("http://127.0.0.1:2379").expect("ok"), ListenUrl { tls: false, host: "127.0.0.1".into(), port: 2379 });
        assert_eq!(parse_url("https://[::1]:2379").expect("ok").host, "::1");
        assert!(parse_url("127.0.0.1:2379").is_err());
        assert!(parse_url("http://localhost").is_err());
    }

    #[test]
    fn default_cluster_is_this_member() {
        let f = Flags::parse_from(["cairn"]);
        assert_eq!(f.initial_cluster().expect("ok"), vec![("default".to_string(), vec!["http://localhost:2380".to_string()])]);
        assert_eq!(f.data_dir(), PathBuf::from("default.cairn"));
    }
}
