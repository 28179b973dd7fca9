//! Volume: many events, a consumer that does not read, and responses too large to send whole.

use super::*;

/// More revisions than one catch-up batch holds (etcd's `watchBatchMaxRevs` is 1000).
const MANY: usize = 2000;
const MAX_REVISIONS_PER_BATCH: usize = 1000;
const SLOW_EVENTS: usize = 3000;
const SLOW_VALUE_BYTES: usize = 1024;

pub(super) async fn many_events_arrive_in_order(ctx: Ctx) {
    let names: Vec<String> = (0..MANY).map(|i| format!("m/{i:04}")).collect();
    let first = ctx.revision().await + 1;
    let last = first + MANY as i64 - 1;
    let mut live = ctx.watch("m/", WatchOptions::new().with_prefix()).await;
    let reader = tokio::spawn(async move { live.responses_through(last).await });
    let written = ctx.put_concurrently(&names, b"v").await;
    let expected = in_revision_order(written);
    assert_eq!(expected.last().map(|event| event.2), Some(last));
    let replies = reader.await.expect("the live reader");
    assert_complete(&ctx, "live", &replies, &expected);

    let options = WatchOptions::new().with_prefix().with_start_revision(first);
    let mut history = ctx.watch("m/", options).await;
    let replies = history.responses_through(last).await;
    assert_complete(&ctx, "history", &replies, &expected);
    for reply in &replies {
        assert!(
            reply.events().len() <= MAX_REVISIONS_PER_BATCH,
            "a catch-up response holds at most {MAX_REVISIONS_PER_BATCH} revisions, got {}",
            reply.events().len()
        );
    }
}

/// The watch stream is not read while thousands of events pile up (the server must hold them
/// or catch up from the store later); then every one arrives, in order, once.
pub(super) async fn slow_consumer_gets_every_event(ctx: Ctx) {
    let names: Vec<String> = (0..SLOW_EVENTS).map(|i| format!("s/{i:04}")).collect();
    let value = vec![b'x'; SLOW_VALUE_BYTES];
    let own = ctx.own_connection().await;
    let mut watcher = Watcher::open(&own, ctx.key("s/"), WatchOptions::new().with_prefix()).await;
    watcher.id = created(&watcher.next().await);
    let written = ctx.put_concurrently(&names, &value).await;
    let expected = in_revision_order(written);
    let last = expected.last().expect("writes").2;
    let replies = watcher.responses_through(last).await;
    assert_complete(&ctx, "slow", &replies, &expected);
    for reply in &replies {
        assert!(reply
            .events()
            .iter()
            .all(|event| event_kv(event).value() == value));
    }
}

/// One txn of 5 × 280 KiB watched with prev_kv makes a ~2.8 MiB response: over etcd's limit of
/// max-request-bytes + 512 KiB (2 MiB by default), so with fragment=true it comes in pieces,
/// each closed once adding an event would reach the limit; every piece but the last has
/// fragment=true (§1.3). Without fragment=true it comes whole.
pub(super) async fn large_revision_is_fragmented_on_request(ctx: Ctx) {
    const VALUES: usize = 5;
    const VALUE_BYTES: usize = 280 * 1024;
    let names: Vec<String> = (0..VALUES).map(|i| format!("big/{i}")).collect();
    for name in &names {
        ctx.client()
            .put(ctx.key(name), vec![b'a'; VALUE_BYTES], None)
            .await
            .expect("put");
    }
    let ops = names
        .iter()
        .map(|name| ctx.put_op(name, vec![b'b'; VALUE_BYTES]))
        .collect();
    let revision = ctx.txn(ops).await;
    let options = WatchOptions::new()
        .with_prefix()
        .with_prev_key()
        .with_start_revision(revision);

    let mut whole = ctx.watch("big/", options.clone()).await;
    let reply = whole.next().await;
    assert_events_reply(&reply, whole.id);
    assert!(!fragment_flag(&reply));
    assert_eq!(
        reply.events().len(),
        VALUES,
        "unfragmented, the revision comes whole"
    );

    let mut pieces = ctx.watch("big/", options.with_fragment()).await;
    let mut replies = Vec::new();
    while replies
        .iter()
        .map(|r: &WatchResponse| r.events().len())
        .sum::<usize>()
        < VALUES
    {
        let reply = pieces.next().await;
        assert_events_reply(&reply, pieces.id);
        assert_eq!(header(reply.header()).revision(), revision);
        replies.push(reply);
    }
    let shape: Vec<(usize, bool)> = replies
        .iter()
        .map(|reply| (reply.events().len(), fragment_flag(reply)))
        .collect();
    assert_eq!(
        shape,
        [(3, true), (2, false)],
        "(events, fragment) of each piece"
    );
    let events: Vec<&Event> = replies.iter().flat_map(|reply| reply.events()).collect();
    for (event, name) in events.iter().zip(&names) {
        let kv = event_kv(event);
        assert_eq!(ctx.name(kv.key()), *name);
        assert_eq!(kv.mod_revision(), revision);
        assert!(kv.value().len() == VALUE_BYTES && kv.value()[0] == b'b');
        let prev = event.prev_kv().expect("prev_kv");
        assert!(prev.value().len() == VALUE_BYTES && prev.value()[0] == b'a');
    }
}

/// The PUT events the writes should produce, by revision.
fn in_revision_order(written: Vec<(String, i64)>) -> Vec<(EventType, String, i64)> {
    let mut events: Vec<_> = written
        .into_iter()
        .map(|(name, revision)| (EventType::Put, name, revision))
        .collect();
    events.sort_by_key(|event| event.2);
    let first = events.first().map_or(0, |event| event.2);
    for (offset, event) in events.iter().enumerate() {
        assert_eq!(
            event.2,
            first + offset as i64,
            "each put made its own revision, and nothing else wrote meanwhile"
        );
    }
    events
}

/// Every expected event once, in order.
#[track_caller]
fn assert_complete(
    ctx: &Ctx,
    what: &str,
    replies: &[WatchResponse],
    expected: &[(EventType, String, i64)],
) {
    let got: Vec<_> = replies
        .iter()
        .flat_map(|reply| ctx.summary(reply.events()))
        .collect();
    assert_eq!(got.len(), expected.len(), "{what}: number of events");
    if let Some(index) = (0..got.len()).find(|&i| got[i] != expected[i]) {
        panic!(
            "{what}: event {index} is {:?}, expected {:?}",
            got[index], expected[index]
        );
    }
}
