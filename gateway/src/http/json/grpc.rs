//! Calling the member's own gRPC services in-process, as etcd's gateway calls them over a
//! loopback connection: length-prefixed messages go in, messages and a final status come out.

use axum::body::Body;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, TE};
use http_body_util::BodyExt;
use tonic::Code;
use tower::ServiceExt;

use super::reply::Status;
use crate::http::GrpcService;

/// gRPC's message prefix: a compression flag and a big-endian length.
const PREFIX: usize = 5;

/// One message, framed for a gRPC body.
pub fn frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(PREFIX + message.len());
    framed.extend_from_slice(&[0]);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed.freeze()
}

/// Starts a call of `path` (`/etcdserverpb.KV/Range`) with `metadata` and the framed request
/// messages in `body`.
pub async fn call(grpc: &GrpcService, path: &'static str, metadata: HeaderMap, body: Body) -> Reply {
    let mut request = http::Request::new(body);
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = http::Uri::from_static(path);
    *request.version_mut() = http::Version::HTTP_2;
    let headers = request.headers_mut();
    headers.extend(metadata);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    let Ok(response) = grpc.clone().oneshot(request).await;
    let (parts, body) = response.into_parts();
    let status = if parts.status != http::StatusCode::OK {
        Some(Status::new(Code::Unknown, format!("unexpected HTTP status code received from server: {}", parts.status.as_u16())))
    } else {
        status_of(&parts.headers)
    };
    Reply { body, buf: BytesMut::new(), status, ended: false, finished: false }
}

/// The messages of a call's response, then its status.
pub struct Reply {
    body: Body,
    buf: BytesMut,
    /// From the headers (a trailers-only response) or the trailers.
    status: Option<Status>,
    ended: bool,
    finished: bool,
}

impl Reply {
    /// The next message; `None` once the call has ended well, an error once it has failed.
    pub async fn next(&mut self) -> Option<Result<Bytes, Status>> {
        loop {
            if self.finished {
                return None;
            }
            match self.take_message() {
                Ok(Some(message)) => return Some(Ok(message)),
                Ok(None) => {}
                Err(status) => return self.finish(Some(status)),
            }
            if self.ended {
                let status = match self.status.take() {
                    _ if !self.buf.is_empty() => Some(Status::new(Code::Internal, "the server's response ended inside a message")),
                    Some(status) if status.code == Code::Ok => None,
                    Some(status) => Some(status),
                    None => Some(Status::new(Code::Internal, "server closed the stream without sending trailers")),
                };
                return self.finish(status);
            }
            match self.body.frame().await {
                None => self.ended = true,
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buf.extend_from_slice(&data),
                    Err(frame) => {
                        if let Some(trailers) = frame.trailers_ref() {
                            self.status = status_of(trailers).or(self.status.take());
                        }
                    }
                },
                Some(Err(e)) => {
                    self.ended = true;
                    self.status = Some(Status::new(Code::Internal, e.to_string()));
                }
            }
        }
    }

    fn finish(&mut self, status: Option<Status>) -> Option<Result<Bytes, Status>> {
        self.finished = true;
        status.map(Err)
    }

    fn take_message(&mut self) -> Result<Option<Bytes>, Status> {
        if self.buf.len() < PREFIX {
            return Ok(None);
        }
        if self.buf[0] != 0 {
            return Err(Status::new(Code::Internal, "the server sent a compressed message"));
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if self.buf.len() < PREFIX + len {
            return Ok(None);
        }
        self.buf.advance(PREFIX);
        Ok(Some(self.buf.split_to(len).freeze()))
    }
}

/// `grpc-status` and `grpc-message` (percent-encoded, as gRPC sends it).
fn status_of(headers: &HeaderMap) -> Option<Status> {
    let code = headers.get("grpc-status")?.to_str().ok()?.trim().parse::<i32>().ok()?;
    let message = headers.get("grpc-message").map(|m| percent_decode(m.as_bytes())).unwrap_or_default();
    Some(Status::new(Code::from(code), message))
}

fn percent_decode(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let hex = text.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (text[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_is_percent_decoded() {
        assert_eq!(percent_decode(b"etcdserver: key is not provided"), "etcdserver: key is not provided");
        assert_eq!(percent_decode(b"a%25b%0Ac%C3%A9%zz"), "a%b\ncé%zz");
    }

    #[test]
    fn frames_carry_a_length_prefix() {
        assert_eq!(&frame(b"abc")[..], &[0, 0, 0, 0, 3, b'a', b'b', b'c']);
    }
}
