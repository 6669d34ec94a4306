//! The HTTP request that opens every connection: read its head ourselves (bounded in size and
//! time), answer `/healthz` and `/metrics` directly, and hand a `/v1` upgrade request, bytes
//! intact, to the WebSocket handshake through [`Prefixed`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Longest request head accepted.
pub(crate) const MAX_HEAD_LEN: usize = 8 * 1024;

/// What the request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// The WebSocket endpoint.
    WebSocket,
    /// Readiness.
    Health,
    /// Counters.
    Metrics,
    /// Anything else.
    NotFound,
}

/// Reads the request head (up to the blank line) and routes it by method and path. Returns
/// every byte read, which is the head plus anything the client sent after it in the same
/// segments (a WebSocket client sends nothing more before the handshake response).
///
/// A request with no complete head within [`MAX_HEAD_LEN`] bytes is an error.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> io::Result<(Vec<u8>, Route)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let scan_from = buf.len().saturating_sub(3);
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(end) = find_head_end(&buf, scan_from) {
            let route = route(buf.get(..end).unwrap_or_default());
            return Ok((buf, route));
        }
        if buf.len() >= MAX_HEAD_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too long",
            ));
        }
    }
}

/// The length of the request head (through its blank line) at the start of `buf`, as
/// [`read_head`] returned it; all of `buf` if it holds no complete head.
pub(crate) fn head_len(buf: &[u8]) -> usize {
    find_head_end(buf, 0).unwrap_or(buf.len())
}

fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| from + i + 4)
}

fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Route::NotFound;
    };
    if method != b"GET" {
        return Route::NotFound;
    }
    // The exact target: `/v1/`, `/v1?x=1` and the like are other resources (SPEC.md 10.8).
    match target {
        b"/v1" => Route::WebSocket,
        b"/healthz" => Route::Health,
        b"/metrics" => Route::Metrics,
        _ => Route::NotFound,
    }
}

/// Writes a complete plain-text HTTP/1.1 response and closes the write side.
pub(crate) async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: &str,
    body: &str,
) -> io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// A stream that first yields `prefix`, then reads from `inner`; writes go to `inner`.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    read: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            read: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(rest) = this.prefix.get(this.read..)
            && !rest.is_empty()
        {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(rest.get(..n).unwrap_or_default());
            this.read += n;
            if this.read == this.prefix.len() {
                this.prefix = Vec::new();
                this.read = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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

    #[tokio::test]
    async fn head_is_routed_and_no_byte_is_lost() {
        let input = b"GET /v1 HTTP/1.1\r\nHost: x\r\n\r\nFRAME".to_vec();
        let mut reader = &input[..];
        let (read, route) = read_head(&mut reader).await.unwrap();
        assert_eq!(route, Route::WebSocket);
        // Whatever was read comes back first through `Prefixed`, so nothing is lost.
        let mut prefixed = Prefixed::new(read, reader);
        let mut all = Vec::new();
        prefixed.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, input);
    }

    #[tokio::test]
    async fn routes_and_limits() {
        for (request, expected) in [
            (&b"GET /healthz HTTP/1.1\r\n\r\n"[..], Route::Health),
            (b"GET /metrics HTTP/1.1\r\n\r\n", Route::Metrics),
            (b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", Route::NotFound),
            (b"GET /v1/ HTTP/1.1\r\n\r\n", Route::NotFound),
            (b"GET /v1?x=1 HTTP/1.1\r\n\r\n", Route::NotFound),
            (b"GET /v1#x HTTP/1.1\r\n\r\n", Route::NotFound),
            (b"POST /v1 HTTP/1.1\r\n\r\n", Route::NotFound),
            (b"GET /other HTTP/1.1\r\n\r\n", Route::NotFound),
            (b"garbage\r\n\r\n", Route::NotFound),
        ] {
            let mut reader = request;
            assert_eq!(read_head(&mut reader).await.unwrap().1, expected);
        }
        let long = vec![b'a'; MAX_HEAD_LEN + 10];
        assert!(read_head(&mut &long[..]).await.is_err());
        assert!(read_head(&mut &b"GET /v1 HTTP/1.1\r\n"[..]).await.is_err());
    }
}
