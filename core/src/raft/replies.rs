//! Clients waiting on this member's proposals. A batch this member proposed carries its
//! `(origin, incarnation, seq)`; whichever member applies it and finds itself the origin answers
//! the waiting clients straight from the apply, before the watchers hear of it, instead of
//! passing the results back through openraft's client-write reply and the proposer's task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cairn_proto::cairnpb::{CommandBatch, CommandResult};
use tokio::sync::oneshot;

use crate::error::Result;

pub type Reply = oneshot::Sender<Result<CommandResult>>;

pub struct Replies {
    origin: u64,
    /// Tells this run's batches from those proposed before a restart, which a member may still
    /// apply (catching up) while its sequence numbers start over.
    incarnation: u64,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, Vec<Reply>>>,
}

impl Replies {
    pub fn new(origin: u64) -> Replies {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Replies::with_incarnation(origin, (now.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32))
    }

    fn with_incarnation(origin: u64, incarnation: u64) -> Replies {
        Replies { origin, incarnation, next: AtomicU64::new(1), waiting: Mutex::default() }
    }

    /// Registers the clients of a batch of commands and returns the batch to propose.
    pub fn register(&self, commands: Vec<cairn_proto::cairnpb::Command>, replies: Vec<Reply>) -> Arc<CommandBatch> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(seq, replies);
        Arc::new(CommandBatch { commands, origin: self.origin, incarnation: self.incarnation, seq })
    }

    /// The clients of `batch`, if this run of this member proposed it and nobody answered them
    /// yet. Whoever takes them answers them.
    pub fn take(&self, batch: &CommandBatch) -> Option<Vec<Reply>> {
        if batch.origin != self.origin || batch.incarnation != self.incarnation || batch.seq == 0 {
            return None;
        }
        self.lock().remove(&batch.seq)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<Reply>>> {
        self.waiting.lock().expect("the replies lock is never poisoned: nothing panics under it")
    }
}

/// Answers each client with its command's result (a client that went away is skipped).
pub fn answer(replies: Vec<Reply>, results: Vec<CommandResult>) {
    if replies.len() != results.len() {
        let e = crate::error::Error::Internal(format!("{} results for {} commands", results.len(), replies.len()));
        return fail(replies, &e);
    }
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(Ok(result));
    }
}

/// Answers every client with `e`.
pub fn fail(replies: Vec<Reply>, e: &crate::error::Error) {
    replies.into_iter().for_each(|r| drop(r.send(Err(e.clone()))));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_proposing_run_takes_a_batch_once() {
        let replies = Replies::with_incarnation(7, 100);
        let (tx, mut rx) = oneshot::channel();
        let batch = replies.register(Vec::new(), vec![tx]);
        assert_eq!((batch.origin, batch.incarnation, batch.seq), (7, 100, 1));
        let restarted = Replies::with_incarnation(7, 101);
        restarted.register(Vec::new(), Vec::new());
        assert!(restarted.take(&batch).is_none(), "a restarted member does not answer an older run's batch");
        assert!(Replies::with_incarnation(8, 100).take(&batch).is_none());
        let mut from_elsewhere = CommandBatch::clone(&batch);
        from_elsewhere.origin = 9;
        assert!(replies.take(&from_elsewhere).is_none());
        let taken = replies.take(&batch).expect("registered");
        assert!(replies.take(&batch).is_none(), "a batch is answered once");
        answer(taken, vec![CommandResult::default()]);
        assert!(matches!(rx.try_recv(), Ok(Ok(_))));
    }

    #[test]
    fn a_count_mismatch_answers_with_an_error() {
        let replies = Replies::new(1);
        let (tx, mut rx) = oneshot::channel();
        let batch = replies.register(Vec::new(), vec![tx]);
        answer(replies.take(&batch).expect("registered"), Vec::new());
        assert!(matches!(rx.try_recv(), Ok(Err(_))));
    }
}
