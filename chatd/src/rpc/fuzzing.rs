//! One RPC connection over a socket pair, for the fuzz targets (`crate::fuzzing`): the real
//! line reader and dispatcher (`connection.rs`, `dispatch.rs`) fed a byte stream, without a
//! listener or a daemon.

use std::io;
use std::sync::Arc;

use jsonrpsee::{ConnectionId, Methods};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{ServerLimits, Shared, connection};

/// Serves `methods` on one connection whose client sends `input`, closes its sending side and
/// reads until the server closes; returns everything the server wrote. Requests are limited to
/// `max_line_len` bytes, so that a fuzzer's short inputs reach the long-line path too.
pub fn rpc_connection(methods: Methods, max_line_len: usize, input: &[u8]) -> io::Result<Vec<u8>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (server, client) = UnixStream::pair()?;
        let limits = ServerLimits {
            max_line_len,
            ..ServerLimits::default()
        };
        let shared = Arc::new(Shared::new(methods, limits));
        let slot = Arc::new(Semaphore::new(1))
            .try_acquire_owned()
            .map_err(io::Error::other)?;
        let served = tokio::spawn(connection::run(
            server,
            ConnectionId(1),
            shared,
            CancellationToken::new(),
            slot,
        ));
        let (mut read, mut write) = client.into_split();
        let send = async {
            write.write_all(input).await?;
            write.shutdown().await
        };
        let mut output = Vec::new();
        let (sent, received) = tokio::join!(send, read.read_to_end(&mut output));
        sent?;
        received?;
        served.await.map_err(io::Error::other)?;
        Ok(output)
    })
}
