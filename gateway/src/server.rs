//! Starting a member: bind the listeners, start the node, serve until SIGTERM, stop cleanly.

use std::sync::Arc;

use cairn_core::node::{GRPC_OVERHEAD_BYTES, MAX_PEER_MESSAGE};
use cairn_core::Node;
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
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use crate::cluster::ClusterService;
use crate::election::ElectionService;
use crate::flags::{parse_url, Flags};
use crate::kv::KvService;
use crate::learner::LearnerLayer;
use crate::lease::LeaseService;
use crate::lock::LockService;
use crate::maintenance::MaintenanceService;
use crate::peer::PeerService;
use crate::watch::WatchService;

/// How long a starting member waits to publish itself before serving clients regardless.
const PUBLISH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

async fn bind_all(urls: &[String], what: &str) -> Result<Vec<TcpListener>, String> {
    let mut listeners = Vec::new();
    for url in urls {
        let parsed = parse_url(url)?;
        if parsed.tls {
            return Err(format!("{what} {url}: TLS listeners are not supported yet"));
        }
        let addr = parsed.resolve().await?;
        let listener = TcpListener::bind(addr).await.map_err(|e| format!("listen on {what} {url}: {e}"))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

async fn shutdown_signal(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn serve_clients(node: &Arc<Node>, listener: TcpListener, max_request_bytes: usize, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    let max_recv = max_request_bytes + GRPC_OVERHEAD_BYTES;
    // tonic's own decode limit sits above etcd's so that the KV service can refuse oversize
    // messages with grpc-go's wording, which etcd clients see.
    let decode_limit = max_recv.saturating_mul(2);
    let kv = KvServer::new(KvService { node: node.clone(), max_recv }).max_decoding_message_size(decode_limit).max_encoding_message_size(usize::MAX);
    let maintenance = MaintenanceServer::new(MaintenanceService { node: node.clone() }).max_decoding_message_size(max_recv);
    let lease = LeaseServer::new(LeaseService { node: node.clone() }).max_decoding_message_size(max_recv);
    let watch = WatchServer::new(WatchService { node: node.clone() }).max_decoding_message_size(max_recv).max_encoding_message_size(usize::MAX);
    let lock = LockServer::new(LockService { node: node.clone() }).max_decoding_message_size(max_recv);
    let cluster = ClusterServer::new(ClusterService { node: node.clone() }).max_decoding_message_size(max_recv);
    let election = ElectionServer::new(ElectionService { node: node.clone() }).max_decoding_message_size(max_recv).max_encoding_message_size(usize::MAX);
    let learner = LearnerLayer { node: node.clone() };
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(async move {
        let served = Server::builder()
            .layer(learner)
            .add_service(kv)
            .add_service(maintenance)
            .add_service(lease)
            .add_service(watch)
            .add_service(lock)
            .add_service(election)
            .add_service(cluster)
            .serve_with_incoming_shutdown(incoming, shutdown_signal(stop))
            .await;
        if let Err(e) = served {
            tracing::error!("client server: {e}");
        }
    })
}

fn serve_peers(node: &Arc<Node>, listener: TcpListener, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    let peer = RaftServer::new(PeerService { node: node.clone() }).max_decoding_message_size(MAX_PEER_MESSAGE).max_encoding_message_size(MAX_PEER_MESSAGE);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(async move {
        if let Err(e) = Server::builder().add_service(peer).serve_with_incoming_shutdown(incoming, shutdown_signal(stop)).await {
            tracing::error!("peer server: {e}");
        }
    })
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
    let config = flags.core_config()?;
    let peer_listeners = bind_all(&flags.listen_peer_urls, "peer URL").await?;
    let client_listeners = bind_all(&flags.listen_client_urls, "client URL").await?;
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
    for l in peer_listeners {
        servers.push(serve_peers(&node, l, stop_rx.clone()));
    }
    // As etcd, clients are served once this member's client URLs are in the membership (so
    // `member list` and `--cluster` see every member); a member that cannot reach a leader
    // serves anyway after a while.
    if !node.published(PUBLISH_WAIT).await {
        tracing::warn!("client URLs not published within {PUBLISH_WAIT:?} (no leader yet?); serving clients anyway");
    }
    for l in client_listeners {
        servers.push(serve_clients(&node, l, flags.max_request_bytes, stop_rx.clone()));
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
