//! etcd's HTTP/JSON gateway (reference/etcd-api.md §6.1, §6.2), transcoded in-process onto the
//! member's own gRPC services, as etcd 3.5's grpc-gateway v1 does it over loopback.
//!
//! A request's first JSON value becomes the request message ([`decode`]); the call goes to
//! [`GrpcService`](super::GrpcService) with the `Authorization` header as metadata ([`grpc`]);
//! the reply is written by jsonpb's rules ([`encode`]). Streams answer chunked,
//! newline-delimited `{"result":..}` lines, and an `{"error":..}` chunk if they fail
//! ([`reply`]). Malformed input gets grpc-gateway's error body with Go's own wording
//! ([`scan`]).

mod decode;
mod encode;
mod grpc;
mod reply;
mod scan;
mod schema;

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use http::header::{HeaderMap, HeaderName, AUTHORIZATION};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use super::{drain, HttpState};
use reply::Status;
use scan::{Decoder, Next};
use schema::{Method, Schema};

/// etcd 3.5's gateway paths below the version prefix, and the gRPC methods they call
/// (the `google.api.http` options of rpc.proto, v3lock.proto and v3election.proto).
const ROUTES: &[(&str, &str)] = &[
    ("kv/range", "/etcdserverpb.KV/Range"),
    ("kv/put", "/etcdserverpb.KV/Put"),
    ("kv/deleterange", "/etcdserverpb.KV/DeleteRange"),
    ("kv/txn", "/etcdserverpb.KV/Txn"),
    ("kv/compaction", "/etcdserverpb.KV/Compact"),
    ("watch", "/etcdserverpb.Watch/Watch"),
    ("lease/grant", "/etcdserverpb.Lease/LeaseGrant"),
    ("lease/revoke", "/etcdserverpb.Lease/LeaseRevoke"),
    ("kv/lease/revoke", "/etcdserverpb.Lease/LeaseRevoke"),
    ("lease/keepalive", "/etcdserverpb.Lease/LeaseKeepAlive"),
    ("lease/timetolive", "/etcdserverpb.Lease/LeaseTimeToLive"),
    ("kv/lease/timetolive", "/etcdserverpb.Lease/LeaseTimeToLive"),
    ("lease/leases", "/etcdserverpb.Lease/LeaseLeases"),
    ("kv/lease/leases", "/etcdserverpb.Lease/LeaseLeases"),
    ("cluster/member/add", "/etcdserverpb.Cluster/MemberAdd"),
    ("cluster/member/remove", "/etcdserverpb.Cluster/MemberRemove"),
    ("cluster/member/update", "/etcdserverpb.Cluster/MemberUpdate"),
    ("cluster/member/list", "/etcdserverpb.Cluster/MemberList"),
    ("cluster/member/promote", "/etcdserverpb.Cluster/MemberPromote"),
    ("maintenance/alarm", "/etcdserverpb.Maintenance/Alarm"),
    ("maintenance/status", "/etcdserverpb.Maintenance/Status"),
    ("maintenance/defragment", "/etcdserverpb.Maintenance/Defragment"),
    // etcd 3.5 binds HashKV to this path too, and Hash wins it; 3.6 moved HashKV to its own.
    ("maintenance/hash", "/etcdserverpb.Maintenance/Hash"),
    ("maintenance/hashkv", "/etcdserverpb.Maintenance/HashKV"),
    ("maintenance/snapshot", "/etcdserverpb.Maintenance/Snapshot"),
    ("maintenance/transfer-leadership", "/etcdserverpb.Maintenance/MoveLeader"),
    ("maintenance/downgrade", "/etcdserverpb.Maintenance/Downgrade"),
    ("auth/enable", "/etcdserverpb.Auth/AuthEnable"),
    ("auth/disable", "/etcdserverpb.Auth/AuthDisable"),
    ("auth/status", "/etcdserverpb.Auth/AuthStatus"),
    ("auth/authenticate", "/etcdserverpb.Auth/Authenticate"),
    ("auth/user/add", "/etcdserverpb.Auth/UserAdd"),
    ("auth/user/get", "/etcdserverpb.Auth/UserGet"),
    ("auth/user/list", "/etcdserverpb.Auth/UserList"),
    ("auth/user/delete", "/etcdserverpb.Auth/UserDelete"),
    ("auth/user/changepw", "/etcdserverpb.Auth/UserChangePassword"),
    ("auth/user/grant", "/etcdserverpb.Auth/UserGrantRole"),
    ("auth/user/revoke", "/etcdserverpb.Auth/UserRevokeRole"),
    ("auth/role/add", "/etcdserverpb.Auth/RoleAdd"),
    ("auth/role/get", "/etcdserverpb.Auth/RoleGet"),
    ("auth/role/list", "/etcdserverpb.Auth/RoleList"),
    ("auth/role/delete", "/etcdserverpb.Auth/RoleDelete"),
    ("auth/role/grant", "/etcdserverpb.Auth/RoleGrantPermission"),
    ("auth/role/revoke", "/etcdserverpb.Auth/RoleRevokePermission"),
    ("lock/lock", "/v3lockpb.Lock/Lock"),
    ("lock/unlock", "/v3lockpb.Lock/Unlock"),
    ("election/campaign", "/v3electionpb.Election/Campaign"),
    ("election/proclaim", "/v3electionpb.Election/Proclaim"),
    ("election/leader", "/v3electionpb.Election/Leader"),
    ("election/observe", "/v3electionpb.Election/Observe"),
    ("election/resign", "/v3electionpb.Election/Resign"),
];

/// `/v3/`, and `/v3beta/`, which etcd still rewrites to it (etcd3gw picks it for 3.3).
const PREFIXES: [&str; 2] = ["/v3/", "/v3beta/"];

/// A JSON request value may be this many times the gRPC receive limit (base64 alone makes
/// bytes a third bigger); anything larger is refused unread, so a body cannot eat memory.
const JSON_BYTES_PER_MESSAGE_BYTE: usize = 4;

/// Request messages queued towards a bidirectional stream.
const STREAM_QUEUE: usize = 16;

/// gRPC metadata a client cannot set through `Grpc-Metadata-*`.
const RESERVED_METADATA: [&str; 4] = ["content-type", "te", "user-agent", "authorization"];

/// One gateway path's method.
#[derive(Clone, Copy)]
struct Rpc {
    path: &'static str,
    method: Method,
}

pub fn router() -> Router<HttpState> {
    let schema = Schema::get();
    let mut router = Router::new();
    for &(path, grpc_path) in ROUTES {
        let method = schema.method(grpc_path).unwrap_or_else(|| panic!("{grpc_path} is a method of cairn-proto"));
        let rpc = Rpc { path: grpc_path, method };
        for prefix in PREFIXES {
            router = router.route(&format!("{prefix}{path}"), any(move |State(state): State<HttpState>, req: Request| transcode(state, rpc, req)));
        }
    }
    for prefix in PREFIXES {
        router = router.route(prefix, any(not_found)).route(&format!("{prefix}{{*rest}}"), any(not_found));
    }
    router.route("/v3", any(|req: Request| async move { reply::moved_to("/v3/", req.method()) }))
}

/// An unknown path under a gateway prefix. The body is read first, as for every answer here.
async fn not_found(req: Request) -> Response {
    drain(&mut req.into_body()).await;
    reply::not_found()
}

async fn transcode(state: HttpState, rpc: Rpc, req: Request) -> Response {
    if req.method() != http::Method::POST {
        drain(&mut req.into_body()).await;
        return reply::method_not_allowed();
    }
    let metadata = forwarded_metadata(req.headers());
    let max_recv = state.node.config().max_request_bytes + cairn_core::node::GRPC_OVERHEAD_BYTES;
    let mut body = JsonBody { body: req.into_body(), decoder: Decoder::default(), max_recv };
    if rpc.method.client_streaming {
        return bidirectional(&state, rpc, metadata, body).await;
    }
    // grpc-gateway reads the whole body, then its first value; an empty body is an empty
    // request.
    let wire = body.next_message(rpc.method.input).await;
    body.drain().await;
    let wire = match wire {
        Ok(wire) => wire.unwrap_or_default(),
        Err(status) => return reply::error(&status),
    };
    let reply = grpc::call(&state.grpc, rpc.path, metadata, Body::from(grpc::frame(&wire))).await;
    if rpc.method.server_streaming {
        streamed(reply, rpc.method.output).await
    } else {
        unary(reply, rpc.method.output).await
    }
}

/// The `authorization` header, and `Grpc-Metadata-<key>` headers as `<key>`, as grpc-gateway
/// forwards them.
fn forwarded_metadata(headers: &HeaderMap) -> HeaderMap {
    let mut metadata = HeaderMap::new();
    for (name, value) in headers {
        if name == AUTHORIZATION {
            metadata.append(AUTHORIZATION, value.clone());
        } else if let Some(key) = name.as_str().strip_prefix("grpc-metadata-") {
            if key.starts_with("grpc-") || RESERVED_METADATA.contains(&key) {
                continue;
            }
            if let Ok(key) = HeaderName::from_bytes(key.as_bytes()) {
                metadata.append(key, value.clone());
            }
        }
    }
    metadata
}

/// A request body read as a sequence of JSON values.
struct JsonBody {
    body: Body,
    decoder: Decoder,
    max_recv: usize,
}

impl JsonBody {
    /// The next value as wire bytes of message `input`; `None` at the end of the body.
    async fn next_message(&mut self, input: usize) -> Result<Option<Vec<u8>>, Status> {
        let Some(raw) = self.next_value().await? else { return Ok(None) };
        decode::message(Schema::get(), input, &raw).map(Some).map_err(|e| Status::new(Code::InvalidArgument, e))
    }

    /// Reads the rest of the body (see [`drain`](super::drain)).
    async fn drain(&mut self) {
        drain(&mut self.body).await;
    }

    async fn next_value(&mut self) -> Result<Option<Vec<u8>>, Status> {
        loop {
            match self.decoder.next() {
                Next::Value(raw) => return Ok(Some(raw)),
                Next::Eof => return Ok(None),
                Next::Err(e) => return Err(Status::new(Code::InvalidArgument, e)),
                Next::NeedMore => {}
            }
            let held = self.decoder.pending();
            if held > self.max_recv * JSON_BYTES_PER_MESSAGE_BYTE {
                // What the gRPC server would say of a message this size.
                return Err(Status::new(Code::ResourceExhausted, format!("grpc: received message larger than max ({held} vs. {})", self.max_recv)));
            }
            match self.body.frame().await {
                None => self.decoder.finish(),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.feed(&data);
                    }
                }
                Some(Err(e)) => return Err(Status::new(Code::InvalidArgument, e.to_string())),
            }
        }
    }
}

async fn unary(mut reply: grpc::Reply, output: usize) -> Response {
    let message = match reply.next().await {
        Some(Ok(message)) => message,
        Some(Err(status)) => return reply::error(&status),
        None => return reply::error(&Status::new(Code::Internal, "grpc: the server sent no response message")),
    };
    // The status in the trailers has the last word, as for any gRPC client.
    if let Some(Err(status)) = reply.next().await {
        return reply::error(&status);
    }
    match encode::message(Schema::get(), output, &message) {
        Ok(json) => reply::message(json),
        Err(e) => reply::error(&Status::new(Code::Internal, e)),
    }
}

/// Answers a streaming call once its first message (or its end) is in: a stream that fails
/// before it gets the error's HTTP status, as in etcd.
async fn streamed(mut reply: grpc::Reply, output: usize) -> Response {
    let first = match reply.next().await {
        None => return reply::streamed(Body::empty()),
        Some(Err(status)) => return reply::stream_failed(&status),
        Some(Ok(message)) => message,
    };
    let first = match result_chunk(output, &first) {
        Ok(chunk) => chunk,
        Err(status) => return reply::stream_failed(&status),
    };
    let rest = futures::stream::unfold(Some(reply), move |reply| async move {
        let mut reply = reply?;
        match reply.next().await {
            None => None,
            Some(Ok(message)) => match result_chunk(output, &message) {
                Ok(chunk) => Some((chunk, Some(reply))),
                Err(status) => Some((Bytes::from(reply::stream_error(&status)), None)),
            },
            Some(Err(status)) => Some((Bytes::from(reply::stream_error(&status)), None)),
        }
    });
    let chunks = futures::stream::once(async { first }).chain(rest).map(Ok::<_, Infallible>);
    reply::streamed(Body::from_stream(chunks))
}

fn result_chunk(output: usize, message: &[u8]) -> Result<Bytes, Status> {
    let json = encode::message(Schema::get(), output, message).map_err(|e| Status::new(Code::Internal, e))?;
    Ok(Bytes::from(reply::result_chunk(&json)))
}

/// Watch and lease keep-alive: every JSON value in the body is a request on one stream, sent
/// as it arrives; the end of the body (or a malformed value after the first) half-closes the
/// stream, which a watch outlives and a keep-alive does not.
async fn bidirectional(state: &HttpState, rpc: Rpc, metadata: HeaderMap, mut body: JsonBody) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(STREAM_QUEUE);
    match body.next_message(rpc.method.input).await {
        Err(status) => {
            body.drain().await;
            // grpc-gateway reports a first request it cannot read as a plain error (code
            // Unknown), and one too large for gRPC as the failed stream it causes.
            return match status.code {
                Code::ResourceExhausted => reply::stream_failed(&status),
                _ => reply::error(&Status::new(Code::Unknown, status.message)),
            };
        }
        Ok(None) => drop(tx),
        Ok(Some(first)) => {
            let _ = tx.try_send(grpc::frame(&first));
            tokio::spawn(forward_requests(body, rpc.method.input, tx));
        }
    }
    let requests = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>));
    let reply = grpc::call(&state.grpc, rpc.path, metadata, requests).await;
    streamed(reply, rpc.method.output).await
}

async fn forward_requests(mut body: JsonBody, input: usize, tx: mpsc::Sender<Bytes>) {
    loop {
        let next = tokio::select! {
            _ = tx.closed() => return,
            next = body.next_message(input) => next,
        };
        let Ok(Some(message)) = next else { return };
        if tx.send(grpc::frame(&message)).await.is_err() {
            return;
        }
    }
}
