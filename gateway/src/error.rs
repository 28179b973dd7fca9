//! The one table from core errors to etcd's gRPC codes and exact messages
//! (reference/etcd-api.md §4). Clients match on these strings.

use cairn_core::Error;
use tonic::{Code, Status};

pub fn status(e: Error) -> Status {
    let (code, message): (Code, &str) = match &e {
        Error::KeyNotProvided => (Code::InvalidArgument, "etcdserver: key is not provided"),
        Error::KeyNotFound => (Code::InvalidArgument, "etcdserver: key not found"),
        Error::ValueProvided => (Code::InvalidArgument, "etcdserver: value is provided"),
        Error::LeaseProvided => (Code::InvalidArgument, "etcdserver: lease is provided"),
        Error::TooManyOps => (Code::InvalidArgument, "etcdserver: too many operations in txn request"),
        Error::DuplicateKey => (Code::InvalidArgument, "etcdserver: duplicate key given in txn request"),
        Error::Compacted => (Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted"),
        Error::FutureRev => (Code::OutOfRange, "etcdserver: mvcc: required revision is a future revision"),
        Error::LeaseNotFound => (Code::NotFound, "etcdserver: requested lease not found"),
        Error::LeaseExists => (Code::FailedPrecondition, "etcdserver: lease already exists"),
        Error::LeaseTtlTooLarge => (Code::OutOfRange, "etcdserver: too large lease TTL"),
        Error::RequestTooLarge => (Code::InvalidArgument, "etcdserver: request is too large"),
        Error::InvalidSortOption => (Code::InvalidArgument, "etcdserver: invalid sort option"),
        Error::NoLeader => (Code::Unavailable, "etcdserver: no leader"),
        Error::NotLeader => (Code::FailedPrecondition, "etcdserver: not leader"),
        Error::LeaderChanged => (Code::Unavailable, "etcdserver: leader changed"),
        Error::Timeout => (Code::Unavailable, "etcdserver: request timed out"),
        Error::Stopped => (Code::Unavailable, "etcdserver: server stopped"),
        Error::NoSpace => (Code::ResourceExhausted, "etcdserver: mvcc: database space exceeded"),
        Error::MemberNotFound => (Code::NotFound, "etcdserver: member not found"),
        Error::PeerUrlExists => (Code::FailedPrecondition, "etcdserver: Peer URLs already exists"),
        Error::MemberNotLearner => (Code::FailedPrecondition, "etcdserver: can only promote a learner member"),
        Error::LearnerNotReady => (Code::FailedPrecondition, "etcdserver: can only promote a learner member which is in sync with leader"),
        Error::TooManyLearners => (Code::FailedPrecondition, "etcdserver: too many learner members in cluster"),
        // etcd 3.5 answers this one with Unavailable (3.6: FailedPrecondition), etcd-api.md §4.
        Error::NotSupportedForLearner => (Code::Unavailable, "etcdserver: rpc not supported for learner"),
        Error::InvalidMemberUrls => (Code::InvalidArgument, "etcdserver: given member URLs are invalid"),
        Error::BadLeaderTransferee => (Code::FailedPrecondition, "etcdserver: bad leader transferee"),
        Error::Storage(_) | Error::Internal(_) => return Status::new(Code::Unknown, e.to_string()),
    };
    Status::new(code, message)
}

/// grpc-go's refusal of a message over the server's receive limit, which etcd clients see.
pub fn too_large(size: usize, limit: usize) -> Status {
    Status::new(Code::ResourceExhausted, format!("grpc: received message larger than max ({size} vs. {limit})"))
}

/// An RPC of etcd's API that a later Cairn version implements.
pub fn later(rpc: &str) -> Status {
    Status::unimplemented(format!("{rpc} is not implemented by this Cairn version"))
}
