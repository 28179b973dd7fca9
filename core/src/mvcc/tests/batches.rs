//! Group commit, compaction and restart.

use super::*;

#[test]
fn group_commit_gives_each_command_its_own_revision() {
    let s = Store::new();
    let is_two = compare(b"a", CompareTarget::Value, CompareResult::Equal, TargetUnion::Value(b"2".to_vec()));
    let out = s.run(&[
        put(b"a", b"1"),
        put(b"b", b"1"),
        cmd(command::Op::Put(PutRequest { prev_kv: true, ..put_req(b"a", b"2") })),
        put_leased(b"x", b"1", 42),
        txn(TxnRequest { compare: vec![is_two], success: vec![op_put(b"c", b"1")], failure: vec![] }),
        delete(b"b", b""),
        put(b"d", b"1"),
        delete(b"d", b""),
        put(b"d", b"2"),
    ]);
    let rev = |i: usize| match &out[i] {
        Outcome::Put(r) => revision(&r.header),
        Outcome::Txn(r) => revision(&r.header),
        Outcome::DeleteRange(r) => revision(&r.header),
        other => panic!("command {i}: {other:?}"),
    };
    assert_eq!([rev(0), rev(1), rev(2)], [2, 3, 4]);
    let prev = expect_ok!(out[2].clone(), Outcome::Put).prev_kv.expect("the pending a");
    assert_eq!((prev.value.as_slice(), prev.mod_revision), (&b"1"[..], 2));
    assert_eq!(failure(out[3].clone()), Error::LeaseNotFound, "a failed command takes no revision");
    assert!(expect_ok!(out[4].clone(), Outcome::Txn).succeeded, "the txn sees the put before it");
    assert_eq!([rev(4), rev(5), rev(6), rev(7), rev(8)], [5, 6, 7, 8, 9]);
    assert_eq!(s.rev(), 9);

    let a = s.get(b"a").expect("a");
    assert_eq!((a.create_revision, a.mod_revision, a.version), (2, 4, 2));
    assert_eq!(s.get(b"c").expect("c").create_revision, 5);
    assert_eq!(s.get(b"b"), None);
    assert!(s.get_at(b"b", 5).expect("readable").is_some());
    let d = s.get(b"d").expect("d");
    assert_eq!((d.create_revision, d.version, d.value.as_slice()), (9, 1, &b"2"[..]), "deleted and recreated in the batch");
}

/// a: 2 (v1), 3 (v2), 7 (v3); b: 4, deleted at 5; c: 6. Then compacted at 5.
fn compacted_at_five() -> Store {
    let s = Store::new();
    s.put(b"a", b"1");
    s.put(b"a", b"2");
    s.put(b"b", b"1");
    s.delete(b"b", b"");
    s.put(b"c", b"1");
    s.put(b"a", b"3");
    let resp = expect_ok!(s.one(compact(5)), Outcome::Compaction);
    assert_eq!(revision(&resp.header), 7);
    s
}

#[test]
fn compaction_keeps_the_newest_version_at_or_below_it() {
    let s = compacted_at_five();
    assert_eq!((s.mvcc.compact_revision(), s.rev()), (5, 7), "a compaction adds no revision");
    let at5 = s.range(RangeRequest { revision: 5, ..all_keys() });
    assert_eq!((keys(&at5.kvs), at5.count), (vec!["a".to_string()], 1), "reading at the compacted revision works");
    assert_eq!((at5.kvs[0].value.as_slice(), at5.kvs[0].version, at5.kvs[0].mod_revision), (&b"2"[..], 2, 3));
    assert_eq!(keys(&s.range(RangeRequest { revision: 6, ..all_keys() }).kvs), vec!["a", "c"]);
    assert_eq!(s.mvcc.range(&RangeRequest { revision: 4, ..all_keys() }).err(), Some(Error::Compacted));
    assert_eq!(s.mvcc.range(&RangeRequest { revision: 1, ..all_keys() }).err(), Some(Error::Compacted));
    let a = s.get(b"a").expect("a");
    assert_eq!((a.create_revision, a.version), (2, 3));

    assert!(!s.has_row(2), "a@2 is superseded by a@3");
    assert!(s.has_row(3), "a@3 is the newest a at 5");
    assert!(!s.has_row(4) && !s.has_row(5), "b is deleted at 5: its put and its tombstone go");
    assert!(s.has_row(6) && s.has_row(7));

    s.put(b"a", b"4");
    let a = s.get(b"a").expect("a");
    assert_eq!((a.create_revision, a.version, a.mod_revision), (2, 4, 8));
}

#[test]
fn compaction_revision_errors() {
    let s = compacted_at_five();
    assert_eq!(failure(s.one(compact(5))), Error::Compacted);
    assert_eq!(failure(s.one(compact(3))), Error::Compacted);
    assert_eq!(failure(s.one(compact(8))), Error::FutureRev);
    expect_ok!(s.one(compact(7)), Outcome::Compaction);
    assert!(!s.has_row(3));
    assert_eq!(keys(&s.range(RangeRequest { revision: 7, ..all_keys() }).kvs), vec!["a", "c"]);
    let old = RangeRequest { revision: 6, ..single(b"a") };
    let t = TxnRequest { compare: vec![], success: vec![op_range(old)], failure: vec![] };
    assert_eq!(failure(s.one(txn(t))), Error::Compacted);
}

#[test]
fn compaction_drops_a_tombstone_but_keeps_a_newer_life() {
    let s = Store::new();
    s.put(b"k", b"1");
    s.delete(b"k", b"");
    s.put(b"k", b"2");
    s.put(b"other", b"x");
    expect_ok!(s.one(compact(3)), Outcome::Compaction);
    assert!(!s.has_row(2) && !s.has_row(3) && s.has_row(4));
    assert_eq!(s.get_at(b"k", 3).expect("readable"), None);
    let k = s.get(b"k").expect("k");
    assert_eq!((k.create_revision, k.version, k.value.as_slice()), (4, 1, &b"2"[..]));
}

#[test]
fn compaction_in_a_batch_counts_earlier_commands() {
    let s = Store::new();
    let out = s.run(&[put(b"a", b"1"), put(b"a", b"2"), compact(3), put(b"a", b"3"), compact(3)]);
    expect_ok!(out[2].clone(), Outcome::Compaction);
    assert_eq!(failure(out[4].clone()), Error::Compacted);
    assert_eq!((s.mvcc.compact_revision(), s.rev()), (3, 4));
    assert!(!s.has_row(2) && s.has_row(3) && s.has_row(4));
}

#[test]
fn compaction_deletes_in_several_batches() {
    let s = Store::new();
    let cmds: Vec<Command> = (0..12_500).map(|i| put(b"hot", format!("{i}").as_bytes())).chain([put(b"cold", b"x")]).collect();
    s.run(&cmds);
    let top = s.rev();
    expect_ok!(s.one(compact(top)), Outcome::Compaction);
    assert!(!s.has_row(2) && !s.has_row(top - 2) && s.has_row(top - 1) && s.has_row(top));
    let hot = s.get(b"hot").expect("hot");
    assert_eq!((hot.version, hot.value.as_slice()), (12_500, &b"12499"[..]));
    assert_eq!(keys(&s.range(RangeRequest { revision: top, ..all_keys() }).kvs), vec!["cold", "hot"]);
}

#[test]
fn restart_keeps_state_revisions_and_leases() {
    let s = Store::new();
    s.one(grant(7));
    s.one(put_leased(b"a", b"1", 7));
    s.put(b"b", b"1");
    s.delete(b"b", b"");
    s.put(b"c", b"1");
    let before = keys(&s.range(all_keys()).kvs);

    let s = s.reopen();
    assert_eq!(s.rev(), 5);
    assert_eq!(keys(&s.range(all_keys()).kvs), before);
    let a = s.get(b"a").expect("a");
    assert_eq!((a.lease, a.create_revision, a.version), (7, 2, 1));
    assert!(s.get_at(b"b", 3).expect("readable").is_some(), "history survives");
    assert_eq!(revision(&s.range(single(b"a")).header), 5);
    assert_eq!(failure(s.one(grant(7))), Error::LeaseExists, "the lease survives");
    assert_eq!(revision(&s.put(b"d", b"1").header), 6);
    let revoked = expect_ok!(s.one(revoke(7)), Outcome::LeaseRevoke);
    assert_eq!(revision(&revoked.header), 7);
    assert_eq!(keys(&s.range(all_keys()).kvs), vec!["c", "d"], "a was attached before the restart");
}

#[test]
fn restart_keeps_the_compaction() {
    let s = compacted_at_five().reopen();
    assert_eq!((s.mvcc.compact_revision(), s.rev()), (5, 7));
    assert_eq!(s.mvcc.range(&RangeRequest { revision: 4, ..all_keys() }).err(), Some(Error::Compacted));
    assert_eq!(keys(&s.range(RangeRequest { revision: 5, ..all_keys() }).kvs), vec!["a"]);
    assert_eq!(failure(s.one(compact(5))), Error::Compacted);
    assert_eq!(revision(&s.put(b"z", b"1").header), 8);
}
