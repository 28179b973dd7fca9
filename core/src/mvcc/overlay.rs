//! Writes made by the apply batch that are not in RocksDB yet. One raft entry carries many
//! commands (group commit) and a Txn may read its own writes, so reads during apply look here
//! first. Every revision in the overlay is newer than everything in the database.

use std::collections::BTreeMap;

use cairn_proto::mvccpb::KeyValue;

use super::keys::KeyRange;

#[derive(Default)]
pub(crate) struct Overlay {
    /// Per key, its pending versions in revision order; `None` is a deletion.
    keys: BTreeMap<Vec<u8>, Vec<(i64, Option<KeyValue>)>>,
}

impl Overlay {
    pub fn record(&mut self, key: &[u8], main: i64, kv: Option<KeyValue>) {
        self.keys.entry(key.to_vec()).or_default().push((main, kv));
    }

    /// The pending state of `key` at `rev`: `None` if the overlay has no version at or below
    /// `rev` (the database decides), `Some(None)` if it was deleted.
    pub fn visible(&self, key: &[u8], rev: i64) -> Option<Option<&KeyValue>> {
        let versions = self.keys.get(key)?;
        versions.iter().rev().find(|(main, _)| *main <= rev).map(|(_, kv)| kv.as_ref())
    }

    pub fn visible_in<'a>(&'a self, range: &'a KeyRange, rev: i64) -> impl Iterator<Item = (&'a Vec<u8>, Option<&'a KeyValue>)> + 'a {
        self.in_range(range).filter_map(move |key| self.visible(key, rev).map(|v| (key, v)))
    }

    /// Whether any pending write is visible in `range` at `rev`.
    pub fn touches(&self, range: &KeyRange, rev: i64) -> bool {
        self.visible_in(range, rev).next().is_some()
    }

    fn in_range<'a>(&'a self, range: &'a KeyRange) -> impl Iterator<Item = &'a Vec<u8>> + 'a {
        let upper = match &range.end {
            Some(end) => std::ops::Bound::Excluded(end.clone()),
            None => std::ops::Bound::Unbounded,
        };
        let lower = std::ops::Bound::Included(range.start.clone());
        let iter: Box<dyn Iterator<Item = &Vec<u8>>> =
            if range.is_empty() { Box::new(std::iter::empty()) } else { Box::new(self.keys.range((lower, upper)).map(|(k, _)| k)) };
        iter
    }

    pub fn keys(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.keys.keys()
    }
}
