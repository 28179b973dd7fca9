//! Key ranges as etcd clients send them (reference/etcd-api.md §1.1).

/// `[start, end)`; `end == None` means every key from `start` on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyRange {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// Interprets etcd's `(key, range_end)` pair: empty `range_end` is the single key, `"\0"` is
    /// every key from `key` on.
    pub fn new(key: &[u8], range_end: &[u8]) -> KeyRange {
        let end = match range_end {
            [] => Some(single_key_end(key)),
            [0] => None,
            end => Some(end.to_vec()),
        };
        KeyRange { start: key.to_vec(), end }
    }

    pub fn is_empty(&self) -> bool {
        matches!(&self.end, Some(end) if end.as_slice() <= self.start.as_slice())
    }

    /// Whether the range is exactly one key.
    pub fn is_single_key(&self) -> bool {
        matches!(&self.end, Some(end) if end.len() == self.start.len() + 1 && end.starts_with(&self.start) && end.last() == Some(&0))
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }

    /// Whether two ranges share a key.
    pub fn overlaps(&self, other: &KeyRange) -> bool {
        let starts_before_end = |r: &KeyRange, s: &[u8]| r.end.as_deref().is_none_or(|e| s < e);
        !self.is_empty() && !other.is_empty() && starts_before_end(self, &other.start) && starts_before_end(other, &self.start)
    }
}

/// The smallest key greater than `key` ("key\0"): the exclusive end of a single-key range.
fn single_key_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    end.push(0);
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_range_forms() {
        let single = KeyRange::new(b"a", b"");
        assert!(single.contains(b"a") && !single.contains(b"a\0") && !single.contains(b"b"));
        let prefix = KeyRange::new(b"a", b"b");
        assert!(prefix.contains(b"a") && prefix.contains(b"azz") && !prefix.contains(b"b"));
        let from = KeyRange::new(b"m", b"\0");
        assert!(from.contains(b"zzz") && !from.contains(b"l"));
        let all = KeyRange::new(b"\0", b"\0");
        assert!(all.contains(b"\0") && all.contains(b"\xff"));
        assert!(KeyRange::new(b"b", b"a").is_empty());
        assert!(KeyRange::new(b"a", b"c").overlaps(&KeyRange::new(b"b", b"")));
        assert!(!KeyRange::new(b"a", b"b").overlaps(&KeyRange::new(b"b", b"")));
    }
}
