//! The key-value workloads: put, range, txn-put (compare-and-swap) and mixed.

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};

use super::driver::{measure, Measured, Worker};
use super::keys::{value, Keys};
use super::options::{Common, Consistency};
use super::record::{error_message, Outcome, Recorder};

/// Share of mixed operations that are puts, in percent.
const MIXED_PUT_PERCENT: u64 = 10;

/// The state every KV client has: a connection, its keys and the value it writes.
pub struct Kv {
    client: Client,
    keys: Keys,
    value: Vec<u8>,
    read: GetOptions,
}

impl Kv {
    fn new(common: &Common, conns: &[Client], client: usize, consistency: Option<Consistency>) -> Self {
        let read = match consistency {
            Some(Consistency::Serializable) => GetOptions::new().with_serializable(),
            _ => GetOptions::new(),
        };
        Self {
            client: conns[client % conns.len()].clone(),
            keys: Keys::new(common, client),
            value: value(common.val_size),
            read,
        }
    }

    async fn put(&mut self, key: Vec<u8>) -> Outcome {
        outcome(self.client.put(key, self.value.clone(), None).await.map(drop))
    }

    async fn get(&mut self, key: Vec<u8>) -> Outcome {
        outcome(self.client.get(key, Some(self.read.clone())).await.map(drop))
    }

    /// Reads the key's mod_revision (0 when absent) and puts only if it is still that.
    async fn compare_and_swap(&mut self, key: Vec<u8>) -> Result<bool, etcd_client::Error> {
        let current = self.client.get(key.clone(), None).await?;
        let revision = current.kvs().first().map_or(0, |kv| kv.mod_revision());
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, revision)])
            .and_then([TxnOp::put(key, self.value.clone(), None)]);
        Ok(self.client.txn(txn).await?.succeeded())
    }
}

fn outcome(result: Result<(), etcd_client::Error>) -> Outcome {
    match result {
        Ok(()) => Outcome::Done,
        Err(e) => Outcome::Failed(error_message(&e)),
    }
}

pub struct Put(pub(super) Kv);
pub struct Range(pub(super) Kv);
pub struct TxnPut(pub(super) Kv);
pub struct Mixed(pub(super) Kv);

impl Worker for Put {
    async fn op(&mut self, n: u64) -> Outcome {
        let key = self.0.keys.pick(n);
        self.0.put(key).await
    }
}

impl Worker for Range {
    async fn op(&mut self, n: u64) -> Outcome {
        let key = self.0.keys.pick(n);
        self.0.get(key).await
    }
}

impl Worker for TxnPut {
    async fn op(&mut self, n: u64) -> Outcome {
        let key = self.0.keys.pick(n);
        match self.0.compare_and_swap(key).await {
            Ok(true) => Outcome::Done,
            Ok(false) => Outcome::Conflict,
            Err(e) => Outcome::Failed(error_message(&e)),
        }
    }
}

impl Worker for Mixed {
    async fn op(&mut self, n: u64) -> Outcome {
        let key = self.0.keys.pick(n);
        if self.0.keys.percent() < MIXED_PUT_PERCENT {
            self.0.put(key).await
        } else {
            self.0.get(key).await
        }
    }
}

/// One worker per client, each wrapping its [`Kv`] state in `wrap`.
pub fn workers<W>(common: &Common, conns: &[Client], consistency: Option<Consistency>, wrap: fn(Kv) -> W) -> Vec<W> {
    (0..common.clients)
        .map(|c| wrap(Kv::new(common, conns, c, consistency)))
        .collect()
}

/// Writes every key of the key space once, so that reads find values of the right size.
pub async fn preload(common: &Common, conns: &[Client], timeout: Duration) -> Recorder {
    let sequential = Common {
        sequential_keys: true,
        ..common.clone()
    };
    let clients = usize::try_from(common.key_space)
        .unwrap_or(usize::MAX)
        .min(common.clients);
    let writers: Vec<Put> = (0..clients)
        .map(|c| Put(Kv::new(&sequential, conns, c, None)))
        .collect();
    measure(writers, common.key_space, timeout, &[]).await.recorder
}

/// Runs a read workload after [`preload`]; preload failures are reported with a prefix.
pub async fn after_preload<W: Worker>(
    common: &Common,
    conns: &[Client],
    timeout: Duration,
    workers: Vec<W>,
) -> Measured {
    let preloaded = preload(common, conns, timeout).await;
    let mut measured = measure(workers, common.total, timeout, &common.server_pids).await;
    for (message, n) in preloaded.errors() {
        measured.recorder.errors_n(format!("preload: {message}"), *n);
    }
    measured
}
