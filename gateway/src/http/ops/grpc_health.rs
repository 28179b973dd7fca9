//! The standard gRPC health service (`grpc.health.v1.Health`), which load balancers and
//! Kubernetes' gRPC probes call. Only the server as a whole (service `""`) is known, as in
//! etcd; it is SERVING while the member knows a leader and NOT_SERVING otherwise (etcd 3.5
//! reports SERVING as long as it runs). Other names get grpc-go's answers: NOT_FOUND to Check,
//! SERVICE_UNKNOWN to Watch.

use std::pin::Pin;
use std::sync::Arc;

use cairn_core::Node;
use futures::{stream, Stream, StreamExt};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

pub fn server(node: Arc<Node>) -> HealthServer<GrpcHealth> {
    HealthServer::new(GrpcHealth { node })
}

pub struct GrpcHealth {
    node: Arc<Node>,
}

fn answer(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse { status: status as i32 }
}

fn serving(leader: Option<u64>) -> ServingStatus {
    match leader {
        Some(_) => ServingStatus::Serving,
        None => ServingStatus::NotServing,
    }
}

type Answers = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for GrpcHealth {
    async fn check(&self, req: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        if !req.get_ref().service.is_empty() {
            return Err(Status::not_found("unknown service"));
        }
        Ok(Response::new(answer(serving(self.node.leader()))))
    }

    type WatchStream = Answers;

    /// The current status at once, then each change, until the client goes away.
    async fn watch(&self, req: Request<HealthCheckRequest>) -> Result<Response<Answers>, Status> {
        if !req.get_ref().service.is_empty() {
            let unknown = stream::once(async { Ok(answer(ServingStatus::ServiceUnknown)) }).chain(stream::pending());
            return Ok(Response::new(Box::pin(unknown)));
        }
        let node = self.node.clone();
        let leader = node.leader();
        let first = stream::once(async move { Ok(answer(serving(leader))) });
        let changes = stream::unfold((node, leader), |(node, mut leader)| async move {
            let was = serving(leader);
            loop {
                leader = node.leader_changed(leader).await;
                if serving(leader) != was {
                    return Some((Ok(answer(serving(leader))), (node, leader)));
                }
            }
        });
        Ok(Response::new(Box::pin(first.chain(changes))))
    }
}
