//! Entry points for the fuzz targets (`fuzz/`, `fuzz/README.md`): the HTTP request-head reader
//! (`http.rs`), which reads the first bytes of every connection. Not an API: hidden from the
//! docs, only the fuzz targets call it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use tokio::io::{AsyncRead, ReadBuf};

use crate::http;

/// What [`read_head`] made of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Every byte the reader consumed, which it hands on to the WebSocket handshake.
    pub read: Vec<u8>,
    /// The route: `websocket`, `health`, `metrics` or `not_found`.
    pub route: &'static str,
}

/// Reads a request head from `input`, delivered at most `chunk_len` bytes per read (at least
/// one), as the relay does on a new connection. `Err` when the reader refuses the request or
/// the input ends first.
pub fn read_head(input: &[u8], chunk_len: usize) -> io::Result<Head> {
    let mut stream = Chunked {
        rest: input,
        chunk_len: chunk_len.max(1),
    };
    // The stream is always ready, so the future completes on its first poll.
    let (read, route) = http::read_head(&mut stream)
        .now_or_never()
        .ok_or_else(|| io::Error::other("the head reader waited on a ready stream"))??;
    let route = match route {
        http::Route::WebSocket => "websocket",
        http::Route::Health => "health",
        http::Route::Metrics => "metrics",
        http::Route::NotFound => "not_found",
    };
    Ok(Head { read, route })
}

/// A stream over a byte slice that yields at most `chunk_len` bytes per read.
struct Chunked<'a> {
    rest: &'a [u8],
    chunk_len: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.rest.len().min(self.chunk_len).min(buf.remaining());
        let (chunk, rest) = self.rest.split_at(n);
        buf.put_slice(chunk);
        self.rest = rest;
        Poll::Ready(Ok(()))
    }
}
