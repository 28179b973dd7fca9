//! Put and DeleteRange: revisions, versions, prev_kv, ignore flags.

use super::*;

#[test]
fn first_write_is_revision_two() {
    let s = Store::new();
    assert_eq!(s.rev(), 1);
    let empty = s.range(all_keys());
    assert_eq!((revision(&empty.header), empty.count, empty.kvs.len()), (1, 0, 0));

    let resp = s.put(b"a", b"1");
    assert_eq!(revision(&resp.header), 2);
    let kv = s.get(b"a").expect("a was written");
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version, kv.value.as_slice()), (2, 2, 1, &b"1"[..]));
    assert_eq!(s.rev(), 2);
}

#[test]
fn every_put_adds_a_revision_and_a_version() {
    let s = Store::new();
    let revs: Vec<i64> =
        [(&b"a"[..], &b"1"[..]), (b"b", b"x"), (b"a", b"1"), (b"a", b"2")].iter().map(|(k, v)| revision(&s.put(k, v).header)).collect();
    assert_eq!(revs, vec![2, 3, 4, 5], "an unchanged value still adds a revision");
    let a = s.get(b"a").expect("a");
    assert_eq!((a.create_revision, a.mod_revision, a.version, a.value.as_slice()), (2, 5, 3, &b"2"[..]));
    let b = s.get(b"b").expect("b");
    assert_eq!((b.create_revision, b.mod_revision, b.version), (3, 3, 1));
}

#[test]
fn delete_resets_version_and_create_revision() {
    let s = Store::new();
    s.put(b"a", b"1");
    s.put(b"a", b"2");
    let del = s.delete(b"a", b"");
    assert_eq!((del.deleted, revision(&del.header)), (1, 4));
    assert_eq!(s.get(b"a"), None);
    assert_eq!(s.range(single(b"a")).count, 0);

    assert_eq!(revision(&s.put(b"a", b"3").header), 5);
    let a = s.get(b"a").expect("a");
    assert_eq!((a.create_revision, a.mod_revision, a.version), (5, 5, 1));
    let old = s.get_at(b"a", 3).expect("read").expect("a at 3");
    assert_eq!((old.create_revision, old.version, old.value.as_slice()), (2, 2, &b"2"[..]));
    assert_eq!(s.get_at(b"a", 4).expect("read"), None, "a is deleted at revision 4");
}

#[test]
fn deleting_nothing_adds_no_revision() {
    let s = Store::new();
    s.put(b"a", b"1");
    let del = s.delete(b"zzz", b"");
    assert_eq!((del.deleted, revision(&del.header), s.rev()), (0, 2, 2));
    assert_eq!(revision(&s.put(b"b", b"1").header), 3);
}

#[test]
fn delete_range_removes_every_key_at_one_revision() {
    let s = Store::new();
    for k in [&b"a/1"[..], b"a/2", b"a/3", b"b"] {
        s.put(k, b"v");
    }
    let req = DeleteRangeRequest { key: b"a/".to_vec(), range_end: b"a0".to_vec(), prev_kv: true };
    let del = expect_ok!(s.one(cmd(command::Op::DeleteRange(req))), Outcome::DeleteRange);
    assert_eq!((del.deleted, revision(&del.header)), (3, 6));
    assert_eq!(keys(&del.prev_kvs), vec!["a/1", "a/2", "a/3"]);
    assert!(del.prev_kvs.iter().all(|kv| kv.value == b"v" && kv.version == 1));
    assert_eq!(keys(&s.range(all_keys()).kvs), vec!["b"]);
    assert_eq!(keys(&s.range(RangeRequest { revision: 5, ..all_keys() }).kvs), vec!["a/1", "a/2", "a/3", "b"]);
    assert_eq!(s.rev(), 6);

    let del = s.delete(b"b", b"");
    assert_eq!((del.deleted, del.prev_kvs.len()), (1, 0), "prev_kvs only when asked for");
}

#[test]
fn put_prev_kv_returns_the_pair_before_the_write() {
    let s = Store::new();
    let first = expect_ok!(s.put_with(PutRequest { prev_kv: true, ..put_req(b"a", b"1") }), Outcome::Put);
    assert_eq!(first.prev_kv, None, "a new key has no previous pair");
    let second = expect_ok!(s.put_with(PutRequest { prev_kv: true, ..put_req(b"a", b"2") }), Outcome::Put);
    let prev = second.prev_kv.expect("the previous pair");
    assert_eq!((prev.value.as_slice(), prev.mod_revision, prev.version), (&b"1"[..], 2, 1));
    assert_eq!(s.put(b"a", b"3").prev_kv, None, "prev_kv only when asked for");
}

#[test]
fn ignore_value_and_ignore_lease_keep_what_the_key_had() {
    let s = Store::new();
    s.one(grant(7));
    expect_ok!(s.one(put_leased(b"a", b"v", 7)), Outcome::Put);

    expect_ok!(s.put_with(PutRequest { ignore_value: true, ignore_lease: true, ..put_req(b"a", b"") }), Outcome::Put);
    let a = s.get(b"a").expect("a");
    assert_eq!((a.value.as_slice(), a.lease, a.version, a.mod_revision), (&b"v"[..], 7, 2, 3));

    expect_ok!(s.put_with(PutRequest { ignore_lease: true, ..put_req(b"a", b"w") }), Outcome::Put);
    let a = s.get(b"a").expect("a");
    assert_eq!((a.value.as_slice(), a.lease), (&b"w"[..], 7));

    expect_ok!(s.put_with(PutRequest { ignore_value: true, ..put_req(b"a", b"") }), Outcome::Put);
    let a = s.get(b"a").expect("a");
    assert_eq!((a.value.as_slice(), a.lease), (&b"w"[..], 0), "without ignore_lease the lease is the request's");

    let before = s.rev();
    assert_eq!(failure(s.put_with(PutRequest { ignore_value: true, ..put_req(b"nope", b"") })), Error::KeyNotFound);
    assert_eq!(failure(s.put_with(PutRequest { ignore_lease: true, ..put_req(b"nope", b"x") })), Error::KeyNotFound);
    assert_eq!((s.rev(), s.get(b"nope")), (before, None));
}

#[test]
fn put_with_an_unknown_lease_writes_nothing() {
    let s = Store::new();
    assert_eq!(failure(s.one(put_leased(b"a", b"1", 9))), Error::LeaseNotFound);
    assert_eq!((s.rev(), s.get(b"a")), (1, None));
}
