//! etcdserverpb.Watch: one bidirectional stream carrying many watchers. Requests feed the
//! member's watch hub; its responses go out in order with this member's header.

use std::pin::Pin;
use std::sync::Arc;

use cairn_core::watch::WatchSpec;
use cairn_core::Node;
use cairn_proto::etcdserverpb::watch_request::RequestUnion;
use cairn_proto::etcdserverpb::watch_server::Watch;
use cairn_proto::etcdserverpb::{WatchRequest, WatchResponse};
use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

#[derive(Clone)]
pub struct WatchService {
    pub node: Arc<Node>,
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

    async fn watch(&self, req: Request<Streaming<WatchRequest>>) -> Result<Response<Self::WatchStream>, Status> {
        let mut requests = req.into_inner();
        let stream = Arc::new(self.node.watch());
        let feed = stream.clone();
        // The client closing its sending side ends only the reading of requests: as in etcd, the
        // watchers stay until the whole stream goes away.
        tokio::spawn(async move {
            while let Ok(Some(req)) = requests.message().await {
                match req.request_union {
                    Some(RequestUnion::CreateRequest(create)) => feed.create(WatchSpec::from_request(&create)),
                    Some(RequestUnion::CancelRequest(cancel)) => feed.cancel(cancel.watch_id),
                    Some(RequestUnion::ProgressRequest(_)) => feed.request_progress(),
                    None => {}
                }
            }
        });
        let node = self.node.clone();
        let responses = futures::stream::unfold((stream, node), |(stream, node)| async move {
            let mut resp = stream.next().await?;
            let revision = resp.header.map_or(0, |h| h.revision);
            resp.header = Some(node.header(revision));
            Some((Ok(resp), (stream, node)))
        });
        Ok(Response::new(Box::pin(responses)))
    }
}
