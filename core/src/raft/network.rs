//! The raft transport: openraft's RPCs and the follower-to-leader calls, over the peer gRPC
//! service (`cairnpb.Raft`), except appends, which go on framed streams of their own (see
//! [`framed`]) to members that take them. Channels connect lazily and are shared per member.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn_proto::cairnpb::raft_client::RaftClient;
use cairn_proto::cairnpb::{
    CommandBatch, CommandError, MemberChangeRequest, MemberChangeResponse, ProposeResponse, RaftPayload, ReadIndexRequest, TransferRequest,
};
use cairn_proto::etcdserverpb::{MemberListRequest, MemberListResponse, MemberRemoveRequest};
use cairn_proto::etcdserverpb::{LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::framed::{self, PeerIo};
use super::types::{Member, TypeConfig};
use crate::error::{Error, Result};

/// Raft messages can carry many entries or a snapshot chunk; well above the client limit.
pub const MAX_PEER_MESSAGE: usize = 256 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// gRPC channels to the other members, by member ID.
#[derive(Default)]
pub struct Peers {
    channels: Mutex<HashMap<u64, (String, Channel)>>,
    /// Client TLS for `https://` peer URLs (the `--peer-*` flags).
    tls: Option<PeerTls>,
    /// Open append streams with no request in flight, by member. openraft makes a new client
    /// for every leadership check; the pool lets those heartbeats reuse streams too.
    idle_appends: Mutex<HashMap<u64, Vec<AppendStream>>>,
    /// Peer URLs that refused a framed append stream (members from before it), and when: they
    /// get gRPC streams until [`FRAMED_RETRY`] has passed.
    grpc_only: Mutex<HashMap<String, Instant>>,
}

/// How long a member that refused framed append streams is left on gRPC before it is asked
/// again (it may have been upgraded meanwhile).
const FRAMED_RETRY: Duration = Duration::from_secs(60);

/// Idle append streams kept per member (one per replication, plus a few for leadership checks).
const IDLE_APPENDS_PER_MEMBER: usize = 4;

/// How this member connects to `https://` peer URLs.
pub type PeerTls = std::sync::Arc<tokio_rustls::rustls::ClientConfig>;

/// An endpoint for a peer URL. An `https://` URL is dialled through rustls with `tls`; tonic
/// itself then sees a plain connection, so its own TLS (absent) never gets in the way.
fn peer_channel(url: &str, tls: Option<&PeerTls>, configure: impl FnOnce(Endpoint) -> Endpoint) -> Result<Channel> {
    let bad = |e: &dyn std::fmt::Display| Error::Internal(format!("bad peer URL {url}: {e}"));
    let Some(rest) = url.strip_prefix("https://") else {
        return Ok(configure(Endpoint::from_shared(url.to_string()).map_err(|e| bad(&e))?).connect_lazy());
    };
    let tls = tls.ok_or_else(|| Error::Internal(format!("peer URL {url} is https, but no peer TLS is configured (--peer-cert-file/--peer-key-file or --peer-auto-tls)")))?;
    let endpoint = configure(Endpoint::from_shared(format!("http://{rest}")).map_err(|e| bad(&e))?);
    let connector = TlsConnector { config: tls.clone() };
    Ok(endpoint.connect_with_connector_lazy(connector))
}

/// Dials TCP, then a TLS handshake naming the URL's host.
#[derive(Clone)]
struct TlsConnector {
    config: PeerTls,
}

impl tower::Service<http::Uri> for TlsConnector {
    type Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let config = self.config.clone();
        Box::pin(async move { Ok(hyper_util::rt::TokioIo::new(dial_tls(config, &uri).await?)) })
    }
}

fn invalid_url(what: &str, uri: &http::Uri) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what} in peer URL {uri}"))
}

/// Dials `uri`'s host over TCP and shakes hands over TLS, naming the host.
async fn dial_tls(config: PeerTls, uri: &http::Uri) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let host = uri.host().ok_or_else(|| invalid_url("no host", uri))?.trim_start_matches('[').trim_end_matches(']').to_string();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host).map_err(|_| invalid_url("bad host", uri))?;
    let tcp = dial_tcp(uri, 443).await?;
    tokio_rustls::TlsConnector::from(config).connect(name, tcp).await
}

async fn dial_tcp(uri: &http::Uri, default_port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let host = uri.host().ok_or_else(|| invalid_url("no host", uri))?.trim_start_matches('[').trim_end_matches(']');
    let tcp = tokio::net::TcpStream::connect((host, uri.port_u16().unwrap_or(default_port))).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// A framed append stream's connection, read through a buffer.
type FramedIo = tokio::io::BufReader<Box<dyn PeerIo>>;

impl Peers {
    pub fn new(tls: Option<PeerTls>) -> Peers {
        Peers { channels: Mutex::default(), tls, idle_appends: Mutex::default(), grpc_only: Mutex::default() }
    }

    /// An idle append stream to member `id` over `url`, if one is open.
    fn take_append_stream(&self, id: u64, url: &str) -> Option<AppendStream> {
        let mut idle = self.idle_appends.lock().expect("the peers lock is never poisoned");
        let streams = idle.get_mut(&id)?;
        streams.retain(|s| s.url == url);
        streams.pop()
    }

    /// Returns a stream whose last request was answered, for the next call to reuse.
    fn put_append_stream(&self, id: u64, stream: AppendStream) {
        let mut idle = self.idle_appends.lock().expect("the peers lock is never poisoned");
        let streams = idle.entry(id).or_default();
        if streams.len() < IDLE_APPENDS_PER_MEMBER {
            streams.push(stream);
        }
    }

    /// Whether the member at `url` refused a framed append stream not long ago.
    fn grpc_only(&self, url: &str) -> bool {
        let mut refused = self.grpc_only.lock().expect("the peers lock is never poisoned");
        match refused.get(url) {
            Some(at) if at.elapsed() < FRAMED_RETRY => true,
            Some(_) => {
                refused.remove(url);
                false
            }
            None => false,
        }
    }

    /// Opens a framed append stream to `url`. `Ok(None)` means the member there speaks only
    /// gRPC (it is remembered); an error, that it could not be reached.
    async fn open_framed(&self, url: &str) -> std::io::Result<Option<FramedIo>> {
        let uri: http::Uri = url.parse().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("bad peer URL {url}: {e}")))?;
        let io: Box<dyn PeerIo> = match (uri.scheme_str(), &self.tls) {
            (Some("https"), Some(tls)) => Box::new(tokio::time::timeout(CONNECT_TIMEOUT, dial_tls(tls.clone(), &uri)).await??),
            (Some("https"), None) => return Err(std::io::Error::other(format!("peer URL {url} is https, but no peer TLS is configured"))),
            _ => Box::new(tokio::time::timeout(CONNECT_TIMEOUT, dial_tcp(&uri, 80)).await??),
        };
        let mut io = tokio::io::BufReader::new(io);
        // An older member answers the preface as a bad request, or (by its timers) not at all.
        if let Ok(Ok(true)) = tokio::time::timeout(CONNECT_TIMEOUT, framed::open(&mut io)).await {
            return Ok(Some(io));
        }
        tracing::info!("the member at {url} does not take framed append streams; using gRPC streams");
        self.grpc_only.lock().expect("the peers lock is never poisoned").insert(url.to_string(), Instant::now());
        Ok(None)
    }

    pub fn client(&self, id: u64, member: &Member) -> Result<RaftClient<Channel>> {
        // A member with no URL is one just removed from the membership (a follower can still
        // name it as leader until it hears of the election): the caller retries elsewhere.
        let url = member.peer_urls.first().ok_or(Error::NotLeader)?;
        let mut channels = self.channels.lock().expect("the peers lock is never poisoned");
        let channel = match channels.get(&id) {
            Some((known, ch)) if known == url => ch.clone(),
            _ => {
                let ch = peer_channel(url, self.tls.as_ref(), |e| {
                    e.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true).http2_keep_alive_interval(Duration::from_secs(10))
                })?;
                channels.insert(id, (url.clone(), ch.clone()));
                ch
            }
        };
        Ok(RaftClient::new(channel).max_decoding_message_size(MAX_PEER_MESSAGE).max_encoding_message_size(MAX_PEER_MESSAGE))
    }

    /// Forwards a batch of writes to the leader; `Error::NotLeader` means it was not proposed.
    pub async fn propose(&self, id: u64, member: &Member, batch: CommandBatch, timeout: Duration) -> Result<ProposeResponse> {
        let mut req = tonic::Request::new(batch);
        req.set_timeout(timeout);
        match self.client(id, member)?.propose(req).await {
            Ok(resp) => Ok(resp.into_inner()),
            Err(status) => Err(forward_error(&status)),
        }
    }

    pub async fn read_index(&self, id: u64, member: &Member, timeout: Duration) -> Result<u64> {
        let mut req = tonic::Request::new(ReadIndexRequest {});
        req.set_timeout(timeout);
        match self.client(id, member)?.read_index(req).await {
            Ok(resp) => Ok(resp.into_inner().index),
            Err(status) => Err(forward_error(&status)),
        }
    }

    pub async fn lease_renew(&self, id: u64, member: &Member, req: LeaseKeepAliveRequest, timeout: Duration) -> Result<LeaseKeepAliveResponse> {
        let mut req = tonic::Request::new(req);
        req.set_timeout(timeout);
        match self.client(id, member)?.lease_renew(req).await {
            Ok(resp) => Ok(resp.into_inner()),
            Err(status) => Err(forward_error(&status)),
        }
    }

    pub async fn member_change(&self, id: u64, member: &Member, req: MemberChangeRequest, timeout: Duration) -> Result<MemberChangeResponse> {
        let mut req = tonic::Request::new(req);
        req.set_timeout(timeout);
        match self.client(id, member)?.member_change(req).await {
            Ok(resp) => Ok(resp.into_inner()),
            Err(status) => Err(forward_error(&status)),
        }
    }

    /// Tells member `id` that it has been removed (best effort: it may be down).
    pub async fn removed(&self, id: u64, member: &Member, timeout: Duration) -> Result<()> {
        let mut req = tonic::Request::new(MemberRemoveRequest { id });
        req.set_timeout(timeout);
        self.client(id, member)?.removed(req).await.map(drop).map_err(|s| forward_error(&s))
    }

    pub async fn transfer(&self, id: u64, member: &Member, req: TransferRequest, timeout: Duration) -> Result<()> {
        let mut req = tonic::Request::new(req);
        req.set_timeout(timeout);
        self.client(id, member)?.transfer(req).await.map(drop).map_err(|s| forward_error(&s))
    }

    /// Asks the member at `url` (not yet known by ID) for the membership.
    pub async fn member_list_at(url: &str, tls: Option<&PeerTls>, timeout: Duration) -> Result<MemberListResponse> {
        let channel = peer_channel(url, tls, |e| e.connect_timeout(CONNECT_TIMEOUT).timeout(timeout))?;
        let mut client = RaftClient::new(channel);
        match client.member_list(MemberListRequest { linearizable: false }).await {
            Ok(resp) => Ok(resp.into_inner()),
            Err(status) => Err(Error::Internal(format!("member list from {url}: {}", status.message()))),
        }
    }

    pub async fn lease_time_to_live(&self, id: u64, member: &Member, req: LeaseTimeToLiveRequest, timeout: Duration) -> Result<LeaseTimeToLiveResponse> {
        let mut req = tonic::Request::new(req);
        req.set_timeout(timeout);
        match self.client(id, member)?.lease_time_to_live(req).await {
            Ok(resp) => Ok(resp.into_inner()),
            Err(status) => Err(forward_error(&status)),
        }
    }
}

/// The status a member answers a forwarded call with when it is no longer the leader.
pub const NOT_LEADER_MESSAGE: &str = "cairn: not leader";
/// How a core error other than "not leader" crosses the peer wire: this prefix, its stable
/// code and its detail, in the status message.
pub const CORE_ERROR_PREFIX: &str = "cairn-error:";

/// The status that carries `e` to the member that forwarded a call.
pub fn error_status(e: &Error) -> tonic::Status {
    match e {
        Error::NotLeader => tonic::Status::failed_precondition(NOT_LEADER_MESSAGE),
        other => {
            let wire = other.to_wire();
            tonic::Status::aborted(format!("{CORE_ERROR_PREFIX}{}:{}", wire.code, wire.detail))
        }
    }
}

fn forward_error(status: &tonic::Status) -> Error {
    if status.code() == tonic::Code::FailedPrecondition && status.message() == NOT_LEADER_MESSAGE {
        return Error::NotLeader;
    }
    if let Some(rest) = status.message().strip_prefix(CORE_ERROR_PREFIX).filter(|_| status.code() == tonic::Code::Aborted) {
        let (code, detail) = rest.split_once(':').unwrap_or((rest, ""));
        return Error::from_wire(&CommandError { code: code.parse().unwrap_or(0), detail: detail.to_string() });
    }
    // A call that never reached the leader can be retried elsewhere; anything else may have
    // been proposed, so the caller must not resend it.
    if is_connect_error(status) {
        return Error::NotLeader;
    }
    match status.code() {
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => Error::Timeout,
        _ => Error::LeaderChanged,
    }
}

fn is_connect_error(status: &tonic::Status) -> bool {
    let text = format!("{status:?}");
    status.code() == tonic::Code::Unavailable && (text.contains("tcp connect") || text.contains("Connection refused") || text.contains("error trying to connect"))
}

/// Creates the per-target clients openraft asks for.
#[derive(Clone)]
pub struct Network {
    pub peers: std::sync::Arc<Peers>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &Member) -> Self::Network {
        let url = node.peer_urls.first().cloned().unwrap_or_default();
        PeerClient { target, url, client: self.peers.client(target, node), peers: self.peers.clone(), unary: false }
    }
}

pub struct PeerClient {
    target: u64,
    url: String,
    client: Result<RaftClient<Channel>>,
    peers: std::sync::Arc<Peers>,
    /// The target answered AppendStream with Unimplemented (a member from before it existed):
    /// this client sends unary AppendEntries instead.
    unary: bool,
}

/// A long-lived AppendStream call. It is owned by the call using it and goes back to the pool
/// only once its reply is read, so a call openraft abandons (it times calls out itself) takes
/// its stream down with it, and a late reply is never read as another request's.
struct AppendStream {
    url: String,
    link: Link,
}

enum Link {
    /// Length-framed messages on a connection of its own (see [`framed`]).
    Framed(FramedIo),
    /// A bidirectional gRPC call, for members without framed streams.
    Grpc { requests: tokio::sync::mpsc::Sender<RaftPayload>, replies: tonic::Streaming<RaftPayload> },
}

fn network_error<E: std::error::Error>(status: &tonic::Status) -> RPCError<u64, Member, RaftError<u64, E>> {
    if is_connect_error(status) {
        RPCError::Unreachable(Unreachable::new(status))
    } else {
        RPCError::Network(NetworkError::new(status))
    }
}

type RpcResult<T, E = openraft::error::Infallible> = std::result::Result<T, RPCError<u64, Member, RaftError<u64, E>>>;

/// The unary raft RPCs.
enum Kind {
    Append,
    Vote,
    Snapshot,
}

impl PeerClient {
    async fn call<Req, Resp, E>(&mut self, kind: Kind, req: &Req, option: &RPCOption) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = self.client.as_mut().map_err(|e| RPCError::Unreachable(Unreachable::new(e)))?;
        let data = bincode::serialize(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(RaftPayload { data });
        request.set_timeout(option.hard_ttl());
        let reply = match kind {
            Kind::Append => client.append_entries(request).await,
            Kind::Vote => client.vote(request).await,
            Kind::Snapshot => client.install_snapshot(request).await,
        };
        let reply = reply.map_err(|status| network_error(&status))?;
        self.decode_reply(&reply.into_inner().data)
    }

    /// A raft reply as the target encoded it: its result, or its raft error as a remote one.
    // openraft's RPCError is the error type its network trait returns; boxing is not ours.
    #[allow(clippy::result_large_err)]
    fn decode_reply<Resp, E>(&self, data: &[u8]) -> RpcResult<Resp, E>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let result: std::result::Result<Resp, RaftError<u64, E>> = bincode::deserialize(data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    /// Sends one encoded AppendEntries request on an append stream (an idle one, else a new
    /// one: framed where the target takes it, gRPC otherwise) and waits for its reply.
    async fn append_on_stream(&mut self, data: Vec<u8>) -> RpcResult<Vec<u8>> {
        let mut request = RaftPayload { data };
        while let Some(idle) = self.peers.take_append_stream(self.target, &self.url) {
            request = match self.append_on(idle, request).await {
                Ok(reply) => return reply,
                // The stream had ended (its peer went away) before the request went out: try
                // the next, or a new one.
                Err(unsent) => unsent,
            };
        }
        if !self.peers.grpc_only(&self.url) {
            match self.peers.open_framed(&self.url).await {
                Ok(Some(io)) => {
                    let stream = AppendStream { url: self.url.clone(), link: Link::Framed(io) };
                    // A fresh stream that ends at once has nothing to fall back on.
                    return match self.append_on(stream, request).await {
                        Ok(reply) => reply,
                        Err(_) => Err(ended()),
                    };
                }
                Ok(None) => {}
                Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            }
        }
        let client = self.client.as_mut().map_err(|e| RPCError::Unreachable(Unreachable::new(e)))?;
        let (requests, outgoing) = tokio::sync::mpsc::channel(1);
        // The first request goes out with the stream's headers, not a round trip later; a copy
        // stays here in case the target is too old to take the stream.
        let first = request.clone();
        requests.send(request).await.map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut replies = match client.append_stream(tokio_stream::wrappers::ReceiverStream::new(outgoing)).await {
            Ok(replies) => replies.into_inner(),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                self.unary = true;
                return client.append_entries(first).await.map(|r| r.into_inner().data).map_err(|s| network_error(&s));
            }
            Err(status) => return Err(network_error(&status)),
        };
        let reply = Self::grpc_reply(&mut replies).await;
        if reply.is_ok() {
            self.peers.put_append_stream(self.target, AppendStream { url: self.url.clone(), link: Link::Grpc { requests, replies } });
        }
        reply
    }

    /// Sends `request` on `stream` and reads its reply; the stream goes back to the pool once
    /// the reply is read. `Err` gives the request back when the stream had already ended
    /// before it went out (a framed stream whose peer closed it, while idle, reads as such).
    async fn append_on(&self, mut stream: AppendStream, request: RaftPayload) -> std::result::Result<RpcResult<Vec<u8>>, RaftPayload> {
        let reply = match &mut stream.link {
            Link::Framed(io) => match framed::call(io, &request.data, MAX_PEER_MESSAGE).await {
                Ok(reply) => Ok(reply),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof || e.kind() == std::io::ErrorKind::BrokenPipe || e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Err(request)
                }
                Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
            },
            Link::Grpc { requests, replies } => {
                if let Err(tokio::sync::mpsc::error::SendError(unsent)) = requests.send(request).await {
                    return Err(unsent);
                }
                Self::grpc_reply(replies).await
            }
        };
        if reply.is_ok() {
            self.peers.put_append_stream(self.target, stream);
        }
        Ok(reply)
    }

    async fn grpc_reply(replies: &mut tonic::Streaming<RaftPayload>) -> RpcResult<Vec<u8>> {
        match replies.message().await {
            Ok(Some(reply)) => Ok(reply.data),
            Ok(None) => Err(ended()),
            Err(status) => Err(network_error(&status)),
        }
    }
}

fn ended<E: std::error::Error>() -> RPCError<u64, Member, RaftError<u64, E>> {
    RPCError::Network(NetworkError::new(&std::io::Error::other("the append stream ended")))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> std::result::Result<AppendEntriesResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
        if self.unary {
            return self.call(Kind::Append, &rpc, &option).await;
        }
        let data = bincode::serialize(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let reply = match tokio::time::timeout(option.hard_ttl(), self.append_on_stream(data)).await {
            Ok(reply) => reply?,
            Err(elapsed) => return Err(RPCError::Network(NetworkError::new(&elapsed))),
        };
        self.decode_reply(&reply)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> std::result::Result<InstallSnapshotResponse<u64>, RPCError<u64, Member, RaftError<u64, InstallSnapshotError>>> {
        self.call(Kind::Snapshot, &rpc, &option).await
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, option: RPCOption) -> std::result::Result<VoteResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
        self.call(Kind::Vote, &rpc, &option).await
    }
}

/// The kinds of raft RPC a member serves to its peers.
#[derive(Debug, Clone, Copy)]
pub enum RaftRpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

/// Serves one raft RPC: decodes openraft's request, hands it to the local raft, and encodes the
/// result (errors included) for the caller's `PeerClient::call`.
pub async fn serve(raft: &super::Raft, kind: RaftRpc, data: &[u8]) -> Result<Vec<u8>> {
    fn de<T: DeserializeOwned>(data: &[u8]) -> Result<T> {
        bincode::deserialize(data).map_err(|e| Error::Internal(format!("bad raft message: {e}")))
    }
    fn ser<T: Serialize>(v: &T) -> Result<Vec<u8>> {
        bincode::serialize(v).map_err(|e| Error::Internal(e.to_string()))
    }
    match kind {
        RaftRpc::AppendEntries => ser(&raft.append_entries(de::<AppendEntriesRequest<TypeConfig>>(data)?).await),
        RaftRpc::Vote => ser(&raft.vote(de::<VoteRequest<u64>>(data)?).await),
        RaftRpc::InstallSnapshot => ser(&raft.install_snapshot(de::<InstallSnapshotRequest<TypeConfig>>(data)?).await),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use cairn_proto::cairnpb::raft_server::{Raft, RaftServer};
    use cairn_proto::cairnpb::{ReadIndexResponse, TransferResponse};
    use cairn_proto::etcdserverpb::MemberRemoveResponse;
    use openraft::Vote;
    use tonic::{Request, Response, Status, Streaming};

    use super::*;

    /// A member from before AppendStream: only unary AppendEntries, which it always accepts.
    #[derive(Default)]
    struct OldPeer {
        unary: AtomicUsize,
    }

    type Answer<T> = std::result::Result<Response<T>, Status>;

    fn old() -> Status {
        Status::unimplemented("not in this version")
    }

    #[tonic::async_trait]
    impl Raft for OldPeer {
        async fn append_entries(&self, _: Request<RaftPayload>) -> Answer<RaftPayload> {
            self.unary.fetch_add(1, Ordering::SeqCst);
            let ok: std::result::Result<AppendEntriesResponse<u64>, RaftError<u64>> = Ok(AppendEntriesResponse::Success);
            Ok(Response::new(RaftPayload { data: bincode::serialize(&ok).map_err(|e| Status::internal(e.to_string()))? }))
        }
        type AppendStreamStream = tokio_stream::wrappers::ReceiverStream<std::result::Result<RaftPayload, Status>>;
        async fn append_stream(&self, _: Request<Streaming<RaftPayload>>) -> Answer<Self::AppendStreamStream> {
            Err(old())
        }
        async fn vote(&self, _: Request<RaftPayload>) -> Answer<RaftPayload> {
            Err(old())
        }
        async fn install_snapshot(&self, _: Request<RaftPayload>) -> Answer<RaftPayload> {
            Err(old())
        }
        async fn propose(&self, _: Request<CommandBatch>) -> Answer<ProposeResponse> {
            Err(old())
        }
        async fn read_index(&self, _: Request<ReadIndexRequest>) -> Answer<ReadIndexResponse> {
            Err(old())
        }
        async fn lease_renew(&self, _: Request<LeaseKeepAliveRequest>) -> Answer<LeaseKeepAliveResponse> {
            Err(old())
        }
        async fn lease_time_to_live(&self, _: Request<LeaseTimeToLiveRequest>) -> Answer<LeaseTimeToLiveResponse> {
            Err(old())
        }
        async fn member_change(&self, _: Request<MemberChangeRequest>) -> Answer<MemberChangeResponse> {
            Err(old())
        }
        async fn member_list(&self, _: Request<MemberListRequest>) -> Answer<MemberListResponse> {
            Err(old())
        }
        async fn removed(&self, _: Request<MemberRemoveRequest>) -> Answer<MemberRemoveResponse> {
            Err(old())
        }
        async fn transfer(&self, _: Request<TransferRequest>) -> Answer<TransferResponse> {
            Err(old())
        }
    }

    #[tokio::test]
    async fn a_member_without_append_streams_gets_unary_appends() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let peer = Arc::new(OldPeer::default());
        let service = RaftServer::from_arc(peer.clone());
        tokio::spawn(
            tonic::transport::Server::builder().add_service(service).serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let member = Member { name: "old".into(), peer_urls: vec![format!("http://{addr}")], client_urls: Vec::new() };
        let mut network = Network { peers: Arc::new(Peers::new(None)) };
        let mut client = network.new_client(2, &member).await;
        for sent in 1..=3 {
            let rpc = AppendEntriesRequest { vote: Vote::new_committed(1, 1), prev_log_id: None, entries: Vec::new(), leader_commit: None };
            let reply = client.append_entries(rpc, RPCOption::new(Duration::from_secs(5))).await.expect("the old member answers");
            assert_eq!(reply, AppendEntriesResponse::Success);
            assert_eq!(peer.unary.load(Ordering::SeqCst), sent, "each append went out as a unary call");
        }
    }

    /// A member with framed append streams, answering every append with success; it counts
    /// the connections it accepted and the appends it served.
    async fn framed_member() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (accepted, served) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (accepts, serves) = (accepted.clone(), served.clone());
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                accepts.fetch_add(1, Ordering::SeqCst);
                let serves = serves.clone();
                tokio::spawn(async move {
                    assert_eq!(framed::sniff(&mut tcp).await.expect("sniff"), framed::Opening::Appends);
                    let handle = |request: Vec<u8>| {
                        let serves = serves.clone();
                        async move {
                            let _: AppendEntriesRequest<TypeConfig> = bincode::deserialize(&request).map_err(|e| Error::Internal(e.to_string()))?;
                            serves.fetch_add(1, Ordering::SeqCst);
                            let ok: std::result::Result<AppendEntriesResponse<u64>, RaftError<u64>> = Ok(AppendEntriesResponse::Success);
                            bincode::serialize(&ok).map_err(|e| Error::Internal(e.to_string()))
                        }
                    };
                    let _ = framed::serve(tcp, MAX_PEER_MESSAGE, handle, std::future::pending()).await;
                });
            }
        });
        (url, accepted, served)
    }

    #[tokio::test]
    async fn appends_go_framed_and_reuse_the_connection() {
        let (url, accepted, served) = framed_member().await;
        let member = Member { name: "new".into(), peer_urls: vec![url], client_urls: Vec::new() };
        let mut network = Network { peers: Arc::new(Peers::new(None)) };
        // openraft makes a new client for each replication and leadership check: they share
        // the member's idle streams.
        for sent in 1..=3 {
            let mut client = network.new_client(2, &member).await;
            let rpc = AppendEntriesRequest { vote: Vote::new_committed(1, 1), prev_log_id: None, entries: Vec::new(), leader_commit: None };
            let reply = client.append_entries(rpc, RPCOption::new(Duration::from_secs(5))).await.expect("the member answers");
            assert_eq!(reply, AppendEntriesResponse::Success);
            assert_eq!(served.load(Ordering::SeqCst), sent);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection served every append");
    }
}
