//! start_revision (now, past, future, compacted), progress requests and response headers.

use super::*;

pub(super) async fn start_revision_zero_means_from_now(ctx: Ctx) {
    let before = ctx.put("k", "old").await;
    let mut watcher = ctx.open("k", WatchOptions::new()).await;
    let reply = watcher.next().await;
    watcher.id = created(&reply);
    assert_eq!(header(reply.header()).revision(), before);
    let next = ctx.put("k", "new").await;
    assert_eq!(next, before + 1);
    let reply = watcher.next().await;
    assert_events_reply(&reply, watcher.id);
    assert_eq!(
        ctx.summary(reply.events()),
        [(EventType::Put, "k".to_owned(), next)],
        "revision 0 means from now, not from the beginning"
    );
    assert_eq!(event_kv(&reply.events()[0]).value(), b"new");
}

pub(super) async fn past_start_revision_replays_history(ctx: Ctx) {
    let lease = ctx.lease(600).await;
    let r1 = ctx.put("h/a", "a1").await;
    let r2 = ctx.put_with_lease("h/b", "b1", lease).await;
    let r3 = ctx.put("h/a", "a2").await;
    let r4 = ctx.delete("h/b").await;
    let r5 = ctx.put("h/b", "b2").await;
    ctx.put("x", "outside").await;
    let expected = [
        (
            EventType::Put,
            ("h/a".to_owned(), r1, r1, 1, "a1".to_owned(), 0),
        ),
        (
            EventType::Put,
            ("h/b".to_owned(), r2, r2, 1, "b1".to_owned(), lease),
        ),
        (
            EventType::Put,
            ("h/a".to_owned(), r1, r3, 2, "a2".to_owned(), 0),
        ),
        (
            EventType::Delete,
            ("h/b".to_owned(), 0, r4, 0, String::new(), 0),
        ),
        (
            EventType::Put,
            ("h/b".to_owned(), r5, r5, 1, "b2".to_owned(), 0),
        ),
    ];
    for (from, skipped) in [(r1, 0), (r3, 2)] {
        let options = WatchOptions::new().with_prefix().with_start_revision(from);
        let mut watcher = ctx.watch("h/", options).await;
        let events = watcher.events_through(r5).await;
        let got: Vec<_> = events
            .iter()
            .map(|event| (event.event_type(), ctx.fields(event_kv(event))))
            .collect();
        assert_eq!(got, expected[skipped..], "history from revision {from}");
        assert!(
            events.iter().all(|event| event.prev_kv().is_none()),
            "prev_kv only when asked"
        );
    }
}

pub(super) async fn future_start_revision_waits(ctx: Ctx) {
    let now = ctx.revision().await;
    let mut watcher = ctx
        .watch("k", WatchOptions::new().with_start_revision(now + 3))
        .await;
    for value in 1..=5 {
        ctx.put("k", &value.to_string()).await;
    }
    let events = watcher.events_through(now + 5).await;
    let expected: Vec<_> = (now + 3..=now + 5)
        .map(|revision| (EventType::Put, "k".to_owned(), revision))
        .collect();
    assert_eq!(ctx.summary(&events), expected);
}

pub(super) async fn compacted_start_revision_cancels(ctx: Ctx) {
    let r1 = ctx.put("k", "v1").await;
    let r2 = ctx.put("k", "v2").await;
    let r3 = ctx.put("k", "v3").await;
    ctx.client().compact(r2, None).await.expect("compact");
    // A linearizable read of a compacted revision fails only once this member has applied it.
    ctx.client()
        .get(ctx.key("k"), Some(GetOptions::new().with_revision(r1)))
        .await
        .expect_err("r1 is compacted");

    let mut watcher = ctx
        .watch("k", WatchOptions::new().with_start_revision(r1))
        .await;
    let reply = watcher.next().await;
    assert!(
        reply.canceled() && !reply.created() && reply.events().is_empty(),
        "the watch is created, then canceled: got {reply:?}"
    );
    assert_eq!(reply.watch_id(), watcher.id);
    assert_eq!(reply.compact_revision(), r2, "the compacted revision");
    assert_eq!(reply.cancel_reason(), "", "etcd gives no reason here");
    let h = header(reply.header());
    assert_eq!(h.member_id(), ctx.member_id);
    // etcd builds this reply from a store response that has no revision.
    assert_eq!(h.revision(), 0, "etcd sends header.revision 0 here");
    let next = watcher.create(ctx.key("k"), WatchOptions::new()).await;
    assert_eq!(
        created(&next),
        watcher.id + 1,
        "the stream carries on, and does not hand out the canceled watch's id again"
    );

    let mut watcher = ctx
        .watch("k", WatchOptions::new().with_start_revision(r2))
        .await;
    let events = watcher.events_through(r3).await;
    assert_eq!(
        ctx.summary(&events),
        [
            (EventType::Put, "k".to_owned(), r2),
            (EventType::Put, "k".to_owned(), r3)
        ],
        "the compacted revision itself can still be watched"
    );
}

pub(super) async fn progress_request_reports_current_revision(ctx: Ctx) {
    let mut watcher = ctx.watch("k", WatchOptions::new()).await;
    let revision = ctx.put("k", "v").await;
    watcher.events_through(revision).await;
    watcher
        .stream
        .request_progress()
        .await
        .expect("send progress request");
    let reply = watcher.next().await;
    assert_progress(&reply, revision);

    let elsewhere = ctx.put("other", "v").await;
    assert_eq!(ctx.revision().await, elsewhere);
    watcher
        .stream
        .request_progress()
        .await
        .expect("send progress request");
    let reply = watcher.next().await;
    assert_progress(&reply, elsewhere);
    assert_eq!(header(reply.header()).member_id(), ctx.member_id);
}

/// A progress reply: watch_id -1, nothing else but a header at the current revision (§1.3).
#[track_caller]
fn assert_progress(reply: &WatchResponse, current: i64) {
    assert!(
        reply.events().is_empty() && !reply.created() && !reply.canceled(),
        "expected a progress reply, got {reply:?}"
    );
    assert_eq!(reply.watch_id(), NO_WATCH, "{reply:?}");
    assert_eq!(reply.compact_revision(), 0, "{reply:?}");
    assert_eq!(
        header(reply.header()).revision(),
        current,
        "a progress reply carries the current revision"
    );
}

pub(super) async fn headers_name_the_member_and_revision(ctx: Ctx) {
    let got = ctx.client().get(ctx.key("k"), None).await.expect("get");
    let cluster_id = header(got.header()).cluster_id();
    let assert_header = |reply: &WatchResponse, revision: i64, what: &str| {
        let h = header(reply.header());
        assert_eq!(h.cluster_id(), cluster_id, "{what}: cluster_id");
        assert_eq!(
            h.member_id(),
            ctx.member_id,
            "{what}: the member that answered"
        );
        assert!(h.raft_term() > 0, "{what}: raft_term is set");
        assert_eq!(h.revision(), revision, "{what}: revision");
    };

    let now = header(got.header()).revision();
    let mut watcher = ctx.open("w/", WatchOptions::new().with_prefix()).await;
    let reply = watcher.next().await;
    watcher.id = created(&reply);
    assert_header(&reply, now, "created reply");

    let put = ctx.put("w/a", "v").await;
    let reply = watcher.next().await;
    assert_events_reply(&reply, watcher.id);
    assert_header(&reply, put, "event reply");
    let txn = ctx
        .txn(vec![ctx.put_op("w/b", "v"), ctx.put_op("w/c", "v")])
        .await;
    let reply = watcher.next().await;
    assert_header(&reply, txn, "txn event reply");
    assert_eq!(last_revision(&reply), txn);

    // A catch-up from history is stamped with the revision it ran at (the current one), not
    // with its last event's, which is older here.
    let later = ctx.put("x", "outside").await;
    let options = WatchOptions::new().with_prefix().with_start_revision(put);
    let mut history = ctx.watch("w/", options).await;
    let replies = history.responses_through(txn).await;
    let reply = replies.last().expect("a reply");
    assert_header(reply, later, "history reply");

    watcher
        .stream
        .cancel(watcher.id)
        .await
        .expect("send cancel");
    let reply = watcher.next().await;
    assert!(reply.canceled(), "{reply:?}");
    assert_header(&reply, later, "cancel reply");
}
