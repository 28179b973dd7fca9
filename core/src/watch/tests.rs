//! The hub against a real store: ordering, history, slow readers, filters and compaction.

use std::sync::Arc;
use std::time::Duration;

use cairn_proto::cairnpb::{command, Command};
use cairn_proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest, PutRequest, WatchCreateRequest, WatchResponse};
use tempfile::TempDir;

use super::*;
use crate::storage::StateDb;

struct Fixture {
    _dir: TempDir,
    mvcc: Arc<Mvcc>,
    hub: Arc<Hub>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let mvcc = Arc::new(Mvcc::new(StateDb::open(dir.path()).expect("open")).expect("load"));
        let hub = Hub::new(mvcc.clone(), 1 << 20);
        Fixture { _dir: dir, mvcc, hub }
    }

    /// Applies `ops` as one entry and notifies the hub, as the state machine does.
    fn apply(&self, ops: Vec<command::Op>) {
        let ((), effects) = self
            .mvcc
            .apply(|a| {
                for op in ops {
                    a.apply(&Command { op: Some(op) });
                }
            })
            .expect("apply");
        self.hub.notify(&effects.events, effects.revision);
    }

    fn put(&self, key: &str, value: &str) {
        self.apply(vec![put(key, value)]);
    }
}

fn put(key: &str, value: &str) -> command::Op {
    command::Op::Put(PutRequest { key: key.into(), value: value.into(), ..Default::default() })
}

fn create(key: &str, range_end: &str, start_revision: i64) -> WatchSpec {
    WatchSpec::from_request(&WatchCreateRequest { key: key.into(), range_end: range_end.into(), start_revision, ..Default::default() })
}

async fn next(stream: &WatchStream) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("a response within 5s").expect("stream open")
}

fn revisions(resp: &WatchResponse) -> Vec<i64> {
    resp.events.iter().map(event_rev).collect()
}

/// Reads responses for `watch_id` until `count` events arrived; returns their revisions.
async fn collect(stream: &WatchStream, count: usize) -> Vec<i64> {
    let mut revs = Vec::new();
    while revs.len() < count {
        let resp = next(stream).await;
        assert!(!resp.canceled, "unexpected cancel: {resp:?}");
        revs.extend(revisions(&resp));
    }
    revs
}

#[tokio::test]
async fn created_comes_first_and_ids_count_from_zero() {
    let f = Fixture::new();
    let stream = f.hub.open();
    stream.create(create("a", "", 0));
    stream.create(create("b", "", 0));
    let first = next(&stream).await;
    let second = next(&stream).await;
    assert!(first.created && second.created);
    assert_eq!((first.watch_id, second.watch_id), (0, 1));
    f.put("a", "1");
    let event = next(&stream).await;
    assert_eq!((event.watch_id, revisions(&event)), (0, vec![2]));
}

#[tokio::test]
async fn duplicate_ids_and_empty_ranges_are_refused() {
    let f = Fixture::new();
    let stream = f.hub.open();
    stream.create(WatchSpec { watch_id: 7, ..create("a", "", 0) });
    stream.create(WatchSpec { watch_id: 7, ..create("b", "", 0) });
    stream.create(create("b", "a", 0));
    assert_eq!(next(&stream).await.watch_id, 7);
    let dup = next(&stream).await;
    assert_eq!((dup.watch_id, dup.created, dup.canceled, dup.cancel_reason.as_str()), (-1, true, true, DUPLICATE_WATCH_ID));
    let empty = next(&stream).await;
    assert_eq!((empty.watch_id, empty.canceled, empty.cancel_reason.as_str()), (-1, true, EMPTY_WATCH_RANGE));
}

#[tokio::test]
async fn history_is_replayed_then_live_events_follow_without_gap() {
    let f = Fixture::new();
    for i in 0..2500 {
        f.put(&format!("k/{}", i % 10), "v");
    }
    let hub = f.hub.clone();
    let syncer = tokio::spawn(hub.run(Duration::from_secs(600)));
    let stream = f.hub.open();
    stream.create(create("k/", "k0", 2));
    assert!(next(&stream).await.created);
    let writer = {
        let mvcc = f.mvcc.clone();
        let hub = f.hub.clone();
        std::thread::spawn(move || {
            for _ in 0..500 {
                let ((), e) = mvcc.apply(|a| drop(a.apply(&Command { op: Some(put("k/x", "v")) }))).expect("apply");
                hub.notify(&e.events, e.revision);
            }
        })
    };
    let revs = collect(&stream, 3000).await;
    writer.join().expect("writer");
    assert_eq!(revs, (2..3002).collect::<Vec<_>>());
    syncer.abort();
}

#[tokio::test]
async fn a_slow_reader_falls_behind_and_is_caught_up_from_the_store() {
    let f = Fixture::new();
    let syncer = tokio::spawn(f.hub.clone().run(Duration::from_secs(600)));
    let stream = f.hub.open();
    stream.create(create("s", "", 0));
    assert!(next(&stream).await.created);
    for i in 0..(STREAM_QUEUE_EVENTS * 3) {
        f.put("s", &i.to_string());
    }
    let total = STREAM_QUEUE_EVENTS * 3;
    let revs = collect(&stream, total).await;
    assert_eq!(revs, (2..2 + total as i64).collect::<Vec<_>>());
    syncer.abort();
}

#[tokio::test]
async fn filters_and_prev_kv() {
    let f = Fixture::new();
    let stream = f.hub.open();
    let mut no_put = create("f", "", 0);
    no_put.no_put = true;
    no_put.prev_kv = true;
    stream.create(no_put);
    stream.create(create("f", "", 0));
    next(&stream).await;
    next(&stream).await;
    f.put("f", "1");
    f.apply(vec![command::Op::DeleteRange(DeleteRangeRequest { key: "f".into(), ..Default::default() })]);
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next(&stream).await);
    }
    let deletes: Vec<_> = seen.iter().filter(|r| r.watch_id == 0).collect();
    assert_eq!(deletes.len(), 1, "the NOPUT watcher sees only the delete: {seen:?}");
    let prev = deletes[0].events[0].prev_kv.as_ref().expect("prev_kv asked for");
    assert_eq!(prev.value, b"1");
    assert!(seen.iter().filter(|r| r.watch_id == 1).all(|r| r.events.iter().all(|e| e.prev_kv.is_none())));
}

#[tokio::test]
async fn a_watch_below_the_compaction_point_is_canceled_with_the_compact_revision() {
    let f = Fixture::new();
    for i in 0..10 {
        f.put("c", &i.to_string());
    }
    f.apply(vec![command::Op::Compaction(CompactionRequest { revision: 6, physical: false })]);
    let syncer = tokio::spawn(f.hub.clone().run(Duration::from_secs(600)));
    let stream = f.hub.open();
    stream.create(create("c", "", 3));
    assert!(next(&stream).await.created);
    let canceled = next(&stream).await;
    assert_eq!((canceled.canceled, canceled.compact_revision, canceled.watch_id), (true, 6, 0));
    syncer.abort();
}

#[tokio::test]
async fn progress_is_sent_only_when_every_watcher_is_synced() {
    let f = Fixture::new();
    for _ in 0..5 {
        f.put("p", "v");
    }
    let stream = f.hub.open();
    stream.request_progress();
    stream.create(create("p", "", 2));
    assert!(next(&stream).await.created);
    stream.request_progress();
    // The history watcher is not synced (no syncer runs here), so no progress reply is queued.
    assert!(f.hub.lock().streams.values().all(|s| s.queue.lock().queue.is_empty()));
    stream.create(create("q", "", 0));
    let _ = next(&stream).await;
    let synced = f.hub.open();
    synced.create(create("q", "", 0));
    assert!(next(&synced).await.created);
    synced.request_progress();
    let progress = next(&synced).await;
    assert_eq!((progress.watch_id, progress.header.map(|h| h.revision)), (-1, Some(6)));
}

#[tokio::test]
async fn fragments_split_large_responses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mvcc = Arc::new(Mvcc::new(StateDb::open(dir.path()).expect("open")).expect("load"));
    let hub = Hub::new(mvcc.clone(), 1000);
    let stream = hub.open();
    let mut spec = create("g", "h", 0);
    spec.fragment = true;
    stream.create(spec);
    next(&stream).await;
    let big = "x".repeat(400);
    let ((), e) = mvcc
        .apply(|a| {
            for i in 0..5 {
                a.apply(&Command { op: Some(put(&format!("g{i}"), &big)) });
            }
        })
        .expect("apply");
    hub.notify(&e.events, e.revision);
    let mut pieces = Vec::new();
    loop {
        let resp = next(&stream).await;
        let more = resp.fragment;
        pieces.push(resp);
        if !more {
            break;
        }
    }
    assert!(pieces.len() >= 2, "split into {} pieces", pieces.len());
    assert_eq!(pieces.iter().map(|p| p.events.len()).sum::<usize>(), 5);
}
