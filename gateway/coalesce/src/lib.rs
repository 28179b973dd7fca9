//! Write coalescing for HTTP/2 connections: the connections Cairn serves, and the ones
//! cairn-bench opens (its requests then leave as a Go client's do, several to a write).
//!
//! An HTTP/2 connection's task writes whatever frames its streams have ready each time it
//! runs. Many streams finishing at once (a put's event fanned out to every watch stream on a
//! connection, or a batch of committed puts answered together) each wake that task, and with
//! tokio's wake-next scheduling it runs after each one: one `writev` per response. grpc-go's
//! writer drains every queued frame before it flushes, so etcd pays one syscall for the lot.
//!
//! `Coalesce` gets the same effect under hyper: writes go into a buffer, and the first flush
//! with data buffered yields the connection's task once (it wakes itself, so it is re-run after
//! the tasks already queued on this worker). Those tasks add their frames meanwhile; the next
//! flush writes everything in one call. With nothing else runnable the yield costs one extra
//! poll of the connection.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Past this many buffered bytes a write first drains the buffer into the socket, so a large
/// response streams out with bounded memory.
const HIGH_WATER: usize = 64 * 1024;

pub struct Coalesce<T> {
    inner: T,
    buf: Vec<u8>,
    /// Set when a flush has yielded once with data buffered; the next flush writes it out.
    yielded: bool,
}

impl<T> Coalesce<T> {
    pub fn new(inner: T) -> Self {
        Coalesce { inner, buf: Vec::new(), yielded: false }
    }
}

impl<T: AsyncWrite + Unpin> Coalesce<T> {
    /// Writes the whole buffer to the socket.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut written = 0;
        let outcome = loop {
            if written == self.buf.len() {
                break Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &self.buf[written..]) {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => written += n,
                other => break other.map_ok(drop),
            }
        };
        self.buf.drain(..written);
        outcome
    }

    /// Makes room for `len` more bytes: drains the buffer first if they would take it past
    /// the high-water mark. Ready(true) means the write should bypass the buffer (it is large
    /// and the buffer is empty).
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<bool>> {
        if self.buf.len() + len <= HIGH_WATER {
            return Poll::Ready(Ok(false));
        }
        ready!(self.poll_drain(cx))?;
        Poll::Ready(Ok(len > HIGH_WATER))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesce<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesce<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if ready!(this.poll_room(cx, data.len()))? {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len = bufs.iter().map(|b| b.len()).sum();
        if ready!(this.poll_room(cx, len))? {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        bufs.iter().for_each(|b| this.buf.extend_from_slice(b));
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.buf.is_empty() {
            if !this.yielded {
                // Re-run after the tasks already waiting, which may add their frames first.
                this.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(this.poll_drain(cx))?;
        }
        this.yielded = false;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_reach_the_peer_only_at_a_flush_and_whole() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut conn = Coalesce::new(near);
        conn.write_all(b"one ").await.expect("buffered");
        conn.write_all(b"two").await.expect("buffered");
        let mut probe = [0u8; 16];
        let early = tokio::time::timeout(std::time::Duration::from_millis(50), far.read(&mut probe)).await;
        assert!(early.is_err(), "nothing is written before a flush");
        conn.flush().await.expect("flushed after one yield");
        let n = far.read(&mut probe).await.expect("read");
        assert_eq!(&probe[..n], b"one two");
    }

    #[tokio::test]
    async fn a_large_response_streams_through_a_slow_reader() {
        // A pipe smaller than the data: writes must wait for the reader, never buffer it all.
        let (near, mut far) = tokio::io::duplex(4096);
        let data: Vec<u8> = (0..(5 * HIGH_WATER + 123)).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            let mut conn = Coalesce::new(near);
            for chunk in sent.chunks(1000) {
                conn.write_all(chunk).await.expect("write");
                assert!(conn.buf.len() <= HIGH_WATER);
            }
            conn.shutdown().await.expect("shutdown drains");
        });
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.expect("read");
        writer.await.expect("writer");
        assert_eq!(got, data);
    }
}
