//! Put and DeleteRange: revisions, versions, prev_kv, leases, ignore_value/ignore_lease.

use super::*;

pub(super) async fn put_adds_one_revision_each_time(ctx: Kv) {
    let before = ctx.revision().await;
    assert_eq!(ctx.put("k", "same").await, before + 1);
    assert_eq!(
        ctx.put("k", "same").await,
        before + 2,
        "an unchanged value still adds a revision"
    );
    assert_eq!(ctx.put("k", "other").await, before + 3);
    let kv = ctx.kv("k").await;
    assert_eq!(kv.create_revision(), before + 1);
    assert_eq!(kv.mod_revision(), before + 3);
    assert_eq!(kv.version(), 3);
    assert_eq!(kv.lease(), 0);
    assert_eq!(ctx.revision().await, before + 3, "reads add no revision");
}

pub(super) async fn put_prev_kv(ctx: Kv) {
    let mut client = ctx.client();
    let with_prev = || Some(PutOptions::new().with_prev_key());
    let created = client
        .put(ctx.key("k"), "v1", with_prev())
        .await
        .expect("put");
    assert!(
        created.prev_key().is_none(),
        "a new key has no previous pair"
    );
    let rev1 = header(created.header()).revision();
    let updated = client
        .put(ctx.key("k"), "v2", with_prev())
        .await
        .expect("put");
    let prev = updated.prev_key().expect("the previous pair");
    assert_eq!(prev.value(), b"v1");
    assert_eq!(
        (prev.version(), prev.mod_revision(), prev.create_revision()),
        (1, rev1, rev1)
    );
    let plain = client.put(ctx.key("k"), "v3", None).await.expect("put");
    assert!(plain.prev_key().is_none(), "prev_kv only when asked");
}

pub(super) async fn put_with_lease(ctx: Kv) {
    let lease = ctx.lease().await;
    let mut client = ctx.client();
    client
        .put(ctx.key("k"), "v", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put with lease");
    assert_eq!(ctx.kv("k").await.lease(), lease);
    client.lease_revoke(lease).await.expect("revoke");
    assert!(
        ctx.get("k", None).await.kvs().is_empty(),
        "revoking the lease deletes its keys"
    );
}

pub(super) async fn put_with_unknown_lease_writes_nothing(ctx: Kv) {
    let before = ctx.revision().await;
    let unknown = UNKNOWN_LEASE;
    let reply = ctx
        .client()
        .put(
            ctx.key("k"),
            "v",
            Some(PutOptions::new().with_lease(unknown)),
        )
        .await;
    assert_grpc_error(reply, Code::NotFound, LEASE_NOT_FOUND);
    assert!(ctx.get("k", None).await.kvs().is_empty());
    assert_eq!(
        ctx.revision().await,
        before,
        "a refused put adds no revision"
    );
}

pub(super) async fn put_ignore_value(ctx: Kv) {
    let mut client = ctx.client();
    let lease = ctx.lease().await;
    ctx.put("k", "kept").await;
    let reply = client
        .put(
            ctx.key("k"),
            "",
            Some(PutOptions::new().with_ignore_value().with_lease(lease)),
        )
        .await
        .expect("put ignoring the value");
    let kv = ctx.kv("k").await;
    assert_eq!(kv.value(), b"kept");
    assert_eq!(kv.version(), 2);
    assert_eq!(kv.lease(), lease, "the rest of the put still applies");
    assert_eq!(kv.mod_revision(), header(reply.header()).revision());

    let given = client
        .put(
            ctx.key("k"),
            "x",
            Some(PutOptions::new().with_ignore_value()),
        )
        .await;
    assert_grpc_error(given, Code::InvalidArgument, VALUE_PROVIDED);
    let missing = client
        .put(
            ctx.key("missing"),
            "",
            Some(PutOptions::new().with_ignore_value()),
        )
        .await;
    assert_grpc_error(missing, Code::InvalidArgument, KEY_NOT_FOUND);
}

pub(super) async fn put_ignore_lease(ctx: Kv) {
    let mut client = ctx.client();
    let lease = ctx.lease().await;
    client
        .put(
            ctx.key("k"),
            "v1",
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .expect("put");
    client
        .put(
            ctx.key("k"),
            "v2",
            Some(PutOptions::new().with_ignore_lease()),
        )
        .await
        .expect("put ignoring the lease");
    let kv = ctx.kv("k").await;
    assert_eq!(
        (kv.value(), kv.lease()),
        (&b"v2"[..], lease),
        "the lease is kept"
    );

    let given = client
        .put(
            ctx.key("k"),
            "v3",
            Some(PutOptions::new().with_ignore_lease().with_lease(lease)),
        )
        .await;
    assert_grpc_error(given, Code::InvalidArgument, LEASE_PROVIDED);
    let missing = client
        .put(
            ctx.key("missing"),
            "v",
            Some(PutOptions::new().with_ignore_lease()),
        )
        .await;
    assert_grpc_error(missing, Code::InvalidArgument, KEY_NOT_FOUND);

    client.put(ctx.key("k"), "v4", None).await.expect("put");
    assert_eq!(
        ctx.kv("k").await.lease(),
        0,
        "a plain put detaches the lease"
    );
}

pub(super) async fn put_moves_key_between_leases(ctx: Kv) {
    let (first, second) = (ctx.lease().await, ctx.lease().await);
    let mut client = ctx.client();
    for lease in [first, second] {
        client
            .put(ctx.key("k"), "v", Some(PutOptions::new().with_lease(lease)))
            .await
            .expect("put");
    }
    assert_eq!(ctx.kv("k").await.lease(), second);
    client.lease_revoke(first).await.expect("revoke");
    assert_eq!(
        ctx.kv("k").await.lease(),
        second,
        "revoking the old lease leaves the key"
    );
}

pub(super) async fn delete_counts_and_adds_one_revision(ctx: Kv) {
    for name in ["a", "b", "c"] {
        ctx.put(name, "v").await;
    }
    ctx.put("other", "v").await;
    let before = ctx.revision().await;
    let reply = ctx
        .client()
        .delete(
            ctx.key("a"),
            Some(DeleteOptions::new().with_range(ctx.key("d"))),
        )
        .await
        .expect("delete");
    assert_eq!(reply.deleted(), 3);
    assert!(reply.prev_kvs().is_empty(), "prev_kv only when asked");
    assert_eq!(
        header(reply.header()).revision(),
        before + 1,
        "one revision for all keys"
    );
    assert_eq!(
        ctx.names(ctx.get_prefix(GetOptions::new()).await.kvs()),
        ["other"]
    );
}

pub(super) async fn delete_prev_kv(ctx: Kv) {
    ctx.put("a", "1").await;
    ctx.put("b", "2").await;
    let reply = ctx
        .client()
        .delete(
            ctx.prefix.clone(),
            Some(DeleteOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .expect("delete");
    assert_eq!(reply.deleted(), 2);
    assert_eq!(ctx.names(reply.prev_kvs()), ["a", "b"]);
    assert_eq!(values(reply.prev_kvs()), ["1", "2"]);
}

pub(super) async fn delete_of_nothing_adds_no_revision(ctx: Kv) {
    let before = ctx.revision().await;
    let reply = ctx
        .client()
        .delete(
            ctx.prefix.clone(),
            Some(DeleteOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .expect("delete");
    assert_eq!(reply.deleted(), 0);
    assert!(reply.prev_kvs().is_empty());
    assert_eq!(header(reply.header()).revision(), before);
    assert_eq!(ctx.revision().await, before);
}

pub(super) async fn delete_then_put_starts_a_new_life(ctx: Kv) {
    ctx.put("k", "1").await;
    ctx.put("k", "2").await;
    ctx.client()
        .delete(ctx.key("k"), None)
        .await
        .expect("delete");
    let reborn = ctx.put("k", "3").await;
    let kv = ctx.kv("k").await;
    assert_eq!(kv.version(), 1);
    assert_eq!(kv.create_revision(), reborn);
    assert_eq!(kv.mod_revision(), reborn);
}
