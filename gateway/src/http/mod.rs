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

/// What a connection calls for each request. On the client port, a native gRPC request (an
/// `application/grpc` content type, no CORS origin) goes straight to the gRPC services, as etcd
/// routes by content type; everything else goes through the router. The router reaches the same
/// services, but behind path matching, the CORS middleware, the grpc-web layer and their boxed
/// futures, which were a tenth of the CPU of a serializable read.
#[derive(Clone)]
pub struct Port {
    grpc: GrpcService,
    /// Where everything but native gRPC goes; without it, everything goes to `grpc`.
    router: Option<Router>,
}

impl Port {
    /// The client port for `state`: [`client_router`], with its gRPC services reached directly.
    pub fn client(state: HttpState) -> Self {
        Self {
            grpc: state.grpc.clone(),
            router: Some(client_router(state)),
        }
    }

    /// A port that serves only gRPC (the peer port).
    pub fn grpc(grpc: GrpcService) -> Self {
        Self { grpc, router: None }
    }
}

/// Whether `req` is native gRPC that no CORS middleware must see: grpc-web (`application/grpc-web…`)
/// and requests from a browser origin are not.
fn native_grpc<B>(req: &http::Request<B>) -> bool {
    let headers = req.headers();
    let grpc = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.strip_prefix("application/grpc"))
        .is_some_and(|rest| !rest.starts_with('-'));
    grpc && !headers.contains_key(http::header::ORIGIN)
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Port {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = futures::future::Either<
        tower::util::Oneshot<GrpcService, http::Request<Body>>,
        tower::util::Oneshot<Router, http::Request<Body>>,
    >;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        use tower::ServiceExt;
        let req = req.map(Body::new);
        match &self.router {
            Some(router) if !native_grpc(&req) => futures::future::Either::Right(router.clone().oneshot(req)),
            _ => futures::future::Either::Left(self.grpc.clone().oneshot(req)),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: &str, origin: Option<&str>) -> http::Request<()> {
        let mut builder = http::Request::post("/etcdserverpb.KV/Range").header(http::header::CONTENT_TYPE, content_type);
        if let Some(origin) = origin {
            builder = builder.header(http::header::ORIGIN, origin);
        }
        builder.body(()).expect("request")
    }

    #[test]
    fn only_native_grpc_without_an_origin_skips_the_router() {
        assert!(native_grpc(&request("application/grpc", None)));
        assert!(native_grpc(&request("application/grpc+proto", None)));
        // grpc-web needs tonic-web, and a browser's request needs the CORS headers.
        assert!(!native_grpc(&request("application/grpc-web+proto", None)));
        assert!(!native_grpc(&request("application/grpc-web-text", None)));
        assert!(!native_grpc(&request("application/grpc", Some("http://console.example"))));
        assert!(!native_grpc(&request("application/json", None)));
    }
}
