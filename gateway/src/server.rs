//! Starting a member: bind the listeners, start the node, serve until SIGTERM, stop cleanly.

use std::sync::Arc;

use cairn_coalesce::Coalesce;
use cairn_core::node::{RaftRpc, GRPC_OVERHEAD_BYTES, MAX_PEER_MESSAGE};
use cairn_core::raft::framed::{self, Opening, Replay};
use cairn_core::Node;
use cairn_proto::browserpb::browser_server::BrowserServer;
use cairn_proto::cairnpb::raft_server::RaftServer;
use cairn_proto::etcdserverpb::cluster_server::ClusterServer;
use cairn_proto::etcdserverpb::kv_server::KvServer;
use cairn_proto::etcdserverpb::lease_server::LeaseServer;
use cairn_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use cairn_proto::etcdserverpb::watch_server::WatchServer;
use cairn_proto::v3electionpb::election_server::ElectionServer;
use cairn_proto::v3lockpb::lock_server::LockServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tower::ServiceExt;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tower::util::BoxCloneSyncService;

use crate::browser::BrowserService;
use crate::cluster::ClusterService;
use crate::election::ElectionService;
use crate::flags::{parse_url, Flags};
use crate::http::{GrpcService, HttpState, Port};
use crate::kv::KvService;
use crate::learner::LearnerLayer;
use crate::lease::LeaseService;
use crate::lock::LockService;
use crate::maintenance::MaintenanceService;
use crate::metrics::Metrics;
use crate::peer::PeerService;
use crate::routes::GrpcRoutes;
use crate::tls;
use crate::watch::WatchService;

/// How long a starting member waits to publish itself before serving clients regardless.
const PUBLISH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A bound listener and whether it speaks TLS (an `https://` URL).
struct Listener {
    url: String,
    tcp: TcpListener,
    tls: bool,
}

async fn bind_all(urls: &[String], what: &str) -> Result<Vec<Listener>, String> {
    let mut listeners = Vec::new();
    for url in urls {
        let parsed = parse_url(url)?;
        let addr = parsed.resolve().await?;
        let tcp = TcpListener::bind(addr).await.map_err(|e| format!("listen on {what} {url}: {e}"))?;
        listeners.push(Listener { url: url.clone(), tcp, tls: parsed.tls });
    }
    Ok(listeners)
}

/// The TLS acceptor for `listener`: `https://` listeners need `config` (etcd's wording when it
/// is missing), `http://` ones serve plain text even when TLS is configured.
fn acceptor(listener: &Listener, config: Option<&Arc<ServerConfig>>, flags: &str) -> Result<Option<TlsAcceptor>, String> {
    match (listener.tls, config) {
        (false, _) => Ok(None),
        (true, Some(config)) => Ok(Some(TlsAcceptor::from(config.clone()))),
        (true, None) => Err(format!("TLS key/cert ({flags}) must be provided for {} with HTTPS scheme", listener.url)),
    }
}

async fn shutdown_signal(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// The client port's gRPC services, behind the learner guard and the gRPC metrics, as one HTTP
/// service.
fn grpc_service(node: &Arc<Node>, max_request_bytes: usize) -> GrpcService {
    let max_recv = max_request_bytes + GRPC_OVERHEAD_BYTES;
    // tonic's own decode limit sits above etcd's so that the KV service can refuse oversize
    // messages with grpc-go's wording, which etcd clients see.
    let decode_limit = max_recv.saturating_mul(2);
    let routes = GrpcRoutes::default()
        .with(KvServer::new(KvService { node: node.clone(), max_recv }).max_decoding_message_size(decode_limit).max_encoding_message_size(usize::MAX))
        .with(MaintenanceServer::new(MaintenanceService { node: node.clone() }).max_decoding_message_size(max_recv))
        .with(LeaseServer::new(LeaseService { node: node.clone() }).max_decoding_message_size(max_recv))
        .with(WatchServer::new(WatchService { node: node.clone() }).max_decoding_message_size(max_recv).max_encoding_message_size(usize::MAX))
        .with(LockServer::new(LockService { node: node.clone() }).max_decoding_message_size(max_recv))
        .with(ElectionServer::new(ElectionService { node: node.clone() }).max_decoding_message_size(max_recv).max_encoding_message_size(usize::MAX))
        .with(ClusterServer::new(ClusterService { node: node.clone() }).max_decoding_message_size(max_recv))
        .with(BrowserServer::new(BrowserService { node: node.clone() }).max_decoding_message_size(max_recv).max_encoding_message_size(usize::MAX))
        .with(crate::http::ops::grpc_health::server(node.clone()));
    // As etcd's interceptor chain: the learner guard refuses before the metrics count.
    let guarded = tower::ServiceBuilder::new()
        .layer(LearnerLayer { node: node.clone() })
        .map_response(|resp: http::Response<crate::metrics::grpc::Metered<tonic::body::Body>>| resp.map(axum::body::Body::new))
        .layer(crate::metrics::grpc::GrpcMetricsLayer)
        .service(routes);
    BoxCloneSyncService::new(guarded)
}

/// Serves HTTP/1.1 and HTTP/2 (by preface; by ALPN under TLS) on every connection `listener`
/// accepts, until `stop`; then lets open connections finish for a while. A client that fails
/// its TLS handshake is dropped alone. With `appends` (the peer port), a connection that opens
/// with the framed append preface is served as an append stream to that member instead.
fn serve_http(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    port: Port,
    what: &'static str,
    stop: watch::Receiver<bool>,
    appends: Option<Arc<Node>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        let mut builder = ConnBuilder::new(TokioExecutor::new());
        // As grpc-go (and etcd): no limit on concurrent streams per connection. The timers let
        // hyper drop HTTP/1 clients that never finish their headers.
        builder.http1().timer(TokioTimer::new());
        builder.http2().max_concurrent_streams(None).timer(TokioTimer::new());
        let builder = Arc::new(builder);
        let stopping = shutdown_signal(stop.clone());
        tokio::pin!(stopping);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!("{what}: accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut stopping => break,
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, port, builder, watcher) = (tls.clone(), port.clone(), builder.clone(), graceful.watcher());
            let appends = appends.clone().map(|node| (node, stop.clone()));
            tokio::spawn(async move {
                let served = match acceptor {
                    None => serve_stream(&builder, tcp, port, watcher, appends).await,
                    Some(acceptor) => match tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_stream(&builder, stream, port, watcher, appends).await,
                        Ok(Err(e)) => return tracing::info!("{what}: TLS handshake with {peer} failed: {e}"),
                        Err(_) => return tracing::info!("{what}: TLS handshake with {peer} timed out"),
                    },
                };
                if let Err(e) = served {
                    tracing::debug!("{what}: connection from {peer}: {e}");
                }
            });
        }
        // Waits for every watched connection, handshakes in flight included (they are bounded
        // by the handshake timeout, the whole drain by the caller).
        graceful.shutdown().await;
    })
}

type ServeError = Box<dyn std::error::Error + Send + Sync>;

/// Serves one accepted (and TLS-terminated) connection: as a framed append stream if `appends`
/// is given and the connection opens with its preface, else as HTTP.
async fn serve_stream<I>(builder: &ConnBuilder<TokioExecutor>, mut io: I, port: Port, watcher: Watcher, appends: Option<(Arc<Node>, watch::Receiver<bool>)>) -> Result<(), ServeError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Coalesced (above TLS too): fewer, fuller records as well as fewer writes.
    let Some((node, stop)) = appends else { return serve_connection(builder, TokioIo::new(Coalesce::new(io)), port, watcher).await };
    let opening = tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, framed::sniff(&mut io)).await.map_err(|_| "nothing sent within the handshake timeout")??;
    match opening {
        Opening::Other(head) => serve_connection(builder, TokioIo::new(Coalesce::new(Replay::new(head, io))), port, watcher).await,
        Opening::Appends => {
            // Each reply is one write already; a stream ends with its leader or at `stop`.
            drop(watcher);
            let handle = |request: Vec<u8>| {
                let node = node.clone();
                async move { node.handle_raft_rpc(RaftRpc::AppendEntries, &request).await }
            };
            Ok(framed::serve(io, MAX_PEER_MESSAGE, handle, shutdown_signal(stop)).await?)
        }
    }
}

/// Serves one connection (HTTP/1.1 or HTTP/2) until it ends or a graceful shutdown closes it.
async fn serve_connection<I>(builder: &ConnBuilder<TokioExecutor>, io: TokioIo<I>, port: Port, watcher: Watcher) -> Result<(), ServeError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder.serve_connection_with_upgrades(io, port);
    watcher.watch(conn.into_owned()).await
}

/// The peer port: openraft's RPCs and the followers' forwarded calls.
fn peer_service(node: &Arc<Node>) -> GrpcService {
    let peer = RaftServer::new(PeerService { node: node.clone() }).max_decoding_message_size(MAX_PEER_MESSAGE).max_encoding_message_size(MAX_PEER_MESSAGE);
    let routes = GrpcRoutes::default().with(peer);
    BoxCloneSyncService::new(routes.map_response(|resp: http::Response<tonic::body::Body>| resp.map(axum::body::Body::new)))
}

async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Runs a member until SIGTERM or SIGINT.
pub async fn run(flags: Flags) -> Result<(), String> {
    let mut config = flags.core_config()?;
    let peer_listeners = bind_all(&flags.listen_peer_urls, "peer URL").await?;
    let client_listeners = bind_all(&flags.listen_client_urls, "client URL").await?;
    let client_tls = tls::client_server_config(&flags)?;
    let peer_tls = tls::peer_server_config(&flags)?;
    config.peer_tls = tls::peer_client_config(&flags)?;
    let mut peer_acceptors = Vec::new();
    for l in &peer_listeners {
        peer_acceptors.push(acceptor(l, peer_tls.as_ref(), "--peer-cert-file, --peer-key-file")?);
    }
    let mut client_acceptors = Vec::new();
    for l in &client_listeners {
        client_acceptors.push(acceptor(l, client_tls.as_ref(), "--cert-file, --key-file")?);
    }
    let node = Node::start(config).await.map_err(|e| e.to_string())?;
    tracing::info!(
        name = node.name(),
        member_id = format!("{:x}", node.id()),
        cluster_id = format!("{:x}", node.cluster_id()),
        "cairn member started; serving clients on {:?}",
        flags.listen_client_urls
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = Vec::new();
    let peers = Port::grpc(peer_service(&node));
    for (l, tls) in peer_listeners.into_iter().zip(peer_acceptors) {
        servers.push(serve_http(l.tcp, tls, peers.clone(), "peer port", stop_rx.clone(), Some(node.clone())));
    }
    // As etcd, clients are served once this member's client URLs are in the membership (so
    // `member list` and `--cluster` see every member); a member that cannot reach a leader
    // serves anyway after a while.
    if !node.published(PUBLISH_WAIT).await {
        tracing::warn!("client URLs not published within {PUBLISH_WAIT:?} (no leader yet?); serving clients anyway");
    }
    let metrics = Metrics::new(node.clone());
    let port = Port::client(HttpState { node: node.clone(), grpc: grpc_service(&node, flags.max_request_bytes), metrics });
    for (l, tls) in client_listeners.into_iter().zip(client_acceptors) {
        servers.push(serve_http(l.tcp, tls, port.clone(), "client port", stop_rx.clone(), None));
    }
    tokio::select! {
        _ = terminated() => tracing::info!("shutting down"),
        _ = node.removed() => tracing::info!("removed from the cluster; shutting down"),
    }
    let _ = stop_tx.send(true);
    let drain = futures::future::join_all(servers);
    if tokio::time::timeout(std::time::Duration::from_secs(5), drain).await.is_err() {
        tracing::warn!("some connections did not close within 5s");
    }
    node.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
