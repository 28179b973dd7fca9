//! Lease grant, revoke and key attachment.

use super::*;

#[test]
fn lease_grant_and_revoke_errors() {
    let s = Store::new();
    let granted = expect_ok!(s.one(grant(7)), Outcome::LeaseGrant);
    assert_eq!((granted.id, granted.ttl, revision(&granted.header)), (7, 10, 1), "a grant adds no revision");
    assert_eq!(failure(s.one(grant(7))), Error::LeaseExists);
    assert_eq!(failure(s.one(revoke(8))), Error::LeaseNotFound);
    let revoked = expect_ok!(s.one(revoke(7)), Outcome::LeaseRevoke);
    assert_eq!((revision(&revoked.header), s.rev()), (1, 1), "revoking a lease without keys adds no revision");
    assert_eq!(failure(s.one(revoke(7))), Error::LeaseNotFound);
    expect_ok!(s.one(grant(7)), Outcome::LeaseGrant);
}

#[test]
fn revoking_a_lease_deletes_its_keys_in_one_revision() {
    let s = Store::new();
    s.run(&[grant(7), grant(8)]);
    for (key, lease) in [(&b"a"[..], 7), (b"b", 7), (b"c", 7), (b"d", 0), (b"c", 8), (b"e", 7), (b"e", 0)] {
        expect_ok!(s.one(put_leased(key, b"v", lease)), Outcome::Put);
    }
    assert_eq!(s.rev(), 8);
    let revoked = expect_ok!(s.one(revoke(7)), Outcome::LeaseRevoke);
    assert_eq!(revision(&revoked.header), 9);
    assert_eq!(keys(&s.range(all_keys()).kvs), vec!["c", "d", "e"], "only the keys still on lease 7 go");
    assert_eq!(s.get(b"c").expect("c").lease, 8);
    assert_eq!(keys(&s.range(RangeRequest { revision: 8, ..all_keys() }).kvs), vec!["a", "b", "c", "d", "e"]);
    assert_eq!(s.rev(), 9);

    assert_eq!(failure(s.one(put_leased(b"x", b"v", 7))), Error::LeaseNotFound);
    expect_ok!(s.one(revoke(8)), Outcome::LeaseRevoke);
    assert_eq!((keys(&s.range(all_keys()).kvs), s.rev()), (vec!["d".to_string(), "e".to_string()], 10));
}

#[test]
fn a_deleted_key_leaves_its_lease() {
    let s = Store::new();
    s.one(grant(7));
    s.one(put_leased(b"a", b"v", 7));
    s.delete(b"a", b"");
    s.put(b"a", b"unleased");
    let revoked = expect_ok!(s.one(revoke(7)), Outcome::LeaseRevoke);
    assert_eq!((revision(&revoked.header), s.rev()), (4, 4), "nothing left on the lease: no revision");
    assert_eq!(s.get(b"a").expect("a").value, b"unleased");
}

#[test]
fn lease_commands_in_one_batch_see_each_other() {
    let s = Store::new();
    s.run(&[grant(3), grant(4)]);
    s.one(put_leased(b"moved", b"v", 3));
    let out = s.run(&[
        grant(5),
        put_leased(b"a", b"1", 5),
        put_leased(b"b", b"1", 5),
        put_leased(b"moved", b"v", 4),
        revoke(5),
        revoke(3),
        put_leased(b"c", b"1", 5),
    ]);
    assert_eq!(revision(&expect_ok!(out[1].clone(), Outcome::Put).header), 3);
    assert_eq!(revision(&expect_ok!(out[2].clone(), Outcome::Put).header), 4);
    assert_eq!(revision(&expect_ok!(out[4].clone(), Outcome::LeaseRevoke).header), 6, "a pending lease's keys are deleted");
    assert_eq!(revision(&expect_ok!(out[5].clone(), Outcome::LeaseRevoke).header), 6, "moved off lease 3 in this batch");
    assert_eq!(failure(out[6].clone()), Error::LeaseNotFound, "lease 5 was revoked earlier in the batch");
    assert_eq!(keys(&s.range(all_keys()).kvs), vec!["moved"]);
    assert_eq!(s.get(b"moved").expect("moved").lease, 4);
    assert_eq!(s.rev(), 6);
}

#[test]

fn revoking_lease_minus_one_deletes_its_keys() {
    // etcd accepts any non-zero client-chosen lease ID, negative ones included.
    let s = Store::new();
    s.one(grant(-1));
    s.one(put_leased(b"a", b"v", -1));
    expect_ok!(s.one(revoke(-1)), Outcome::LeaseRevoke);
    assert_eq!(s.get(b"a"), None);
}

#[test]
fn revoking_negative_and_extreme_lease_ids() {
    let s = Store::new();
    for id in [-5, i64::MIN, i64::MAX] {
        s.one(grant(id));
        s.one(put_leased(format!("k{id}").as_bytes(), b"v", id));
    }
    s.one(put(b"other", b"v"));
    for id in [-5, i64::MIN, i64::MAX] {
        expect_ok!(s.one(revoke(id)), Outcome::LeaseRevoke);
        assert_eq!(s.get(format!("k{id}").as_bytes()), None, "lease {id}");
    }
    assert_eq!(keys(&s.range(all_keys()).kvs), vec!["other"]);
}
