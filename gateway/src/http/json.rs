//! etcd's HTTP/JSON gateway (grpc-gateway's conventions), transcoded onto the gRPC services.

use axum::Router;

use super::HttpState;

pub fn router() -> Router<HttpState> {
    Router::new()
}
