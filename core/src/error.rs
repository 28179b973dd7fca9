//! core's one error type. The gateway maps each variant to etcd's gRPC code and message
//! (reference/etcd-api.md §4); `code()` is the stable number used when an error crosses the
//! peer wire inside a forwarded proposal.

use cairn_proto::cairnpb::CommandError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("key is not provided")]
    KeyNotProvided,
    #[error("key not found")]
    KeyNotFound,
    #[error("value is provided")]
    ValueProvided,
    #[error("lease is provided")]
    LeaseProvided,
    #[error("too many operations in txn request")]
    TooManyOps,
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    #[error("required revision has been compacted")]
    Compacted,
    #[error("required revision is a future revision")]
    FutureRev,
    #[error("requested lease not found")]
    LeaseNotFound,
    #[error("lease already exists")]
    LeaseExists,
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("request is too large")]
    RequestTooLarge,
    #[error("invalid sort option")]
    InvalidSortOption,
    #[error("no leader")]
    NoLeader,
    #[error("not leader")]
    NotLeader,
    #[error("leader changed")]
    LeaderChanged,
    #[error("request timed out")]
    Timeout,
    #[error("server stopped")]
    Stopped,
    #[error("database space exceeded")]
    NoSpace,
    #[error("member not found")]
    MemberNotFound,
    #[error("peer URLs already exists")]
    PeerUrlExists,
    #[error("can only promote a learner member")]
    MemberNotLearner,
    #[error("can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("too many learner members in cluster")]
    TooManyLearners,
    #[error("rpc not supported for learner")]
    NotSupportedForLearner,
    #[error("given member URLs are invalid")]
    InvalidMemberUrls,
    #[error("bad leader transferee")]
    BadLeaderTransferee,
    #[error("storage: {0}")]
    Storage(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn code(&self) -> u32 {
        match self {
            Error::KeyNotProvided => 1,
            Error::KeyNotFound => 2,
            Error::ValueProvided => 3,
            Error::LeaseProvided => 4,
            Error::TooManyOps => 5,
            Error::DuplicateKey => 6,
            Error::Compacted => 7,
            Error::FutureRev => 8,
            Error::LeaseNotFound => 9,
            Error::LeaseExists => 10,
            Error::LeaseTtlTooLarge => 11,
            Error::RequestTooLarge => 12,
            Error::InvalidSortOption => 13,
            Error::NoLeader => 14,
            Error::NotLeader => 15,
            Error::LeaderChanged => 16,
            Error::Timeout => 17,
            Error::Stopped => 18,
            Error::Storage(_) => 19,
            Error::Internal(_) => 20,
            Error::NoSpace => 21,
            Error::MemberNotFound => 22,
            Error::PeerUrlExists => 23,
            Error::MemberNotLearner => 24,
            Error::LearnerNotReady => 25,
            Error::TooManyLearners => 26,
            Error::NotSupportedForLearner => 27,
            Error::InvalidMemberUrls => 28,
            Error::BadLeaderTransferee => 29,
        }
    }

    pub fn to_wire(&self) -> CommandError {
        let detail = match self {
            Error::Storage(d) | Error::Internal(d) => d.clone(),
            _ => String::new(),
        };
        CommandError { code: self.code(), detail }
    }

    pub fn from_wire(e: &CommandError) -> Error {
        match e.code {
            1 => Error::KeyNotProvided,
            2 => Error::KeyNotFound,
            3 => Error::ValueProvided,
            4 => Error::LeaseProvided,
            5 => Error::TooManyOps,
            6 => Error::DuplicateKey,
            7 => Error::Compacted,
            8 => Error::FutureRev,
            9 => Error::LeaseNotFound,
            10 => Error::LeaseExists,
            11 => Error::LeaseTtlTooLarge,
            12 => Error::RequestTooLarge,
            13 => Error::InvalidSortOption,
            14 => Error::NoLeader,
            15 => Error::NotLeader,
            16 => Error::LeaderChanged,
            17 => Error::Timeout,
            18 => Error::Stopped,
            19 => Error::Storage(e.detail.clone()),
            21 => Error::NoSpace,
            22 => Error::MemberNotFound,
            23 => Error::PeerUrlExists,
            24 => Error::MemberNotLearner,
            25 => Error::LearnerNotReady,
            26 => Error::TooManyLearners,
            27 => Error::NotSupportedForLearner,
            28 => Error::InvalidMemberUrls,
            29 => Error::BadLeaderTransferee,
            _ => Error::Internal(e.detail.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_survives_the_wire() {
        let all = [
            Error::KeyNotProvided, Error::KeyNotFound, Error::ValueProvided, Error::LeaseProvided, Error::TooManyOps,
            Error::DuplicateKey, Error::Compacted, Error::FutureRev, Error::LeaseNotFound, Error::LeaseExists,
            Error::LeaseTtlTooLarge, Error::RequestTooLarge, Error::InvalidSortOption, Error::NoLeader, Error::NotLeader,
            Error::LeaderChanged, Error::Timeout, Error::Stopped, Error::Storage("disk".into()), Error::Internal("bug".into()),
            Error::NoSpace, Error::MemberNotFound, Error::PeerUrlExists, Error::MemberNotLearner, Error::LearnerNotReady,
            Error::TooManyLearners, Error::NotSupportedForLearner, Error::InvalidMemberUrls, Error::BadLeaderTransferee,
        ];
        for e in all {
            assert_eq!(Error::from_wire(&e.to_wire()), e);
        }
    }
}
