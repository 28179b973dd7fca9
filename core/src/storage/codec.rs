//! Byte layouts of the state database.
//!
//! `kv_rev` keys are etcd's revision layout: 8-byte big-endian main, 8-byte big-endian sub, so
//! a scan in key order is a scan in revision order. `key_index` keys are the user key in a
//! memcomparable escaping (TiKV's 8-byte groups, so that "a" and "a\0" stay apart and order is
//! preserved) followed by the inverted revision, so the newest version of a key comes first.

/// A revision: `main` counts change sets, `sub` orders the changes inside one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    pub const fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }
}

pub const REV_KEY_LEN: usize = 16;

pub fn rev_key(rev: Revision) -> [u8; REV_KEY_LEN] {
    let mut out = [0u8; REV_KEY_LEN];
    out[..8].copy_from_slice(&(rev.main as u64).to_be_bytes());
    out[8..].copy_from_slice(&(rev.sub as u64).to_be_bytes());
    out
}

pub fn decode_rev_key(key: &[u8]) -> Option<Revision> {
    if key.len() != REV_KEY_LEN {
        return None;
    }
    let main = u64::from_be_bytes(key[..8].try_into().ok()?) as i64;
    let sub = u64::from_be_bytes(key[8..].try_into().ok()?) as i64;
    Some(Revision { main, sub })
}

const GROUP: usize = 8;
const MARKER: u8 = 0xFF;

/// Appends the memcomparable escaping of `key` to `out`.
pub fn escape_key(key: &[u8], out: &mut Vec<u8>) {
    out.reserve((key.len() / GROUP + 1) * (GROUP + 1));
    let mut chunks = key.chunks_exact(GROUP);
    for chunk in &mut chunks {
        out.extend_from_slice(chunk);
        out.push(MARKER);
    }
    let rest = chunks.remainder();
    out.extend_from_slice(rest);
    out.extend(std::iter::repeat_n(0u8, GROUP - rest.len()));
    out.push(MARKER - (GROUP - rest.len()) as u8);
}

pub fn escaped(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    escape_key(key, &mut out);
    out
}

/// Decodes an escaped key; returns `None` if the bytes are not a valid escaping.
pub fn unescape_key(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    for group in data.chunks(GROUP + 1) {
        if group.len() != GROUP + 1 {
            return None;
        }
        let marker = group[GROUP];
        if marker == MARKER {
            out.extend_from_slice(&group[..GROUP]);
            continue;
        }
        let pad = (MARKER - marker) as usize;
        if pad > GROUP {
            return None;
        }
        out.extend_from_slice(&group[..GROUP - pad]);
        return Some(out);
    }
    None
}

/// `key_index` key: escaped user key, then the revision inverted so newer sorts first.
pub fn index_key(key: &[u8], rev: Revision) -> Vec<u8> {
    let mut out = escaped(key);
    out.extend_from_slice(&(!(rev.main as u64)).to_be_bytes());
    out.extend_from_slice(&(!(rev.sub as u64)).to_be_bytes());
    out
}

/// Splits a `key_index` key into its escaped user key and revision.
pub fn split_index_key(raw: &[u8]) -> Option<(&[u8], Revision)> {
    if raw.len() < REV_KEY_LEN + GROUP + 1 {
        return None;
    }
    let (esc, rev) = raw.split_at(raw.len() - REV_KEY_LEN);
    let main = !u64::from_be_bytes(rev[..8].try_into().ok()?) as i64;
    let sub = !u64::from_be_bytes(rev[8..].try_into().ok()?) as i64;
    Some((esc, Revision { main, sub }))
}

/// The index key at which the versions of the escaped key `esc` with `main <= rev` begin.
pub fn index_key_at(esc: &[u8], rev: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(esc.len() + REV_KEY_LEN);
    out.extend_from_slice(esc);
    out.extend_from_slice(&(!(rev as u64)).to_be_bytes());
    out.extend_from_slice(&[0u8; 8]);
    out
}

/// The smallest index key that sorts after every version of the escaped key `esc`.
pub fn index_key_after(esc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(esc.len() + REV_KEY_LEN + 1);
    out.extend_from_slice(esc);
    out.extend_from_slice(&[0xFF; REV_KEY_LEN]);
    out.push(0);
    out
}

/// Value tags in `kv_rev` and `key_index`.
pub const TAG_PUT: u8 = 0;
pub const TAG_TOMBSTONE: u8 = 1;

pub fn u64_bytes(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub fn read_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_keeps_order() {
        let keys: Vec<&[u8]> = vec![b"", b"\0", b"a", b"a\0", b"a\0\0", b"ab", b"abcdefgh", b"abcdefgh\0", b"abcdefghi", b"b", b"\xff\xff"];
        for pair in keys.windows(2) {
            assert!(escaped(pair[0]) < escaped(pair[1]), "{:?} < {:?}", pair[0], pair[1]);
        }
        for k in keys {
            assert_eq!(unescape_key(&escaped(k)).as_deref(), Some(k));
        }
    }

    #[test]
    fn index_keys_put_newer_revisions_first() {
        let old = index_key(b"k", Revision::new(5, 0));
        let new = index_key(b"k", Revision::new(7, 1));
        assert!(new < old);
        let (esc, rev) = split_index_key(&new).expect("valid");
        assert_eq!(esc, escaped(b"k").as_slice());
        assert_eq!(rev, Revision::new(7, 1));
        assert!(index_key_after(esc) > old);
        assert!(index_key_after(esc) < index_key(b"k\0", Revision::new(9, 0)));
        // Seeking to `index_key_at(k, 6)` skips version 7 and lands on version 5.
        let at = index_key_at(esc, 6);
        assert!(new < at && at <= old);
        assert!(index_key_at(esc, 7) <= new);
    }

    #[test]
    fn rev_keys_sort_by_revision() {
        assert!(rev_key(Revision::new(2, 9)) < rev_key(Revision::new(3, 0)));
        assert_eq!(decode_rev_key(&rev_key(Revision::new(42, 3))), Some(Revision::new(42, 3)));
    }
}
