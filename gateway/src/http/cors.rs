//! CORS for the client port, so a page served from another origin can call grpc-web and the
//! JSON gateway and read grpc-status. As etcd's default `--cors=*`: any origin.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};

const ALLOW_METHODS: &str = "POST, GET, OPTIONS, PUT, DELETE";
/// What a grpc-web or JSON client sends, when a preflight does not say.
const ALLOW_HEADERS: &str = "accept, content-type, authorization, x-grpc-web, x-user-agent, grpc-timeout";
/// Response headers a script may read: the gRPC status travels in them for trailers-only
/// grpc-web responses.
const EXPOSE_HEADERS: &str = "grpc-status, grpc-message, grpc-status-details-bin";

/// Answers preflights and marks every response to a cross-origin request as readable.
pub async fn cors(req: Request, next: Next) -> Response {
    let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
        return next.run(req).await;
    };
    if req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        let allow_headers =
            req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned().unwrap_or(HeaderValue::from_static(ALLOW_HEADERS));
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::OK;
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        h.insert(header::VARY, HeaderValue::from_static("origin"));
        return resp;
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
    h.append(header::VARY, HeaderValue::from_static("origin"));
    resp
}
