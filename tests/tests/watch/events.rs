//! What events a watch delivers: key ranges, DELETE and txn events, prev_kv, filters, cancel
//! and leases.

use super::*;

pub(super) async fn key_watch_sees_only_that_key(ctx: Ctx) {
    let mut watcher = ctx.watch("k", WatchOptions::new()).await;
    for name in ["k0", "j", "k/x", "kk"] {
        ctx.put(name, "outside").await;
    }
    ctx.delete("k0").await;
    let k = ctx.put("k", "v").await;
    let reply = watcher.next().await;
    assert_events_reply(&reply, watcher.id);
    assert_eq!(
        ctx.summary(reply.events()),
        [(EventType::Put, "k".to_owned(), k)]
    );
}

pub(super) async fn range_watch_excludes_range_end(ctx: Ctx) {
    let options = WatchOptions::new().with_range(ctx.key("d"));
    let mut watcher = ctx.watch("b", options).await;
    let mut inside = Vec::new();
    for name in ["a", "b", "d", "bz", "e", "c"] {
        let revision = ctx.put(name, "v").await;
        if ["b", "bz", "c"].contains(&name) {
            inside.push((EventType::Put, name.to_owned(), revision));
        }
    }
    let last = inside.last().expect("writes").2;
    assert_eq!(ctx.summary(&watcher.events_through(last).await), inside);
}

pub(super) async fn prefix_watch(ctx: Ctx) {
    let mut watcher = ctx.watch("p/", WatchOptions::new().with_prefix()).await;
    let mut inside = Vec::new();
    for name in ["p", "p/a", "p0", "q", "p/", "o/z", "p/b/c"] {
        let revision = ctx.put(name, "v").await;
        if name.starts_with("p/") {
            inside.push((EventType::Put, name.to_owned(), revision));
        }
    }
    let last = inside.last().expect("writes").2;
    assert_eq!(ctx.summary(&watcher.events_through(last).await), inside);
}

pub(super) async fn from_key_watch(ctx: Ctx) {
    let mut watcher = ctx.watch("m", WatchOptions::new().with_from_key()).await;
    let mut inside = Vec::new();
    for name in ["l", "m", "a", "m0", "zz"] {
        let revision = ctx.put(name, "v").await;
        if name >= "m" {
            inside.push((EventType::Put, name.to_owned(), revision));
        }
    }
    let last = inside.last().expect("writes").2;
    assert_eq!(ctx.summary(&watcher.events_through(last).await), inside);
}

pub(super) async fn delete_events_carry_key_and_revision_only(ctx: Ctx) {
    let lease = ctx.lease(600).await;
    let mut watcher = ctx.watch("d/", WatchOptions::new().with_prefix()).await;
    ctx.put_with_lease("d/a", "v1", lease).await;
    ctx.put_with_lease("d/a", "v2", lease).await;
    let deleted = ctx.delete("d/a").await;
    let events = watcher.events_through(deleted).await;
    let last = events.last().expect("events");
    assert_eq!(last.event_type(), EventType::Delete);
    assert_eq!(
        ctx.fields(event_kv(last)),
        ("d/a".to_owned(), 0, deleted, 0, String::new(), 0),
        "a DELETE event carries the key and the deletion revision only"
    );
    assert!(last.prev_kv().is_none(), "prev_kv only when asked");

    assert_eq!(
        ctx.delete("d/none").await,
        deleted,
        "deleting nothing adds no revision"
    );
    let names = ["d/r/1", "d/r/3", "d/r/2"];
    let mut put = 0;
    for name in names {
        put = ctx.put(name, "v").await;
    }
    let reply = watcher.next().await;
    assert_eq!(
        ctx.summary(reply.events()),
        [(EventType::Put, "d/r/1".to_owned(), deleted + 1)],
        "deleting nothing delivers nothing"
    );
    watcher.events_through(put).await;

    let reply = ctx
        .client()
        .delete(
            ctx.key("d/r/"),
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .expect("delete range");
    let range = header(reply.header()).revision();
    let reply = watcher.next().await;
    assert_events_reply(&reply, watcher.id);
    assert_eq!(
        ctx.summary(reply.events()),
        ["d/r/1", "d/r/2", "d/r/3"].map(|name| (EventType::Delete, name.to_owned(), range)),
        "a range delete arrives in one response, in key order, at one revision"
    );
}

pub(super) async fn txn_events_share_one_response(ctx: Ctx) {
    ctx.put("t/x", "v").await;
    let mut watcher = ctx.watch("t/", WatchOptions::new().with_prefix()).await;
    let ops = vec![
        ctx.put_op("t/c", "v"),
        ctx.put_op("t/a", "v"),
        TxnOp::delete(ctx.key("t/x"), None),
        ctx.put_op("t/b", "v"),
    ];
    let revision = ctx.txn(ops).await;
    let reply = watcher.next().await;
    assert_events_reply(&reply, watcher.id);
    assert_eq!(
        ctx.summary(reply.events()),
        [
            (EventType::Put, "t/c".to_owned(), revision),
            (EventType::Put, "t/a".to_owned(), revision),
            (EventType::Delete, "t/x".to_owned(), revision),
            (EventType::Put, "t/b".to_owned(), revision),
        ],
        "one response, one revision, in the txn's order"
    );
    assert_eq!(header(reply.header()).revision(), revision);
}

/// Several multi-key txns read back from history and live: every response holds whole
/// revisions (§1.3 "a revision is never split across responses").
pub(super) async fn history_never_splits_a_revision(ctx: Ctx) {
    const TXNS: usize = 20;
    const KEYS: usize = 50;
    let mut live = ctx.watch("s/", WatchOptions::new().with_prefix()).await;
    let mut revisions = Vec::new();
    for txn in 0..TXNS {
        let ops = (0..KEYS)
            .map(|key| ctx.put_op(&format!("s/{txn:02}/{key:02}"), "v"))
            .collect();
        revisions.push(ctx.txn(ops).await);
    }
    let (first, last) = (revisions[0], revisions[TXNS - 1]);
    let options = WatchOptions::new().with_prefix().with_start_revision(first);
    let mut history = ctx.watch("s/", options).await;
    for (what, watcher) in [("live", &mut live), ("history", &mut history)] {
        let replies = watcher.responses_through(last).await;
        let mut seen = Vec::new();
        for reply in &replies {
            let mut in_reply: Vec<i64> = reply
                .events()
                .iter()
                .map(|event| event_kv(event).mod_revision())
                .collect();
            in_reply.dedup();
            for revision in in_reply {
                let count = reply
                    .events()
                    .iter()
                    .filter(|event| event_kv(event).mod_revision() == revision)
                    .count();
                assert_eq!(
                    count, KEYS,
                    "{what}: revision {revision} split across responses"
                );
                seen.push(revision);
            }
        }
        assert_eq!(seen, revisions, "{what}: every revision once, in order");
    }
}

pub(super) async fn prev_kv_on_put_and_delete(ctx: Ctx) {
    let mut with = ctx.watch("k", WatchOptions::new().with_prev_key()).await;
    let mut without = ctx.watch("k", WatchOptions::new()).await;
    let r1 = ctx.put("k", "v1").await;
    let r2 = ctx.put("k", "v2").await;
    let r3 = ctx.delete("k").await;
    let r4 = ctx.put("k", "v3").await;
    let expected = [
        None,
        Some(("k".to_owned(), r1, r1, 1, "v1".to_owned(), 0)),
        Some(("k".to_owned(), r1, r2, 2, "v2".to_owned(), 0)),
        None,
    ];
    let options = WatchOptions::new().with_prev_key().with_start_revision(r1);
    let mut history = ctx.watch("k", options).await;
    for (what, watcher) in [("live", &mut with), ("history", &mut history)] {
        let events = watcher.events_through(r4).await;
        let prev: Vec<_> = events
            .iter()
            .map(|event| event.prev_kv().map(|kv| ctx.fields(kv)))
            .collect();
        assert_eq!(
            prev, expected,
            "{what}: prev_kv is the pair before each change; a creation has none"
        );
    }
    let events = without.events_through(r4).await;
    assert_eq!(events.len(), 4);
    assert!(
        events.iter().all(|event| event.prev_kv().is_none()),
        "prev_kv only when asked"
    );
    assert_eq!(r4, r3 + 1);
}

pub(super) async fn filters_drop_puts_or_deletes(ctx: Ctx) {
    let options = WatchOptions::new().with_prefix();
    let mut watcher = ctx
        .watch("f/", options.clone().with_filters([WatchFilterType::NoPut]))
        .await;
    let no_delete = watcher
        .create(
            ctx.key("f/"),
            options.with_filters([WatchFilterType::NoDelete]),
        )
        .await;
    let no_delete = created(&no_delete);
    let r1 = ctx.put("f/a", "v").await;
    let r2 = ctx.put("f/b", "v").await;
    let r3 = ctx.delete("f/a").await;
    let r4 = ctx.put("f/a", "v").await;
    let r5 = ctx.delete("f/b").await;
    let r6 = ctx.put("f/c", "v").await;
    let r7 = ctx.delete("f/c").await;

    let (mut deletes, mut puts) = (Vec::new(), Vec::new());
    while last_of(&deletes) < r7 || last_of(&puts) < r6 {
        let reply = watcher.next().await;
        assert!(
            !reply.events().is_empty() && !reply.created() && !reply.canceled(),
            "a watch whose events are all filtered out gets no reply: {reply:?}"
        );
        let into = match reply.watch_id() {
            id if id == watcher.id => &mut deletes,
            id if id == no_delete => &mut puts,
            other => panic!("events for an unknown watch {other}"),
        };
        into.extend(ctx.summary(reply.events()));
    }
    let revisions = |events: &[(EventType, String, i64)], kind| {
        assert!(events.iter().all(|event| event.0 == kind), "{events:?}");
        events.iter().map(|event| event.2).collect::<Vec<_>>()
    };
    assert_eq!(
        revisions(&deletes, EventType::Delete),
        [r3, r5, r7],
        "NOPUT"
    );
    assert_eq!(
        revisions(&puts, EventType::Put),
        [r1, r2, r4, r6],
        "NODELETE"
    );
}

fn last_of(events: &[(EventType, String, i64)]) -> i64 {
    events.last().map_or(0, |event| event.2)
}

pub(super) async fn cancel_stops_only_that_watch(ctx: Ctx) {
    let mut watcher = ctx.watch("a", WatchOptions::new()).await;
    let b = created(&watcher.create(ctx.key("b"), WatchOptions::new()).await);
    let now = ctx.revision().await;
    watcher
        .stream
        .cancel(watcher.id)
        .await
        .expect("send cancel");
    let reply = watcher.next().await;
    assert!(
        reply.canceled() && !reply.created() && reply.events().is_empty(),
        "expected a cancel reply, got {reply:?}"
    );
    assert_eq!(reply.watch_id(), watcher.id);
    assert_eq!(reply.cancel_reason(), "");
    assert_eq!(reply.compact_revision(), 0);
    assert_eq!(header(reply.header()).revision(), now);

    watcher.stream.cancel(42).await.expect("send cancel");
    ctx.put("a", "v").await;
    let put = ctx.put("b", "v").await;
    let reply = watcher.next().await;
    assert_events_reply(&reply, b);
    assert_eq!(
        ctx.summary(reply.events()),
        [(EventType::Put, "b".to_owned(), put)],
        "nothing more for the canceled watch, no reply to canceling an unknown id, and the other watch goes on"
    );
}

pub(super) async fn lease_revoke_deletes_attached_keys(ctx: Ctx) {
    let lease = ctx.lease(600).await;
    let mut watcher = ctx.watch("l/", WatchOptions::new().with_prefix()).await;
    ctx.put_with_lease("l/b", "v", lease).await;
    let put = ctx.put_with_lease("l/a", "v", lease).await;
    let events = watcher.events_through(put).await;
    assert!(
        events.iter().all(|event| event_kv(event).lease() == lease),
        "PUT events carry the lease"
    );
    ctx.client().lease_revoke(lease).await.expect("revoke");
    let reply = watcher.next().await;
    assert_lease_deletes(&ctx, &reply, watcher.id, put + 1);
}

pub(super) async fn lease_expiry_deletes_attached_keys(ctx: Ctx) {
    let lease = ctx.lease(2).await;
    let mut watcher = ctx.watch("l/", WatchOptions::new().with_prefix()).await;
    ctx.put_with_lease("l/b", "v", lease).await;
    let put = ctx.put_with_lease("l/a", "v", lease).await;
    watcher.events_through(put).await;
    let reply = watcher.next().await;
    assert_lease_deletes(&ctx, &reply, watcher.id, put + 1);
}

/// Both keys of a lease deleted in one response at one revision, in key order.
#[track_caller]
fn assert_lease_deletes(ctx: &Ctx, reply: &WatchResponse, watch_id: i64, revision: i64) {
    assert_events_reply(reply, watch_id);
    assert_eq!(
        ctx.summary(reply.events()),
        [
            (EventType::Delete, "l/a".to_owned(), revision),
            (EventType::Delete, "l/b".to_owned(), revision)
        ]
    );
    assert_eq!(header(reply.header()).revision(), revision);
}

pub(super) async fn writes_through_another_member_are_seen(ctx: Ctx) {
    let mut watcher = ctx.watch("k", WatchOptions::new()).await;
    let reply = ctx
        .elsewhere
        .clone()
        .put(ctx.key("k"), "v", None)
        .await
        .expect("put elsewhere");
    let revision = header(reply.header()).revision();
    let reply = watcher.next().await;
    assert_events_reply(&reply, watcher.id);
    assert_eq!(
        ctx.summary(reply.events()),
        [(EventType::Put, "k".to_owned(), revision)]
    );
}
