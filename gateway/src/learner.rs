//! What a learner answers: as etcd's interceptors, only Status and serializable Range; every
//! other RPC gets `etcdserver: rpc not supported for learner` (the Range check is in kv.rs,
//! which sees the request).

use std::sync::Arc;
use std::task::{Context, Poll};

use cairn_core::Node;
use tonic::codegen::{http, BoxFuture, Service};

use crate::error::status;

const ALLOWED: [&str; 2] = ["/etcdserverpb.Maintenance/Status", "/etcdserverpb.KV/Range"];

#[derive(Clone)]
pub struct LearnerLayer {
    pub node: Arc<Node>,
}

impl<S> tower::Layer<S> for LearnerLayer {
    type Service = LearnerGuard<S>;

    fn layer(&self, inner: S) -> LearnerGuard<S> {
        LearnerGuard { inner, node: self.node.clone() }
    }
}

#[derive(Clone)]
pub struct LearnerGuard<S> {
    inner: S,
    node: Arc<Node>,
}

impl<S, B, R> Service<http::Request<B>> for LearnerGuard<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if !ALLOWED.contains(&req.uri().path()) && self.node.is_learner() {
            let refusal = status(cairn_core::Error::NotSupportedForLearner).into_http();
            return Box::pin(async move { Ok(refusal) });
        }
        let call = self.inner.call(req);
        Box::pin(call)
    }
}
