//! browserpb.Browser: server-streaming Watch and lease KeepAlive for grpc-web clients.

use std::pin::Pin;
use std::sync::Arc;

use cairn_core::Node;
use cairn_proto::browserpb::browser_server::Browser;
use cairn_proto::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse, WatchCreateRequest, WatchResponse};
use futures::Stream;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct BrowserService {
    pub node: Arc<Node>,
}

#[tonic::async_trait]
impl Browser for BrowserService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

    async fn watch(&self, _req: Request<WatchCreateRequest>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not yet"))
    }

    type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

    async fn keep_alive(&self, _req: Request<LeaseKeepAliveRequest>) -> Result<Response<Self::KeepAliveStream>, Status> {
        Err(Status::unimplemented("not yet"))
    }
}
