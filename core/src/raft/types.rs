//! The openraft type configuration: what a log entry carries and what applying it returns.

use cairn_proto::cairnpb::{CommandBatch, CommandResult, CommandResults};
use prost::Message;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

openraft::declare_raft_types!(
    /// Cairn's raft types: a log entry is a batch of etcd writes (group commit).
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = u64,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<u64>;
pub type StoredMembership = openraft::StoredMembership<u64, Member>;
pub type StorageError = openraft::StorageError<u64>;
pub type SnapshotMeta = openraft::SnapshotMeta<u64, Member>;

/// A member as raft knows it: its name and URLs travel in membership entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
}

/// The payload of a normal log entry: etcd's own request messages, protobuf-encoded on disk and
/// on the wire (the proto types are the domain model). Shared, so that handing an entry around
/// (a retry, openraft's own clones) never copies its commands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Proposal(pub std::sync::Arc<CommandBatch>);

/// What applying one entry returned: one result per command of the batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied(pub Vec<CommandResult>);

fn ser_proto<M: Message, S: Serializer>(m: &M, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(&m.encode_to_vec())
}

fn de_proto<'de, M: Message + Default, D: Deserializer<'de>>(d: D) -> Result<M, D::Error> {
    let bytes: Vec<u8> = serde_bytes_compat::deserialize(d)?;
    M::decode(bytes.as_slice()).map_err(serde::de::Error::custom)
}

impl Serialize for Proposal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ser_proto(self.0.as_ref(), s)
    }
}

impl<'de> Deserialize<'de> for Proposal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_proto(d).map(|batch| Proposal(std::sync::Arc::new(batch)))
    }
}

impl Serialize for Applied {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ser_proto(&CommandResults { results: self.0.clone() }, s)
    }
}

impl<'de> Deserialize<'de> for Applied {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de_proto::<CommandResults, D>(d).map(|r| Applied(r.results))
    }
}

/// Reads a byte string whether the format hands it over as bytes or as a sequence.
mod serde_bytes_compat {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    use std::fmt;

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a byte string")
        }
        fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::cairnpb::{command, Command};
    use cairn_proto::etcdserverpb::PutRequest;

    #[test]
    fn proposals_round_trip_through_bincode_and_json() {
        let put = PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() };
        let p = Proposal(std::sync::Arc::new(CommandBatch { commands: vec![Command { op: Some(command::Op::Put(put)) }], ..Default::default() }));
        let bin = bincode::serialize(&p).expect("encode");
        assert_eq!(bincode::deserialize::<Proposal>(&bin).expect("decode"), p);
        let json = serde_json::to_string(&p).expect("encode");
        assert_eq!(serde_json::from_str::<Proposal>(&json).expect("decode"), p);
    }
}
