//! The gRPC services of a port, found by the service name in the request's path.
//!
//! tonic's `Routes` is an axum router: a path pattern per service, matched with its parameters
//! stored in the request's extensions, and boxed futures on the way. A gRPC path is always
//! `/<package.Service>/<Method>`, so a comparison of the first segment does the same job; it was
//! a twentieth of the instructions of a serializable read.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use futures::future::BoxFuture;
use tonic::server::NamedService;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

type Response = http::Response<tonic::body::Body>;
type Boxed = BoxCloneSyncService<http::Request<Body>, Response, Infallible>;

/// Services by name; a path naming none gets gRPC's `UNIMPLEMENTED`, as from tonic.
///
/// The port clones its service stack for every request, so the table is shared: a clone is a
/// reference count, and only the service a request names is cloned to serve it.
#[derive(Clone, Default)]
pub struct GrpcRoutes {
    services: Arc<Vec<(&'static str, Boxed)>>,
}

impl GrpcRoutes {
    pub fn with<S>(mut self, service: S) -> Self
    where
        S: Service<http::Request<Body>, Response = Response, Error = Infallible> + NamedService + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
    {
        Arc::make_mut(&mut self.services).push((S::NAME, BoxCloneSyncService::new(service)));
        self
    }

    fn find(&self, path: &str) -> Option<&Boxed> {
        let name = path.strip_prefix('/')?.split_once('/')?.0;
        self.services.iter().find(|(n, _)| *n == name).map(|(_, s)| s)
    }
}

impl Service<http::Request<Body>> for GrpcRoutes {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Each service is made ready when it is called (tonic's are always ready).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        match self.find(req.uri().path()) {
            Some(service) => Box::pin(service.clone().oneshot(req)),
            None => Box::pin(std::future::ready(Ok(unimplemented()))),
        }
    }
}

fn unimplemented() -> Response {
    let (parts, ()) = tonic::Status::unimplemented("").into_http::<()>().into_parts();
    http::Response::from_parts(parts, tonic::body::Body::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct Named;

    impl NamedService for Named {
        const NAME: &'static str = "etcdserverpb.KV";
    }

    impl Service<http::Request<Body>> for Named {
        type Response = Response;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<Body>) -> Self::Future {
            let mut resp = http::Response::new(tonic::body::Body::empty());
            resp.headers_mut().insert("x-path", req.uri().path().parse().expect("header value"));
            std::future::ready(Ok(resp))
        }
    }

    async fn status_and_path(routes: &GrpcRoutes, path: &str) -> (Option<String>, Option<String>) {
        let req = http::Request::post(path).body(Body::empty()).expect("request");
        let resp = routes.clone().oneshot(req).await.expect("infallible");
        let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().expect("ascii").to_owned());
        (header("grpc-status"), header("x-path"))
    }

    #[tokio::test]
    async fn a_path_reaches_the_service_it_names_or_is_unimplemented() {
        let routes = GrpcRoutes::default().with(Named);
        let range = "/etcdserverpb.KV/Range";
        assert_eq!(status_and_path(&routes, range).await, (None, Some(range.to_owned())));
        for path in ["/etcdserverpb.Watch/Watch", "/etcdserverpb.KVX/Range", "/etcdserverpb.KV", "/", "/v3/kv/range"] {
            assert_eq!(status_and_path(&routes, path).await, (Some("12".to_owned()), None), "{path}");
        }
    }
}
