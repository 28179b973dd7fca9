//! The command line: etcd `benchmark`'s option names where it has one (`--conns`, `--clients`,
//! `--total`, `--key-size`, `--val-size`, `--key-space-size` is `--key-space` here,
//! `--sequential-keys`, `--consistency`).

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Watch values start with the send time, as 8 big-endian bytes.
pub const TIMESTAMP_BYTES: usize = 8;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "cairn-bench",
    version,
    about = "Load generator for etcd-compatible servers (Cairn or etcd)",
    after_help = "Prints a summary, then one JSON line (the last line of stdout) for scripts."
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub workload: Workload,
}

#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Client endpoints, comma-separated; the connections are spread over them in turn.
    #[arg(long, global = true, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// gRPC connections (each its own HTTP/2 channel); clients share them round-robin.
    #[arg(long, global = true, default_value_t = 1)]
    pub conns: usize,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, global = true, default_value_t = 1)]
    pub clients: usize,
    /// Operations to run (for watch: puts to make).
    #[arg(long, global = true, default_value_t = 10_000)]
    pub total: u64,
    /// Key size in bytes: keys are the key's number, zero-padded to this width.
    #[arg(long, global = true, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, global = true, default_value_t = 256)]
    pub val_size: usize,
    /// Number of distinct keys.
    #[arg(long, global = true, default_value_t = 1)]
    pub key_space: u64,
    /// Walk the key space in order instead of picking keys at random.
    #[arg(long, global = true)]
    pub sequential_keys: bool,
    /// Server process ids whose CPU time (/proc/<pid>/stat) the report includes, comma-separated.
    #[arg(long, global = true, value_delimiter = ',')]
    pub server_pids: Vec<u32>,
    /// Seconds that any one request, connection or wait may take before it counts as an error.
    #[arg(long, global = true, default_value_t = 10)]
    pub timeout: u64,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Workload {
    /// Put values to keys of the key space.
    Put,
    /// Range (get) keys of the key space, which are written first.
    Range(ReadArgs),
    /// Compare-and-swap: read a key's mod_revision, then put if it is unchanged.
    TxnPut,
    /// Watchers on one key (or the key space's prefix) while clients put to it.
    Watch(WatchArgs),
    /// Grant one lease per client, then time keep-alive round trips on its stream.
    LeaseKeepalive(LeaseArgs),
    /// 90% range, 10% put over the key space, which is written first.
    Mixed(ReadArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ReadArgs {
    /// Read consistency: l (linearizable) or s (serializable).
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Watchers, each on its own watch stream, spread over the connections.
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Watch the prefix shared by every key of the key space instead of the first key.
    #[arg(long)]
    pub watch_prefix: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LeaseArgs {
    /// TTL of the granted leases, in seconds.
    #[arg(long, default_value_t = 60)]
    pub lease_ttl: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    #[value(name = "l", alias = "linearizable")]
    Linearizable,
    #[value(name = "s", alias = "serializable")]
    Serializable,
}

impl Cli {
    /// What clap cannot check alone; the message names the flag to change.
    pub fn check(&self) -> Result<(), String> {
        let c = &self.common;
        if c.endpoints.iter().all(|e| e.trim().is_empty()) {
            return Err("--endpoints: give at least one endpoint".into());
        }
        if c.conns == 0 || c.clients == 0 {
            return Err("--conns and --clients must be at least 1".into());
        }
        if c.total == 0 || c.key_space == 0 || c.key_size == 0 || c.timeout == 0 {
            return Err("--total, --key-space, --key-size and --timeout must be at least 1".into());
        }
        let digits = digits(c.key_space - 1);
        if digits > c.key_size {
            return Err(format!(
                "--key-space {} needs keys of at least {digits} bytes (--key-size is {})",
                c.key_space, c.key_size
            ));
        }
        match &self.workload {
            Workload::Watch(w) if w.watchers == 0 => Err("--watchers must be at least 1".into()),
            Workload::Watch(_) if c.val_size < TIMESTAMP_BYTES => Err(format!(
                "watch needs --val-size of at least {TIMESTAMP_BYTES} to carry the send time"
            )),
            Workload::LeaseKeepalive(l) if l.lease_ttl < 1 => Err("--lease-ttl must be at least 1".into()),
            _ => Ok(()),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.common.timeout)
    }
}

impl Workload {
    /// The subcommand's name, as reports call it.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Range(_) => "range",
            Workload::TxnPut => "txn-put",
            Workload::Watch(_) => "watch",
            Workload::LeaseKeepalive(_) => "lease-keepalive",
            Workload::Mixed(_) => "mixed",
        }
    }

    pub fn consistency(&self) -> Option<Consistency> {
        match self {
            Workload::Range(r) | Workload::Mixed(r) => Some(r.consistency),
            _ => None,
        }
    }
}

/// Decimal digits of `n` (1 for 0).
pub fn digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Cli, String> {
        let cli = Cli::try_parse_from(line.split_whitespace()).map_err(|e| e.to_string())?;
        cli.check()?;
        Ok(cli)
    }

    #[test]
    fn common_options_go_before_or_after_the_workload() {
        let after = parse("cairn-bench put --clients 100 --conns 10 --total 500 --val-size 64 --endpoints a:1,b:2")
            .expect("valid");
        let before = parse("cairn-bench --clients 100 --conns 10 --total 500 --val-size 64 --endpoints a:1,b:2 put")
            .expect("valid");
        for cli in [after, before] {
            let c = &cli.common;
            assert_eq!((c.clients, c.conns, c.total, c.val_size), (100, 10, 500, 64));
            assert_eq!(c.endpoints, vec!["a:1", "b:2"]);
            assert_eq!(cli.workload.name(), "put");
        }
    }

    #[test]
    fn defaults_follow_etcd_benchmark() {
        let cli = parse("cairn-bench put").expect("valid");
        let c = &cli.common;
        assert_eq!(c.endpoints, vec!["127.0.0.1:2379"]);
        assert_eq!(
            (c.conns, c.clients, c.key_size, c.val_size, c.key_space),
            (1, 1, 8, 256, 1)
        );
        assert!(!c.sequential_keys);
        assert!(c.server_pids.is_empty());
    }

    #[test]
    fn workload_options() {
        let range = parse("cairn-bench range --consistency s").expect("valid");
        assert_eq!(range.workload.consistency(), Some(Consistency::Serializable));
        let mixed = parse("cairn-bench mixed --consistency linearizable").expect("valid");
        assert_eq!(mixed.workload.consistency(), Some(Consistency::Linearizable));
        assert_eq!(
            parse("cairn-bench range").expect("valid").workload.consistency(),
            Some(Consistency::Linearizable)
        );

        let watch = parse("cairn-bench watch --watchers 7 --watch-prefix --key-space 100").expect("valid");
        match watch.workload {
            Workload::Watch(w) => assert_eq!((w.watchers, w.watch_prefix), (7, true)),
            other => panic!("parsed as {other:?}"),
        }
        let lease = parse("cairn-bench lease-keepalive --lease-ttl 5").expect("valid");
        assert_eq!(lease.workload.name(), "lease-keepalive");
        assert_eq!(
            parse("cairn-bench txn-put --server-pids 12,34")
                .expect("valid")
                .common
                .server_pids,
            vec![12, 34]
        );
        assert!(
            parse("cairn-bench put --sequential-keys")
                .expect("valid")
                .common
                .sequential_keys
        );
    }

    #[test]
    fn rejects_what_cannot_run() {
        for bad in [
            "cairn-bench",
            "cairn-bench nope",
            "cairn-bench put --clients 0",
            "cairn-bench put --conns 0",
            "cairn-bench put --total x",
            "cairn-bench put --total 0",
            "cairn-bench range --consistency q",
            "cairn-bench put --consistency s",
            "cairn-bench put --key-size 2 --key-space 101",
            "cairn-bench watch --val-size 4",
            "cairn-bench watch --watchers 0",
            "cairn-bench put --server-pids 1,x",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(
            parse("cairn-bench put --key-size 2 --key-space 100").is_ok(),
            "keys 00..99 fit in 2 bytes"
        );
    }

    #[test]
    fn digits_of_key_numbers() {
        assert_eq!(
            [digits(0), digits(9), digits(10), digits(99), digits(100)],
            [1, 1, 2, 2, 3]
        );
    }
}
