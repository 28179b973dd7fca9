//! Creating watches: the created reply, watch IDs, and refused creates.

use super::*;

pub(super) async fn created_reply_comes_first(ctx: Ctx) {
    let first = ctx.put("k", "v1").await;
    let last = ctx.put("k", "v2").await;
    let mut watcher = ctx
        .open("k", WatchOptions::new().with_start_revision(first))
        .await;
    let reply = watcher.next().await;
    assert_eq!(
        created(&reply),
        0,
        "the first reply is the created one, and the first watch on a stream gets id 0"
    );
    assert_eq!(
        header(reply.header()).revision(),
        last,
        "the created reply carries the current revision"
    );
    watcher.id = 0;
    let events = watcher.events_through(last).await;
    assert_eq!(
        ctx.summary(&events),
        [
            (EventType::Put, "k".to_owned(), first),
            (EventType::Put, "k".to_owned(), last)
        ]
    );
}

pub(super) async fn server_ids_count_from_zero_per_stream(ctx: Ctx) {
    let mut watcher = ctx.watch("a", WatchOptions::new()).await;
    assert_eq!(watcher.id, 0, "ids start at 0");
    for expected in [1, 2] {
        let reply = watcher.create(ctx.key("b"), WatchOptions::new()).await;
        assert_eq!(created(&reply), expected, "ids count up on a stream");
    }
    let other = ctx.watch("a", WatchOptions::new()).await;
    assert_eq!(
        other.id, 0,
        "ids are per stream: a new stream starts at 0 again"
    );

    watcher.stream.cancel(1).await.expect("send cancel");
    let canceled = watcher.next().await;
    assert!(
        canceled.canceled() && canceled.watch_id() == 1,
        "{canceled:?}"
    );
    let reply = watcher.create(ctx.key("c"), WatchOptions::new()).await;
    assert_eq!(
        created(&reply),
        3,
        "a canceled id is not handed out again on the stream"
    );
    let revision = ctx.put("c", "v").await;
    let reply = watcher.next().await;
    assert_events_reply(&reply, 3);
    assert_eq!(
        ctx.summary(reply.events()),
        [(EventType::Put, "c".to_owned(), revision)]
    );
}

pub(super) async fn client_chosen_ids_are_honoured(ctx: Ctx) {
    let mut watcher = ctx.watch("a", WatchOptions::new().with_watch_id(5)).await;
    assert_eq!(watcher.id, 5, "the id the client chose");
    let auto = watcher.create(ctx.key("b"), WatchOptions::new()).await;
    assert_eq!(created(&auto), 0, "server-chosen ids still start at 0");
    let chosen = watcher
        .create(ctx.key("c"), WatchOptions::new().with_watch_id(1))
        .await;
    assert_eq!(created(&chosen), 1);
    let auto = watcher.create(ctx.key("d"), WatchOptions::new()).await;
    assert_eq!(
        created(&auto),
        2,
        "the server skips an id the client has taken"
    );

    let a = ctx.put("a", "v").await;
    let c = ctx.put("c", "v").await;
    let reply = watcher.next().await;
    assert_events_reply(&reply, 5);
    assert_eq!(
        ctx.summary(reply.events()),
        [(EventType::Put, "a".to_owned(), a)]
    );
    let reply = watcher.next().await;
    assert_events_reply(&reply, 1);
    assert_eq!(
        ctx.summary(reply.events()),
        [(EventType::Put, "c".to_owned(), c)]
    );
}

pub(super) async fn duplicate_id_is_refused(ctx: Ctx) {
    let mut watcher = ctx.watch("a", WatchOptions::new().with_watch_id(7)).await;
    let before = ctx.revision().await;
    let duplicate = watcher
        .create(ctx.key("b"), WatchOptions::new().with_watch_id(7))
        .await;
    assert_refused(&duplicate, DUPLICATE_ID);
    assert_eq!(header(duplicate.header()).revision(), before);

    assert_eq!(
        created(&watcher.create(ctx.key("b"), WatchOptions::new()).await),
        0
    );
    assert_eq!(
        created(&watcher.create(ctx.key("b"), WatchOptions::new()).await),
        1
    );
    let duplicate = watcher
        .create(ctx.key("c"), WatchOptions::new().with_watch_id(1))
        .await;
    assert_refused(&duplicate, DUPLICATE_ID);

    let a = ctx.put("a", "v").await;
    let reply = watcher.next().await;
    assert_events_reply(&reply, 7);
    assert_eq!(
        ctx.summary(reply.events()),
        [(EventType::Put, "a".to_owned(), a)],
        "the watch that owns the id carries on"
    );
    ctx.put("c", "v").await;
    let b = ctx.put("b", "v").await;
    let mut replies = [watcher.next().await, watcher.next().await];
    // Watches on the same key are notified in no particular order.
    replies.sort_by_key(WatchResponse::watch_id);
    for (id, reply) in replies.iter().enumerate() {
        assert_events_reply(reply, id as i64);
        assert_eq!(
            ctx.summary(reply.events()),
            [(EventType::Put, "b".to_owned(), b)],
            "the refused watch on c delivers nothing"
        );
    }
}

pub(super) async fn empty_range_is_refused(ctx: Ctx) {
    let mut watcher = ctx.watch("a", WatchOptions::new()).await;
    for end in ["m", "a"] {
        let reply = watcher
            .create(ctx.key("m"), WatchOptions::new().with_range(ctx.key(end)))
            .await;
        assert_refused(&reply, EMPTY_RANGE);
    }
    ctx.put("m", "v").await;
    let a = ctx.put("a", "v").await;
    let reply = watcher.next().await;
    assert_events_reply(&reply, 0);
    assert_eq!(
        ctx.summary(reply.events()),
        [(EventType::Put, "a".to_owned(), a)],
        "a refused create leaves the stream working"
    );
}

/// A refused create: created and canceled at once, with watch_id -1 and a reason (§1.3).
#[track_caller]
fn assert_refused(reply: &WatchResponse, reason: &str) {
    assert!(
        reply.created() && reply.canceled() && reply.events().is_empty(),
        "expected a created+canceled reply, got {reply:?}"
    );
    assert_eq!(reply.watch_id(), NO_WATCH, "{reply:?}");
    assert_eq!(reply.cancel_reason(), reason, "{reply:?}");
    assert_eq!(reply.compact_revision(), 0, "{reply:?}");
}
