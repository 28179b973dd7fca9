//! The watch workload: watchers on one key (or the key space's prefix), each on its own watch
//! stream, while `--clients` putters make `--total` puts whose values carry their send time. An
//! operation is one event delivered to one watcher; its latency runs from the put's send to
//! the event's arrival.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, EventType, WatchOptions, WatchResponse, WatchStream};
use futures::future::join_all;
use tokio::sync::watch;

use super::cpu::CpuMeter;
use super::driver::{drive, timed_out, Measured, Worker};
use super::keys::{age, stamped_value, Keys};
use super::options::{Common, WatchArgs};
use super::record::{error_message, Outcome, Recorder, Shards};

/// Once the puts are done: how many events each watcher should get, and until when to wait.
type Target = Option<(u64, Instant)>;

pub async fn run(common: &Common, args: &WatchArgs, conns: &[Client], timeout: Duration) -> Measured {
    let epoch = Instant::now();
    let keys = Keys::new(common, 0);
    let (key, options) = if args.watch_prefix {
        (keys.common_prefix(), Some(WatchOptions::new().with_prefix()))
    } else {
        (keys.key(0), None)
    };
    let opened = join_all((0..args.watchers).map(|w| {
        let client = conns[w % conns.len()].clone();
        open(client, key.clone(), options.clone(), timeout)
    }))
    .await;
    let mut recorder = Recorder::default();
    let mut streams = Vec::new();
    for result in opened {
        match result {
            Ok(stream) => streams.push(stream),
            Err(message) => recorder.error(format!("watch: {message}")),
        }
    }
    if streams.is_empty() {
        let cpu = CpuMeter::start(&common.server_pids).stop(0);
        return Measured {
            recorder,
            elapsed: Duration::ZERO,
            cpu,
            puts: Some(0),
        };
    }

    let shards = Arc::new(Shards::new(streams.len()));
    let (target_tx, target_rx) = watch::channel::<Target>(None);
    let followers: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(w, stream)| tokio::spawn(follow(stream, epoch, shards.clone(), w, target_rx.clone())))
        .collect();

    let meter = CpuMeter::start(&common.server_pids);
    let putters: Vec<StampedPut> = (0..common.clients)
        .map(|c| StampedPut {
            client: conns[c % conns.len()].clone(),
            keys: args.watch_prefix.then(|| Keys::new(common, c)),
            key: key.clone(),
            size: common.val_size,
            epoch,
        })
        .collect();
    let began = Instant::now();
    let (put_recorder, put_elapsed, _) = drive(putters, common.total, timeout).await;
    let puts = put_recorder.ops();
    target_tx.send_replace(Some((puts, Instant::now() + timeout)));

    let mut last_event = None;
    for follower in followers {
        match follower.await {
            Ok(last) => last_event = last_event.max(last),
            Err(e) => recorder.error(format!("watcher task ended: {e}")),
        }
    }
    recorder.merge(&shards.merged());
    for (message, n) in put_recorder.errors() {
        recorder.errors_n(format!("put: {message}"), *n);
    }
    let cpu = meter.stop(recorder.ops());
    let elapsed = last_event.map_or(put_elapsed, |last| last.saturating_duration_since(began));
    Measured {
        recorder,
        elapsed,
        cpu,
        puts: Some(puts),
    }
}

/// Opens a watch stream and waits for the server to confirm the watcher.
async fn open(
    mut client: Client,
    key: Vec<u8>,
    options: Option<WatchOptions>,
    timeout: Duration,
) -> Result<WatchStream, String> {
    let confirmed = async move {
        let mut stream = client.watch(key, options).await.map_err(|e| error_message(&e))?;
        match stream.message().await.map_err(|e| error_message(&e))? {
            Some(r) if r.canceled() => Err(format!("canceled: {}", r.cancel_reason())),
            Some(r) if r.created() => Ok(stream),
            Some(_) => Err("the first response did not confirm the watcher".to_owned()),
            None => Err("the server closed the stream".to_owned()),
        }
    };
    tokio::time::timeout(timeout, confirmed)
        .await
        .unwrap_or_else(|_| Err(timed_out(timeout)))
}

/// Receives events until the watcher has all the puts' events or the wait after the puts ends;
/// gives the time of the last event. Missing events are counted as errors.
async fn follow(
    mut stream: WatchStream,
    epoch: Instant,
    shards: Arc<Shards>,
    watcher: usize,
    mut target_rx: watch::Receiver<Target>,
) -> Option<Instant> {
    let (mut seen, mut last_event, mut target) = (0u64, None, None);
    loop {
        if target.is_some_and(|(expected, _)| seen >= expected) {
            break;
        }
        let deadline = target.map(|(_, deadline)| deadline);
        tokio::select! {
            changed = target_rx.changed(), if target.is_none() => {
                target = *target_rx.borrow();
                if changed.is_err() && target.is_none() {
                    shards.with(watcher, |r| r.error("the putters ended without a count"));
                    break;
                }
            }
            message = next_message(&mut stream, deadline) => match message {
                None => break,
                Some(Ok(Some(response))) => {
                    if response.canceled() {
                        shards.with(watcher, |r| r.error(format!("watch canceled: {}", response.cancel_reason())));
                        break;
                    }
                    last_event = Some(Instant::now());
                    seen += shards.with(watcher, |r| record_events(r, &response, epoch));
                }
                Some(Ok(None)) => {
                    shards.with(watcher, |r| r.error("the server closed the watch stream"));
                    break;
                }
                Some(Err(e)) => {
                    shards.with(watcher, |r| r.error(error_message(&e)));
                    break;
                }
            }
        }
    }
    if let Some((expected, _)) = target {
        let missed = expected.saturating_sub(seen);
        shards.with(watcher, |r| {
            r.errors_n("event not delivered before the timeout", missed)
        });
    }
    last_event
}

/// The next response, or `None` once `deadline` has passed.
async fn next_message(
    stream: &mut WatchStream,
    deadline: Option<Instant>,
) -> Option<Result<Option<WatchResponse>, etcd_client::Error>> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), stream.message()).await.ok(),
        None => Some(stream.message().await),
    }
}

/// Records each put event's delivery latency; returns how many put events there were.
fn record_events(recorder: &mut Recorder, response: &WatchResponse, epoch: Instant) -> u64 {
    let mut puts = 0;
    for event in response.events().iter().filter(|e| e.event_type() == EventType::Put) {
        puts += 1;
        match event.kv().and_then(|kv| age(kv.value(), epoch)) {
            Some(latency) => recorder.latency(latency),
            None => recorder.error("event value without a send time"),
        }
    }
    puts
}

/// A putter: writes values stamped with their send time, to the watched key or (prefix watch)
/// to keys of the key space.
struct StampedPut {
    client: Client,
    keys: Option<Keys>,
    key: Vec<u8>,
    size: usize,
    epoch: Instant,
}

impl Worker for StampedPut {
    async fn op(&mut self, n: u64) -> Outcome {
        let key = self.keys.as_mut().map_or_else(|| self.key.clone(), |k| k.pick(n));
        match self.client.put(key, stamped_value(self.size, self.epoch), None).await {
            Ok(_) => Outcome::Done,
            Err(e) => Outcome::Failed(error_message(&e)),
        }
    }
}
