//! Runs the clients of a workload: each claims the next operation number until `--total` are
//! claimed, so fast clients do more, and every operation is bounded by `--timeout`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::cpu::{CpuMeter, ServerCpu};
use super::record::{Outcome, Recorder, Shards};

/// One client of a workload, with whatever per-client state it needs.
pub trait Worker: Send + 'static {
    /// Gets ready before the clock starts (a lease, a stream). A worker that could not tries
    /// again in `op`, which then reports the error.
    fn prepare(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Runs operation `n`. It may be dropped halfway (at the timeout): state that a half-done
    /// operation would leave inconsistent must be set aside until the operation completes.
    fn op(&mut self, n: u64) -> impl Future<Output = Outcome> + Send;

    /// Releases what `prepare` took, after the clock has stopped.
    fn finish(self) -> impl Future<Output = ()> + Send
    where
        Self: Sized,
    {
        async {}
    }
}

/// A workload's result before it becomes a report.
pub struct Measured {
    pub recorder: Recorder,
    pub elapsed: Duration,
    pub cpu: Option<Result<ServerCpu, String>>,
    /// Watch only: the puts that made the events.
    pub puts: Option<u64>,
}

/// Prepares the workers, then runs `total` operations over them while the servers' CPU is
/// metered, then lets them clean up.
pub async fn measure<W: Worker>(mut workers: Vec<W>, total: u64, timeout: Duration, pids: &[u32]) -> Measured {
    join_all(workers.iter_mut().map(|w| tokio::time::timeout(timeout, w.prepare()))).await;
    let meter = CpuMeter::start(pids);
    let (recorder, elapsed, workers) = drive(workers, total, timeout).await;
    let cpu = meter.stop(recorder.ops());
    join_all(workers.into_iter().map(|w| tokio::time::timeout(timeout, w.finish()))).await;
    Measured {
        recorder,
        elapsed,
        cpu,
        puts: None,
    }
}

/// Runs `total` operations over the workers (each its own task); gives back what was recorded,
/// how long it took, and the workers that did not panic.
pub async fn drive<W: Worker>(workers: Vec<W>, total: u64, timeout: Duration) -> (Recorder, Duration, Vec<W>) {
    let next = Arc::new(AtomicU64::new(0));
    let shards = Arc::new(Shards::new(workers.len()));
    let start = Instant::now();
    let tasks: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(task, mut worker)| {
            let (next, shards) = (next.clone(), shards.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return worker;
                    }
                    let began = Instant::now();
                    let outcome = tokio::time::timeout(timeout, worker.op(n))
                        .await
                        .unwrap_or_else(|_| Outcome::Failed(timed_out(timeout)));
                    let latency = began.elapsed();
                    shards.with(task, |r| r.record(outcome, latency));
                }
            })
        })
        .collect();
    let mut workers = Vec::with_capacity(tasks.len());
    let mut recorder = Recorder::default();
    for task in tasks {
        match task.await {
            Ok(worker) => workers.push(worker),
            Err(e) => recorder.error(format!("client task ended: {e}")),
        }
    }
    let elapsed = start.elapsed();
    recorder.merge(&shards.merged());
    (recorder, elapsed, workers)
}

pub fn timed_out(timeout: Duration) -> String {
    format!("timed out after {}s", timeout.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails every third operation, times out on operation 7, and counts its operations.
    struct Scripted {
        ran: u64,
    }

    impl Worker for Scripted {
        async fn op(&mut self, n: u64) -> Outcome {
            self.ran += 1;
            if n == 7 {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            if n % 3 == 2 {
                Outcome::Failed("third".into())
            } else {
                Outcome::Done
            }
        }
    }

    #[tokio::test]
    async fn runs_exactly_total_operations_over_the_clients() {
        let workers: Vec<Scripted> = (0..4).map(|_| Scripted { ran: 0 }).collect();
        let timeout = Duration::from_millis(100);
        let (recorder, _, workers) = drive(workers, 30, timeout).await;
        assert_eq!(workers.iter().map(|w| w.ran).sum::<u64>(), 30);
        // 0..30: ten of them are 2 mod 3; 7 (1 mod 3) times out.
        assert_eq!(recorder.ops(), 19);
        assert_eq!(recorder.errors().get("third"), Some(&10));
        assert_eq!(recorder.errors().get(&timed_out(timeout)), Some(&1));
    }
}
