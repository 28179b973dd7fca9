//! Txn: compares, branches, nesting, sub-responses and etcd's limits.

use super::*;

pub(super) async fn succeeds(ctx: &Kv, compares: Vec<Compare>) -> bool {
    let before = ctx.revision().await;
    let reply = ctx.txn(Txn::new().when(compares)).await;
    assert_eq!(
        header(reply.header()).revision(),
        before,
        "a txn without writes adds no revision"
    );
    reply.succeeded()
}

pub(super) async fn txn_compare_targets_and_results(ctx: Kv) {
    let lease = ctx.lease().await;
    let k = ctx.key("k");
    let created = ctx.put("k", "v").await;
    let reply = ctx
        .client()
        .put(k.clone(), "v", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put");
    let modified = header(reply.header()).revision();
    use CompareOp::{Equal, Greater, Less, NotEqual};
    let cases = [
        (Compare::version(k.clone(), Equal, 2), true),
        (Compare::version(k.clone(), Greater, 1), true),
        (Compare::version(k.clone(), Greater, 2), false),
        (Compare::version(k.clone(), Less, 3), true),
        (Compare::version(k.clone(), Less, 2), false),
        (Compare::version(k.clone(), NotEqual, 2), false),
        (Compare::version(k.clone(), NotEqual, 1), true),
        (Compare::create_revision(k.clone(), Equal, created), true),
        (
            Compare::create_revision(k.clone(), Greater, created - 1),
            true,
        ),
        (Compare::create_revision(k.clone(), Less, created), false),
        (
            Compare::create_revision(k.clone(), NotEqual, created),
            false,
        ),
        (Compare::mod_revision(k.clone(), Equal, modified), true),
        (Compare::mod_revision(k.clone(), Equal, created), false),
        (Compare::mod_revision(k.clone(), Greater, created), true),
        (Compare::mod_revision(k.clone(), Less, modified + 1), true),
        (Compare::mod_revision(k.clone(), NotEqual, created), true),
        (Compare::value(k.clone(), Equal, "v"), true),
        (Compare::value(k.clone(), Equal, "w"), false),
        (Compare::value(k.clone(), Greater, "u"), true),
        (Compare::value(k.clone(), Greater, "v"), false),
        (Compare::value(k.clone(), Less, "w"), true),
        (Compare::value(k.clone(), Less, "v0"), true),
        (Compare::value(k.clone(), NotEqual, "v"), false),
        (Compare::value(k.clone(), NotEqual, "x"), true),
        (Compare::lease(k.clone(), Equal, lease), true),
        (Compare::lease(k.clone(), Equal, 0), false),
        (Compare::lease(k.clone(), Greater, 0), true),
        (Compare::lease(k.clone(), Less, lease), false),
        (Compare::lease(k.clone(), NotEqual, 0), true),
    ];
    for (index, (compare, expected)) in cases.into_iter().enumerate() {
        let label = format!("case {index}: {compare:?}");
        assert_eq!(succeeds(&ctx, vec![compare]).await, expected, "{label}");
    }
    let all_true = vec![
        Compare::version(k.clone(), Equal, 2),
        Compare::value(k.clone(), Equal, "v"),
    ];
    assert!(succeeds(&ctx, all_true).await);
    let one_false = vec![
        Compare::version(k.clone(), Equal, 2),
        Compare::value(k, Equal, "nope"),
    ];
    assert!(!succeeds(&ctx, one_false).await, "compares are ANDed");
}

pub(super) async fn txn_compare_missing_key(ctx: Kv) {
    let k = ctx.key("missing");
    use CompareOp::{Equal, Greater, NotEqual};
    let cases = [
        (Compare::create_revision(k.clone(), Equal, 0), true),
        (Compare::version(k.clone(), Equal, 0), true),
        (Compare::mod_revision(k.clone(), Equal, 0), true),
        (Compare::lease(k.clone(), Equal, 0), true),
        (Compare::version(k.clone(), Greater, 0), false),
        (Compare::value(k.clone(), Equal, ""), false),
        (Compare::value(k.clone(), NotEqual, "x"), false),
        (Compare::value(k.clone(), Greater, ""), false),
    ];
    for (index, (compare, expected)) in cases.into_iter().enumerate() {
        let label = format!("case {index}: {compare:?}");
        assert_eq!(succeeds(&ctx, vec![compare]).await, expected, "{label}");
    }
}

pub(super) async fn txn_compare_with_range_end(ctx: Kv) {
    ctx.put("r/a", "1").await;
    ctx.put("r/b", "1").await;
    ctx.put("r/b", "2").await;
    let r = ctx.key("r/");
    use CompareOp::{Equal, Greater, Less};
    let cases = [
        (Compare::version(r.clone(), Greater, 0).with_prefix(), true),
        (Compare::version(r.clone(), Equal, 1).with_prefix(), false),
        (Compare::version(r.clone(), Less, 3).with_prefix(), true),
        (Compare::value(r.clone(), Equal, "1").with_prefix(), false),
        (
            Compare::version(ctx.key("r/a"), Equal, 1).with_range(ctx.key("r/b")),
            true,
        ),
    ];
    for (index, (compare, expected)) in cases.into_iter().enumerate() {
        let label = format!("case {index}: {compare:?}");
        assert_eq!(succeeds(&ctx, vec![compare]).await, expected, "{label}");
    }
}

pub(super) async fn txn_branches(ctx: Kv) {
    let k = ctx.key("k");
    let branches = |expected: &str| {
        Txn::new()
            .when(vec![Compare::value(k.clone(), CompareOp::Equal, expected)])
            .and_then(vec![TxnOp::put(ctx.key("then"), expected, None)])
            .or_else(vec![TxnOp::put(ctx.key("else"), expected, None)])
    };
    ctx.put("k", "yes").await;
    let taken = ctx.txn(branches("yes")).await;
    assert!(taken.succeeded());
    assert_eq!(taken.op_responses().len(), 1);
    assert!(matches!(taken.op_responses()[0], TxnOpResponse::Put(_)));
    let not_taken = ctx.txn(branches("no")).await;
    assert!(!not_taken.succeeded());
    let all = ctx.get_prefix(GetOptions::new()).await;
    assert_eq!(ctx.names(all.kvs()), ["else", "k", "then"]);
    assert_eq!(values(all.kvs()), ["no", "yes", "yes"]);
}

pub(super) async fn txn_range_sees_earlier_put(ctx: Kv) {
    let before = ctx.revision().await;
    let reply = ctx
        .txn(Txn::new().and_then(vec![
            TxnOp::put(ctx.key("a"), "1", None),
            TxnOp::put(ctx.key("b"), "2", None),
            TxnOp::get(ctx.prefix.clone(), Some(GetOptions::new().with_prefix())),
        ]))
        .await;
    assert!(reply.succeeded(), "no compares means success");
    assert_eq!(
        header(reply.header()).revision(),
        before + 1,
        "one revision per txn"
    );
    let TxnOpResponse::Get(range) = &reply.op_responses()[2] else {
        panic!("the third response answers the range");
    };
    assert_eq!(ctx.names(range.kvs()), ["a", "b"]);
    assert!(
        range.kvs().iter().all(|kv| kv.mod_revision() == before + 1),
        "keys changed in one txn share a mod_revision"
    );
}

pub(super) async fn txn_nested(ctx: Kv) {
    ctx.put("k", "v").await;
    let inner = |expected: &str| {
        Txn::new()
            .when(vec![Compare::value(
                ctx.key("k"),
                CompareOp::Equal,
                expected,
            )])
            .and_then(vec![TxnOp::put(ctx.key("inner"), "then", None)])
            .or_else(vec![TxnOp::put(ctx.key("inner"), "else", None)])
    };
    let reply = ctx
        .txn(Txn::new().and_then(vec![
            TxnOp::txn(inner("v")),
            TxnOp::get(ctx.key("inner"), None),
        ]))
        .await;
    let TxnOpResponse::Txn(nested) = &reply.op_responses()[0] else {
        panic!("the first response answers the nested txn");
    };
    assert!(nested.succeeded());
    let TxnOpResponse::Get(range) = &reply.op_responses()[1] else {
        panic!("the second response answers the range");
    };
    assert_eq!(values(range.kvs()), ["then"]);

    let reply = ctx
        .txn(Txn::new().and_then(vec![TxnOp::txn(inner("other"))]))
        .await;
    let TxnOpResponse::Txn(nested) = &reply.op_responses()[0] else {
        panic!("the response answers the nested txn");
    };
    assert!(!nested.succeeded());
    assert_eq!(ctx.kv("inner").await.value(), b"else");
}

pub(super) async fn txn_read_only_keeps_revision(ctx: Kv) {
    ctx.put("k", "v").await;
    let before = ctx.revision().await;
    let reply = ctx
        .txn(
            Txn::new()
                .when(vec![Compare::version(ctx.key("k"), CompareOp::Equal, 1)])
                .and_then(vec![
                    TxnOp::get(ctx.key("k"), None),
                    TxnOp::delete(ctx.key("missing"), None),
                ]),
        )
        .await;
    assert!(reply.succeeded());
    assert_eq!(header(reply.header()).revision(), before);
    assert_eq!(
        ctx.revision().await,
        before,
        "deleting nothing changes nothing"
    );
}

pub(super) async fn txn_sub_responses_carry_revision(ctx: Kv) {
    ctx.put("old", "v").await;
    let reply = ctx
        .txn(Txn::new().and_then(vec![
            TxnOp::put(ctx.key("k"), "v", None),
            TxnOp::get(ctx.key("k"), None),
            TxnOp::delete(ctx.key("old"), None),
        ]))
        .await;
    let revision = header(reply.header()).revision();
    for response in reply.op_responses() {
        let sub = match &response {
            TxnOpResponse::Put(put) => put.header(),
            TxnOpResponse::Get(get) => get.header(),
            TxnOpResponse::Delete(delete) => delete.header(),
            TxnOpResponse::Txn(txn) => txn.header(),
        };
        let sub = header(sub);
        assert_eq!(sub.revision(), revision, "{response:?}");
        assert_eq!(
            (sub.cluster_id(), sub.member_id(), sub.raft_term()),
            (0, 0, 0),
            "only revision is set"
        );
    }
}

pub(super) async fn txn_too_many_ops(ctx: Kv) {
    let puts = |count: usize| -> Vec<TxnOp> {
        (0..count)
            .map(|i| TxnOp::put(ctx.key(&format!("{i:03}")), "v", None))
            .collect()
    };
    let refused = ctx
        .client()
        .txn(Txn::new().and_then(puts(MAX_TXN_OPS + 1)))
        .await;
    assert_grpc_error(refused, Code::InvalidArgument, TOO_MANY_OPS);
    let compares: Vec<Compare> = (0..=MAX_TXN_OPS)
        .map(|i| Compare::version(ctx.key(&format!("{i:03}")), CompareOp::Equal, 0))
        .collect();
    let refused = ctx.client().txn(Txn::new().when(compares)).await;
    assert_grpc_error(refused, Code::InvalidArgument, TOO_MANY_OPS);
    assert_eq!(
        ctx.get_prefix(GetOptions::new().with_count_only())
            .await
            .count(),
        0
    );

    let accepted = ctx.txn(Txn::new().and_then(puts(MAX_TXN_OPS))).await;
    assert_eq!(accepted.op_responses().len(), MAX_TXN_OPS);
    assert_eq!(
        ctx.get_prefix(GetOptions::new().with_count_only())
            .await
            .count(),
        MAX_TXN_OPS as i64
    );
}

pub(super) async fn txn_duplicate_put(ctx: Kv) {
    let twice = Txn::new().and_then(vec![
        TxnOp::put(ctx.key("k"), "1", None),
        TxnOp::put(ctx.key("k"), "2", None),
    ]);
    assert_grpc_error(
        ctx.client().txn(twice).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );
    let in_failure = Txn::new()
        .when(vec![Compare::version(ctx.key("k"), CompareOp::Equal, 0)])
        .or_else(vec![
            TxnOp::put(ctx.key("k"), "1", None),
            TxnOp::put(ctx.key("k"), "2", None),
        ]);
    assert_grpc_error(
        ctx.client().txn(in_failure).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );
    assert!(ctx.get("k", None).await.kvs().is_empty());

    let one_per_branch = Txn::new()
        .when(vec![Compare::version(ctx.key("k"), CompareOp::Equal, 0)])
        .and_then(vec![TxnOp::put(ctx.key("k"), "then", None)])
        .or_else(vec![TxnOp::put(ctx.key("k"), "else", None)]);
    assert!(
        ctx.txn(one_per_branch).await.succeeded(),
        "each branch may put the key once"
    );
    assert_eq!(ctx.kv("k").await.value(), b"then");
}

pub(super) async fn txn_put_inside_deleted_range(ctx: Kv) {
    ctx.put("r/a", "v").await;
    let delete_range = || TxnOp::delete(ctx.key("r/"), Some(DeleteOptions::new().with_prefix()));
    let refused = Txn::new().and_then(vec![delete_range(), TxnOp::put(ctx.key("r/b"), "v", None)]);
    assert_grpc_error(
        ctx.client().txn(refused).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );
    let refused = Txn::new().and_then(vec![TxnOp::put(ctx.key("r/b"), "v", None), delete_range()]);
    assert_grpc_error(
        ctx.client().txn(refused).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );

    let overlapping_deletes = Txn::new().and_then(vec![
        delete_range(),
        TxnOp::delete(ctx.key("r/a"), None),
        TxnOp::put(ctx.key("s"), "v", None),
    ]);
    ctx.txn(overlapping_deletes).await;
    assert_eq!(
        ctx.names(ctx.get_prefix(GetOptions::new()).await.kvs()),
        ["s"]
    );
}

pub(super) async fn txn_nested_duplicates(ctx: Kv) {
    let nested_put =
        |value: &str| TxnOp::txn(Txn::new().and_then(vec![TxnOp::put(ctx.key("k"), value, None)]));
    let refused = Txn::new().and_then(vec![
        TxnOp::put(ctx.key("k"), "outer", None),
        nested_put("inner"),
    ]);
    assert_grpc_error(
        ctx.client().txn(refused).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );

    let delete_all = TxnOp::delete(ctx.prefix.clone(), Some(DeleteOptions::new().with_prefix()));
    let refused = Txn::new().and_then(vec![delete_all, nested_put("inner")]);
    assert_grpc_error(
        ctx.client().txn(refused).await,
        Code::InvalidArgument,
        DUPLICATE_KEY,
    );

    let both_branches = Txn::new().and_then(vec![TxnOp::txn(
        Txn::new()
            .when(vec![Compare::version(ctx.key("k"), CompareOp::Equal, 0)])
            .and_then(vec![TxnOp::put(ctx.key("k"), "then", None)])
            .or_else(vec![TxnOp::put(ctx.key("k"), "else", None)]),
    )]);
    ctx.txn(both_branches).await;
    assert_eq!(ctx.kv("k").await.value(), b"then");
}

pub(super) async fn txn_unknown_lease_fails_whole_txn(ctx: Kv) {
    let before = ctx.revision().await;
    let unknown = UNKNOWN_LEASE;
    let txn = Txn::new().and_then(vec![
        TxnOp::put(ctx.key("a"), "v", None),
        TxnOp::put(
            ctx.key("b"),
            "v",
            Some(PutOptions::new().with_lease(unknown)),
        ),
    ]);
    assert_grpc_error(ctx.client().txn(txn).await, Code::NotFound, LEASE_NOT_FOUND);
    assert_eq!(
        ctx.get_prefix(GetOptions::new().with_count_only())
            .await
            .count(),
        0
    );
    assert_eq!(ctx.revision().await, before);

    let not_taken = Txn::new()
        .when(vec![Compare::version(ctx.key("a"), CompareOp::Equal, 0)])
        .and_then(vec![TxnOp::put(ctx.key("a"), "v", None)])
        .or_else(vec![TxnOp::put(
            ctx.key("b"),
            "v",
            Some(PutOptions::new().with_lease(unknown)),
        )]);
    assert!(
        ctx.txn(not_taken).await.succeeded(),
        "only the chosen branch is checked"
    );
}
