//! The lessor. Every member knows which leases exist (apply tells it); only the leader, as
//! etcd's primary lessor, knows when each expires. Expiry is carried out by proposing a revoke,
//! so apply stays deterministic; remaining TTLs are checkpointed through the log so that a new
//! leader does not hand long leases their full TTL again (reference/architecture-anchors.md
//! §2.3).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::LeaseCheckpoint;

use crate::error::{Error, Result};
use crate::mvcc::LeaseChange;

/// How a lease is stored: the granted TTL and the remaining TTL of the last checkpoint (0: none
/// since the last grant or renewal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRow {
    pub ttl: i64,
    pub remaining_ttl: i64,
}

impl LeaseRow {
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&(self.ttl as u64).to_be_bytes());
        out[8..].copy_from_slice(&(self.remaining_ttl as u64).to_be_bytes());
        out
    }

    pub fn decode(raw: &[u8]) -> Result<LeaseRow> {
        let word = |b: &[u8]| -> i64 { u64::from_be_bytes(b.try_into().expect("an 8-byte slice")) as i64 };
        match raw.len() {
            // The first layout stored the TTL alone.
            8 => Ok(LeaseRow { ttl: word(raw), remaining_ttl: 0 }),
            16 => Ok(LeaseRow { ttl: word(&raw[..8]), remaining_ttl: word(&raw[8..]) }),
            n => Err(Error::Storage(format!("corrupt lease row of {n} bytes"))),
        }
    }
}

/// How often the leader records remaining TTLs (etcd's `--experimental-lease-checkpoint-interval`).
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(300);
/// An expired lease whose revoke has not been applied after this long is proposed again.
const REVOKE_RETRY: Duration = Duration::from_secs(3);

#[derive(Debug)]
struct Lease {
    ttl: i64,
    remaining_ttl: i64,
    /// Set only while this member is the primary (the leader).
    expiry: Option<Instant>,
    next_checkpoint: Option<Instant>,
    revoke_proposed: Option<Instant>,
}

#[derive(Debug, Default)]
struct Inner {
    leases: HashMap<i64, Lease>,
    primary: bool,
}

/// What a renewal did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    pub ttl: i64,
    /// The lease had a checkpointed remaining TTL, which must now be cleared through the log
    /// (as etcd: at most one such entry per lease per checkpoint interval).
    pub clear_checkpoint: bool,
}

pub struct Lessor {
    inner: Mutex<Inner>,
    checkpoint_interval: Duration,
}

fn whole_seconds(d: Duration) -> i64 {
    d.as_secs() as i64
}

impl Lessor {
    pub fn new(rows: Vec<(i64, LeaseRow)>, checkpoint_interval: Duration) -> Lessor {
        let lessor = Lessor { inner: Mutex::new(Inner::default()), checkpoint_interval };
        lessor.reload(rows);
        lessor
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("the lessor lock is never poisoned: nothing panics under it")
    }

    /// Replaces every lease (a raft snapshot was installed). A primary starts their clocks now.
    pub fn reload(&self, rows: Vec<(i64, LeaseRow)>) {
        let mut inner = self.lock();
        let primary = inner.primary;
        let now = Instant::now();
        inner.leases = rows
            .into_iter()
            .map(|(id, row)| {
                let mut lease = Lease { ttl: row.ttl, remaining_ttl: row.remaining_ttl, expiry: None, next_checkpoint: None, revoke_proposed: None };
                if primary {
                    self.start_clock(&mut lease, now, Duration::ZERO);
                }
                (id, lease)
            })
            .collect();
    }

    fn start_clock(&self, lease: &mut Lease, now: Instant, extend: Duration) {
        let left = if lease.remaining_ttl > 0 { lease.remaining_ttl } else { lease.ttl };
        lease.expiry = Some(now + extend + Duration::from_secs(left.max(0) as u64));
        lease.revoke_proposed = None;
        self.schedule_checkpoint(lease, now);
    }

    fn schedule_checkpoint(&self, lease: &mut Lease, now: Instant) {
        lease.next_checkpoint = (Duration::from_secs(lease.ttl.max(0) as u64) > self.checkpoint_interval).then(|| now + self.checkpoint_interval);
    }

    /// Takes in what an apply did to the leases.
    pub fn applied(&self, changes: &[LeaseChange]) {
        if changes.is_empty() {
            return;
        }
        let mut inner = self.lock();
        let primary = inner.primary;
        let now = Instant::now();
        for change in changes {
            match *change {
                LeaseChange::Granted { id, ttl } => {
                    crate::metrics::LEASES_GRANTED.inc();
                    let mut lease = Lease { ttl, remaining_ttl: 0, expiry: None, next_checkpoint: None, revoke_proposed: None };
                    if primary {
                        self.start_clock(&mut lease, now, Duration::ZERO);
                    }
                    inner.leases.insert(id, lease);
                }
                LeaseChange::Revoked { id } => {
                    crate::metrics::LEASES_REVOKED.inc();
                    inner.leases.remove(&id);
                }
                LeaseChange::Checkpointed { id, remaining_ttl } => {
                    if let Some(lease) = inner.leases.get_mut(&id) {
                        lease.remaining_ttl = remaining_ttl;
                    }
                }
            }
        }
    }

    pub fn is_primary(&self) -> bool {
        self.lock().primary
    }

    /// This member became leader: every lease's clock starts now, extended by `extend` (etcd
    /// extends by one election timeout, so a leader change never shortens a lease).
    pub fn promote(&self, extend: Duration) {
        let mut inner = self.lock();
        inner.primary = true;
        let now = Instant::now();
        for lease in inner.leases.values_mut() {
            self.start_clock(lease, now, extend);
        }
    }

    /// This member is no longer leader: it stops tracking expiry.
    pub fn demote(&self) {
        let mut inner = self.lock();
        inner.primary = false;
        for lease in inner.leases.values_mut() {
            lease.expiry = None;
            lease.next_checkpoint = None;
            lease.revoke_proposed = None;
        }
    }

    /// Renews a lease on the primary. `None`: no such lease, or it has expired (its revoke is
    /// on its way), which a keep-alive reports as TTL 0.
    pub fn renew(&self, id: i64) -> Result<Option<Renewal>> {
        let mut inner = self.lock();
        if !inner.primary {
            return Err(Error::NotLeader);
        }
        let now = Instant::now();
        let Some(lease) = inner.leases.get_mut(&id) else { return Ok(None) };
        if lease.expiry.is_some_and(|e| e <= now) {
            return Ok(None);
        }
        lease.expiry = Some(now + Duration::from_secs(lease.ttl.max(0) as u64));
        let clear_checkpoint = lease.remaining_ttl > 0;
        lease.remaining_ttl = 0;
        self.schedule_checkpoint(lease, now);
        crate::metrics::LEASES_RENEWED.inc();
        Ok(Some(Renewal { ttl: lease.ttl, clear_checkpoint }))
    }

    /// `(remaining, granted)` TTLs in whole seconds, or `None` for an unknown lease. Only the
    /// primary knows the remaining TTL; elsewhere it is the last checkpoint or the full TTL.
    pub fn time_to_live(&self, id: i64) -> Option<(i64, i64)> {
        let inner = self.lock();
        let lease = inner.leases.get(&id)?;
        let remaining = match lease.expiry {
            Some(expiry) => whole_seconds(expiry.saturating_duration_since(Instant::now())),
            None if lease.remaining_ttl > 0 => lease.remaining_ttl,
            None => lease.ttl,
        };
        Some((remaining, lease.ttl))
    }

    pub fn contains(&self, id: i64) -> bool {
        self.lock().leases.contains_key(&id)
    }

    /// Every lease ID, in ascending order.
    pub fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.lock().leases.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// On the primary: up to `max` leases that have expired and whose revoke has not been
    /// proposed recently; they are marked as proposed.
    pub fn expired(&self, max: usize) -> Vec<i64> {
        let mut inner = self.lock();
        if !inner.primary {
            return Vec::new();
        }
        let now = Instant::now();
        let mut out = Vec::new();
        for (id, lease) in inner.leases.iter_mut() {
            if out.len() >= max {
                break;
            }
            let expired = lease.expiry.is_some_and(|e| e <= now);
            let retry = lease.revoke_proposed.is_none_or(|at| now.duration_since(at) >= REVOKE_RETRY);
            if expired && retry {
                lease.revoke_proposed = Some(now);
                out.push(*id);
            }
        }
        out
    }

    /// On the primary: the remaining TTLs due to be recorded, at most `max`.
    pub fn due_checkpoints(&self, max: usize) -> Vec<LeaseCheckpoint> {
        let mut inner = self.lock();
        if !inner.primary {
            return Vec::new();
        }
        let now = Instant::now();
        let mut out = Vec::new();
        for (id, lease) in inner.leases.iter_mut() {
            if out.len() >= max {
                break;
            }
            let (Some(due), Some(expiry)) = (lease.next_checkpoint, lease.expiry) else { continue };
            if due <= now && expiry > now {
                let remaining = whole_seconds(expiry.duration_since(now)).max(1);
                out.push(LeaseCheckpoint { id: *id, remaining_ttl: remaining });
                lease.next_checkpoint = Some(now + self.checkpoint_interval);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lessor(rows: &[(i64, i64, i64)]) -> Lessor {
        Lessor::new(rows.iter().map(|&(id, ttl, remaining_ttl)| (id, LeaseRow { ttl, remaining_ttl })).collect(), Duration::from_secs(60))
    }

    #[test]
    fn rows_round_trip_and_read_the_first_layout() {
        let row = LeaseRow { ttl: 30, remaining_ttl: 12 };
        assert_eq!(LeaseRow::decode(&row.encode()).expect("decodes"), row);
        assert_eq!(LeaseRow::decode(&30u64.to_be_bytes()).expect("decodes"), LeaseRow { ttl: 30, remaining_ttl: 0 });
        assert!(LeaseRow::decode(&[1, 2, 3]).is_err());
    }

    #[test]
    fn only_the_primary_renews_and_expires() {
        let l = lessor(&[(1, 10, 0)]);
        assert!(matches!(l.renew(1), Err(Error::NotLeader)));
        assert!(l.expired(10).is_empty());
        l.promote(Duration::from_secs(1));
        assert_eq!(l.renew(1).expect("primary"), Some(Renewal { ttl: 10, clear_checkpoint: false }));
        assert_eq!(l.renew(2).expect("primary"), None);
        l.demote();
        assert!(matches!(l.renew(1), Err(Error::NotLeader)));
    }

    #[test]
    fn promotion_uses_the_checkpointed_remaining_ttl_plus_the_extension() {
        let l = lessor(&[(1, 100, 40), (2, 100, 0)]);
        l.promote(Duration::from_secs(2));
        let (left1, granted1) = l.time_to_live(1).expect("known");
        let (left2, _) = l.time_to_live(2).expect("known");
        assert_eq!(granted1, 100);
        assert!((40..=42).contains(&left1), "checkpointed lease has {left1}s");
        assert!((100..=102).contains(&left2), "unchecked lease has {left2}s");
        // A renewal clears the checkpoint (once).
        assert_eq!(l.renew(1).expect("primary").map(|r| r.clear_checkpoint), Some(true));
        assert_eq!(l.renew(1).expect("primary").map(|r| r.clear_checkpoint), Some(false));
    }

    #[test]
    fn expired_leases_are_proposed_once_until_the_retry_delay() {
        let l = lessor(&[(7, 0, 0)]);
        l.promote(Duration::ZERO);
        assert_eq!(l.expired(10), vec![7]);
        assert!(l.expired(10).is_empty(), "a revoke already proposed is not proposed again at once");
        assert_eq!(l.renew(7).expect("primary"), None, "an expired lease cannot be renewed");
        l.applied(&[LeaseChange::Revoked { id: 7 }]);
        assert!(!l.contains(7));
    }

    #[test]
    fn grants_applied_on_the_primary_start_their_clock() {
        let l = lessor(&[]);
        l.applied(&[LeaseChange::Granted { id: 3, ttl: 5 }]);
        assert_eq!(l.time_to_live(3), Some((5, 5)));
        l.promote(Duration::ZERO);
        l.applied(&[LeaseChange::Granted { id: 4, ttl: 5 }]);
        let (left, _) = l.time_to_live(4).expect("known");
        assert!(left <= 5);
        assert_eq!(l.ids(), vec![3, 4]);
    }

    #[test]
    fn long_leases_are_checkpointed_on_the_primary() {
        let l = Lessor::new(vec![(1, LeaseRow { ttl: 3600, remaining_ttl: 0 }), (2, LeaseRow { ttl: 5, remaining_ttl: 0 })], Duration::ZERO);
        assert!(l.due_checkpoints(10).is_empty(), "a follower checkpoints nothing");
        l.promote(Duration::ZERO);
        let mut due = l.due_checkpoints(10);
        due.sort_by_key(|c| c.id);
        assert_eq!(due.iter().map(|c| c.id).collect::<Vec<_>>(), vec![1, 2]);
        assert!(due[0].remaining_ttl > 3500);
    }
}
