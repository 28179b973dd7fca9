//! The client port's HTTP side. One port serves, by path and content type:
//! - gRPC (`/etcdserverpb.KV/Range` …) and grpc-web on the same paths (tonic-web),
//! - etcd's HTTP/JSON gateway (`/v3/…`, `/v3beta/…`), transcoded onto the gRPC services,
//! - the operations endpoints: `/health`, `/readyz`, `/livez`, `/version`, `/metrics`.
//!
//! Every protocol reaches the same tonic services through [`GrpcService`], so the learner
//! guard, the metrics and (later) authentication apply to all of them alike.

pub mod cors;
pub mod json;
pub mod ops;

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use cairn_core::Node;
use tower::util::BoxCloneSyncService;

use crate::metrics::Metrics;

/// The gRPC services of the client port, as one HTTP service (request in, response out).
pub type GrpcService = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub node: Arc<Node>,
    /// The gRPC services (behind the learner guard and the metrics layer), for transcoding.
    pub grpc: GrpcService,
    pub metrics: Arc<Metrics>,
}

/// The whole client port: JSON gateway and operations endpoints by path, everything else to
/// gRPC / grpc-web, with CORS around it all.
pub fn client_router(state: HttpState) -> Router {
    let grpc_web = tower::ServiceBuilder::new()
        .layer(tonic_web::GrpcWebLayer::new())
        .map_request(|req: http::Request<tonic::body::Body>| req.map(Body::new))
        .service(state.grpc.clone());
    Router::new()
        .merge(json::router())
        .merge(ops::router())
        .fallback_service(grpc_web)
        .with_state(state)
        .layer(axum::middleware::from_fn(cors::cors))
}
