//! `grpc_server_started_total` and `grpc_server_handled_total`, counted as go-grpc-prometheus
//! (etcd's interceptor) counts them: per service and method, every method listed from the start
//! with zeros, the code under its Go name. The code comes from the response's `grpc-status`:
//! in the headers of a trailers-only response (every error tonic returns), else in the
//! trailers that end the body, which for a stream is when the stream ends. A call the client
//! abandons first counts as `Canceled`.
//!
//! The methods come from the file descriptor sets compiled into the binary, once; a call is
//! then a hash lookup of its path and relaxed atomic adds. The lookup hashes with FxHash: the
//! table's keys are fixed at start, and a client's path is only looked up, never inserted, so
//! it cannot crowd a bucket.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prost::Message;
use tower::{Layer, Service};

/// gRPC status codes by number, under grpc-go's names.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
const CANCELED: usize = 1;
const UNKNOWN: usize = 2;

struct Method {
    service: String,
    name: String,
    /// go-grpc-prometheus' `grpc_type`.
    kind: &'static str,
    started: AtomicU64,
    handled: [AtomicU64; CODES.len()],
}

struct Table {
    methods: Vec<Method>,
    by_path: rustc_hash::FxHashMap<String, usize>,
}

static TABLE: LazyLock<Table> = LazyLock::new(Table::load);

impl Table {
    /// Every method of the client port: the etcd, lock, election and browser services and
    /// grpc.health.v1, but not the peer service, which the peer port serves.
    fn load() -> Table {
        let sets = [cairn_proto::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET];
        let mut methods = Vec::new();
        for raw in sets {
            let set = prost_types::FileDescriptorSet::decode(raw).expect("the descriptor sets compiled into the binary decode");
            for file in &set.file {
                for service in &file.service {
                    let service_name = format!("{}.{}", file.package(), service.name());
                    if service_name == cairn_proto::cairnpb::raft_server::SERVICE_NAME {
                        continue;
                    }
                    for m in &service.method {
                        let kind = match (m.client_streaming(), m.server_streaming()) {
                            (false, false) => "unary",
                            (true, false) => "client_stream",
                            (false, true) => "server_stream",
                            (true, true) => "bidi_stream",
                        };
                        methods.push(Method {
                            service: service_name.clone(),
                            name: m.name().to_string(),
                            kind,
                            started: AtomicU64::new(0),
                            handled: [const { AtomicU64::new(0) }; CODES.len()],
                        });
                    }
                }
            }
        }
        methods.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
        let by_path = methods.iter().enumerate().map(|(i, m)| (format!("/{}/{}", m.service, m.name), i)).collect();
        Table { methods, by_path }
    }

    fn method(&'static self, path: &str) -> Option<&'static Method> {
        self.by_path.get(path).map(|&i| &self.methods[i])
    }
}

static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The code index of a `grpc-status` value; anything unreadable is `Unknown`.
fn code_of(headers: &http::HeaderMap) -> Option<usize> {
    let value = headers.get(&GRPC_STATUS)?;
    let code = value.to_str().ok().and_then(|v| v.parse::<usize>().ok()).filter(|&c| c < CODES.len());
    Some(code.unwrap_or(UNKNOWN))
}

/// A started call's count of its outcome, taken once; a call dropped unsettled was canceled.
struct Outcome(Option<&'static Method>);

impl Outcome {
    fn settle(&mut self, code: usize) {
        if let Some(method) = self.0.take() {
            method.handled[code].fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        self.settle(CANCELED);
    }
}

/// Counts the gRPC calls of the services it wraps.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMetricsLayer;

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for GrpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<Metered<R>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = TABLE.method(req.uri().path());
        if let Some(method) = method {
            method.started.fetch_add(1, Ordering::Relaxed);
        }
        let mut outcome = Outcome(method);
        let call = self.inner.call(req);
        Box::pin(async move {
            let resp = match call.await {
                Ok(resp) => resp,
                Err(e) => {
                    outcome.settle(UNKNOWN);
                    return Err(e);
                }
            };
            if let Some(code) = code_of(resp.headers()) {
                outcome.settle(code);
            }
            Ok(resp.map(|inner| Metered { inner, outcome }))
        })
    }
}

/// A response body that counts its call's outcome from the trailers that end it.
pub struct Metered<B> {
    inner: B,
    outcome: Outcome,
}

impl<B> Body for Metered<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.outcome.settle(code_of(trailers).unwrap_or(UNKNOWN));
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => this.outcome.settle(UNKNOWN),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Encodes the two families.
#[derive(Debug)]
pub struct Collector;

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let methods = &TABLE.methods;
        let mut started = encoder.encode_descriptor("grpc_server_started", "Total number of RPCs started on the server.", None, MetricType::Counter)?;
        for m in methods {
            let labels = [("grpc_method", m.name.as_str()), ("grpc_service", m.service.as_str()), ("grpc_type", m.kind)];
            started.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&m.started.load(Ordering::Relaxed), None)?;
        }
        let help = "Total number of RPCs completed on the server, regardless of success or failure.";
        let mut handled = encoder.encode_descriptor("grpc_server_handled", help, None, MetricType::Counter)?;
        for (code, name) in CODES.iter().enumerate() {
            for m in methods {
                let labels = [("grpc_code", *name), ("grpc_method", m.name.as_str()), ("grpc_service", m.service.as_str()), ("grpc_type", m.kind)];
                handled.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&m.handled[code].load(Ordering::Relaxed), None)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_knows_the_client_port_methods_and_their_kinds() {
        let kind = |path: &str| TABLE.method(path).map(|m| m.kind);
        assert_eq!(kind("/etcdserverpb.KV/Range"), Some("unary"));
        assert_eq!(kind("/etcdserverpb.Watch/Watch"), Some("bidi_stream"));
        assert_eq!(kind("/etcdserverpb.Maintenance/Snapshot"), Some("server_stream"));
        assert_eq!(kind("/grpc.health.v1.Health/Check"), Some("unary"));
        assert_eq!(kind("/grpc.health.v1.Health/Watch"), Some("server_stream"));
        assert_eq!(kind("/cairnpb.Raft/Propose"), None, "the peer service is not on the client port");
        assert_eq!(kind("/v3/kv/range"), None);
    }

    #[test]
    fn grpc_status_values_map_to_codes() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(code_of(&headers), None);
        headers.insert("grpc-status", http::HeaderValue::from_static("14"));
        assert_eq!(code_of(&headers).map(|c| CODES[c]), Some("Unavailable"));
        headers.insert("grpc-status", http::HeaderValue::from_static("99"));
        assert_eq!(code_of(&headers).map(|c| CODES[c]), Some("Unknown"));
    }

    #[test]
    fn an_unsettled_call_counts_as_canceled_once() {
        let method = TABLE.method("/etcdserverpb.Lease/LeaseRevoke").expect("a known method");
        let before = method.handled[CANCELED].load(Ordering::Relaxed);
        let mut outcome = Outcome(Some(method));
        drop(Outcome(Some(method)));
        outcome.settle(0);
        drop(outcome);
        assert_eq!(method.handled[CANCELED].load(Ordering::Relaxed), before + 1);
    }
}
