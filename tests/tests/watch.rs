//! The Watch behaviour suite (reference/etcd-api.md §1.3, §2, §3), written once against
//! etcd-client and run against every backend. Checks share one store, each under its own key
//! prefix, use revisions relative to what they read first, and wait for watch responses with a
//! deadline, never for a fixed time.

use std::time::Duration;

use cairn_tests::{
    check, cluster_or_skip, connect, run_checks, Backend, Check, CheckContext, Cluster,
    ELECTION_TIMEOUT,
};
use etcd_client::{
    Client, Event, EventType, GetOptions, KeyValue, PutOptions, ResponseHeader, Txn, TxnOp,
    WatchFilterType, WatchOptions, WatchResponse, WatchStream,
};
use futures::StreamExt;

#[path = "watch/create.rs"]
mod create;
#[path = "watch/events.rs"]
mod events;
#[path = "watch/revisions.rs"]
mod revisions;
#[path = "watch/volume.rs"]
mod volume;

use create::*;
use events::*;
use revisions::*;
use volume::*;

/// How long one watch response may take to arrive; only a lost or hung stream comes near it.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-request timeout for the extra clients a check connects.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// In-flight puts when a check writes many keys.
const PUT_CONCURRENCY: usize = 64;
/// The watch_id of replies that belong to no watcher: refused creates and progress replies.
const NO_WATCH: i64 = -1;
const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
const EMPTY_RANGE: &str = "mvcc: watcher range is empty";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_single() {
    single_member(Backend::Cairn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_three() {
    three_members(Backend::Cairn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_single() {
    single_member(Backend::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_three() {
    three_members(Backend::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_progress_notify() {
    progress_notify(Backend::Cairn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_progress_notify() {
    progress_notify(Backend::Etcd).await;
}

/// The period of progress notifications, short so that the check takes a second.
const PROGRESS_INTERVAL: &str = "--experimental-watch-progress-notify-interval=300ms";

/// progress_notify=true: a watcher that got no event since the last tick receives an empty
/// response with its own watch_id and the current revision; one without it receives nothing.
async fn progress_notify(backend: Backend) {
    let Some(cluster) = Cluster::start_with(backend, 1, &[PROGRESS_INTERVAL]).await.expect("a member starts") else {
        eprintln!("skipped: no {} installed", backend.name());
        return;
    };
    let ctx = Ctx::for_member(&cluster, 0, 0, "progress/").await;
    let mut quiet = ctx.watch("quiet", WatchOptions::new()).await;
    let mut notified = ctx.watch("k", WatchOptions::new().with_progress_notify()).await;
    let revision = ctx.put("elsewhere", "v").await;
    // Ticks can fire before the put is applied; the revisions only ever grow to it.
    loop {
        let reply = notified.next().await;
        assert!(!reply.created() && !reply.canceled() && reply.events().is_empty(), "a progress notification: {reply:?}");
        assert_eq!(reply.watch_id(), notified.id, "it names its watcher, not -1");
        let at = header(reply.header()).revision();
        assert!(at <= revision, "no revision beyond the store's: {at} > {revision}");
        if at == revision {
            break;
        }
    }
    let written = ctx.put("k", "v").await;
    let events = notified.events_through(written).await;
    assert_eq!(ctx.summary(&events), [(EventType::Put, "k".to_owned(), written)]);
    quiet.stream.request_progress().await.expect("send a progress request");
    let reply = quiet.next().await;
    assert_eq!(reply.watch_id(), NO_WATCH, "the quiet watcher got only the reply to its request: {reply:?}");
}

async fn single_member(backend: Backend) {
    let Some(cluster) = cluster_or_skip(backend, 1).await else {
        return;
    };
    let ctx = Ctx::for_member(&cluster, 0, 0, "single/").await;
    run_checks(&format!("{} single", backend.name()), &ctx, &checks()).await;
}

/// The whole suite with watches on a follower (which must deliver events it learns through
/// replication), then again on the leader. Writes that a check makes "elsewhere" go through
/// the other one.
async fn three_members(backend: Backend) {
    let Some(cluster) = cluster_or_skip(backend, 3).await else {
        return;
    };
    let leader = cluster
        .wait_for_leader(ELECTION_TIMEOUT)
        .await
        .expect("a leader");
    let follower = cluster.followers().await.expect("followers")[0];
    let name = backend.name();
    let via_follower = Ctx::for_member(&cluster, follower, leader, "follower/").await;
    run_checks(
        &format!("{name} 3 members via follower"),
        &via_follower,
        &checks(),
    )
    .await;
    let via_leader = Ctx::for_member(&cluster, leader, follower, "leader/").await;
    run_checks(
        &format!("{name} 3 members via leader"),
        &via_leader,
        &checks(),
    )
    .await;
}

fn checks() -> Vec<Check<Ctx>> {
    vec![
        check!(created_reply_comes_first),
        check!(server_ids_count_from_zero_per_stream),
        check!(client_chosen_ids_are_honoured),
        check!(duplicate_id_is_refused),
        check!(empty_range_is_refused),
        check!(start_revision_zero_means_from_now),
        check!(past_start_revision_replays_history),
        check!(future_start_revision_waits),
        check!(compacted_start_revision_cancels),
        check!(progress_request_reports_current_revision),
        check!(headers_name_the_member_and_revision),
        check!(key_watch_sees_only_that_key),
        check!(range_watch_excludes_range_end),
        check!(prefix_watch),
        check!(from_key_watch),
        check!(delete_events_carry_key_and_revision_only),
        check!(txn_events_share_one_response),
        check!(history_never_splits_a_revision),
        check!(prev_kv_on_put_and_delete),
        check!(filters_drop_puts_or_deletes),
        check!(cancel_stops_only_that_watch),
        check!(lease_revoke_deletes_attached_keys),
        check!(lease_expiry_deletes_attached_keys),
        check!(writes_through_another_member_are_seen),
        check!(many_events_arrive_in_order),
        check!(slow_consumer_gets_every_event),
        check!(large_revision_is_fragmented_on_request),
    ]
}

#[derive(Clone)]
struct Ctx {
    client: Client,
    /// A client of another member when there is one, else of the same member.
    elsewhere: Client,
    endpoint: String,
    prefix: String,
    /// The member the client talks to, as its headers must name it.
    member_id: u64,
}

impl CheckContext for Ctx {
    fn scoped(&self, check: &str) -> Self {
        Ctx {
            prefix: format!("{}{check}/", self.prefix),
            ..self.clone()
        }
    }
}

impl Ctx {
    async fn for_member(cluster: &Cluster, index: usize, elsewhere: usize, prefix: &str) -> Ctx {
        Ctx {
            client: cluster.member_client(index).await.expect("a client"),
            elsewhere: cluster.member_client(elsewhere).await.expect("a client"),
            endpoint: cluster.endpoint(index).to_owned(),
            prefix: prefix.to_owned(),
            member_id: cluster.member_id(index),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A key's name relative to this check's prefix.
    fn name(&self, key: &[u8]) -> String {
        let key = String::from_utf8_lossy(key);
        key.strip_prefix(&self.prefix).unwrap_or(&key).to_owned()
    }

    fn client(&self) -> Client {
        self.client.clone()
    }

    /// A client of the same member on its own connection, so that a stream left unread cannot
    /// hold up other requests.
    async fn own_connection(&self) -> Client {
        connect(&[&self.endpoint], REQUEST_TIMEOUT)
            .await
            .expect("a client")
    }

    /// The member's current revision (a linearizable read, so the member has applied it).
    async fn revision(&self) -> i64 {
        let reply = self
            .client()
            .get(self.key("\u{1}probe"), None)
            .await
            .expect("get");
        header(reply.header()).revision()
    }

    /// Puts `value` under this check's key `name`; returns the revision of the write.
    async fn put(&self, name: &str, value: &str) -> i64 {
        let reply = self
            .client()
            .put(self.key(name), value, None)
            .await
            .expect("put");
        header(reply.header()).revision()
    }

    async fn put_with_lease(&self, name: &str, value: &str, lease: i64) -> i64 {
        let options = PutOptions::new().with_lease(lease);
        let reply = self
            .client()
            .put(self.key(name), value, Some(options))
            .await
            .expect("put with lease");
        header(reply.header()).revision()
    }

    async fn delete(&self, name: &str) -> i64 {
        let reply = self
            .client()
            .delete(self.key(name), None)
            .await
            .expect("delete");
        header(reply.header()).revision()
    }

    /// Runs `ops` as one txn; returns its revision.
    async fn txn(&self, ops: Vec<TxnOp>) -> i64 {
        let reply = self
            .client()
            .txn(Txn::new().and_then(ops))
            .await
            .expect("txn");
        header(reply.header()).revision()
    }

    fn put_op(&self, name: &str, value: impl Into<Vec<u8>>) -> TxnOp {
        TxnOp::put(self.key(name), value, None)
    }

    /// Puts every name with `value`, many at a time; returns each name with its revision.
    async fn put_concurrently(&self, names: &[String], value: &[u8]) -> Vec<(String, i64)> {
        let puts: Vec<_> = names
            .iter()
            .map(|name| {
                let mut client = self.client();
                let (name, key, value) = (name.clone(), self.key(name), value.to_vec());
                async move {
                    let reply = client.put(key, value, None).await.expect("put");
                    (name, header(reply.header()).revision())
                }
            })
            .collect();
        futures::stream::iter(puts)
            .buffer_unordered(PUT_CONCURRENCY)
            .collect()
            .await
    }

    async fn lease(&self, ttl: i64) -> i64 {
        self.client()
            .lease_grant(ttl, None)
            .await
            .expect("lease grant")
            .id()
    }

    /// Opens a stream with a watch on `name` and reads its created reply.
    async fn watch(&self, name: &str, options: WatchOptions) -> Watcher {
        let mut watcher = self.open(name, options).await;
        watcher.id = created(&watcher.next().await);
        watcher
    }

    /// Opens a stream with a watch on `name` without reading anything.
    async fn open(&self, name: &str, options: WatchOptions) -> Watcher {
        Watcher::open(&self.client, self.key(name), options).await
    }

    /// (type, key name, mod_revision) of each event: what most checks compare.
    fn summary(&self, events: &[Event]) -> Vec<(EventType, String, i64)> {
        events
            .iter()
            .map(|event| {
                let kv = event_kv(event);
                (event.event_type(), self.name(kv.key()), kv.mod_revision())
            })
            .collect()
    }

    /// Every field of a pair: (key name, create_revision, mod_revision, version, value, lease).
    fn fields(&self, kv: &KeyValue) -> (String, i64, i64, i64, String, i64) {
        (
            self.name(kv.key()),
            kv.create_revision(),
            kv.mod_revision(),
            kv.version(),
            String::from_utf8_lossy(kv.value()).into_owned(),
            kv.lease(),
        )
    }
}

/// One watch stream. `id` is the watch it was opened with, once its created reply is read.
struct Watcher {
    stream: WatchStream,
    id: i64,
}

impl Watcher {
    async fn open(client: &Client, key: String, options: WatchOptions) -> Watcher {
        let stream = client
            .watch_client()
            .watch(key, Some(options))
            .await
            .expect("open a watch stream");
        Watcher {
            stream,
            id: NO_WATCH,
        }
    }

    /// The next response; panics if none comes within [`RESPONSE_TIMEOUT`].
    async fn next(&mut self) -> WatchResponse {
        match tokio::time::timeout(RESPONSE_TIMEOUT, self.stream.message()).await {
            Err(_) => panic!("no watch response within {RESPONSE_TIMEOUT:?}"),
            Ok(Err(error)) => panic!("the watch stream failed: {error}"),
            Ok(Ok(None)) => panic!("the watch stream ended"),
            Ok(Ok(Some(reply))) => reply,
        }
    }

    /// Sends another create request on this stream and returns the next reply, which must be
    /// its answer because create replies go out in request order.
    async fn create(&mut self, key: String, options: WatchOptions) -> WatchResponse {
        self.stream
            .watch(key, Some(options))
            .await
            .expect("send a create request");
        self.next().await
    }

    /// Reads responses until one holds an event at `revision` or later; each must be an event
    /// response of this stream's first watch.
    async fn responses_through(&mut self, revision: i64) -> Vec<WatchResponse> {
        let mut replies = Vec::new();
        loop {
            let reply = self.next().await;
            assert_events_reply(&reply, self.id);
            let last = last_revision(&reply);
            replies.push(reply);
            if last >= revision {
                return replies;
            }
        }
    }

    async fn events_through(&mut self, revision: i64) -> Vec<Event> {
        let replies = self.responses_through(revision).await;
        replies
            .iter()
            .flat_map(|reply| reply.events().to_vec())
            .collect()
    }
}

/// Asserts `reply` is a successful created reply and returns its watch_id.
#[track_caller]
fn created(reply: &WatchResponse) -> i64 {
    assert!(
        reply.created() && !reply.canceled() && reply.events().is_empty(),
        "expected a created reply, got {reply:?}"
    );
    assert_eq!(reply.cancel_reason(), "", "{reply:?}");
    assert_eq!(reply.compact_revision(), 0, "{reply:?}");
    reply.watch_id()
}

/// Asserts `reply` carries events for `watch_id` and nothing else.
#[track_caller]
fn assert_events_reply(reply: &WatchResponse, watch_id: i64) {
    assert!(
        !reply.created() && !reply.canceled() && !reply.events().is_empty(),
        "expected events, got {reply:?}"
    );
    assert_eq!(reply.watch_id(), watch_id, "events for the wrong watch");
    assert_eq!(reply.compact_revision(), 0);
}

fn last_revision(reply: &WatchResponse) -> i64 {
    reply
        .events()
        .last()
        .map_or(0, |event| event_kv(event).mod_revision())
}

#[track_caller]
fn event_kv(event: &Event) -> &KeyValue {
    event.kv().expect("every event carries a kv")
}

#[track_caller]
fn header(header: Option<&ResponseHeader>) -> &ResponseHeader {
    header.expect("a response header")
}

/// The `fragment` flag of a watch response (etcd-client shows it with `pub-response-field`).
fn fragment_flag(reply: &WatchResponse) -> bool {
    reply.0.fragment
}
