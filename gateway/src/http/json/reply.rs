//! What the gateway answers besides a message: grpc-gateway v1.16's HTTP status for each gRPC
//! code, its error bodies (reference/etcd-api.md §6.2), and the framing of streamed replies.

use axum::body::Body;
use axum::response::Response;
use http::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use http::{HeaderName, StatusCode};
use tonic::Code;

use super::encode::go_string;

/// A failed call or request, as a gRPC status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status { code, message: message.into() }
    }
}

/// grpc-gateway v1's `HTTPStatusFromCode` (etcd 3.5 uses v1.16).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

static GRPC_METADATA_CONTENT_TYPE: HeaderName = HeaderName::from_static("grpc-metadata-content-type");

fn json(status: StatusCode, body: Body, from_grpc: bool) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // The gateway passes the gRPC response headers on as `Grpc-Metadata-*`.
    if from_grpc {
        headers.insert(GRPC_METADATA_CONTENT_TYPE.clone(), HeaderValue::from_static("application/grpc"));
    }
    response
}

/// A unary call's answer.
pub fn message(body: Vec<u8>) -> Response {
    json(StatusCode::OK, Body::from(body), true)
}

/// A stream's answer, once its first message (or its clean end) is known.
pub fn streamed(body: Body) -> Response {
    json(StatusCode::OK, body, true)
}

/// grpc-gateway v1's `DefaultHTTPError` body, `{"error":..,"code":..,"message":..}`, written by
/// jsonpb: an empty message leaves both strings out.
pub fn error(status: &Status) -> Response {
    json(http_status(status.code), Body::from(error_body(status)), false)
}

fn error_body(status: &Status) -> Vec<u8> {
    let mut body = b"{".to_vec();
    if !status.message.is_empty() {
        body.extend_from_slice(b"\"error\":");
        go_string(status.message.as_bytes(), &mut body);
        body.push(b',');
    }
    body.extend_from_slice(format!("\"code\":{}", status.code as i32).as_bytes());
    if !status.message.is_empty() {
        body.extend_from_slice(b",\"message\":");
        go_string(status.message.as_bytes(), &mut body);
    }
    body.push(b'}');
    body
}

/// A stream that failed before its first message: the error chunk alone, under the error's
/// HTTP status.
pub fn stream_failed(status: &Status) -> Response {
    json(http_status(status.code), Body::from(stream_error(status)), false)
}

/// One streamed message: `{"result":<message>}` and the newline delimiter.
pub fn result_chunk(message: &[u8]) -> Vec<u8> {
    let mut chunk = Vec::with_capacity(message.len() + 12);
    chunk.extend_from_slice(b"{\"result\":");
    chunk.extend_from_slice(message);
    chunk.extend_from_slice(b"}\n");
    chunk
}

/// grpc-gateway v1's last chunk of a failed stream, its `StreamError` written by jsonpb. etcd
/// 3.5 sends no delimiter after it.
pub fn stream_error(status: &Status) -> Vec<u8> {
    let http = http_status(status.code);
    let mut chunk = format!("{{\"error\":{{\"grpc_code\":{},\"http_code\":{}", status.code as i32, http.as_u16()).into_bytes();
    if !status.message.is_empty() {
        chunk.extend_from_slice(b",\"message\":");
        go_string(status.message.as_bytes(), &mut chunk);
    }
    chunk.extend_from_slice(b",\"http_status\":");
    go_string(http.canonical_reason().unwrap_or_default().as_bytes(), &mut chunk);
    chunk.extend_from_slice(b"}}");
    chunk
}

/// Go's `http.Error` text: what grpc-gateway's mux answers for paths and methods it lacks.
fn go_http_error(status: StatusCode) -> Response {
    let mut response = Response::new(Body::from(format!("{}\n", status.canonical_reason().unwrap_or_default())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    response
}

pub fn not_found() -> Response {
    go_http_error(StatusCode::NOT_FOUND)
}

pub fn method_not_allowed() -> Response {
    go_http_error(StatusCode::METHOD_NOT_ALLOWED)
}

/// Go's `ServeMux` sending `/v3` on to the `/v3/` subtree.
pub fn moved_to(location: &'static str, method: &http::Method) -> Response {
    let body = if method == http::Method::GET || method == http::Method::HEAD {
        Body::from(format!("<a href=\"{location}\">Moved Permanently</a>.\n\n"))
    } else {
        Body::empty()
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    response.headers_mut().insert(LOCATION, HeaderValue::from_static(location));
    if method == http::Method::GET || method == http::Method::HEAD {
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_as_grpc_gateway_writes_them() {
        let status = Status::new(Code::InvalidArgument, "unknown value \"\\\"BOGUS\\\"\"");
        assert_eq!(error_body(&status), br#"{"error":"unknown value \"\\\"BOGUS\\\"\"","code":3,"message":"unknown value \"\\\"BOGUS\\\"\""}"#);
        assert_eq!(error_body(&Status::new(Code::Unimplemented, "")), br#"{"code":12}"#);
        assert_eq!(error(&status).status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            stream_error(&Status::new(Code::Unknown, "auth: user name is empty")),
            br#"{"error":{"grpc_code":2,"http_code":500,"message":"auth: user name is empty","http_status":"Internal Server Error"}}"#
        );
        assert_eq!(http_status(Code::Cancelled), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(http_status(Code::FailedPrecondition), StatusCode::BAD_REQUEST);
    }
}
