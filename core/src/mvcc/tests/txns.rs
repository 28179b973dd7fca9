//! Txn: compares, branches, nesting, read-your-writes, read-only txns.

use super::*;

#[test]
fn txn_compare_targets_on_an_existing_key() {
    let s = Store::new();
    s.one(grant(7));
    s.put(b"a", b"1");
    s.one(put_leased(b"a", b"2", 7));
    s.put(b"b", b"x");
    use CompareResult::{Equal, Greater, Less, NotEqual};
    use CompareTarget as T;
    use TargetUnion as U;
    let cases = [
        (T::Version, Equal, U::Version(2), true),
        (T::Version, Equal, U::Version(1), false),
        (T::Version, Greater, U::Version(1), true),
        (T::Version, Less, U::Version(3), true),
        (T::Version, NotEqual, U::Version(2), false),
        (T::Create, Equal, U::CreateRevision(2), true),
        (T::Create, Greater, U::CreateRevision(2), false),
        (T::Mod, Equal, U::ModRevision(3), true),
        (T::Mod, Less, U::ModRevision(3), false),
        (T::Mod, Less, U::ModRevision(4), true),
        (T::Value, Equal, U::Value(b"2".to_vec()), true),
        (T::Value, Greater, U::Value(b"1".to_vec()), true),
        (T::Value, Less, U::Value(b"3".to_vec()), true),
        (T::Value, NotEqual, U::Value(b"2".to_vec()), false),
        (T::Lease, Equal, U::Lease(7), true),
        (T::Lease, Equal, U::Lease(0), false),
    ];
    for (target, result, against, want) in cases {
        let c = compare(b"a", target, result, against.clone());
        assert_eq!(holds(&s, vec![c]), want, "{target:?} {result:?} {against:?}");
    }
}

#[test]
fn txn_compare_on_a_missing_key_sees_a_zeroed_pair() {
    let s = Store::new();
    s.put(b"a", b"1");
    use CompareResult::{Equal, Greater, NotEqual};
    use CompareTarget as T;
    use TargetUnion as U;
    let cases = [
        (T::Version, Equal, U::Version(0), true),
        (T::Version, Greater, U::Version(0), false),
        (T::Create, Equal, U::CreateRevision(0), true),
        (T::Mod, Equal, U::ModRevision(0), true),
        (T::Lease, Equal, U::Lease(0), true),
        (T::Value, Equal, U::Value(Vec::new()), false),
        (T::Value, NotEqual, U::Value(b"x".to_vec()), false),
    ];
    for (target, result, against, want) in cases {
        let c = compare(b"missing", target, result, against.clone());
        assert_eq!(holds(&s, vec![c]), want, "{target:?} {result:?} {against:?}");
    }
}

#[test]
fn txn_compare_over_a_range_needs_every_key() {
    let s = Store::new();
    s.put(b"a", b"1");
    s.put(b"a", b"2");
    s.put(b"b", b"2");
    s.put(b"c", b"9");
    let over = |target, result, against| Compare { range_end: b"c".to_vec(), ..compare(b"a", target, result, against) };
    assert!(holds(&s, vec![over(CompareTarget::Version, CompareResult::Greater, TargetUnion::Version(0))]));
    assert!(!holds(&s, vec![over(CompareTarget::Version, CompareResult::Equal, TargetUnion::Version(2))]));
    assert!(holds(&s, vec![over(CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"2".to_vec()))]));
    assert!(holds(&s, vec![over(CompareTarget::Create, CompareResult::Less, TargetUnion::CreateRevision(5))]));
    let to_end = Compare { range_end: b"\0".to_vec(), ..compare(b"a", CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"2".to_vec())) };
    assert!(!holds(&s, vec![to_end]), "c holds 9");
    let empty_range = Compare { range_end: b"y".to_vec(), ..compare(b"x", CompareTarget::Create, CompareResult::Equal, TargetUnion::CreateRevision(0)) };
    assert!(holds(&s, vec![empty_range]), "no key in range compares as a zeroed pair");
}

#[test]
fn txn_compares_are_anded() {
    let s = Store::new();
    s.put(b"a", b"1");
    let yes = compare(b"a", CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"1".to_vec()));
    let no = compare(b"a", CompareTarget::Version, CompareResult::Equal, TargetUnion::Version(5));
    assert!(holds(&s, vec![yes.clone(), yes.clone()]));
    assert!(!holds(&s, vec![yes.clone(), no.clone()]));
    assert!(!holds(&s, vec![no, yes]));
    assert!(holds(&s, vec![]), "no compares take the success branch");
}

#[test]
fn txn_runs_one_branch_at_one_revision() {
    let s = Store::new();
    s.put(b"a", b"1");
    let t = TxnRequest {
        compare: vec![compare(b"a", CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"1".to_vec()))],
        success: vec![op_put(b"a", b"2"), op_put(b"b", b"1"), op_range(single(b"a"))],
        failure: vec![op_put(b"c", b"1")],
    };
    let resp = s.txn(t.clone());
    assert!(resp.succeeded);
    assert_eq!((revision(&resp.header), s.rev()), (3, 3), "two puts, one revision");
    assert_eq!(resp.responses.len(), 3);
    let seen = range_of(&resp.responses[2]);
    assert_eq!((seen.kvs[0].value.as_slice(), revision(&seen.header)), (&b"2"[..], 3));
    let a = s.get(b"a").expect("a");
    let b = s.get(b"b").expect("b");
    assert_eq!((a.mod_revision, a.version, b.create_revision, b.mod_revision), (3, 2, 3, 3));
    assert_eq!(s.get(b"c"), None);

    let resp = s.txn(t);
    assert!(!resp.succeeded);
    assert_eq!((revision(&resp.header), resp.responses.len()), (4, 1));
    assert_eq!(s.get(b"c").expect("c").mod_revision, 4);
}

#[test]
fn read_only_txn_keeps_the_revision() {
    let s = Store::new();
    s.put(b"a", b"1");
    let resp = s.txn(TxnRequest { compare: vec![], success: vec![op_range(single(b"a")), op_delete(b"zzz", b"")], failure: vec![] });
    assert_eq!((revision(&resp.header), revision(&range_of(&resp.responses[0]).header), s.rev()), (2, 2, 2));
    assert_eq!(revision(&s.put(b"b", b"1").header), 3);
}

#[test]
fn range_in_a_txn_sees_earlier_ops_of_the_same_txn() {
    let s = Store::new();
    s.put(b"a", b"1");
    let resp = s.txn(TxnRequest {
        compare: vec![],
        success: vec![op_range(all_keys()), op_put(b"b", b"2"), op_range(all_keys()), op_delete(b"a", b""), op_range(all_keys())],
        failure: vec![],
    });
    let seen = |i: usize| {
        let r = range_of(&resp.responses[i]);
        (keys(&r.kvs).concat(), r.count, revision(&r.header))
    };
    assert_eq!(seen(0), ("a".into(), 1, 2));
    assert_eq!(seen(2), ("ab".into(), 2, 3));
    assert_eq!(seen(4), ("b".into(), 1, 3));
    match &resp.responses[3].response {
        Some(response_op::Response::ResponseDeleteRange(d)) => {
            assert_eq!((d.deleted, revision(&d.header), keys(&d.prev_kvs)), (1, 3, vec!["a".to_string()]))
        }
        other => panic!("expected a delete response, got {other:?}"),
    }
    assert_eq!((s.rev(), keys(&s.range(all_keys()).kvs)), (3, vec!["b".to_string()]));
    assert_eq!(s.get_at(b"a", 2).expect("readable").expect("a at 2").value, b"1");
}

#[test]
fn nested_txn_compares_see_the_state_before_the_txn() {
    let s = Store::new();
    s.put(b"a", b"0");
    let nested = TxnRequest {
        compare: vec![compare(b"a", CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"0".to_vec()))],
        success: vec![op_put(b"b", b"before")],
        failure: vec![op_put(b"b", b"after")],
    };
    let resp = s.txn(TxnRequest { compare: vec![], success: vec![op_put(b"a", b"1"), op_txn(nested)], failure: vec![] });
    assert!(resp.succeeded);
    assert_eq!(revision(&resp.header), 3);
    match &resp.responses[1].response {
        Some(response_op::Response::ResponseTxn(inner)) => assert!(inner.succeeded && inner.responses.len() == 1),
        other => panic!("expected a txn response, got {other:?}"),
    }
    let b = s.get(b"b").expect("b");
    assert_eq!((b.value.as_slice(), b.mod_revision), (&b"before"[..], 3));
    assert_eq!(s.get(b"a").expect("a").mod_revision, 3);
}

#[test]
fn nested_txn_takes_its_failure_branch() {
    let s = Store::new();
    let nested = TxnRequest {
        compare: vec![compare(b"x", CompareTarget::Version, CompareResult::Greater, TargetUnion::Version(0))],
        success: vec![op_put(b"yes", b"1")],
        failure: vec![op_put(b"no", b"1"), op_range(single(b"outer"))],
    };
    let resp = s.txn(TxnRequest { compare: vec![], success: vec![op_put(b"outer", b"1"), op_txn(nested)], failure: vec![] });
    match &resp.responses[1].response {
        Some(response_op::Response::ResponseTxn(inner)) => {
            assert!(!inner.succeeded);
            assert_eq!(range_of(&inner.responses[1]).kvs.len(), 1, "a nested range sees the outer put");
        }
        other => panic!("expected a txn response, got {other:?}"),
    }
    assert_eq!(keys(&s.range(all_keys()).kvs), vec!["no", "outer"]);
    assert_eq!(s.rev(), 2);
}

#[test]
fn a_failing_op_in_the_chosen_branch_fails_the_whole_txn() {
    let s = Store::new();
    s.put(b"a", b"1");
    let leased = PutRequest { lease: 99, ..put_req(b"b", b"1") };
    let t = TxnRequest { compare: vec![], success: vec![op_put(b"a", b"2"), op_put_with(leased.clone())], failure: vec![] };
    assert_eq!(failure(s.one(txn(t))), Error::LeaseNotFound);
    let ignore = PutRequest { ignore_value: true, ..put_req(b"nope", b"") };
    let t = TxnRequest { compare: vec![], success: vec![op_put(b"a", b"2"), op_put_with(ignore)], failure: vec![] };
    assert_eq!(failure(s.one(txn(t))), Error::KeyNotFound);
    let future = RangeRequest { revision: 50, ..single(b"a") };
    let t = TxnRequest { compare: vec![], success: vec![op_put(b"a", b"2"), op_range(future)], failure: vec![] };
    assert_eq!(failure(s.one(txn(t))), Error::FutureRev);
    assert_eq!((s.rev(), s.get(b"a").expect("a").value), (2, b"1".to_vec()), "nothing of a failed txn is written");

    let never = compare(b"a", CompareTarget::Version, CompareResult::Equal, TargetUnion::Version(9));
    let t = TxnRequest { compare: vec![never], success: vec![op_put_with(leased)], failure: vec![op_put(b"c", b"1")] };
    assert!(!s.txn(t).succeeded, "the branch not taken is not checked");
    assert_eq!(s.rev(), 3);
}

#[test]
fn read_txn_answers_from_the_local_state_without_a_revision() {
    let s = Store::new();
    s.put(b"a", b"1");
    s.put(b"a", b"2");
    let is_two = compare(b"a", CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"2".to_vec()));
    let req = TxnRequest { compare: vec![is_two], success: vec![op_range(single(b"a"))], failure: vec![] };
    let resp = s.mvcc.read_txn(&req).expect("a read-only txn");
    assert!(resp.succeeded);
    assert_eq!(revision(&resp.header), 3);
    let r = range_of(&resp.responses[0]);
    assert_eq!((keys(&r.kvs).concat(), revision(&r.header)), ("a".to_string(), 3));
    assert_eq!(r.kvs[0].value, b"2");
    assert_eq!(s.rev(), 3, "nothing was written");
    // Its ranges obey the same revision checks as a Range.
    let future = TxnRequest { success: vec![op_range(RangeRequest { revision: 9, ..single(b"a") })], ..Default::default() };
    assert_eq!(s.mvcc.read_txn(&future).err(), Some(Error::FutureRev));
}
