//! browserpb.Browser: server-streaming Watch and lease KeepAlive for grpc-web clients, on the
//! same watch hub and lessor as etcdserverpb.Watch and etcdserverpb.Lease.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::watch::WatchSpec;
use cairn_core::Node;
use cairn_proto::browserpb::browser_server::Browser;
use cairn_proto::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse, WatchCreateRequest, WatchResponse};
use futures::Stream;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use crate::error::status;

/// The shortest time between two renewals of one lease. etcd's clientv3 renews a third of the
/// TTL after each answer but looks for due renewals only every 500 ms, so it never renews
/// more often than this either; a 1-second lease is still renewed well before it expires.
const MIN_RENEW_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct BrowserService {
    pub node: Arc<Node>,
}

#[tonic::async_trait]
impl Browser for BrowserService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

    /// One watcher on a watch stream of its own. The watch stream lives exactly as long as the
    /// response stream: when the client goes away tonic drops it, and dropping it removes the
    /// watcher from the hub.
    async fn watch(&self, req: Request<WatchCreateRequest>) -> Result<Response<Self::WatchStream>, Status> {
        let stream = self.node.watch();
        stream.create(WatchSpec::from_request(&req.into_inner()));
        let node = self.node.clone();
        let responses = futures::stream::unfold(Some((stream, node)), |open| async move {
            let (stream, node) = open?;
            let mut resp = stream.next().await?;
            let revision = resp.header.map_or(0, |h| h.revision);
            resp.header = Some(node.header(revision));
            // The stream's only watcher was refused or canceled by the server (a compacted
            // start revision): this is its last response, and the hub forgets the stream now.
            let open = (!resp.canceled).then_some((stream, node));
            Some((Ok(resp), open))
        });
        Ok(Response::new(Box::pin(responses)))
    }

    type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

    async fn keep_alive(&self, req: Request<LeaseKeepAliveRequest>) -> Result<Response<Self::KeepAliveStream>, Status> {
        let node = self.node.clone();
        let renew = move |id| {
            let node = node.clone();
            async move { node.lease_keep_alive(id).await }
        };
        Ok(Response::new(Box::pin(keep_alive(req.into_inner().id, renew))))
    }
}

/// Renews lease `id` now, then again [`renew_interval`] after each renewal, and yields every
/// answer. A lease that is gone (TTL 0) is answered once and ends the stream; an error ends it
/// with the error's etcd status.
fn keep_alive<R, F>(id: i64, renew: R) -> impl Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send
where
    R: FnMut(i64) -> F + Send,
    F: Future<Output = cairn_core::Result<LeaseKeepAliveResponse>> + Send,
{
    futures::stream::unfold((renew, Some(Instant::now())), move |(mut renew, due)| async move {
        tokio::time::sleep_until(due?).await;
        // Timed from the request, not the answer: a slow leader round trip shortens the wait
        // instead of eating into the lease's remaining time.
        let started = Instant::now();
        match renew(id).await {
            Ok(resp) => {
                let next = renew_interval(resp.ttl).map(|wait| started + wait);
                Some((Ok(resp), (renew, next)))
            }
            Err(e) => Some((Err(status(e)), (renew, None))),
        }
    })
}

/// How long after a renewal that granted `ttl` seconds the next one is due: a third of the TTL,
/// as etcd's clientv3, but at least [`MIN_RENEW_INTERVAL`]. `None` when the lease is gone.
fn renew_interval(ttl: i64) -> Option<Duration> {
    let ttl = u64::try_from(ttl).ok().filter(|&ttl| ttl > 0)?;
    Some((Duration::from_secs(ttl) / 3).max(MIN_RENEW_INTERVAL))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use cairn_core::Error;
    use futures::StreamExt;
    use tonic::Code;

    use super::*;

    /// A keep-alive stream for lease 7 whose renewals answer `answers` in turn (then TTL 0),
    /// collected to its end; also how many renewals it made.
    async fn run(answers: Vec<cairn_core::Result<i64>>) -> (Vec<Result<LeaseKeepAliveResponse, Status>>, usize) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let answers = Arc::new(std::sync::Mutex::new(answers.into_iter()));
        let renew = move |id| {
            counter.fetch_add(1, Ordering::SeqCst);
            let answer = answers.lock().expect("not poisoned").next().unwrap_or(Ok(0));
            async move { answer.map(|ttl| LeaseKeepAliveResponse { header: None, id, ttl }) }
        };
        let stream = keep_alive(7, renew);
        let out = tokio::time::timeout(Duration::from_secs(10), stream.collect::<Vec<_>>()).await.expect("the stream ends within 10s");
        (out, calls.load(Ordering::SeqCst))
    }

    fn ttls(out: &[Result<LeaseKeepAliveResponse, Status>]) -> Vec<i64> {
        out.iter().map(|r| r.as_ref().expect("no error").ttl).collect()
    }

    #[test]
    fn renews_a_third_of_the_ttl_apart_but_not_too_often() {
        assert_eq!(renew_interval(1), Some(Duration::from_millis(500)), "TTL 1: 333 ms would be under the floor");
        assert_eq!(renew_interval(2), Some(Duration::from_secs(2) / 3));
        assert_eq!(renew_interval(3), Some(Duration::from_secs(1)));
        assert_eq!(renew_interval(60), Some(Duration::from_secs(20)));
        assert_eq!(renew_interval(cairn_core::node::MAX_LEASE_TTL), Some(Duration::from_secs(cairn_core::node::MAX_LEASE_TTL as u64) / 3));
        for ttl in 1..=10 {
            let interval = renew_interval(ttl).expect("a live lease");
            assert!(interval < Duration::from_secs(ttl as u64), "TTL {ttl}: renewed after {interval:?}, too late");
        }
    }

    #[test]
    fn a_gone_lease_is_not_renewed_again() {
        assert_eq!(renew_interval(0), None);
        assert_eq!(renew_interval(-1), None);
    }

    #[tokio::test]
    async fn a_gone_lease_gets_one_answer_with_ttl_0() {
        let (out, calls) = run(vec![Ok(0)]).await;
        assert_eq!(ttls(&out), vec![0]);
        assert_eq!(out[0].as_ref().expect("no error").id, 7);
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn a_live_lease_is_renewed_until_it_is_gone() {
        let (out, calls) = run(vec![Ok(1), Ok(1), Ok(0)]).await;
        assert_eq!(ttls(&out), vec![1, 1, 0]);
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn an_error_ends_the_stream_with_the_etcd_status() {
        let (out, calls) = run(vec![Ok(1), Err(Error::NoLeader), Ok(1)]).await;
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].as_ref().expect("the first renewal worked").ttl, 1);
        let error = out[1].as_ref().expect_err("the second renewal failed");
        assert_eq!((error.code(), error.message()), (Code::Unavailable, "etcdserver: no leader"));
        assert_eq!(calls, 2);
    }
}
