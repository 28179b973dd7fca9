//! Compaction, response headers, and oversized requests.

use super::*;

pub(super) async fn compact_makes_older_revisions_unreadable(ctx: Kv) {
    let first = ctx.put("k", "v1").await;
    let second = ctx.put("k", "v2").await;
    ctx.put("gone", "x").await;
    ctx.client()
        .delete(ctx.key("gone"), None)
        .await
        .expect("delete");
    let third = ctx.put("k", "v3").await;
    let reply = ctx.client().compact(second, None).await.expect("compact");
    assert_eq!(header(reply.header()).revision(), third);

    let before = ctx
        .client()
        .get(ctx.key("k"), Some(GetOptions::new().with_revision(first)))
        .await;
    assert_grpc_error(before, Code::OutOfRange, COMPACTED);
    let at = ctx
        .get("k", Some(GetOptions::new().with_revision(second)))
        .await;
    assert_eq!(
        values(at.kvs()),
        ["v2"],
        "reading exactly at the compacted revision works"
    );
    let latest = ctx.get_prefix(GetOptions::new()).await;
    assert_eq!(ctx.names(latest.kvs()), ["k"]);
    assert_eq!(
        latest.kvs()[0].version(),
        3,
        "compaction keeps the key's history counters"
    );
    let txn = Txn::new().and_then(vec![TxnOp::get(
        ctx.key("k"),
        Some(GetOptions::new().with_revision(first)),
    )]);
    assert_grpc_error(ctx.client().txn(txn).await, Code::OutOfRange, COMPACTED);
}

pub(super) async fn compact_at_or_below_compacted_revision_fails(ctx: Kv) {
    ctx.put("k", "v1").await;
    let compacted = ctx.put("k", "v2").await;
    ctx.client()
        .compact(compacted, None)
        .await
        .expect("compact");
    for revision in [compacted, compacted - 1] {
        assert_grpc_error(
            ctx.client().compact(revision, None).await,
            Code::OutOfRange,
            COMPACTED,
        );
    }
}

pub(super) async fn compact_future_revision_fails(ctx: Kv) {
    let current = ctx.revision().await;
    assert_grpc_error(
        ctx.client().compact(current + 1, None).await,
        Code::OutOfRange,
        FUTURE_REV,
    );
    assert_grpc_error(
        ctx.client().compact(current + 100, None).await,
        Code::OutOfRange,
        FUTURE_REV,
    );
}

pub(super) async fn compact_physical(ctx: Kv) {
    let first = ctx.put("k", "v1").await;
    let second = ctx.put("k", "v2").await;
    let reply = ctx
        .client()
        .compact(second, Some(CompactionOptions::new().with_physical()))
        .await
        .expect("physical compact");
    assert!(header(reply.header()).revision() >= second);
    let old = ctx
        .client()
        .get(ctx.key("k"), Some(GetOptions::new().with_revision(first)))
        .await;
    assert_grpc_error(old, Code::OutOfRange, COMPACTED);
    assert_eq!(ctx.kv("k").await.value(), b"v2");
}

pub(super) async fn response_headers_identify_cluster_and_member(ctx: Kv) {
    let mut client = ctx.client();
    let put = client.put(ctx.key("k"), "v", None).await.expect("put");
    let get = client.get(ctx.key("k"), None).await.expect("get");
    let delete = client.delete(ctx.key("k"), None).await.expect("delete");
    let txn = client.txn(Txn::new()).await.expect("txn");
    let current = header(delete.header()).revision();
    let compact = client.compact(current, None).await.expect("compact");
    let status = client.status().await.expect("status");
    let headers = [
        ("put", put.header()),
        ("get", get.header()),
        ("delete", delete.header()),
        ("txn", txn.header()),
        ("compact", compact.header()),
        ("status", status.header()),
    ];
    let cluster_id = header(put.header()).cluster_id();
    assert_ne!(cluster_id, 0, "cluster_id is set");
    for (rpc, h) in headers {
        let h = header(h);
        assert_eq!(h.cluster_id(), cluster_id, "{rpc}: one cluster id");
        assert_eq!(
            h.member_id(),
            ctx.member_id,
            "{rpc}: the member that answered"
        );
        assert!(h.raft_term() > 0, "{rpc}: raft_term is set");
        assert!(h.revision() > 0, "{rpc}: revision is set");
    }
}

/// etcd refuses requests over --max-request-bytes (1.5 MiB): a 2 MiB value is past even gRPC's
/// receive limit (1.5 MiB + 512 KiB), a 1.8 MiB one is refused by etcd itself (§4, §5).
pub(super) async fn oversized_request_is_refused(ctx: Kv) {
    let mut client = ctx.client();
    let two_mib = vec![b'x'; 2 * 1024 * 1024];
    let refused = client
        .put(ctx.key("huge"), two_mib, None)
        .await
        .expect_err("a 2 MiB put");
    assert_eq!(
        grpc_code(&refused),
        Some(Code::ResourceExhausted),
        "{refused}"
    );
    assert!(
        grpc_message(&refused).contains("larger than max"),
        "unexpected message: {}",
        grpc_message(&refused)
    );

    let over_limit = vec![b'x'; 1_800_000];
    let refused = client.put(ctx.key("big"), over_limit, None).await;
    assert_grpc_error(
        refused,
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );

    let under_limit = vec![b'x'; 1024 * 1024];
    client
        .put(ctx.key("fits"), under_limit, None)
        .await
        .expect("a 1 MiB put fits");
    assert!(ctx.get("huge", None).await.kvs().is_empty());
    assert!(ctx.get("big", None).await.kvs().is_empty());
    assert_eq!(ctx.kv("fits").await.value().len(), 1024 * 1024);
}
