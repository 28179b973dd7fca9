//! The checks behind `/health`, `/readyz`, `/livez` and the gRPC health service, as etcd runs
//! them (server/etcdserver/api/etcdhttp/health.go; reference/etcd-api.md §6.3).

use cairn_core::{Error, Node};
use cairn_proto::etcdserverpb::{AlarmType, RangeRequest};

use crate::error::status;

/// The key the read checks range over. etcd ranges over the empty key, which Cairn's Range
/// refuses; any key will do, and etcdctl's `endpoint health` reads this one.
const HEALTH_KEY: &[u8] = b"health";

/// `/health`: alarms (less those `excluded`, by name), then the leader (skipped when
/// `serializable`), then a one-key read. `Err` carries etcd's reason.
pub async fn health(node: &Node, excluded: &[String], serializable: bool) -> Result<(), String> {
    for alarm in node.mvcc().alarms() {
        let name = AlarmType::try_from(alarm.alarm).map_or("UNKNOWN", |t| t.as_str_name());
        if excluded.iter().any(|e| e == name) {
            continue;
        }
        return Err(match name {
            "NOSPACE" | "CORRUPT" => format!("ALARM {name}"),
            _ => "ALARM UNKNOWN".to_string(),
        });
    }
    if !serializable && node.leader().is_none() {
        return Err("RAFT NO LEADER".to_string());
    }
    read(node, serializable).await.map_err(|e| format!("RANGE ERROR:{e}"))
}

/// A keys-only read of at most one key, bounded by the request timeout as etcd bounds it, so
/// that a member without quorum answers instead of hanging.
pub async fn read(node: &Node, serializable: bool) -> Result<(), String> {
    let req = RangeRequest { key: HEALTH_KEY.to_vec(), limit: 1, keys_only: true, serializable, ..Default::default() };
    match tokio::time::timeout(node.config().request_timeout, node.range(req)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(status(e).message().to_string()),
        Err(_) => Err(status(Error::Timeout).message().to_string()),
    }
}

/// One named check of `/readyz` or `/livez`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    DataCorruption,
    SerializableRead,
    LinearizableRead,
    NonLearner,
}

impl Check {
    pub fn name(self) -> &'static str {
        match self {
            Check::DataCorruption => "data_corruption",
            Check::SerializableRead => "serializable_read",
            Check::LinearizableRead => "linearizable_read",
            Check::NonLearner => "non_learner",
        }
    }

    pub async fn run(self, node: &Node) -> Result<(), String> {
        match self {
            Check::DataCorruption => {
                let corrupt = node.mvcc().alarms().iter().any(|a| a.alarm == AlarmType::Corrupt as i32);
                if corrupt {
                    return Err(format!("alarm activated: {}", AlarmType::Corrupt.as_str_name()));
                }
                Ok(())
            }
            Check::SerializableRead => read(node, true).await,
            Check::LinearizableRead => read(node, false).await,
            Check::NonLearner if node.is_learner() => Err("not supported for learner".to_string()),
            Check::NonLearner => Ok(()),
        }
    }
}

/// etcd 3.6's `/readyz` checks, in the order Cairn reports them (etcd's order is random).
pub const READYZ: &[Check] = &[Check::DataCorruption, Check::SerializableRead, Check::LinearizableRead, Check::NonLearner];
/// etcd 3.6's `/livez` checks.
pub const LIVEZ: &[Check] = &[Check::SerializableRead];

/// What a probe answers: every check's line (`[+]name ok` or `[-]name failed: why`) and
/// whether all passed.
pub async fn probe(node: &Node, checks: impl IntoIterator<Item = Check>) -> (bool, String) {
    let mut ok = true;
    let mut report = String::new();
    for check in checks {
        match check.run(node).await {
            Ok(()) => report.push_str(&format!("[+]{} ok\n", check.name())),
            Err(e) => {
                ok = false;
                report.push_str(&format!("[-]{} failed: {e}\n", check.name()));
            }
        }
    }
    (ok, report)
}
