//! cairn-bench: a load generator for etcd-compatible servers (Cairn or etcd), in the spirit of
//! etcd's `benchmark` tool. This first version runs the `put` and `range` workloads; the full
//! tool (more workloads, hdrhistogram, server CPU) is the benchmark issue's.
//!
//! cairn-bench put   --endpoints 127.0.0.1:2379 --conns 10 --clients 100 --total 20000 --val-size 256
//! cairn-bench range --endpoints 127.0.0.1:2379 --clients 100 --total 20000 [--serializable]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions};

#[derive(Debug, Clone)]
struct Options {
    workload: String,
    endpoints: Vec<String>,
    conns: usize,
    clients: usize,
    total: u64,
    key_size: usize,
    val_size: usize,
    key_space: u64,
    serializable: bool,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut it = args.iter();
    let workload = it.next().ok_or("usage: cairn-bench <put|range> [options]")?.clone();
    if !["put", "range"].contains(&workload.as_str()) {
        return Err(format!("unknown workload {workload:?} (put, range)"));
    }
    let mut o = Options {
        workload,
        endpoints: vec!["127.0.0.1:2379".into()],
        conns: 1,
        clients: 1,
        total: 10_000,
        key_size: 8,
        val_size: 256,
        key_space: 1,
        serializable: false,
    };
    while let Some(flag) = it.next() {
        if flag == "--serializable" {
            o.serializable = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = || value.parse::<u64>().map_err(|_| format!("{flag}: {value:?} is not a number"));
        match flag.as_str() {
            "--endpoints" => o.endpoints = value.split(',').map(str::to_string).collect(),
            "--conns" => o.conns = num()? as usize,
            "--clients" => o.clients = num()? as usize,
            "--total" => o.total = num()?,
            "--key-size" => o.key_size = num()? as usize,
            "--val-size" => o.val_size = num()? as usize,
            "--key-space" => o.key_space = num()?.max(1),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if o.conns == 0 || o.clients == 0 {
        return Err("--conns and --clients must be at least 1".into());
    }
    Ok(o)
}

fn key(o: &Options, n: u64) -> Vec<u8> {
    let mut k = format!("{:0width$}", n % o.key_space, width = o.key_size).into_bytes();
    k.truncate(o.key_size.max(1));
    k
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cairn-bench: {e}");
            std::process::exit(2);
        }
    };
    let mut conns = Vec::with_capacity(o.conns);
    for _ in 0..o.conns {
        match Client::connect(o.endpoints.clone(), None).await {
            Ok(c) => conns.push(c),
            Err(e) => {
                eprintln!("cairn-bench: connect: {e}");
                std::process::exit(1);
            }
        }
    }
    if o.workload == "range" {
        let mut c = conns[0].clone();
        for n in 0..o.key_space {
            if let Err(e) = c.put(key(&o, n), vec![b'v'; o.val_size], None).await {
                eprintln!("cairn-bench: preload: {e}");
                std::process::exit(1);
            }
        }
    }
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let value = vec![b'v'; o.val_size];
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..o.clients {
        let mut client = conns[i % o.conns].clone();
        let (o, next, errors, value) = (o.clone(), next.clone(), errors.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= o.total {
                    return lat;
                }
                let t = Instant::now();
                let ok = match o.workload.as_str() {
                    "put" => client.put(key(&o, n), value.clone(), None).await.is_ok(),
                    _ => {
                        let opts = if o.serializable { GetOptions::new().with_serializable() } else { GetOptions::new() };
                        client.get(key(&o, n), Some(opts)).await.is_ok()
                    }
                };
                lat.push(t.elapsed());
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let mut lat: Vec<Duration> = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    let elapsed = start.elapsed();
    lat.sort();
    let ops = lat.len() as f64 / elapsed.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{} clients={} conns={} total={} errors={} ops/s={:.0} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms",
        o.workload,
        o.clients,
        o.conns,
        lat.len(),
        errors.load(Ordering::Relaxed),
        ops,
        ms(percentile(&lat, 50.0)),
        ms(percentile(&lat, 90.0)),
        ms(percentile(&lat, 99.0)),
        ms(lat.last().copied().unwrap_or_default()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_options() {
        let o = parse(&args("put --clients 100 --conns 10 --total 500 --val-size 64 --endpoints a:1,b:2")).expect("valid");
        assert_eq!((o.clients, o.conns, o.total, o.val_size), (100, 10, 500, 64));
        assert_eq!(o.endpoints, vec!["a:1", "b:2"]);
        assert!(parse(&args("put --clients 0")).is_err());
        assert!(parse(&args("nope")).is_err());
        assert!(parse(&args("put --total x")).is_err());
    }

    #[test]
    fn percentiles_pick_from_sorted_latencies() {
        let lat: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&lat, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&lat, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&[], 99.0), Duration::ZERO);
    }
}
