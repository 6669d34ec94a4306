//! A connection's writer task: owns the write half and the receiving end of the outgoing
//! channel (responses and subscription notifications alike), writes one message per line, and
//! gives up on a client that does not take a write within the timeout.
//!
//! Messages already waiting in the channel are written together (up to [`COALESCE`] bytes) to
//! save system calls when a subscription is chatty.

use std::time::Duration;

use serde_json::value::RawValue;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::listener::WriteHalf;

/// How many bytes of waiting messages one write gathers.
const COALESCE: usize = 64 * 1024;

/// A write buffer that grew beyond this is given back after its write.
const KEPT_CAPACITY: usize = 256 * 1024;

/// Writes what arrives on `rx` until every sender is gone, a write fails or times out, or
/// `drain` fires; on `drain` it stops accepting messages, writes those already queued (all
/// within one `write_timeout`), and shuts the write half down. Returning drops `rx`, which is
/// what tells the connection's subscriptions that it closed.
pub(super) async fn run(
    mut out: WriteHalf,
    mut rx: mpsc::Receiver<Box<RawValue>>,
    write_timeout: Duration,
    drain: CancellationToken,
    conn: usize,
) {
    let mut buffer = Vec::with_capacity(8 * 1024);
    loop {
        let first = tokio::select! {
            biased;
            () = drain.cancelled() => break,
            message = rx.recv() => message,
        };
        let Some(first) = first else { return };
        gather(&mut buffer, first, &mut rx);
        match timeout(write_timeout, out.write_all(&buffer)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(conn, error = %e, "RPC write failed");
                return;
            }
            Err(_) => {
                warn!(
                    conn,
                    timeout = ?write_timeout,
                    "RPC client does not read its answers; connection closed"
                );
                return;
            }
        }
        if buffer.capacity() > KEPT_CAPACITY {
            buffer = Vec::with_capacity(8 * 1024);
        }
    }

    rx.close();
    let deadline = Instant::now() + write_timeout;
    while let Some(first) = rx.recv().await {
        gather(&mut buffer, first, &mut rx);
        match timeout_at(deadline, out.write_all(&buffer)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                debug!(conn, error = %e, "RPC write failed");
                return;
            }
            Err(_) => {
                debug!(conn, "RPC client did not take its last answers in time");
                return;
            }
        }
    }
    let _ = timeout_at(deadline, out.shutdown()).await;
}

/// Fills `buffer` with `first` and the messages already waiting behind it, one per line.
fn gather(buffer: &mut Vec<u8>, first: Box<RawValue>, rx: &mut mpsc::Receiver<Box<RawValue>>) {
    buffer.clear();
    push_line(buffer, &first);
    drop(first);
    while buffer.len() < COALESCE {
        match rx.try_recv() {
            Ok(message) => push_line(buffer, &message),
            Err(_) => break,
        }
    }
}

/// Appends `message` and a `\n`. A byte 0x0A inside valid JSON can only be whitespace (strings
/// escape it), so a pretty-printed message from a method is flattened by turning it into a
/// space, keeping one message per line.
fn push_line(buffer: &mut Vec<u8>, message: &RawValue) {
    let start = buffer.len();
    buffer.extend_from_slice(message.get().as_bytes());
    for byte in &mut buffer[start..] {
        if *byte == b'\n' {
            *byte = b' ';
        }
    }
    buffer.push(b'\n');
}
