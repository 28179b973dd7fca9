//! The report: a summary for people, then one JSON line for scripts.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::cpu::ServerCpu;
use super::driver::Measured;
use super::options::{Cli, Consistency, Workload};
use super::record::{round3, Latency};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workload: &'static str,
    pub endpoints: Vec<String>,
    pub conns: usize,
    pub clients: usize,
    pub total: u64,
    pub key_size: usize,
    pub val_size: usize,
    pub key_space: u64,
    pub sequential_keys: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watchers: Option<usize>,
    /// Completed operations (for txn-put: commits and conflicts; for watch: events delivered).
    pub ops: u64,
    pub elapsed_s: f64,
    pub ops_per_s: f64,
    pub latency_ms: Latency,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub puts: Option<u64>,
    pub errors: u64,
    pub error_messages: BTreeMap<String, u64>,
    /// `null` when no `--server-pids` were given.
    pub server_cpu: Option<ServerCpu>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_error: Option<String>,
}

impl Report {
    pub fn new(cli: &Cli, measured: Measured) -> Self {
        let mut report = Self::empty(cli);
        let r = &measured.recorder;
        report.ops = r.ops();
        report.elapsed_s = round3(measured.elapsed.as_secs_f64());
        report.ops_per_s = if measured.elapsed.is_zero() {
            0.0
        } else {
            (r.ops() as f64 / measured.elapsed.as_secs_f64() * 10.0).round() / 10.0
        };
        report.latency_ms = r.summary();
        report.conflicts = matches!(cli.workload, Workload::TxnPut).then(|| r.conflicts());
        report.puts = measured.puts;
        report.errors = r.error_count();
        report.error_messages = r.errors().clone();
        match measured.cpu {
            Some(Ok(cpu)) => report.server_cpu = Some(cpu),
            Some(Err(e)) => report.server_cpu_error = Some(e),
            None => {}
        }
        report
    }

    /// A run that could not start: no operation, one error.
    pub fn failed(cli: &Cli, message: String) -> Self {
        let mut report = Self::empty(cli);
        report.errors = 1;
        report.error_messages.insert(message, 1);
        report
    }

    fn empty(cli: &Cli) -> Self {
        let c = &cli.common;
        Self {
            workload: cli.workload.name(),
            endpoints: c.endpoints.clone(),
            conns: c.conns,
            clients: c.clients,
            total: c.total,
            key_size: c.key_size,
            val_size: c.val_size,
            key_space: c.key_space,
            sequential_keys: c.sequential_keys,
            consistency: cli.workload.consistency().map(|c| match c {
                Consistency::Linearizable => "l",
                Consistency::Serializable => "s",
            }),
            watchers: match &cli.workload {
                Workload::Watch(w) => Some(w.watchers),
                _ => None,
            },
            ops: 0,
            elapsed_s: 0.0,
            ops_per_s: 0.0,
            latency_ms: Latency::default(),
            conflicts: None,
            puts: None,
            errors: 0,
            error_messages: BTreeMap::new(),
            server_cpu: None,
            server_cpu_error: None,
        }
    }

    pub fn json_line(&self) -> String {
        serde_json::to_string(self).expect("a report is plain data")
    }

    pub fn human(&self) -> String {
        let mut s = String::new();
        let consistency = self
            .consistency
            .map_or(String::new(), |c| format!(" --consistency {c}"));
        let _ = writeln!(
            s,
            "{}{consistency}: {} clients, {} connections to {}; {}-byte keys in a space of {}, {}-byte values",
            self.workload,
            self.clients,
            self.conns,
            self.endpoints.join(","),
            self.key_size,
            self.key_space,
            self.val_size,
        );
        if let Some(w) = self.watchers {
            let _ = writeln!(
                s,
                "  watchers    {w} (ops are events delivered; latency is put sent to event received)"
            );
        }
        let _ = writeln!(s, "  ops         {} in {:.3} s", self.ops, self.elapsed_s);
        let _ = writeln!(s, "  throughput  {:.1} ops/s", self.ops_per_s);
        let l = &self.latency_ms;
        let _ = writeln!(
            s,
            "  latency ms  avg {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            l.avg, l.p50, l.p90, l.p99, l.p99_9, l.max
        );
        if let Some(puts) = self.puts {
            let _ = writeln!(s, "  puts        {puts}");
        }
        if let Some(conflicts) = self.conflicts {
            let _ = writeln!(
                s,
                "  conflicts   {conflicts} (compare failed; committed = ops - conflicts)"
            );
        }
        if let Some(cpu) = &self.server_cpu {
            let per_op = cpu.ms_per_op.map_or("-".to_owned(), |ms| format!("{ms:.4}"));
            let _ = writeln!(
                s,
                "  server cpu  {:.2} s over {} processes, {per_op} ms/op (clock ticks of 1/{} s)",
                cpu.seconds,
                cpu.pids.len(),
                cpu.ticks_per_second
            );
        }
        if let Some(e) = &self.server_cpu_error {
            let _ = writeln!(s, "  server cpu  not measured: {e}");
        }
        let _ = writeln!(s, "  errors      {}", self.errors);
        for (message, n) in &self.error_messages {
            let _ = writeln!(s, "    {n:>8}  {message}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::bench::record::{Outcome, Recorder};

    fn cli(line: &str) -> Cli {
        Cli::try_parse_from(line.split_whitespace()).expect("valid")
    }

    fn measured() -> Measured {
        let mut recorder = Recorder::default();
        for _ in 0..900 {
            recorder.record(Outcome::Done, Duration::from_millis(2));
        }
        for _ in 0..100 {
            recorder.record(Outcome::Conflict, Duration::from_millis(4));
        }
        recorder.record(
            Outcome::Failed("Unavailable: etcdserver: leader changed".into()),
            Duration::ZERO,
        );
        Measured {
            recorder,
            elapsed: Duration::from_secs(2),
            cpu: Some(Ok(ServerCpu::new(&[1, 2, 3], 0, 150, 100, 1000))),
            puts: None,
        }
    }

    #[test]
    fn json_is_one_parsable_line_with_the_numbers() {
        let report = Report::new(&cli("cairn-bench txn-put --clients 10 --server-pids 1,2,3"), measured());
        let line = report.json_line();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["workload"], "txn-put");
        assert_eq!(v["ops"], 1000);
        assert_eq!(v["ops_per_s"], 500.0);
        assert_eq!(v["conflicts"], 100);
        assert_eq!(v["errors"], 1);
        assert_eq!(v["error_messages"]["Unavailable: etcdserver: leader changed"], 1);
        assert_eq!(v["server_cpu"]["seconds"], 1.5);
        assert_eq!(v["server_cpu"]["ms_per_op"], 1.5);
        let p50 = v["latency_ms"]["p50"].as_f64().expect("a number");
        assert!((p50 - 2.0).abs() < 0.01, "p50 {p50}");
        assert!(v.get("watchers").is_none() && v.get("consistency").is_none());
    }

    #[test]
    fn human_summary_names_errors_and_cpu() {
        let text = Report::new(&cli("cairn-bench txn-put"), measured()).human();
        assert!(text.contains("500.0 ops/s"), "{text}");
        assert!(text.contains("1.50 s over 3 processes, 1.5000 ms/op"), "{text}");
        assert!(
            text.contains("       1  Unavailable: etcdserver: leader changed"),
            "{text}"
        );
    }

    #[test]
    fn failed_runs_report_their_error() {
        let report = Report::failed(&cli("cairn-bench range --consistency s"), "connect: refused".into());
        let v: serde_json::Value = serde_json::from_str(&report.json_line()).expect("valid JSON");
        assert_eq!((v["ops"].as_u64(), v["errors"].as_u64()), (Some(0), Some(1)));
        assert_eq!(v["consistency"], "s");
        assert_eq!(v["server_cpu"], serde_json::Value::Null);
    }
}
