//! The bench's connections: one HTTP/2 connection each, to one endpoint, under etcd-client.
//!
//! `etcd_client::Client::connect` always builds tonic's balanced channel, even for one endpoint:
//! every request then crosses two tower buffers (two more tasks, two more wake-ups) before hyper
//! sees it. On a 2-core machine the load generator shares the CPU with the servers it measures,
//! and those hops were a third of its own CPU; what the bench spends, the servers cannot. Here a
//! request goes from the client's task straight to hyper's connection task, as in etcd's Go
//! benchmark, where each connection is one gRPC client connection. Clients still speak through
//! etcd-client, so the requests on the wire are the same for etcd and Cairn.
//!
//! A connection that several clients share writes through `Coalesce`, as the server's do.
//! hyper's client writes each request as it comes, 1.1 `writev` calls per request at range-s;
//! grpc-go's writer, in etcd's benchmark, drains all queued frames before it writes. Coalesced,
//! the bench's system CPU per 100,000 reads fell from 0.84 to 0.36 s, and the servers receive
//! fewer, fuller segments.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use cairn_coalesce::Coalesce;
use etcd_client::{Channel, Client};
use http::uri::{Authority, Scheme, Uri};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tonic::body::Body;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Service};

/// Connects to `endpoint` (`host:port`, or `http://host:port`) and gives an etcd-client over it.
/// With `coalesce`, for a connection that several clients share, its writes are coalesced.
pub async fn connect(endpoint: &str, timeout: Duration, coalesce: bool) -> Result<Client, String> {
    let origin = Origin::parse(endpoint)?;
    let stream = tokio::time::timeout(timeout, TcpStream::connect(origin.authority.as_str()))
        .await
        .map_err(|_| format!("timed out after {}s", timeout.as_secs_f64()))?
        .map_err(|e| e.to_string())?;
    // Requests are small and each waits for its answer: Nagle's algorithm would only delay them.
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    // One client's requests have nothing to be coalesced with: the yield would only add latency.
    let send = if coalesce {
        handshake(Coalesce::new(stream)).await?
    } else {
        handshake(stream).await?
    };
    let service = BoxCloneSyncService::new(Direct { send, origin });
    Client::from_channel(Channel::Custom(service), None)
        .await
        .map_err(|e| e.to_string())
}

/// The HTTP/2 handshake over `io`; the connection's task runs on its own.
async fn handshake<T>(io: T) -> Result<SendRequest<Body>, String>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        // It ends when the server closes the connection or every client is dropped; a request
        // on a closed connection gets hyper's error, which the bench counts.
        let _ = connection.await;
    });
    Ok(send)
}

/// Where requests go: the scheme and authority that tonic's own channel would have added.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    scheme: Scheme,
    authority: Authority,
}

impl Origin {
    fn parse(endpoint: &str) -> Result<Self, String> {
        let endpoint = endpoint.trim();
        let with_scheme = if endpoint.contains("://") {
            endpoint.to_owned()
        } else {
            format!("http://{endpoint}")
        };
        let uri: Uri = with_scheme.parse().map_err(|e| format!("endpoint {endpoint:?}: {e}"))?;
        match (uri.scheme(), uri.authority()) {
            (Some(scheme), Some(authority)) if *scheme == Scheme::HTTP => Ok(Self {
                scheme: scheme.clone(),
                authority: authority.clone(),
            }),
            (Some(scheme), Some(_)) => Err(format!("endpoint {endpoint:?}: cairn-bench speaks plain http, not {scheme}")),
            _ => Err(format!("endpoint {endpoint:?}: expected host:port")),
        }
    }

    /// `path` (tonic gives `/etcdserverpb.KV/Range`) as an absolute URI on this origin.
    fn uri(&self, path: &Uri) -> Result<Uri, http::Error> {
        let mut parts = path.clone().into_parts();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        Ok(Uri::from_parts(parts)?)
    }
}

/// One HTTP/2 connection as a tower service, for `etcd_client::Channel::Custom`.
#[derive(Clone)]
struct Direct {
    send: SendRequest<Body>,
    origin: Origin,
}

type Answer = Result<http::Response<Body>, BoxError>;

impl Service<http::Request<Body>> for Direct {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.send.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        match self.origin.uri(request.uri()) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(e) => return Box::pin(std::future::ready(Err(e.into()))),
        }
        let sent = self.send.send_request(request);
        Box::pin(async move { Ok(sent.await?.map(Body::new)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_with_or_without_a_scheme_name_the_same_origin() {
        let bare = Origin::parse("127.0.0.1:2379").expect("host:port");
        assert_eq!(Ok(bare.clone()), Origin::parse(" http://127.0.0.1:2379 "));
        let path = Uri::from_static("/etcdserverpb.KV/Range");
        let uri = bare.uri(&path).expect("absolute URI");
        assert_eq!(uri.to_string(), "http://127.0.0.1:2379/etcdserverpb.KV/Range");
    }

    #[test]
    fn endpoints_it_cannot_reach_are_refused_by_name() {
        let tls = Origin::parse("https://10.0.0.1:2379").expect_err("https");
        assert!(tls.contains("plain http, not https"), "{tls}");
        assert!(Origin::parse("http://").is_err());
    }
}
