//! Range: key forms, limits, sorting, filters, past revisions.

use super::*;

/// a=2, a/1=3, a/2=4, b=5, c=6 (key=revision)
fn five_keys() -> Store {
    let s = Store::new();
    for (k, v) in [(&b"a"[..], &b"1"[..]), (b"a/1", b"2"), (b"a/2", b"3"), (b"b", b"4"), (b"c", b"5")] {
        s.put(k, v);
    }
    s
}

#[test]
fn range_forms() {
    let s = five_keys();
    let got = |req: RangeRequest| keys(&s.range(req).kvs);
    assert_eq!(got(single(b"a")), vec!["a"]);
    assert_eq!(got(single(b"a/")), Vec::<String>::new());
    assert_eq!(got(span(b"a/", b"a0")), vec!["a/1", "a/2"], "prefix");
    assert_eq!(got(span(b"b", b"\0")), vec!["b", "c"], "from key");
    assert_eq!(got(all_keys()), vec!["a", "a/1", "a/2", "b", "c"]);
    assert_eq!(got(span(b"a", b"c")), vec!["a", "a/1", "a/2", "b"]);
    let backwards = s.range(span(b"c", b"a"));
    assert_eq!((backwards.kvs.len(), backwards.count), (0, 0));
}

#[test]
fn binary_keys_keep_byte_order() {
    let s = Store::new();
    let ks: [&[u8]; 8] = [b"k\xff", b"abcdefghi", b"k", b"\xff\xff", b"abcdefgh", b"k\0", b"abcdefg", b"\x01"];
    for k in ks {
        s.put(k, k);
    }
    let mut sorted = ks.to_vec();
    sorted.sort();
    let all = s.range(all_keys());
    assert_eq!(all.kvs.iter().map(|kv| kv.key.as_slice()).collect::<Vec<_>>(), sorted);
    assert!(all.kvs.iter().all(|kv| kv.key == kv.value));
    assert_eq!(s.range(single(b"k")).kvs.len(), 1);
    let prefix = s.range(span(b"abcdefgh", b"abcdefgi"));
    assert_eq!(prefix.kvs.iter().map(|kv| kv.key.as_slice()).collect::<Vec<_>>(), vec![&b"abcdefgh"[..], b"abcdefghi"]);
    assert_eq!(s.range(span(b"k", b"l")).count, 3);
}

#[test]
fn limit_sets_more_and_count_ignores_it() {
    let s = five_keys();
    let two = s.range(RangeRequest { limit: 2, ..all_keys() });
    assert_eq!((keys(&two.kvs), two.more, two.count), (vec!["a".to_string(), "a/1".to_string()], true, 5));
    let exact = s.range(RangeRequest { limit: 5, ..all_keys() });
    assert_eq!((exact.kvs.len(), exact.more, exact.count), (5, false, 5));
    let over = s.range(RangeRequest { limit: 6, ..all_keys() });
    assert_eq!((over.kvs.len(), over.more), (5, false));
    let unlimited = s.range(all_keys());
    assert_eq!((unlimited.kvs.len(), unlimited.more), (5, false));
    let prefix = s.range(RangeRequest { limit: 1, ..span(b"a/", b"a0") });
    assert_eq!((keys(&prefix.kvs), prefix.more, prefix.count), (vec!["a/1".to_string()], true, 2));
}

/// a: value w, version 2, create 3, mod 5; b: value y, version 1, create 4, mod 4;
/// c: value u, version 3, create 2, mod 7.
fn sortable() -> Store {
    let s = Store::new();
    for (k, v) in [(&b"c"[..], &b"x"[..]), (b"a", b"z"), (b"b", b"y"), (b"a", b"w"), (b"c", b"v"), (b"c", b"u")] {
        s.put(k, v);
    }
    s
}

#[test]
fn sort_by_every_target_and_order() {
    let s = sortable();
    let sorted = |target: SortTarget, order: SortOrder| {
        keys(&s.range(RangeRequest { sort_target: target as i32, sort_order: order as i32, ..all_keys() }).kvs).concat()
    };
    let cases = [
        (SortTarget::Key, SortOrder::None, "abc"),
        (SortTarget::Key, SortOrder::Ascend, "abc"),
        (SortTarget::Key, SortOrder::Descend, "cba"),
        (SortTarget::Version, SortOrder::Ascend, "bac"),
        (SortTarget::Version, SortOrder::Descend, "cab"),
        (SortTarget::Create, SortOrder::Ascend, "cab"),
        (SortTarget::Create, SortOrder::Descend, "bac"),
        (SortTarget::Mod, SortOrder::Ascend, "bac"),
        (SortTarget::Mod, SortOrder::Descend, "cab"),
        (SortTarget::Value, SortOrder::Ascend, "cab"),
        (SortTarget::Value, SortOrder::Descend, "bac"),
        (SortTarget::Create, SortOrder::None, "cab"),
        (SortTarget::Value, SortOrder::None, "cab"),
    ];
    for (target, order, want) in cases {
        assert_eq!(sorted(target, order), want, "{target:?} {order:?}");
    }
}

#[test]
fn limit_applies_after_sorting() {
    let s = sortable();
    let req = RangeRequest { sort_target: SortTarget::Value as i32, sort_order: SortOrder::Descend as i32, limit: 1, ..all_keys() };
    let top = s.range(req);
    assert_eq!((keys(&top.kvs), top.more, top.count), (vec!["b".to_string()], true, 3));
}

#[test]
fn unknown_sort_option_is_an_error() {
    let s = sortable();
    assert_eq!(s.mvcc.range(&RangeRequest { sort_order: 7, ..all_keys() }).err(), Some(Error::InvalidSortOption));
    assert_eq!(s.mvcc.range(&RangeRequest { sort_target: 9, ..all_keys() }).err(), Some(Error::InvalidSortOption));
}

#[test]
fn revision_filters_prune_but_count_ignores_them() {
    let s = five_keys();
    s.put(b"a", b"again");
    let got = |req: RangeRequest| {
        let r = s.range(req);
        (keys(&r.kvs).concat(), r.more, r.count)
    };
    assert_eq!(got(RangeRequest { min_mod_revision: 5, ..all_keys() }), ("abc".into(), false, 5));
    assert_eq!(got(RangeRequest { max_mod_revision: 4, ..all_keys() }), ("a/1a/2".into(), false, 5));
    assert_eq!(got(RangeRequest { min_create_revision: 3, max_create_revision: 5, ..all_keys() }), ("a/1a/2b".into(), false, 5));
    assert_eq!(got(RangeRequest { max_create_revision: 2, ..all_keys() }), ("a".into(), false, 5));
    assert_eq!(got(RangeRequest { min_mod_revision: 5, limit: 2, ..all_keys() }), ("ab".into(), true, 5));
    assert_eq!(got(RangeRequest { min_mod_revision: 5, limit: 3, ..all_keys() }), ("abc".into(), false, 5));
}

#[test]
fn keys_only_and_count_only() {
    let s = five_keys();
    let ko = s.range(RangeRequest { keys_only: true, ..all_keys() });
    assert_eq!(keys(&ko.kvs), vec!["a", "a/1", "a/2", "b", "c"]);
    assert!(ko.kvs.iter().all(|kv| kv.value.is_empty() && kv.mod_revision > 0 && kv.version == 1));
    let co = s.range(RangeRequest { count_only: true, ..span(b"a", b"b") });
    assert_eq!((co.kvs.len(), co.count, co.more), (0, 3, false));
    let co_limited = s.range(RangeRequest { count_only: true, limit: 1, ..all_keys() });
    assert_eq!((co_limited.kvs.len(), co_limited.count), (0, 5));
}

#[test]
fn reads_at_past_revisions() {
    let s = Store::new();
    s.put(b"a", b"1");
    s.put(b"a", b"2");
    s.delete(b"a", b"");
    s.put(b"a", b"3");
    s.put(b"b", b"1");
    let at = |rev| s.get_at(b"a", rev).expect("readable").map(|kv| (kv.value, kv.version, kv.create_revision));
    assert_eq!(at(2), Some((b"1".to_vec(), 1, 2)));
    assert_eq!(at(3), Some((b"2".to_vec(), 2, 2)));
    assert_eq!(at(4), None);
    assert_eq!(at(5), Some((b"3".to_vec(), 1, 5)));
    assert_eq!(at(0), at(6));
    assert_eq!(at(-1), at(6));
    let old = s.range(RangeRequest { revision: 3, ..all_keys() });
    assert_eq!((keys(&old.kvs), old.count), (vec!["a".to_string()], 1));
    assert_eq!(revision(&old.header), 6, "the header holds the current revision, even for a historical read");
    assert_eq!(s.get_at(b"a", 7).err(), Some(Error::FutureRev));
}

/// One-key reads go through the in-memory map of each key's newest row when the read is at or
/// above that row, and seek otherwise; at every revision both must give what a plain model of
/// the history gives, before and after a restart (which rebuilds the map) and a compaction.
#[test]
fn one_key_reads_match_the_history_at_every_revision() {
    use std::collections::BTreeMap;
    type Values = BTreeMap<&'static [u8], Option<Vec<u8>>>;
    const NAMES: [&[u8]; 4] = [b"a", b"ab", b"b", b"longer-than-one-group-of-eight"];
    // Random puts, deletes and two-key txns (rows with sub-revisions 0 and 1), recorded in
    // `model`: per revision, every key's value then (None: absent).
    fn write(s: &Store, seed: &mut u64, steps: usize, now: &mut Values, model: &mut BTreeMap<i64, Values>) {
        for step in 0..steps {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let key = NAMES[(*seed >> 33) as usize % NAMES.len()];
            let value = format!("v{}-{step}", s.rev()).into_bytes();
            let before = s.rev();
            match (*seed >> 40) % 4 {
                0 => {
                    s.delete(key, b"");
                    now.insert(key, None);
                }
                1 => {
                    let other = NAMES[(NAMES.iter().position(|k| *k == key).expect("listed") + 1) % NAMES.len()];
                    s.txn(TxnRequest { success: vec![op_put(key, &value), op_put(other, &value)], ..Default::default() });
                    now.insert(key, Some(value.clone()));
                    now.insert(other, Some(value));
                }
                _ => {
                    s.put(key, &value);
                    now.insert(key, Some(value));
                }
            }
            if s.rev() != before {
                model.insert(s.rev(), now.clone());
            }
        }
    }
    fn check(s: &Store, model: &BTreeMap<i64, Values>, from: i64) {
        for (rev, values) in model.range(from..) {
            for (key, want) in values {
                let got = s.get_at(key, *rev).expect("readable").map(|kv| kv.value);
                assert_eq!(&got, want, "key {:?} at revision {rev}", String::from_utf8_lossy(key));
            }
        }
    }
    let s = Store::new();
    let mut now: Values = NAMES.iter().map(|k| (*k, None)).collect();
    let mut model = BTreeMap::from([(s.rev(), now.clone())]);
    let mut seed = 7u64;
    write(&s, &mut seed, 40, &mut now, &mut model);
    check(&s, &model, 0);
    // A restart rebuilds the map from the index; the writes after it must keep it current.
    let s = s.reopen();
    check(&s, &model, 0);
    write(&s, &mut seed, 40, &mut now, &mut model);
    check(&s, &model, 0);
    let compact_at = s.rev() - 10;
    s.one(compact(compact_at));
    write(&s, &mut seed, 20, &mut now, &mut model);
    check(&s, &model, compact_at);
}

/// Compaction removes a key whose newest row is a tombstone, from the index and from the map of
/// newest rows. A reader that took its view before, at a revision where the key was live,
/// must still find it: a key missing from the map proves nothing.
#[test]
fn a_view_from_before_a_compaction_still_reads_a_key_deleted_since() {
    let s = Store::new();
    s.put(b"a", b"1");
    s.delete(b"a", b"");
    s.put(b"b", b"1");
    let db = s.mvcc.db();
    let view = db.view();
    s.one(compact(3));
    assert_eq!(s.get(b"a"), None);
    assert!(!s.has_row(2), "compaction removed the old version");
    let old = super::super::read::range(&view, None, &single(b"a"), 2).expect("read through the older view");
    assert_eq!(old.kvs.iter().map(|kv| kv.value.clone()).collect::<Vec<_>>(), vec![b"1".to_vec()]);
}
