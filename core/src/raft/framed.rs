//! Append streams as length-framed messages on a bare peer connection.
//!
//! A leader sends every AppendEntries to a follower on a long-lived stream. Over gRPC, each
//! request and reply crossed HTTP/2's framing and four task hand-offs (the request body's pipe
//! task and the connection task on the leader, the connection task and the stream's task on
//! the follower) on top of the TCP round trip; on loopback those made up most of a 85-115 µs
//! hop. Here the replication task writes its request into the socket itself and reads the reply
//! from it, and the follower serves the connection in one task, as etcd's rafthttp streams do.
//!
//! The peer port tells the two apart by the first bytes a connection sends: [`PREFACE`] here,
//! the HTTP/2 preface (or an HTTP/1 request line) for everything else. A member from before
//! this protocol refuses the preface as a bad request; the caller then keeps to gRPC.
//!
//! Frames: a request is `u32` length (little endian) and openraft's request in bincode; a reply
//! is `u32` length, one status byte and either the encoded result ([`REPLY_OK`]) or a UTF-8
//! error message ([`REPLY_ERROR`]), after which the follower closes the stream.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::error::Result;

/// The first bytes of an append connection. Not an HTTP method token (`/` is not allowed in
/// one), so an HTTP server refuses it at once.
pub const PREFACE: &[u8] = b"CAIRN-APPEND/1\r\n";
/// The follower's answer to [`PREFACE`]: it serves appends on this connection.
pub const ACCEPTED: &[u8] = b"CAIRN-APPEND/1 OK\r\n";
/// Reply status: the rest is the encoded raft result.
pub const REPLY_OK: u8 = 0;
/// Reply status: the rest is an error message, and the stream ends.
pub const REPLY_ERROR: u8 = 1;

/// Any stream a peer connection runs over (TCP, or TLS over TCP).
pub trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerIo for T {}

/// What a connection opened with: the append preface, or other bytes (already read) that
/// belong to whatever protocol it speaks.
#[derive(Debug, PartialEq, Eq)]
pub enum Opening {
    Appends,
    Other(Vec<u8>),
}

/// Reads a connection's first bytes, no more than it takes to tell whether they are
/// [`PREFACE`] (and never past its length): it stops at the first read that differs, so a
/// short HTTP request is never waited on for bytes it will not send.
pub async fn sniff<I: AsyncRead + Unpin>(io: &mut I) -> io::Result<Opening> {
    let mut head = vec![0; PREFACE.len()];
    let mut filled = 0;
    while filled < PREFACE.len() {
        let n = io.read(&mut head[filled..]).await?;
        if n == 0 || head[filled..filled + n] != PREFACE[filled..filled + n] {
            head.truncate(filled + n);
            return Ok(Opening::Other(head));
        }
        filled += n;
    }
    Ok(Opening::Appends)
}

/// Opens an append stream on a fresh connection: sends [`PREFACE`] and waits for [`ACCEPTED`].
/// `Ok(false)` means the far end speaks something else (a member without this protocol).
pub async fn open<I: PeerIo>(io: &mut I) -> io::Result<bool> {
    io.write_all(PREFACE).await?;
    let mut answer = vec![0; ACCEPTED.len()];
    let mut filled = 0;
    while filled < answer.len() {
        let n = io.read(&mut answer[filled..]).await?;
        if n == 0 || answer[filled..filled + n] != ACCEPTED[filled..filled + n] {
            return Ok(false);
        }
        filled += n;
    }
    Ok(true)
}

/// Reads one frame of at most `max` bytes; `None` at a clean end of stream before it.
async fn read_frame<I: AsyncRead + Unpin>(io: &mut I, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0; 4];
    match io.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("append frame of {len} bytes is over the limit of {max}")));
    }
    let mut body = vec![0; len];
    io.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Writes one frame: its length, the reply status if there is one, then `body`, in one
/// vectored write where the stream takes one.
async fn write_frame<I: AsyncWrite + Unpin>(io: &mut I, status: Option<u8>, body: &[u8]) -> io::Result<()> {
    let len = body.len() + usize::from(status.is_some());
    let len = u32::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("append frame of {len} bytes is too long")))?;
    let mut header = [0; 5];
    header[..4].copy_from_slice(&len.to_le_bytes());
    let header = match status {
        Some(status) => {
            header[4] = status;
            &header[..]
        }
        None => &header[..4],
    };
    io.write_all_buf(&mut bytes::Buf::chain(header, body)).await?;
    io.flush().await
}

/// The leader's end: sends one encoded AppendEntries and reads its reply. An error leaves the
/// stream unusable; the caller drops it.
pub async fn call<I: PeerIo>(io: &mut I, request: &[u8], max: usize) -> io::Result<Vec<u8>> {
    write_frame(io, None, request).await?;
    let mut reply = read_frame(io, max).await?.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the append stream ended"))?;
    match reply.first() {
        Some(&REPLY_OK) => {
            reply.remove(0);
            Ok(reply)
        }
        Some(&REPLY_ERROR) => Err(io::Error::other(String::from_utf8_lossy(&reply[1..]).into_owned())),
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, "append reply without a status")),
    }
}

/// The follower's end, after [`sniff`] saw the preface: answers it, then serves requests one at
/// a time with `handle` until the leader closes the stream, `handle` fails (its message goes
/// back, and the stream ends) or `stop` completes.
pub async fn serve<I, H, F>(io: I, max: usize, mut handle: H, stop: impl Future<Output = ()>) -> io::Result<()>
where
    I: PeerIo,
    H: FnMut(Vec<u8>) -> F,
    F: Future<Output = Result<Vec<u8>>>,
{
    // A frame's length and a small body come in one read.
    let io = &mut tokio::io::BufReader::new(io);
    io.write_all(ACCEPTED).await?;
    io.flush().await?;
    tokio::pin!(stop);
    loop {
        // Stopping drops a request half read; one being handled is answered first.
        let request = tokio::select! {
            request = read_frame(io, max) => request?,
            () = &mut stop => return Ok(()),
        };
        let Some(request) = request else { return Ok(()) };
        match handle(request).await {
            Ok(reply) => write_frame(io, Some(REPLY_OK), &reply).await?,
            Err(e) => return write_frame(io, Some(REPLY_ERROR), e.to_string().as_bytes()).await,
        }
    }
}

/// A connection whose first bytes were read by [`sniff`]: reads give those bytes back first,
/// then the rest of the stream; writes go straight through.
pub struct Replay<I> {
    head: Vec<u8>,
    at: usize,
    inner: I,
}

impl<I> Replay<I> {
    pub fn new(head: Vec<u8>, inner: I) -> Self {
        Replay { head, at: 0, inner }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Replay<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.head.len() {
            let n = buf.remaining().min(this.head.len() - this.at);
            buf.put_slice(&this.head[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Replay<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[tokio::test]
    async fn an_http_opening_is_given_back_whole() {
        let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let (mut near, mut far) = tokio::io::duplex(64);
        near.write_all(h2).await.expect("write");
        // It reads no further than the preface's length, and gives back all it read.
        assert_eq!(sniff(&mut far).await.expect("sniff"), Opening::Other(h2[..PREFACE.len()].to_vec()));
        let mut rest = vec![0; h2.len() - PREFACE.len()];
        far.read_exact(&mut rest).await.expect("the rest is still there");
        assert_eq!(rest, h2[PREFACE.len()..]);
        let (mut near, mut far) = tokio::io::duplex(64);
        near.write_all(b"CAIRN-X").await.expect("write");
        drop(near);
        assert_eq!(sniff(&mut far).await.expect("sniff"), Opening::Other(b"CAIRN-X".to_vec()));
        let (mut near, mut far) = tokio::io::duplex(64);
        near.write_all(&PREFACE[..5]).await.expect("write");
        drop(near);
        assert_eq!(sniff(&mut far).await.expect("sniff"), Opening::Other(PREFACE[..5].to_vec()), "an early end is not the preface");
    }

    #[tokio::test]
    async fn a_replayed_connection_reads_as_if_never_sniffed() {
        let (mut near, mut far) = tokio::io::duplex(64);
        near.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
        let Opening::Other(head) = sniff(&mut far).await.expect("sniff") else { panic!("not the preface") };
        let mut replay = Replay::new(head, far);
        let mut line = vec![0; 16];
        replay.read_exact(&mut line).await.expect("read");
        assert_eq!(line, b"GET / HTTP/1.1\r\n");
        replay.write_all(b"ok").await.expect("write");
        let mut answer = [0; 2];
        near.read_exact(&mut answer).await.expect("read");
        assert_eq!(&answer, b"ok");
    }

    /// A follower that echoes requests reversed and fails on an empty one.
    async fn follower(mut io: tokio::io::DuplexStream) -> io::Result<()> {
        assert_eq!(sniff(&mut io).await?, Opening::Appends);
        let handle = |mut request: Vec<u8>| async move {
            if request.is_empty() {
                return Err(Error::Internal("nothing to append".into()));
            }
            request.reverse();
            Ok(request)
        };
        serve(io, 1 << 10, handle, std::future::pending()).await
    }

    #[tokio::test]
    async fn requests_are_answered_in_order_until_one_fails() {
        let (mut leader, far) = tokio::io::duplex(1 << 12);
        let served = tokio::spawn(follower(far));
        assert!(open(&mut leader).await.expect("open"));
        assert_eq!(call(&mut leader, b"abc", 1 << 10).await.expect("first"), b"cba");
        let big = vec![7; 1000];
        assert_eq!(call(&mut leader, &big, 1 << 10).await.expect("second"), big);
        let failed = call(&mut leader, b"", 1 << 10).await.expect_err("empty");
        assert!(failed.to_string().contains("nothing to append"), "{failed}");
        served.await.expect("join").expect("the follower ends cleanly after answering the error");
        let after = call(&mut leader, b"abc", 1 << 10).await.expect_err("the stream ended");
        assert!(matches!(after.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe), "{after}");
    }

    #[tokio::test]
    async fn frames_over_the_limit_end_the_stream() {
        let (mut leader, far) = tokio::io::duplex(1 << 12);
        let served = tokio::spawn(follower(far));
        assert!(open(&mut leader).await.expect("open"));
        let _ = call(&mut leader, &vec![1; 2000], 1 << 10).await.expect_err("too big for the follower");
        let refused = served.await.expect("join").expect_err("the follower refuses the frame");
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData, "{refused}");
    }

    #[tokio::test]
    async fn a_member_that_speaks_http_is_told_apart() {
        let (mut leader, mut far) = tokio::io::duplex(1 << 12);
        let old = tokio::spawn(async move {
            let mut line = vec![0; PREFACE.len()];
            far.read_exact(&mut line).await.expect("read");
            far.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await.expect("write");
        });
        assert!(!open(&mut leader).await.expect("open"));
        old.await.expect("join");
        // One that closes at once fails the write or answers nothing: not an append stream.
        let (mut leader, far) = tokio::io::duplex(1 << 12);
        drop(far);
        assert!(!matches!(open(&mut leader).await, Ok(true)));
    }
}
