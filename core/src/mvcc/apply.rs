//! Applying committed commands: a pure function of the log and the state. Everything one call
//! to `apply` writes, the applied index included, goes into ONE RocksDB batch.

use std::collections::{BTreeMap, BTreeSet};

use cairn_proto::cairnpb::{command, command_result, Command, CommandResult, VoterIntent};
use cairn_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use cairn_proto::etcdserverpb::alarm_request::AlarmAction;
use cairn_proto::etcdserverpb::{
    request_op, response_op, AlarmMember, AlarmRequest, AlarmResponse, AlarmType, CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse,
    LeaseCheckpointRequest, LeaseCheckpointResponse, LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use cairn_proto::mvccpb::{event::EventType, Event, KeyValue};
use prost::Message;

use super::keys::KeyRange;
use super::overlay::Overlay;
use super::read;
use super::{Effects, LeaseChange};
use crate::error::{Error, Result};
use crate::lease::LeaseRow;
use crate::storage::codec::{self, Revision, TAG_PUT, TAG_TOMBSTONE};
use crate::storage::names::{META_ALARMS, META_COMPACT_REV, META_CURRENT_REV, META_PENDING_VOTERS};
use crate::storage::{StateBatch, StateDb, StateRead, Table};

/// Reads during apply see everything committed plus everything pending: no revision is newer.
const LATEST: i64 = i64::MAX;

pub(crate) fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader { revision, ..Default::default() })
}

pub(crate) fn lease_key(id: i64) -> [u8; 8] {
    (id as u64).to_be_bytes()
}

/// The keys the `lease_keys` table links to lease `id`.
pub(crate) fn linked_keys(db: &StateDb, id: i64) -> Result<Vec<Vec<u8>>> {
    let start = lease_key(id);
    // Links sort by the lease ID's bytes; -1 (all 0xFF) is the last prefix and has no end.
    let end = id.checked_add(1).filter(|next| *next != 0).map(lease_key);
    let mut keys = Vec::new();
    db.scan(Table::LeaseKeys, &start, end.as_ref().map(|e| &e[..]), |k, _| {
        keys.push(k[8..].to_vec());
        Ok(true)
    })?;
    Ok(keys)
}

fn lease_link(id: i64, key: &[u8]) -> Vec<u8> {
    let mut out = lease_key(id).to_vec();
    out.extend_from_slice(key);
    out
}

pub(crate) struct Applier<'a> {
    db: &'a StateDb,
    /// Where reads go: the live database during apply, a snapshot view for a read-only txn.
    reader: &'a dyn StateRead,
    /// The revision "now" means for reads.
    latest: i64,
    batch: StateBatch,
    overlay: Overlay,
    rev: i64,
    compact_rev: i64,
    /// Leases granted or checkpointed (`Some`) or revoked (`None`) in this batch.
    leases: BTreeMap<i64, Option<LeaseRow>>,
    /// What this batch did, for the watch hub and the lessor.
    effects: Effects,
    /// The active alarms; `alarms_changed` once a command in this batch changed them.
    alarms: Vec<AlarmMember>,
    alarms_changed: bool,
    /// The pending voters as this batch left them, once it touched them.
    pending_voters: Option<Vec<u64>>,
    /// A compaction to carry out physically once the batch is written.
    pub compaction: Option<i64>,
}

impl<'a> Applier<'a> {
    pub fn new(db: &'a StateDb, rev: i64, compact_rev: i64) -> Self {
        Applier {
            db,
            reader: db,
            latest: LATEST,
            batch: StateBatch::default(),
            overlay: Overlay::default(),
            rev,
            compact_rev,
            leases: BTreeMap::new(),
            effects: Effects::default(),
            alarms: Vec::new(),
            alarms_changed: false,
            pending_voters: None,
            compaction: None,
        }
    }

    /// The alarms active before this batch (they decide what it may write).
    pub fn with_alarms(mut self, alarms: Vec<AlarmMember>) -> Self {
        self.alarms = alarms;
        self
    }

    /// An applier that only reads, from `view` at revision `rev`: it serves read-only txns
    /// without the log, as etcd does. Its batch is never written.
    pub fn read_only(db: &'a StateDb, view: &'a dyn StateRead, rev: i64, compact_rev: i64) -> Self {
        Applier { reader: view, latest: rev, ..Applier::new(db, rev, compact_rev) }
    }

    pub fn put_meta(&mut self, key: &[u8], value: &[u8]) {
        self.db.put(&mut self.batch, Table::Meta, key, value);
    }

    /// The batch to write, with the revision it leaves the store at and what it did.
    pub fn finish(mut self) -> (StateBatch, Option<i64>, Effects) {
        let rev = self.rev;
        self.put_meta(META_CURRENT_REV, &codec::u64_bytes(rev as u64));
        self.put_meta(META_COMPACT_REV, &codec::u64_bytes(self.compact_rev as u64));
        self.effects.revision = rev;
        if self.alarms_changed {
            let encoded = AlarmResponse { header: None, alarms: self.alarms.clone() }.encode_to_vec();
            self.put_meta(META_ALARMS, &encoded);
            self.effects.alarms = Some(self.alarms.clone());
        }
        (self.batch, self.compaction, self.effects)
    }

    pub fn apply(&mut self, cmd: &Command) -> CommandResult {
        if self.no_space() && writes_data(cmd) {
            return CommandResult { result: Some(command_result::Result::Error(Error::NoSpace.to_wire())) };
        }
        crate::metrics::applied(cmd);
        let result = match &cmd.op {
            Some(command::Op::Put(req)) => self.put(req).map(command_result::Result::Put),
            Some(command::Op::DeleteRange(req)) => self.delete_range(req).map(command_result::Result::DeleteRange),
            Some(command::Op::Txn(req)) => self.txn(req).map(command_result::Result::Txn),
            Some(command::Op::Compaction(req)) => self.compact(req).map(command_result::Result::Compaction),
            Some(command::Op::LeaseGrant(req)) => self.lease_grant(req).map(command_result::Result::LeaseGrant),
            Some(command::Op::LeaseRevoke(req)) => self.lease_revoke(req).map(command_result::Result::LeaseRevoke),
            Some(command::Op::LeaseCheckpoint(req)) => self.lease_checkpoint(req).map(command_result::Result::LeaseCheckpoint),
            Some(command::Op::Alarm(req)) => Ok(command_result::Result::Alarm(self.alarm(req))),
            Some(command::Op::VoterIntent(intent)) => self.voter_intent(intent).map(command_result::Result::VoterIntent),
            None => Err(Error::Internal("empty command".into())),
        };
        let result = result.unwrap_or_else(|e| command_result::Result::Error(e.to_wire()));
        CommandResult { result: Some(result) }
    }

    /// Records (or clears) a member that was added as a voter and is promoted once caught up.
    fn voter_intent(&mut self, intent: &VoterIntent) -> Result<VoterIntent> {
        let mut pending = match self.pending_voters.take() {
            Some(pending) => pending,
            None => self.db.get(Table::Meta, META_PENDING_VOTERS)?.as_deref().map(super::decode_ids).unwrap_or_default(),
        };
        pending.retain(|id| *id != intent.id);
        if intent.pending {
            pending.push(intent.id);
        }
        let raw: Vec<u8> = pending.iter().flat_map(|id| id.to_be_bytes()).collect();
        self.put_meta(META_PENDING_VOTERS, &raw);
        self.pending_voters = Some(pending);
        Ok(*intent)
    }

    fn no_space(&self) -> bool {
        self.alarms.iter().any(|a| a.alarm == AlarmType::Nospace as i32)
    }

    /// Raises or clears an alarm; answers with the alarms it changed, as etcd does.
    fn alarm(&mut self, req: &AlarmRequest) -> AlarmResponse {
        let member = AlarmMember { member_id: req.member_id, alarm: req.alarm };
        let changed = match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Activate) if req.alarm != AlarmType::None as i32 && !self.alarms.contains(&member) => {
                self.alarms.push(member);
                vec![member]
            }
            Ok(AlarmAction::Deactivate) if self.alarms.contains(&member) => {
                self.alarms.retain(|a| *a != member);
                vec![member]
            }
            _ => Vec::new(),
        };
        self.alarms_changed |= !changed.is_empty();
        AlarmResponse { header: header(self.rev), alarms: changed }
    }

    fn latest(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        read::get(self.reader, Some(&self.overlay), key, self.latest)
    }

    fn lease_row(&self, id: i64) -> Result<Option<LeaseRow>> {
        if let Some(pending) = self.leases.get(&id) {
            return Ok(*pending);
        }
        self.db.get(Table::Lease, &lease_key(id))?.map(|raw| LeaseRow::decode(&raw)).transpose()
    }

    fn lease_exists(&self, id: i64) -> Result<bool> {
        Ok(self.lease_row(id)?.is_some())
    }

    fn write_lease(&mut self, id: i64, row: Option<LeaseRow>) {
        match row {
            Some(row) => self.db.put(&mut self.batch, Table::Lease, &lease_key(id), &row.encode()),
            None => self.db.delete(&mut self.batch, Table::Lease, &lease_key(id)),
        }
        self.leases.insert(id, row);
    }

    fn check_put(&self, req: &PutRequest) -> Result<()> {
        if (req.ignore_value || req.ignore_lease) && self.latest(&req.key)?.is_none() {
            return Err(Error::KeyNotFound);
        }
        if req.lease != 0 && !self.lease_exists(req.lease)? {
            return Err(Error::LeaseNotFound);
        }
        Ok(())
    }

    fn check_range(&self, req: &RangeRequest) -> Result<()> {
        if req.revision > self.rev {
            return Err(Error::FutureRev);
        }
        if req.revision > 0 && req.revision < self.compact_rev {
            return Err(Error::Compacted);
        }
        Ok(())
    }

    fn put(&mut self, req: &PutRequest) -> Result<PutResponse> {
        self.check_put(req)?;
        let main = self.rev + 1;
        let prev = self.write_put(main, &mut 0, req)?;
        self.rev = main;
        Ok(PutResponse { header: header(main), prev_kv: prev.filter(|_| req.prev_kv) })
    }

    fn write_put(&mut self, main: i64, sub: &mut i64, req: &PutRequest) -> Result<Option<KeyValue>> {
        let prev = self.latest(&req.key)?;
        let (create_revision, version) = match &prev {
            Some(p) => (p.create_revision, p.version + 1),
            None => (main, 1),
        };
        let value = match (&prev, req.ignore_value) {
            (Some(p), true) => p.value.clone(),
            _ => req.value.clone(),
        };
        let lease = match (&prev, req.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => req.lease,
        };
        let kv = KeyValue { key: req.key.clone(), create_revision, mod_revision: main, version, value, lease };
        let old_lease = prev.as_ref().map_or(0, |p| p.lease);
        if old_lease != 0 && old_lease != lease {
            self.db.delete(&mut self.batch, Table::LeaseKeys, &lease_link(old_lease, &req.key));
        }
        if lease != 0 {
            self.db.put(&mut self.batch, Table::LeaseKeys, &lease_link(lease, &req.key), &[]);
        }
        self.write_row(Revision::new(main, *sub), TAG_PUT, &kv);
        *sub += 1;
        self.overlay.record(&req.key, main, Some(kv.clone()));
        self.effects.events.push(Event { r#type: EventType::Put as i32, kv: Some(kv), prev_kv: prev.clone() });
        Ok(prev)
    }

    fn write_delete(&mut self, main: i64, sub: &mut i64, prev: &KeyValue) {
        if prev.lease != 0 {
            self.db.delete(&mut self.batch, Table::LeaseKeys, &lease_link(prev.lease, &prev.key));
        }
        let tombstone = KeyValue { key: prev.key.clone(), mod_revision: main, ..Default::default() };
        self.write_row(Revision::new(main, *sub), TAG_TOMBSTONE, &tombstone);
        *sub += 1;
        self.overlay.record(&prev.key, main, None);
        self.effects.events.push(Event { r#type: EventType::Delete as i32, kv: Some(tombstone), prev_kv: Some(prev.clone()) });
    }

    fn write_row(&mut self, rev: Revision, tag: u8, kv: &KeyValue) {
        let mut row = Vec::with_capacity(1 + kv.encoded_len());
        row.push(tag);
        kv.encode(&mut row).expect("a Vec grows as needed");
        self.db.put(&mut self.batch, Table::KvRev, &codec::rev_key(rev), &row);
        self.db.put_index(&mut self.batch, &kv.key, rev, tag);
    }

    fn delete_keys(&mut self, main: i64, sub: &mut i64, range: &KeyRange) -> Result<Vec<KeyValue>> {
        let doomed = read::live_kvs(self.reader, Some(&self.overlay), range, self.latest)?;
        for kv in &doomed {
            self.write_delete(main, sub, kv);
        }
        Ok(doomed)
    }

    fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        let main = self.rev + 1;
        let deleted = self.delete_keys(main, &mut 0, &KeyRange::new(&req.key, &req.range_end))?;
        if !deleted.is_empty() {
            self.rev = main;
        }
        Ok(DeleteRangeResponse {
            header: header(self.rev),
            deleted: deleted.len() as i64,
            prev_kvs: if req.prev_kv { deleted } else { Vec::new() },
        })
    }

    pub fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse> {
        // As etcd: every compare on the chosen path is evaluated against the state before the
        // txn, then the chosen ops are checked, then run (server/etcdserver/txn/txn.go).
        let mut path = Vec::new();
        self.compare_path(req, &mut path)?;
        self.check_path(req, &path, &mut 0)?;
        let begin = self.rev;
        let main = begin + 1;
        let mut sub = 0;
        let mut resp = self.exec_txn(req, &path, &mut 0, main, &mut sub)?;
        if sub > 0 {
            self.rev = main;
        }
        resp.header = header(self.rev);
        Ok(resp)
    }

    fn compare_path(&self, txn: &TxnRequest, path: &mut Vec<bool>) -> Result<()> {
        let mut succeeded = true;
        for cmp in &txn.compare {
            if !self.compare(cmp)? {
                succeeded = false;
                break;
            }
        }
        path.push(succeeded);
        let ops = if succeeded { &txn.success } else { &txn.failure };
        for op in ops {
            if let Some(request_op::Request::RequestTxn(nested)) = &op.request {
                self.compare_path(nested, path)?;
            }
        }
        Ok(())
    }

    fn compare(&self, cmp: &Compare) -> Result<bool> {
        let range = KeyRange::new(&cmp.key, &cmp.range_end);
        let kvs = read::live_kvs(self.reader, Some(&self.overlay), &range, self.latest)?;
        let target = CompareTarget::try_from(cmp.target).unwrap_or(CompareTarget::Version);
        if kvs.is_empty() {
            // A value cannot be missing on the wire, so a VALUE compare on no key always fails.
            return Ok(target != CompareTarget::Value && compare_kv(cmp, target, &KeyValue::default()));
        }
        Ok(kvs.iter().all(|kv| compare_kv(cmp, target, kv)))
    }

    fn check_path(&self, txn: &TxnRequest, path: &[bool], pos: &mut usize) -> Result<()> {
        let succeeded = path.get(*pos).copied().ok_or_else(|| Error::Internal("txn path".into()))?;
        *pos += 1;
        for op in if succeeded { &txn.success } else { &txn.failure } {
            match &op.request {
                Some(request_op::Request::RequestRange(r)) => self.check_range(r)?,
                Some(request_op::Request::RequestPut(p)) => self.check_put(p)?,
                Some(request_op::Request::RequestTxn(t)) => self.check_path(t, path, pos)?,
                Some(request_op::Request::RequestDeleteRange(_)) | None => {}
            }
        }
        Ok(())
    }

    fn exec_txn(&mut self, txn: &TxnRequest, path: &[bool], pos: &mut usize, main: i64, sub: &mut i64) -> Result<TxnResponse> {
        let succeeded = path[*pos];
        *pos += 1;
        let ops = if succeeded { &txn.success } else { &txn.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(request_op::Request::RequestRange(r)) => {
                    // A range sees the writes made earlier in the same txn.
                    let read_rev = if r.revision > 0 { r.revision } else { self.latest };
                    let result = read::range(self.reader, Some(&self.overlay), r, read_rev)?;
                    let rev = if *sub > 0 { main } else { main - 1 };
                    response_op::Response::ResponseRange(RangeResponse { header: header(rev), kvs: result.kvs, more: result.more, count: result.count })
                }
                Some(request_op::Request::RequestPut(p)) => {
                    let prev = self.write_put(main, sub, p)?;
                    response_op::Response::ResponsePut(PutResponse { header: header(main), prev_kv: prev.filter(|_| p.prev_kv) })
                }
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    let deleted = self.delete_keys(main, sub, &KeyRange::new(&d.key, &d.range_end))?;
                    let rev = if *sub > 0 { main } else { main - 1 };
                    response_op::Response::ResponseDeleteRange(DeleteRangeResponse {
                        header: header(rev),
                        deleted: deleted.len() as i64,
                        prev_kvs: if d.prev_kv { deleted } else { Vec::new() },
                    })
                }
                Some(request_op::Request::RequestTxn(t)) => {
                    let mut nested = self.exec_txn(t, path, pos, main, sub)?;
                    nested.header = Some(ResponseHeader::default());
                    response_op::Response::ResponseTxn(nested)
                }
                None => return Err(Error::Internal("empty txn op".into())),
            };
            responses.push(ResponseOp { response: Some(response) });
        }
        Ok(TxnResponse { header: None, succeeded, responses })
    }

    fn compact(&mut self, req: &CompactionRequest) -> Result<CompactionResponse> {
        if req.revision <= self.compact_rev {
            return Err(Error::Compacted);
        }
        if req.revision > self.rev {
            return Err(Error::FutureRev);
        }
        self.compact_rev = req.revision;
        self.compaction = Some(req.revision);
        Ok(CompactionResponse { header: header(self.rev) })
    }

    fn lease_grant(&mut self, req: &LeaseGrantRequest) -> Result<LeaseGrantResponse> {
        if self.lease_exists(req.id)? {
            return Err(Error::LeaseExists);
        }
        self.write_lease(req.id, Some(LeaseRow { ttl: req.ttl, remaining_ttl: 0 }));
        self.effects.leases.push(LeaseChange::Granted { id: req.id, ttl: req.ttl });
        Ok(LeaseGrantResponse { header: header(self.rev), id: req.id, ttl: req.ttl, error: String::new() })
    }

    /// The keys attached to `id` now: the stored links, plus pending writes, each re-checked
    /// against the key's current lease (a pending write may have moved it).
    fn lease_keys(&self, id: i64) -> Result<BTreeSet<Vec<u8>>> {
        let mut candidates: BTreeSet<Vec<u8>> = self.overlay.keys().cloned().collect();
        candidates.extend(linked_keys(self.db, id)?);
        let mut keys = BTreeSet::new();
        for key in candidates {
            if self.latest(&key)?.is_some_and(|kv| kv.lease == id) {
                keys.insert(key);
            }
        }
        Ok(keys)
    }

    fn lease_revoke(&mut self, req: &LeaseRevokeRequest) -> Result<LeaseRevokeResponse> {
        if !self.lease_exists(req.id)? {
            return Err(Error::LeaseNotFound);
        }
        let main = self.rev + 1;
        let mut sub = 0;
        for key in self.lease_keys(req.id)? {
            if let Some(kv) = self.latest(&key)? {
                self.write_delete(main, &mut sub, &kv);
            }
        }
        if sub > 0 {
            self.rev = main;
        }
        self.write_lease(req.id, None);
        self.effects.leases.push(LeaseChange::Revoked { id: req.id });
        Ok(LeaseRevokeResponse { header: header(self.rev) })
    }

    /// Records the remaining TTLs the leader measured; leases revoked meanwhile are skipped.
    fn lease_checkpoint(&mut self, req: &LeaseCheckpointRequest) -> Result<LeaseCheckpointResponse> {
        for cp in &req.checkpoints {
            if let Some(row) = self.lease_row(cp.id)? {
                self.write_lease(cp.id, Some(LeaseRow { remaining_ttl: cp.remaining_ttl.max(0), ..row }));
                self.effects.leases.push(LeaseChange::Checkpointed { id: cp.id, remaining_ttl: cp.remaining_ttl.max(0) });
            }
        }
        Ok(LeaseCheckpointResponse { header: header(self.rev) })
    }
}

/// What etcd refuses while the NOSPACE alarm is active (its applierV3Capped): puts, txns
/// that put, and lease grants. Deletes, compactions and revokes free space and go through.
fn writes_data(cmd: &Command) -> bool {
    match &cmd.op {
        Some(command::Op::Put(_)) | Some(command::Op::LeaseGrant(_)) => true,
        Some(command::Op::Txn(txn)) => crate::validate::txn_puts(txn),
        _ => false,
    }
}

fn compare_kv(cmp: &Compare, target: CompareTarget, kv: &KeyValue) -> bool {
    let ordering = match target {
        CompareTarget::Value => {
            let want: &[u8] = match &cmp.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(want)
        }
        CompareTarget::Version => kv.version.cmp(&union_int(cmp, |u| if let TargetUnion::Version(v) = u { Some(*v) } else { None })),
        CompareTarget::Create => kv.create_revision.cmp(&union_int(cmp, |u| if let TargetUnion::CreateRevision(v) = u { Some(*v) } else { None })),
        CompareTarget::Mod => kv.mod_revision.cmp(&union_int(cmp, |u| if let TargetUnion::ModRevision(v) = u { Some(*v) } else { None })),
        CompareTarget::Lease => kv.lease.cmp(&union_int(cmp, |u| if let TargetUnion::Lease(v) = u { Some(*v) } else { None })),
    };
    match CompareResult::try_from(cmp.result) {
        Ok(CompareResult::Equal) => ordering.is_eq(),
        Ok(CompareResult::NotEqual) => ordering.is_ne(),
        Ok(CompareResult::Greater) => ordering.is_gt(),
        Ok(CompareResult::Less) => ordering.is_lt(),
        Err(_) => true,
    }
}

/// The integer of the compare's target union when it matches the target, else 0 (as etcd).
fn union_int(cmp: &Compare, pick: impl Fn(&TargetUnion) -> Option<i64>) -> i64 {
    cmp.target_union.as_ref().and_then(pick).unwrap_or(0)
}
