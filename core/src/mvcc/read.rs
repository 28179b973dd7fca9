//! Reading the MVCC store at a revision: the key index gives, per user key, the newest
//! revision at or below the read revision; `kv_rev` gives the KeyValue stored there.

use std::collections::BTreeMap;

use cairn_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use cairn_proto::etcdserverpb::RangeRequest;
use cairn_proto::mvccpb::KeyValue;
use prost::Message;

use super::keys::KeyRange;
use super::overlay::Overlay;
use crate::error::{Error, Result};
use crate::storage::codec::{self, Revision, TAG_TOMBSTONE};
use crate::storage::{Lookup, StateRead};

/// A live key found at the read revision, before its value is fetched.
#[derive(Debug, Clone)]
enum Hit {
    Stored(Revision),
    Pending(KeyValue),
}

pub(crate) fn decode_kv(raw: &[u8]) -> Result<(u8, KeyValue)> {
    let (tag, body) = raw.split_first().ok_or_else(|| Error::Storage("empty kv_rev row".into()))?;
    let kv = KeyValue::decode(body).map_err(|e| Error::Storage(format!("corrupt kv_rev row: {e}")))?;
    Ok((*tag, kv))
}

/// Calls `f(user_key_escaped, revision)` for every key in `range` that is live at `rev`, in key
/// order, until `f` returns false.
fn scan_live<S: StateRead + ?Sized>(src: &S, range: &KeyRange, rev: i64, mut f: impl FnMut(&[u8], Revision) -> bool) -> Result<()> {
    if range.is_empty() {
        return Ok(());
    }
    // One key whose newest version is at or below `rev`: that version is the visible one, and
    // the map of newest rows knows it without a seek, as it knows (for the applier) a key that
    // has none. Otherwise (an older read, or a key the map cannot vouch for) the index decides.
    let single = range.is_single_key();
    if single {
        match src.newest(&range.start) {
            Lookup::Known(at, tag) if at.main <= rev => {
                if tag != TAG_TOMBSTONE {
                    f(&codec::escaped(&range.start), at);
                }
                return Ok(());
            }
            Lookup::Absent => return Ok(()),
            Lookup::Known(..) | Lookup::Unknown => {}
        }
    }
    let upper = range.end.as_deref().map(codec::escaped);
    let mut cursor = src.index_cursor(upper);
    cursor.seek(&codec::escaped(&range.start));
    // The escaped key whose visible version was decided; its older versions are skipped. A hot
    // key can have many versions, so skipping seeks past them rather than stepping through.
    let mut decided: Option<Vec<u8>> = None;
    // One key has one visible version: once it is decided there is nothing left to step over.
    while let Some((raw, tag)) = cursor.current() {
        let (esc, at) = codec::split_index_key(raw).ok_or_else(|| Error::Storage("corrupt key_index row".into()))?;
        if decided.as_deref() == Some(esc) {
            let past = codec::index_key_after(esc);
            cursor.seek(&past);
            continue;
        }
        if at.main > rev {
            // Newer than the read revision: jump to this key's newest version at or below it.
            let target = codec::index_key_at(esc, rev);
            cursor.seek(&target);
            continue;
        }
        let live = tag != TAG_TOMBSTONE;
        if (live && !f(esc, at)) || single {
            return Ok(());
        }
        decided = Some(esc.to_vec());
        cursor.next();
    }
    cursor.status()
}

fn unescape(esc: &[u8]) -> Result<Vec<u8>> {
    codec::unescape_key(esc).ok_or_else(|| Error::Storage("corrupt key_index key".into()))
}

/// Live keys with where their values are.
type Hits = Vec<(Vec<u8>, Hit)>;

/// The live keys of `range` at `rev` as `(key, hit)`, merged with the writes pending in the
/// apply batch (if any). At most `limit` hits are collected when `limit > 0`; the total is
/// always counted.
fn collect<S: StateRead + ?Sized>(src: &S, overlay: Option<&Overlay>, range: &KeyRange, rev: i64, limit: usize) -> Result<(Hits, usize)> {
    let pending = overlay.filter(|o| o.touches(range, rev));
    let Some(overlay) = pending else {
        let mut hits = Vec::new();
        let mut total = 0usize;
        let mut failed = None;
        scan_live(src, range, rev, |esc, at| {
            total += 1;
            if limit == 0 || hits.len() < limit {
                match unescape(esc) {
                    Ok(key) => hits.push((key, Hit::Stored(at))),
                    Err(e) => {
                        failed = Some(e);
                        return false;
                    }
                }
            }
            true
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        return Ok((hits, total));
    };
    let mut merged: BTreeMap<Vec<u8>, Hit> = BTreeMap::new();
    let mut failed = None;
    scan_live(src, range, rev, |esc, at| match unescape(esc) {
        Ok(key) => {
            merged.insert(key, Hit::Stored(at));
            true
        }
        Err(e) => {
            failed = Some(e);
            false
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    for (key, visible) in overlay.visible_in(range, rev) {
        match visible {
            Some(kv) => merged.insert(key.clone(), Hit::Pending(kv.clone())),
            None => merged.remove(key),
        };
    }
    let total = merged.len();
    let hits = merged.into_iter().take(if limit == 0 { usize::MAX } else { limit }).collect();
    Ok((hits, total))
}

fn fetch<S: StateRead + ?Sized>(src: &S, hits: Hits) -> Result<Vec<KeyValue>> {
    let revs: Vec<Revision> = hits.iter().filter_map(|(_, h)| if let Hit::Stored(r) = h { Some(*r) } else { None }).collect();
    // RocksDB's MultiGet sets up a batch even for one key; a plain Get costs half as much.
    let stored = match revs.as_slice() {
        [rev] => vec![src.kv_get(*rev)?],
        _ => src.kv_multi_get(&revs)?,
    };
    let mut stored = stored.into_iter();
    hits.into_iter()
        .map(|(_, hit)| match hit {
            Hit::Pending(kv) => Ok(kv),
            Hit::Stored(rev) => {
                let raw = stored.next().flatten().ok_or_else(|| Error::Storage(format!("kv_rev row {rev:?} missing")))?;
                Ok(decode_kv(&raw)?.1)
            }
        })
        .collect()
}

/// Every live KeyValue of `range` at `rev`.
pub(crate) fn live_kvs<S: StateRead + ?Sized>(src: &S, overlay: Option<&Overlay>, range: &KeyRange, rev: i64) -> Result<Vec<KeyValue>> {
    let (hits, _) = collect(src, overlay, range, rev, 0)?;
    fetch(src, hits)
}

/// The live KeyValue of `key` at `rev`.
pub(crate) fn get<S: StateRead + ?Sized>(src: &S, overlay: Option<&Overlay>, key: &[u8], rev: i64) -> Result<Option<KeyValue>> {
    if let Some(visible) = overlay.and_then(|o| o.visible(key, rev)) {
        return Ok(visible.cloned());
    }
    Ok(live_kvs(src, None, &KeyRange::new(key, b""), rev)?.pop())
}

/// What a Range returns before the header is filled in.
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    pub more: bool,
    pub count: i64,
}

/// etcd's Range at a resolved revision, including its quirks (reference/etcd-api.md §1.2): the
/// limit is applied after filters and sorting, and `count` ignores both.
pub(crate) fn range<S: StateRead + ?Sized>(src: &S, overlay: Option<&Overlay>, req: &RangeRequest, rev: i64) -> Result<RangeResult> {
    let range = KeyRange::new(&req.key, &req.range_end);
    let order = SortOrder::try_from(req.sort_order).map_err(|_| Error::InvalidSortOption)?;
    let target = SortTarget::try_from(req.sort_target).map_err(|_| Error::InvalidSortOption)?;
    let filtered = req.min_mod_revision != 0 || req.max_mod_revision != 0 || req.min_create_revision != 0 || req.max_create_revision != 0;
    let user_limit = usize::try_from(req.limit.max(0)).unwrap_or(usize::MAX);
    // Like etcd: only the default order without filters can stop reading early (at limit + 1).
    let scan_limit = if order != SortOrder::None || filtered || user_limit == 0 { 0 } else { user_limit.saturating_add(1) };
    if req.count_only {
        let (_, total) = collect(src, overlay, &range, rev, 1)?;
        return Ok(RangeResult { kvs: Vec::new(), more: false, count: total as i64 });
    }
    let (hits, total) = collect(src, overlay, &range, rev, scan_limit)?;
    let mut kvs = fetch(src, hits)?;
    if filtered {
        kvs.retain(|kv| {
            (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
                && (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
                && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
                && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
        });
    }
    let order = if order == SortOrder::None && target != SortTarget::Key { SortOrder::Ascend } else { order };
    if order != SortOrder::None {
        sort(&mut kvs, target, order);
    }
    let more = user_limit > 0 && kvs.len() > user_limit;
    if more {
        kvs.truncate(user_limit);
    }
    if req.keys_only {
        kvs.iter_mut().for_each(|kv| kv.value.clear());
    }
    Ok(RangeResult { kvs, more, count: total as i64 })
}

fn sort(kvs: &mut [KeyValue], target: SortTarget, order: SortOrder) {
    // A stable sort keeps key order among equal targets, as etcd's sort.Stable does.
    match target {
        SortTarget::Key => kvs.sort_by(|a, b| a.key.cmp(&b.key)),
        SortTarget::Version => kvs.sort_by_key(|kv| kv.version),
        SortTarget::Create => kvs.sort_by_key(|kv| kv.create_revision),
        SortTarget::Mod => kvs.sort_by_key(|kv| kv.mod_revision),
        SortTarget::Value => kvs.sort_by(|a, b| a.value.cmp(&b.value)),
    }
    if order == SortOrder::Descend {
        kvs.reverse();
    }
}
