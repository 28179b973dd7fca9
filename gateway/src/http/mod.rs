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
        .fallback_service(GrpcOnly(grpc_web))
        .with_state(state)
        .layer(axum::middleware::from_fn(cors::cors))
}

/// How much of a request body is read (and dropped) before an answer that does not need it.
const DRAIN_LIMIT: usize = 64 << 20;

/// Reads the rest of a request body, up to [`DRAIN_LIMIT`] bytes, keeping none of it. An
/// HTTP/2 client still uploading when the answer ends its stream gets a reset instead of the
/// answer (curl: "Stream error in the HTTP/2 framing layer"), so every answer given before the
/// body is read comes after this.
pub(crate) async fn drain(body: &mut Body) {
    use http_body_util::BodyExt;
    let mut drained = 0;
    while drained <= DRAIN_LIMIT {
        match body.frame().await {
            Some(Ok(frame)) => drained += frame.data_ref().map_or(0, bytes::Bytes::len),
            _ => return,
        }
    }
}

/// Passes gRPC and grpc-web requests (by content type) to the inner service; anything else
/// on a path no handler serves gets Go's `404 page not found`, as etcd answers.
#[derive(Clone)]
struct GrpcOnly<S>(S);

impl<S> tower::Service<http::Request<Body>> for GrpcOnly<S>
where
    S: tower::Service<http::Request<Body>, Error = Infallible>,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
{
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        use axum::response::IntoResponse;
        let grpc = req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.starts_with("application/grpc"));
        if !grpc {
            return Box::pin(async move {
                drain(&mut req.into_body()).await;
                Ok((http::StatusCode::NOT_FOUND, "404 page not found\n").into_response())
            });
        }
        let call = self.0.call(req);
        Box::pin(async move { Ok(call.await?.into_response()) })
    }
}
