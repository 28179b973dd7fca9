//! Range: key forms, limits, revisions, sorting, filters (etcd-api.md §1.1, §1.2).

use super::*;

pub(super) async fn range_single_key(ctx: Kv) {
    ctx.put("a", "1").await;
    ctx.put("ab", "2").await;
    let reply = ctx.get("a", None).await;
    assert_eq!(ctx.names(reply.kvs()), ["a"]);
    assert_eq!(values(reply.kvs()), ["1"]);
    assert_eq!((reply.count(), reply.more()), (1, false));
    let missing = ctx.get("zz", None).await;
    assert!(missing.kvs().is_empty());
    assert_eq!(missing.count(), 0);
}

pub(super) async fn range_with_range_end(ctx: Kv) {
    for name in ["a", "b", "c", "d"] {
        ctx.put(name, name).await;
    }
    let reply = ctx
        .get("b", Some(GetOptions::new().with_range(ctx.key("d"))))
        .await;
    assert_eq!(ctx.names(reply.kvs()), ["b", "c"], "range_end is exclusive");
    assert_eq!(reply.count(), 2);
}

pub(super) async fn range_prefix(ctx: Kv) {
    for name in ["x/1", "x/2", "xy", "y"] {
        ctx.put(name, "v").await;
    }
    let slash = ctx.get("x/", Some(GetOptions::new().with_prefix())).await;
    assert_eq!(ctx.names(slash.kvs()), ["x/1", "x/2"]);
    let bare = ctx.get("x", Some(GetOptions::new().with_prefix())).await;
    assert_eq!(ctx.names(bare.kvs()), ["x/1", "x/2", "xy"]);
    assert_eq!(bare.count(), 3);
}

pub(super) async fn range_from_key(ctx: Kv) {
    for name in ["a", "b", "c"] {
        ctx.put(name, "v").await;
    }
    let from = ctx.key("b");
    let reply = ctx.get("b", Some(GetOptions::new().with_from_key())).await;
    let keys = raw_keys(reply.kvs());
    assert_eq!(
        &keys[..2],
        [ctx.key("b").into_bytes(), ctx.key("c").into_bytes()]
    );
    assert!(
        keys.iter().all(|key| key.as_slice() >= from.as_bytes()),
        "every key is >= the start key"
    );
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "keys ascend");
    assert_eq!(reply.count(), keys.len() as i64);
}

pub(super) async fn range_all_keys(ctx: Kv) {
    ctx.put("a", "v").await;
    let reply = ctx
        .client()
        .get("\0", Some(GetOptions::new().with_all_keys()))
        .await
        .expect("get all");
    let keys = raw_keys(reply.kvs());
    assert!(keys.contains(&ctx.key("a").into_bytes()));
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "keys ascend");
    assert_eq!(reply.count(), keys.len() as i64);
    assert!(!reply.more());
}

pub(super) async fn range_limit_sets_more_but_not_count(ctx: Kv) {
    for name in ["a", "b", "c", "d", "e"] {
        ctx.put(name, "v").await;
    }
    let two = ctx.get_prefix(GetOptions::new().with_limit(2)).await;
    assert_eq!(ctx.names(two.kvs()), ["a", "b"]);
    assert_eq!((two.more(), two.count()), (true, 5));
    let exact = ctx.get_prefix(GetOptions::new().with_limit(5)).await;
    assert_eq!(
        (exact.kvs().len(), exact.more(), exact.count()),
        (5, false, 5)
    );
    let wide = ctx.get_prefix(GetOptions::new().with_limit(50)).await;
    assert_eq!((wide.kvs().len(), wide.more(), wide.count()), (5, false, 5));
}

pub(super) async fn range_past_revision(ctx: Kv) {
    let first = ctx.put("k", "v1").await;
    ctx.put("k", "v2").await;
    ctx.put("later", "x").await;
    let deleted = ctx
        .client()
        .delete(ctx.key("k"), None)
        .await
        .expect("delete");
    let current = header(deleted.header()).revision();

    let old = ctx
        .get("k", Some(GetOptions::new().with_revision(first)))
        .await;
    assert_eq!(values(old.kvs()), ["v1"], "the value as of that revision");
    assert_eq!(old.kvs()[0].mod_revision(), first);
    assert_eq!(
        header(old.header()).revision(),
        current,
        "the header carries the current revision"
    );

    let whole = ctx
        .get_prefix(GetOptions::new().with_revision(first + 1))
        .await;
    assert_eq!(
        ctx.names(whole.kvs()),
        ["k"],
        "a key created later is absent"
    );
    assert_eq!(values(whole.kvs()), ["v2"]);
    assert!(ctx.get("k", None).await.kvs().is_empty(), "deleted now");
}

pub(super) async fn range_future_revision_fails(ctx: Kv) {
    let current = ctx.revision().await;
    for revision in [current + 1, current + 1000] {
        let reply = ctx
            .client()
            .get(
                ctx.key("k"),
                Some(GetOptions::new().with_revision(revision)),
            )
            .await;
        assert_grpc_error(reply, Code::OutOfRange, FUTURE_REV);
    }
    let at_current = ctx
        .get("k", Some(GetOptions::new().with_revision(current)))
        .await;
    assert_eq!(header(at_current.header()).revision(), current);
}

/// Writes a, b, c so that every sort target orders them differently (see each assertion).
pub(super) async fn sortable_keys(ctx: &Kv) {
    for (name, value) in [
        ("a", "m"),
        ("b", "z"),
        ("c", "x"),
        ("c", "y"),
        ("c", "a"),
        ("a", "m"),
    ] {
        ctx.put(name, value).await;
    }
}

pub(super) async fn sorted(ctx: &Kv, target: SortTarget, order: SortOrder) -> Vec<String> {
    let reply = ctx
        .get_prefix(GetOptions::new().with_sort(target, order))
        .await;
    ctx.names(reply.kvs())
}

pub(super) async fn range_sort_orders_and_targets(ctx: Kv) {
    sortable_keys(&ctx).await;
    use SortOrder::{Ascend, Descend};
    let cases = [
        (SortTarget::Key, Ascend, ["a", "b", "c"]),
        (SortTarget::Key, Descend, ["c", "b", "a"]),
        (SortTarget::Version, Ascend, ["b", "a", "c"]),
        (SortTarget::Version, Descend, ["c", "a", "b"]),
        (SortTarget::Create, Ascend, ["a", "b", "c"]),
        (SortTarget::Create, Descend, ["c", "b", "a"]),
        (SortTarget::Mod, Ascend, ["b", "c", "a"]),
        (SortTarget::Mod, Descend, ["a", "c", "b"]),
        (SortTarget::Value, Ascend, ["c", "a", "b"]),
        (SortTarget::Value, Descend, ["b", "a", "c"]),
    ];
    for (target, order, expected) in cases {
        assert_eq!(
            sorted(&ctx, target, order).await,
            expected,
            "sorted by {target:?} {order:?}"
        );
    }
}

pub(super) async fn range_sort_none_with_non_key_target_ascends(ctx: Kv) {
    sortable_keys(&ctx).await;
    let cases = [
        (SortTarget::Version, ["b", "a", "c"]),
        (SortTarget::Create, ["a", "b", "c"]),
        (SortTarget::Mod, ["b", "c", "a"]),
        (SortTarget::Value, ["c", "a", "b"]),
    ];
    for (target, expected) in cases {
        assert_eq!(
            sorted(&ctx, target, SortOrder::None).await,
            expected,
            "order NONE, target {target:?}"
        );
    }
}

/// Lock and election recipes depend on this (§0 #7).
pub(super) async fn range_limit_applies_after_sort_and_filters(ctx: Kv) {
    sortable_keys(&ctx).await;
    let newest = ctx
        .get_prefix(
            GetOptions::new()
                .with_sort(SortTarget::Create, SortOrder::Descend)
                .with_limit(1),
        )
        .await;
    assert_eq!(ctx.names(newest.kvs()), ["c"]);
    assert_eq!((newest.more(), newest.count()), (true, 3));

    let by_value = ctx
        .get_prefix(
            GetOptions::new()
                .with_sort(SortTarget::Value, SortOrder::Ascend)
                .with_limit(2),
        )
        .await;
    assert_eq!(ctx.names(by_value.kvs()), ["c", "a"]);

    let b_created = ctx.kv("b").await.create_revision();
    let before_c = ctx
        .get_prefix(
            GetOptions::new()
                .with_sort(SortTarget::Create, SortOrder::Descend)
                .with_max_create_revision(b_created)
                .with_limit(1),
        )
        .await;
    assert_eq!(
        ctx.names(before_c.kvs()),
        ["b"],
        "the newest key created at or before b"
    );
    assert_eq!(
        (before_c.more(), before_c.count()),
        (true, 3),
        "count ignores filters"
    );

    let only_c = ctx
        .get_prefix(
            GetOptions::new()
                .with_min_create_revision(b_created + 1)
                .with_limit(1),
        )
        .await;
    assert_eq!(ctx.names(only_c.kvs()), ["c"]);
    assert_eq!(
        (only_c.more(), only_c.count()),
        (false, 3),
        "more is about what the filter kept, count about the whole range"
    );
}

pub(super) async fn range_serializable(ctx: Kv) {
    let written = ctx.put("k", "v").await;
    let what = "a serializable read to see the write";
    let reply = wait_until(what, ELECTION_TIMEOUT, || {
        let ctx = ctx.clone();
        async move {
            let reply = ctx
                .get("k", Some(GetOptions::new().with_serializable()))
                .await;
            anyhow::ensure!(!reply.kvs().is_empty(), "not visible yet");
            Ok(reply)
        }
    })
    .await
    .expect("the member applies the write");
    assert_eq!(values(reply.kvs()), ["v"]);
    assert!(header(reply.header()).revision() >= written);
}

pub(super) async fn range_keys_only(ctx: Kv) {
    let written = ctx.put("a", "value-a").await;
    ctx.put("b", "value-b").await;
    let reply = ctx.get_prefix(GetOptions::new().with_keys_only()).await;
    assert_eq!(ctx.names(reply.kvs()), ["a", "b"]);
    assert!(
        reply.kvs().iter().all(|kv| kv.value().is_empty()),
        "values are left out"
    );
    let a = &reply.kvs()[0];
    assert_eq!(
        (a.create_revision(), a.mod_revision(), a.version()),
        (written, written, 1)
    );
    assert_eq!(reply.count(), 2);
}

pub(super) async fn range_count_only(ctx: Kv) {
    for name in ["a", "b", "c"] {
        ctx.put(name, "v").await;
    }
    let reply = ctx.get_prefix(GetOptions::new().with_count_only()).await;
    assert!(reply.kvs().is_empty(), "no pairs, only the count");
    assert_eq!(reply.count(), 3);
    let limited = ctx
        .get_prefix(GetOptions::new().with_count_only().with_limit(1))
        .await;
    assert_eq!(limited.count(), 3, "limit does not change count");
}

pub(super) async fn range_revision_filters(ctx: Kv) {
    let a_created = ctx.put("a", "1").await;
    let b_created = ctx.put("b", "1").await;
    let c_created = ctx.put("c", "1").await;
    let a_modified = ctx.put("a", "2").await;
    let cases = [
        (
            "min_mod",
            GetOptions::new().with_min_mod_revision(c_created),
            vec!["a", "c"],
        ),
        (
            "max_mod",
            GetOptions::new().with_max_mod_revision(b_created),
            vec!["b"],
        ),
        (
            "min_create",
            GetOptions::new().with_min_create_revision(b_created),
            vec!["b", "c"],
        ),
        (
            "max_create",
            GetOptions::new().with_max_create_revision(a_created),
            vec!["a"],
        ),
        (
            "min_create+max_mod",
            GetOptions::new()
                .with_min_create_revision(b_created)
                .with_max_mod_revision(a_modified - 1),
            vec!["b", "c"],
        ),
    ];
    for (label, options, expected) in cases {
        let reply = ctx.get_prefix(options).await;
        assert_eq!(ctx.names(reply.kvs()), expected, "{label}");
        assert_eq!(reply.count(), 3, "{label}: count ignores filters");
    }
}

pub(super) async fn range_empty_key_is_rejected(ctx: Kv) {
    let mut client = ctx.client();
    assert_grpc_error(
        client.get("", None).await,
        Code::InvalidArgument,
        KEY_NOT_PROVIDED,
    );
    assert_grpc_error(
        client.put("", "v", None).await,
        Code::InvalidArgument,
        KEY_NOT_PROVIDED,
    );
    assert_grpc_error(
        client.delete("", None).await,
        Code::InvalidArgument,
        KEY_NOT_PROVIDED,
    );
}
