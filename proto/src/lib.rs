//! `cairn-proto`: the protobuf and gRPC definitions Cairn speaks.
//!
//! The etcd v3 client API (`etcdserverpb`, `mvccpb`, `authpb`, `v3lockpb`, `v3electionpb`),
//! wire-compatible with etcd 3.5, Cairn's own peer service (`cairnpb`) and its browser service (`browserpb`). Every module
//! holds prost messages plus tonic servers (`<service>_server`) and clients
//! (`<service>_client`). The modules sit at the crate root, named after their protobuf
//! packages, so that generated cross-package paths such as `super::mvccpb::KeyValue` resolve.

pub mod codec;

/// Multi-version key-value records: `KeyValue`, `Event`.
pub mod mvccpb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("mvccpb");
}

/// Users, roles and permissions.
pub mod authpb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("authpb");
}

/// The etcd v3 API: services KV, Watch, Lease, Cluster, Maintenance, Auth.
pub mod etcdserverpb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("etcdserverpb");
}

/// The etcd v3 lock service.
pub mod v3lockpb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("v3lockpb");
}

/// The etcd v3 election service.
pub mod v3electionpb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("v3electionpb");
}

/// Cairn's peer (member-to-member) service: raft traffic, forwarded writes, read index.
pub mod cairnpb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("cairnpb");
}

/// Cairn's browser service: server-streaming Watch and lease KeepAlive for grpc-web.
pub mod browserpb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("browserpb");
}

/// Encoded `google.protobuf.FileDescriptorSet` of every `.proto` in this crate (for the JSON
/// gateway and reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/cairn_descriptor.bin"));

#[cfg(test)]
mod tests {
    //! Wire facts etcd clients depend on: field tags and enum values must match etcd 3.5.

    use super::{authpb, etcdserverpb as pb, mvccpb};
    use prost::Message;

    /// True if `needle` occurs in `haystack` as a contiguous byte run.
    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn compare_range_end_is_field_64() {
        let cmp = pb::Compare {
            range_end: b"z".to_vec(),
            ..Default::default()
        };
        // Tag (64 << 3) | 2 = 514 = varint [0x82, 0x04], then length 1, then "z".
        assert_eq!(cmp.encode_to_vec(), vec![0x82, 0x04, 0x01, b'z']);
    }

    #[test]
    fn compare_target_union_tags_and_enums() {
        let cmp = pb::Compare {
            result: pb::compare::CompareResult::NotEqual as i32,
            target: pb::compare::CompareTarget::Mod as i32,
            key: b"k".to_vec(),
            range_end: vec![],
            target_union: Some(pb::compare::TargetUnion::ModRevision(7)),
        };
        assert_eq!(
            cmp.encode_to_vec(),
            vec![0x08, 0x03, 0x10, 0x02, 0x1a, 0x01, b'k', 0x30, 0x07]
        );
        let lease = pb::Compare {
            target: pb::compare::CompareTarget::Lease as i32,
            target_union: Some(pb::compare::TargetUnion::Lease(1)),
            ..Default::default()
        };
        assert_eq!(lease.encode_to_vec(), vec![0x10, 0x04, 0x40, 0x01]);
        let value = pb::Compare {
            target_union: Some(pb::compare::TargetUnion::Value(b"v".to_vec())),
            ..Default::default()
        };
        assert_eq!(value.encode_to_vec(), vec![0x3a, 0x01, b'v']);
    }

    #[test]
    fn watch_response_events_is_field_11() {
        let resp = pb::WatchResponse {
            events: vec![mvccpb::Event {
                r#type: mvccpb::event::EventType::Delete as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        // Tag (11 << 3) | 2 = 0x5a; the event is [type=1] = [0x08, 0x01].
        assert_eq!(resp.encode_to_vec(), vec![0x5a, 0x02, 0x08, 0x01]);
        let back = pb::WatchResponse::decode(&[0x5a, 0x02, 0x08, 0x01][..]).expect("decode");
        assert_eq!(back.events.len(), 1);
        assert_eq!(back.events[0].r#type(), mvccpb::event::EventType::Delete);
    }

    #[test]
    fn watch_request_oneof_tags() {
        let progress = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::ProgressRequest(
                pb::WatchProgressRequest {},
            )),
        };
        assert_eq!(progress.encode_to_vec(), vec![0x1a, 0x00]);
        let cancel = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CancelRequest(
                pb::WatchCancelRequest { watch_id: 3 },
            )),
        };
        assert_eq!(cancel.encode_to_vec(), vec![0x12, 0x02, 0x08, 0x03]);
        let create = pb::WatchCreateRequest {
            filters: vec![pb::watch_create_request::FilterType::Nodelete as i32],
            prev_kv: true,
            watch_id: 9,
            fragment: true,
            ..Default::default()
        };
        // filters is packed (proto3 repeated enum): tag 5 wire type 2.
        assert_eq!(
            create.encode_to_vec(),
            vec![0x2a, 0x01, 0x01, 0x30, 0x01, 0x38, 0x09, 0x40, 0x01]
        );
    }

    #[test]
    fn range_request_sort_enums() {
        use pb::range_request::{SortOrder, SortTarget};
        assert_eq!(SortOrder::None as i32, 0);
        assert_eq!(SortOrder::Ascend as i32, 1);
        assert_eq!(SortOrder::Descend as i32, 2);
        assert_eq!(SortTarget::Key as i32, 0);
        assert_eq!(SortTarget::Version as i32, 1);
        assert_eq!(SortTarget::Create as i32, 2);
        assert_eq!(SortTarget::Mod as i32, 3);
        assert_eq!(SortTarget::Value as i32, 4);
        let req = pb::RangeRequest {
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Mod as i32,
            max_create_revision: 1,
            ..Default::default()
        };
        assert_eq!(req.encode_to_vec(), vec![0x28, 0x02, 0x30, 0x03, 0x68, 0x01]);
    }

    #[test]
    fn txn_oneof_tags() {
        let put = pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest::default())),
        };
        assert_eq!(put.encode_to_vec(), vec![0x12, 0x00]);
        let txn = pb::RequestOp {
            request: Some(pb::request_op::Request::RequestTxn(pb::TxnRequest::default())),
        };
        assert_eq!(txn.encode_to_vec(), vec![0x22, 0x00]);
        let del = pb::ResponseOp {
            response: Some(pb::response_op::Response::ResponseDeleteRange(
                pb::DeleteRangeResponse::default(),
            )),
        };
        assert_eq!(del.encode_to_vec(), vec![0x1a, 0x00]);
    }

    #[test]
    fn lease_auth_hash_snapshot_fields() {
        let ka = pb::LeaseKeepAliveResponse {
            header: None,
            id: 1,
            ttl: 5,
        };
        assert_eq!(ka.encode_to_vec(), vec![0x10, 0x01, 0x18, 0x05]);
        let auth = pb::AuthenticateResponse {
            header: None,
            token: "t".into(),
        };
        assert_eq!(auth.encode_to_vec(), vec![0x12, 0x01, b't']);
        let hash = pb::HashKvResponse {
            header: None,
            hash: 1,
            compact_revision: 2,
        };
        assert_eq!(hash.encode_to_vec(), vec![0x10, 0x01, 0x18, 0x02]);
        let snap = pb::SnapshotResponse {
            header: None,
            remaining_bytes: 4,
            blob: b"b".to_vec(),
        };
        assert_eq!(snap.encode_to_vec(), vec![0x10, 0x04, 0x1a, 0x01, b'b']);
        let status = pb::StatusResponse {
            is_learner: true,
            ..Default::default()
        };
        assert_eq!(status.encode_to_vec(), vec![0x50, 0x01]);
        let list = pb::MemberListRequest { linearizable: true };
        assert_eq!(list.encode_to_vec(), vec![0x08, 0x01]);
    }

    #[test]
    fn alarm_and_auth_enums() {
        assert_eq!(pb::AlarmType::None as i32, 0);
        assert_eq!(pb::AlarmType::Nospace as i32, 1);
        assert_eq!(pb::AlarmType::Corrupt as i32, 2);
        assert_eq!(pb::alarm_request::AlarmAction::Get as i32, 0);
        assert_eq!(pb::alarm_request::AlarmAction::Activate as i32, 1);
        assert_eq!(pb::alarm_request::AlarmAction::Deactivate as i32, 2);
        assert_eq!(authpb::permission::Type::Readwrite as i32, 2);
        assert_eq!(mvccpb::event::EventType::Put as i32, 0);
    }

    #[test]
    fn file_descriptor_set_is_present() {
        assert!(!super::FILE_DESCRIPTOR_SET.is_empty());
        for name in [
            &b"etcdserverpb/rpc.proto"[..],
            b"mvccpb/kv.proto",
            b"authpb/auth.proto",
            b"v3lockpb/v3lock.proto",
            b"v3electionpb/v3election.proto",
            b"cairnpb/raft.proto",
            b"browserpb/browser.proto",
        ] {
            assert!(contains(super::FILE_DESCRIPTOR_SET, name));
        }
    }
}
