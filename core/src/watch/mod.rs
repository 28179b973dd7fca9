//! The watch hub: every watcher of every watch stream on this member, and the fan-out of the
//! events each apply produces (as etcd's watchableStore, reference/architecture-anchors.md §2.2).
//!
//! - *Synced* watchers are caught up. Apply hands the hub its events once, and the hub finds the
//!   watchers of each event's key by one map lookup (single keys) plus one test per distinct
//!   watched range, however many watchers share that key or range.
//! - *Unsynced* watchers are behind: they started at an old revision, or their stream's queue
//!   was full (etcd's victims). The syncer reads their history from the store, at most
//!   [`HISTORY_BATCH_REVISIONS`](crate::mvcc::HISTORY_BATCH_REVISIONS) revisions per read, for all of them at once, and moves each back
//!   to synced once it has everything up to the hub's revision.
//!
//! Each stream has one outgoing queue. Replies to requests (created, canceled, progress) always
//! enter it, so they keep their order with the events; event responses enter only while fewer
//! than [`STREAM_QUEUE_EVENTS`] wait, which bounds the memory a slow reader can pin.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cairn_proto::etcdserverpb::watch_create_request::FilterType;
use cairn_proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchResponse};
use cairn_proto::mvccpb::event::EventType;
use cairn_proto::mvccpb::Event;
use prost::Message;
use rustc_hash::FxHasher;
use tokio::sync::Notify;

use crate::error::Error;
use crate::mvcc::keys::KeyRange;
use crate::mvcc::Mvcc;

/// Event responses a stream may hold before its watchers fall back to catching up from the
/// store (etcd's per-stream channel of 128).
pub const STREAM_QUEUE_EVENTS: usize = 128;
/// How often the syncer looks at unsynced watchers when nothing wakes it.
const SYNC_INTERVAL: Duration = Duration::from_millis(100);

pub const DUPLICATE_WATCH_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
pub const EMPTY_WATCH_RANGE: &str = "mvcc: watcher range is empty";
pub const COMPACTED_REASON: &str = "mvcc: required revision has been compacted";

/// What one watcher asked for (etcd's WatchCreateRequest, decoded).
#[derive(Debug, Clone)]
pub struct WatchSpec {
    pub range: KeyRange,
    /// 0: from the next revision on.
    pub start_revision: i64,
    /// 0: the stream picks an ID.
    pub watch_id: i64,
    pub prev_kv: bool,
    pub no_put: bool,
    pub no_delete: bool,
    pub progress_notify: bool,
    pub fragment: bool,
}

impl WatchSpec {
    pub fn from_request(req: &WatchCreateRequest) -> WatchSpec {
        let has = |f: FilterType| req.filters.contains(&(f as i32));
        WatchSpec {
            range: KeyRange::new(&req.key, &req.range_end),
            start_revision: req.start_revision,
            watch_id: req.watch_id,
            prev_kv: req.prev_kv,
            no_put: has(FilterType::Noput),
            no_delete: has(FilterType::Nodelete),
            progress_notify: req.progress_notify,
            fragment: req.fragment,
        }
    }

    fn wants(&self, event: &Event) -> bool {
        let put = event.r#type == EventType::Put as i32;
        !(put && self.no_put || !put && self.no_delete)
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader { revision, ..Default::default() })
}

fn event_rev(event: &Event) -> i64 {
    event.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

fn event_key(event: &Event) -> &[u8] {
    event.kv.as_ref().map_or(&[], |kv| kv.key.as_slice())
}

/// Responses waiting to go out; `events` counts the event responses among them.
#[derive(Default)]
struct Items {
    queue: VecDeque<(WatchResponse, bool)>,
    events: usize,
}

/// One stream's outgoing responses.
struct Queue {
    items: Mutex<Items>,
    ready: Notify,
    closed: AtomicBool,
    /// Wakes the syncer when a full queue drains.
    syncer: Arc<Notify>,
}

enum Pushed {
    Queued,
    Full,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Items> {
        self.items.lock().expect("the queue lock is never poisoned")
    }

    fn is_full(&self) -> bool {
        self.lock().events >= STREAM_QUEUE_EVENTS
    }

    fn control(&self, resp: WatchResponse) {
        self.lock().queue.push_back((resp, false));
        self.ready.notify_one();
    }

    fn events(&self, pieces: Vec<WatchResponse>) -> Pushed {
        let mut items = self.lock();
        if items.events >= STREAM_QUEUE_EVENTS {
            return Pushed::Full;
        }
        let last = pieces.len().saturating_sub(1);
        for (i, piece) in pieces.into_iter().enumerate() {
            // Pieces of one fragmented response count once.
            items.queue.push_back((piece, i == last));
        }
        items.events += 1;
        drop(items);
        self.ready.notify_one();
        Pushed::Queued
    }

    fn pop(&self) -> Option<WatchResponse> {
        let mut items = self.lock();
        let (resp, counted) = items.queue.pop_front()?;
        if counted {
            items.events -= 1;
            if items.events + 1 == STREAM_QUEUE_EVENTS {
                // A full queue has room again: its watchers can be caught up.
                self.syncer.notify_one();
            }
        }
        Some(resp)
    }
}

#[derive(Debug)]
struct Watcher {
    stream: u64,
    watch_id: i64,
    spec: WatchSpec,
    /// The first revision not yet delivered (or, for a synced watcher, not yet due).
    next_rev: i64,
    synced: bool,
    /// An event went out since the last progress tick.
    notified: bool,
}

struct StreamState {
    queue: Arc<Queue>,
    watch_ids: HashMap<i64, u64>,
    next_watch_id: i64,
}

#[derive(Default)]
struct Inner {
    /// The last revision handed to the hub by apply.
    rev: i64,
    next_key: u64,
    streams: IdMap<StreamState>,
    watchers: IdMap<Watcher>,
    by_key: HashMap<Vec<u8>, IdSet>,
    by_range: HashMap<KeyRange, IdSet>,
    unsynced: IdSet,
}

/// Maps and sets keyed by the hub's own ids (streams, watchers), which clients do not choose:
/// FxHash instead of SipHash, whose flooding resistance they do not need, costs a fraction per
/// lookup, and a put fans out to every watcher on its key through several of them. Client keys
/// and ranges stay on SipHash.
type IdMap<V> = HashMap<u64, V, BuildHasherDefault<FxHasher>>;
type IdSet = HashSet<u64, BuildHasherDefault<FxHasher>>;

impl Inner {
    fn index(&mut self, key: u64) {
        let Some(w) = self.watchers.get_mut(&key) else { return };
        w.synced = true;
        self.unsynced.remove(&key);
        if w.spec.range.is_single_key() {
            self.by_key.entry(w.spec.range.start.clone()).or_default().insert(key);
        } else {
            self.by_range.entry(w.spec.range.clone()).or_default().insert(key);
        }
    }

    fn unindex(&mut self, key: u64) {
        let Some(w) = self.watchers.get_mut(&key) else { return };
        if !w.synced {
            return;
        }
        w.synced = false;
        if w.spec.range.is_single_key() {
            if let Some(set) = self.by_key.get_mut(&w.spec.range.start) {
                set.remove(&key);
                if set.is_empty() {
                    self.by_key.remove(&w.spec.range.start);
                }
            }
        } else if let Some(set) = self.by_range.get_mut(&w.spec.range) {
            set.remove(&key);
            if set.is_empty() {
                self.by_range.remove(&w.spec.range);
            }
        }
    }

    /// Moves a synced watcher to the unsynced group, to be caught up from `from`.
    fn fall_behind(&mut self, key: u64, from: i64) {
        self.unindex(key);
        if let Some(w) = self.watchers.get_mut(&key) {
            w.next_rev = w.next_rev.max(from);
            self.unsynced.insert(key);
        }
    }

    fn remove(&mut self, key: u64) -> Option<Watcher> {
        self.unindex(key);
        self.unsynced.remove(&key);
        let w = self.watchers.remove(&key)?;
        if let Some(stream) = self.streams.get_mut(&w.stream) {
            stream.watch_ids.remove(&w.watch_id);
        }
        Some(w)
    }

    fn queue(&self, stream: u64) -> Option<Arc<Queue>> {
        self.streams.get(&stream).map(|s| s.queue.clone())
    }
}

pub struct Hub {
    inner: Mutex<Inner>,
    mvcc: Arc<Mvcc>,
    syncer: Arc<Notify>,
    /// Responses above this size are split when the watcher asked for fragments
    /// (max-request-bytes + gRPC overhead, as etcd).
    fragment_bytes: usize,
}

impl Hub {
    pub fn new(mvcc: Arc<Mvcc>, fragment_bytes: usize) -> Arc<Hub> {
        let inner = Inner { rev: mvcc.current_revision(), ..Default::default() };
        Arc::new(Hub { inner: Mutex::new(inner), mvcc, syncer: Arc::new(Notify::new()), fragment_bytes })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("the hub lock is never poisoned: nothing panics under it")
    }

    /// How many watch streams and watchers are open, and how many of the watchers are behind
    /// (etcd's `watch_stream_total`, `watcher_total` and `slow_watcher_total`).
    pub fn counts(&self) -> WatchCounts {
        let inner = self.lock();
        WatchCounts { streams: inner.streams.len(), watchers: inner.watchers.len(), slow: inner.unsynced.len() }
    }

    /// Opens a watch stream; dropping it cancels its watchers.
    pub fn open(self: &Arc<Self>) -> WatchStream {
        let queue = Arc::new(Queue { items: Mutex::default(), ready: Notify::new(), closed: AtomicBool::new(false), syncer: self.syncer.clone() });
        let mut inner = self.lock();
        inner.next_key += 1;
        let id = inner.next_key;
        inner.streams.insert(id, StreamState { queue: queue.clone(), watch_ids: HashMap::new(), next_watch_id: 0 });
        WatchStream { hub: self.clone(), id, queue }
    }

    /// The hub's revision: every event at or below it has been handed to the watchers' queues
    /// or is waiting in the store for the syncer.
    pub fn revision(&self) -> i64 {
        self.lock().rev
    }

    /// Fans out the events of one apply (in revision order); `revision` is the store's revision
    /// after it.
    pub fn notify(&self, events: &[Event], revision: i64) {
        let mut inner = self.lock();
        if events.is_empty() {
            inner.rev = inner.rev.max(revision);
            return;
        }
        let first_rev = event_rev(&events[0]);
        let mut matched: IdMap<Vec<&Event>> = IdMap::default();
        for event in events {
            let key = event_key(event);
            if let Some(set) = inner.by_key.get(key) {
                for w in set {
                    matched.entry(*w).or_default().push(event);
                }
            }
            for (range, set) in &inner.by_range {
                if range.contains(key) {
                    for w in set {
                        matched.entry(*w).or_default().push(event);
                    }
                }
            }
        }
        for (key, candidates) in matched {
            let Some(w) = inner.watchers.get(&key) else { continue };
            let events: Vec<Event> = candidates.into_iter().filter(|e| event_rev(e) >= w.next_rev).filter_map(|e| deliverable(&w.spec, e)).collect();
            let Some(last) = events.last().map(event_rev) else { continue };
            let Some(queue) = inner.queue(w.stream) else { continue };
            let pieces = self.pieces(w, events, last);
            match queue.events(pieces) {
                Pushed::Queued => {
                    if let Some(w) = inner.watchers.get_mut(&key) {
                        w.notified = true;
                    }
                }
                Pushed::Full => {
                    inner.fall_behind(key, first_rev);
                    self.syncer.notify_one();
                }
            }
        }
        inner.rev = inner.rev.max(revision);
    }

    /// A new state was installed under the hub (a raft snapshot): every watcher catches up
    /// from the store, which may have been compacted past it.
    pub fn reset(&self) {
        let mut inner = self.lock();
        let from = inner.rev + 1;
        let synced: Vec<u64> = inner.watchers.iter().filter(|(_, w)| w.synced).map(|(k, _)| *k).collect();
        for key in synced {
            inner.fall_behind(key, from);
        }
        inner.rev = self.mvcc.current_revision();
        drop(inner);
        self.syncer.notify_one();
    }

    /// The response (split into fragments when asked and needed) carrying `events` to `w`.
    fn pieces(&self, w: &Watcher, events: Vec<Event>, revision: i64) -> Vec<WatchResponse> {
        let resp = WatchResponse { header: header(revision), watch_id: w.watch_id, events, ..Default::default() };
        if !w.spec.fragment || resp.events.len() < 2 || resp.encoded_len() <= self.fragment_bytes {
            return vec![resp];
        }
        let mut pieces = Vec::new();
        let mut current: Vec<Event> = Vec::new();
        let mut size = 0;
        for event in resp.events {
            let len = event.encoded_len() + 8;
            if !current.is_empty() && size + len > self.fragment_bytes {
                pieces.push(std::mem::take(&mut current));
                size = 0;
            }
            size += len;
            current.push(event);
        }
        pieces.push(current);
        let last = pieces.len() - 1;
        pieces
            .into_iter()
            .enumerate()
            .map(|(i, events)| WatchResponse { header: header(revision), watch_id: w.watch_id, events, fragment: i < last, ..Default::default() })
            .collect()
    }

    fn create(&self, stream: u64, spec: WatchSpec) {
        let mut inner = self.lock();
        let rev = inner.rev;
        let Some(state) = inner.streams.get_mut(&stream) else { return };
        let refuse = |reason: &str| WatchResponse { header: header(rev), watch_id: -1, created: true, canceled: true, cancel_reason: reason.into(), ..Default::default() };
        if spec.range.is_empty() {
            return state.queue.control(refuse(EMPTY_WATCH_RANGE));
        }
        if spec.start_revision < 0 {
            return state.queue.control(refuse(COMPACTED_REASON));
        }
        let watch_id = if spec.watch_id != 0 {
            if state.watch_ids.contains_key(&spec.watch_id) {
                return state.queue.control(refuse(DUPLICATE_WATCH_ID));
            }
            spec.watch_id
        } else {
            // IDs are never reused on a stream, even after a cancel (etcd's watchStream.nextID).
            while state.watch_ids.contains_key(&state.next_watch_id) {
                state.next_watch_id += 1;
            }
            state.next_watch_id += 1;
            state.next_watch_id - 1
        };
        state.queue.control(WatchResponse { header: header(rev), watch_id, created: true, ..Default::default() });
        inner.next_key += 1;
        let key = inner.next_key;
        if let Some(state) = inner.streams.get_mut(&stream) {
            state.watch_ids.insert(watch_id, key);
        }
        let start = spec.start_revision;
        let synced = start == 0 || start > rev;
        let next_rev = if start == 0 { rev + 1 } else { start };
        inner.watchers.insert(key, Watcher { stream, watch_id, spec, next_rev, synced: false, notified: false });
        if synced {
            inner.index(key);
        } else {
            inner.unsynced.insert(key);
            self.syncer.notify_one();
        }
    }

    fn cancel(&self, stream: u64, watch_id: i64) {
        let mut inner = self.lock();
        let rev = inner.rev;
        let Some(key) = inner.streams.get(&stream).and_then(|s| s.watch_ids.get(&watch_id).copied()) else { return };
        inner.remove(key);
        if let Some(queue) = inner.queue(stream) {
            queue.control(WatchResponse { header: header(rev), watch_id, canceled: true, ..Default::default() });
        }
    }

    /// etcd's `progressIfSync`: when every watcher of the stream is caught up, one empty
    /// response with watch ID -1 at the hub's revision; otherwise nothing.
    fn progress(&self, stream: u64) {
        let inner = self.lock();
        let Some(state) = inner.streams.get(&stream) else { return };
        if state.watch_ids.is_empty() {
            return;
        }
        let all_synced = state.watch_ids.values().all(|k| inner.watchers.get(k).is_some_and(|w| w.synced));
        if all_synced {
            state.queue.control(WatchResponse { header: header(inner.rev), watch_id: -1, ..Default::default() });
        }
    }

    fn close(&self, stream: u64) {
        let mut inner = self.lock();
        let Some(state) = inner.streams.remove(&stream) else { return };
        state.queue.closed.store(true, Ordering::SeqCst);
        state.queue.ready.notify_one();
        for key in state.watch_ids.into_values() {
            inner.unindex(key);
            inner.unsynced.remove(&key);
            inner.watchers.remove(&key);
        }
    }

    /// Periodic progress (`progress_notify`): every synced watcher that asked for it and got no
    /// event since the last tick gets an empty response at the hub's revision.
    pub fn progress_tick(&self) {
        let mut inner = self.lock();
        let rev = inner.rev;
        let mut due = Vec::new();
        for w in inner.watchers.values_mut() {
            if w.synced && w.spec.progress_notify && !w.notified {
                due.push((w.stream, w.watch_id));
            }
            w.notified = false;
        }
        for (stream, watch_id) in due {
            if let Some(queue) = inner.queue(stream) {
                queue.control(WatchResponse { header: header(rev), watch_id, ..Default::default() });
            }
        }
    }

    /// Runs the syncer and the progress ticker until the hub is dropped elsewhere.
    pub async fn run(self: Arc<Self>, progress_interval: Duration) {
        let mut progress = tokio::time::interval(progress_interval);
        progress.tick().await;
        let mut sync = tokio::time::interval(SYNC_INTERVAL);
        loop {
            tokio::select! {
                _ = self.syncer.notified() => {}
                _ = sync.tick() => {}
                _ = progress.tick() => { self.progress_tick(); continue; }
            }
            // Passes run back to back while they make progress, so a watcher far behind is
            // caught up in successive batches without waiting for the next tick.
            loop {
                let hub = self.clone();
                match tokio::task::spawn_blocking(move || hub.sync_pass()).await {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        tracing::error!("watch syncer: {e}");
                        break;
                    }
                }
            }
        }
    }

    /// One catch-up round for the unsynced watchers. True if any of them advanced.
    fn sync_pass(&self) -> bool {
        let compact = self.mvcc.compact_revision();
        let (from, to, prev_kv) = {
            let mut inner = self.lock();
            if inner.unsynced.is_empty() {
                return false;
            }
            self.cancel_compacted(&mut inner, compact);
            let rev = inner.rev;
            let mut from = i64::MAX;
            let mut prev_kv = false;
            let mut caught_up = Vec::new();
            for key in &inner.unsynced {
                let Some(w) = inner.watchers.get(key) else { continue };
                if w.next_rev > rev {
                    caught_up.push(*key);
                    continue;
                }
                let full = inner.streams.get(&w.stream).is_none_or(|s| s.queue.is_full());
                if !full {
                    from = from.min(w.next_rev);
                    prev_kv |= w.spec.prev_kv;
                }
            }
            for key in caught_up {
                inner.index(key);
            }
            if from == i64::MAX {
                return false;
            }
            (from, rev, prev_kv)
        };
        let history = match self.mvcc.history(from, to, prev_kv) {
            Ok(h) => h,
            // Compacted meanwhile: the next pass cancels whoever it left behind.
            Err(Error::Compacted) => return true,
            Err(e) => {
                tracing::error!("watch catch-up read failed: {e}");
                return false;
            }
        };
        let mut inner = self.lock();
        let mut advanced = false;
        let keys: Vec<u64> = inner.unsynced.iter().copied().collect();
        for key in keys {
            let Some(w) = inner.watchers.get(&key) else { continue };
            if w.next_rev < from || w.next_rev > history.through {
                continue;
            }
            let Some(queue) = inner.queue(w.stream) else { continue };
            let events: Vec<Event> = history
                .events
                .iter()
                .filter(|e| event_rev(e) >= w.next_rev && w.spec.range.contains(event_key(e)))
                .filter_map(|e| deliverable(&w.spec, e))
                .collect();
            if !events.is_empty() {
                let pieces = self.pieces(w, events, history.through);
                if let Pushed::Full = queue.events(pieces) {
                    continue;
                }
            }
            advanced = true;
            let rev = inner.rev;
            if let Some(w) = inner.watchers.get_mut(&key) {
                w.next_rev = history.through + 1;
                if w.next_rev > rev {
                    inner.index(key);
                }
            }
        }
        advanced
    }

    /// Cancels every unsynced watcher that needs a revision below the compaction point.
    fn cancel_compacted(&self, inner: &mut Inner, compact: i64) {
        let doomed: Vec<u64> = inner.unsynced.iter().filter(|k| inner.watchers.get(k).is_some_and(|w| w.next_rev < compact)).copied().collect();
        for key in doomed {
            let Some(w) = inner.remove(key) else { continue };
            if let Some(queue) = inner.queue(w.stream) {
                // etcd's compacted response carries no revision in its header.
                queue.control(WatchResponse { header: header(0), watch_id: w.watch_id, canceled: true, compact_revision: compact, ..Default::default() });
            }
        }
    }
}

/// The event as this watcher gets it: filtered out, or without `prev_kv` unless asked.
fn deliverable(spec: &WatchSpec, event: &Event) -> Option<Event> {
    if !spec.wants(event) {
        return None;
    }
    Some(Event { r#type: event.r#type, kv: event.kv.clone(), prev_kv: if spec.prev_kv { event.prev_kv.clone() } else { None } })
}

/// A census of the hub, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchCounts {
    pub streams: usize,
    pub watchers: usize,
    pub slow: usize,
}

/// One watch stream: many watchers, one ordered queue of responses. Dropping it cancels every
/// watcher on it.
pub struct WatchStream {
    hub: Arc<Hub>,
    id: u64,
    queue: Arc<Queue>,
}

impl WatchStream {
    /// Creates a watcher; its `created` reply (or the refusal) is queued before any event.
    pub fn create(&self, spec: WatchSpec) {
        self.hub.create(self.id, spec);
    }

    /// Cancels a watcher; an unknown ID is ignored, as etcd does.
    pub fn cancel(&self, watch_id: i64) {
        self.hub.cancel(self.id, watch_id);
    }

    pub fn request_progress(&self) {
        self.hub.progress(self.id);
    }

    /// The next response; `None` once the stream is closed.
    pub async fn next(&self) -> Option<WatchResponse> {
        loop {
            let ready = self.queue.ready.notified();
            if let Some(resp) = self.queue.pop() {
                return Some(resp);
            }
            if self.queue.closed.load(Ordering::SeqCst) {
                return None;
            }
            ready.await;
        }
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.hub.close(self.id);
    }
}

#[cfg(test)]
mod tests;
