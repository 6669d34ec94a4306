//! One connection: reads lines with a hard length cap, hands them to the dispatcher, and ends
//! the connection's tasks and subscriptions when the client goes, stops reading, or the daemon
//! shuts down.
//!
//! Ownership: the connection's task owns the read half, the dispatcher (and through it the
//! request tasks, aborted when it is dropped) and the writer task (aborted when its handle is
//! dropped); the writer owns the write half and the receiving end of the outgoing channel. When
//! the writer stops, that receiver is dropped, so every subscription of the connection sees its
//! sink closed.
//!
//! The stream is a Unix socket or, on Windows, a named pipe instance (`listener.rs` and
//! `pipe.rs` name the types); everything here is the same for both.
//!
//! On end of input (the client closed its sending side, as `socat` does after its input ends),
//! the requests in flight are finished and their answers written before the connection closes.
//! A connection that stays idle for the idle timeout, or that the server evicts to make room
//! (`idle.rs`), is closed at once.

use std::sync::Arc;

use jsonrpsee::{ConnectionId, MethodSink};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::debug;

use super::dispatch::Dispatcher;
use super::idle::Activity;
use super::listener::{self, ReadHalf, Stream};
use super::{Closed, Shared, writer};

/// The read buffer of a connection.
const READ_BUFFER: usize = 64 * 1024;

/// A line buffer that grew beyond this is given back after its line.
const KEPT_LINE_CAPACITY: usize = 64 * 1024;

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The daemon is shutting down.
    Shutdown,
    /// The writer stopped: the client went away or does not read.
    WriterStopped,
    /// The client closed its sending side.
    InputClosed,
    /// The connection was idle for the idle timeout.
    IdleTimeout,
    /// The server was full and this was the connection idle the longest.
    Evicted,
}

/// Serves one accepted (and vetted) connection until it ends or `cancel` fires. `_slot` is the
/// connection's place under the connection cap, released when this returns.
pub(super) async fn run(
    stream: Stream,
    conn_id: ConnectionId,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let conn = conn_id.0;
    debug!(conn, "RPC connection opened");
    let (read_half, write_half) = listener::split(stream);
    let (tx, rx) = mpsc::channel(shared.limits.outgoing_buffer.max(1));
    let senders = tx.downgrade();
    let drain = CancellationToken::new();
    let mut writer = AbortOnDropHandle::new(tokio::spawn(writer::run(
        write_half,
        rx,
        shared.limits.write_timeout,
        drain.clone(),
        conn,
    )));
    let max_response_len = u32::try_from(shared.limits.max_response_len).unwrap_or(u32::MAX);
    let sink = MethodSink::new_with_limit(tx, max_response_len);
    let max_line_len = shared.limits.max_line_len;
    let idle_timeout = shared.limits.idle_timeout;
    let registry = Arc::clone(&shared.registry);
    let mut dispatcher = Dispatcher::new(conn_id, shared, sink);
    // Counted now, the dispatcher's sink is the only sender: what an idle connection has.
    let activity = Arc::new(Activity::new(senders.clone(), senders.strong_count()));
    let _registered = registry.register(conn, Arc::clone(&activity));

    let outcome = tokio::select! {
        biased;
        () = cancel.cancelled() => End::Shutdown,
        _ = &mut writer => End::WriterStopped,
        () = activity.closed() => End::Evicted,
        () = activity.idle_for(idle_timeout) => End::IdleTimeout,
        result = read_requests(read_half, &mut dispatcher, &activity, max_line_len, conn) => match result {
            Ok(()) => End::InputClosed,
            Err(Closed) => End::WriterStopped,
        },
    };
    if outcome == End::InputClosed {
        // Answer what is in flight, then let the writer write what is queued and stop. If the
        // writer gives up first (the client is gone), there is nobody left to answer.
        let stop_now = tokio::select! {
            biased;
            () = cancel.cancelled() => true,
            _ = &mut writer => true,
            () = dispatcher.finish() => false,
        };
        if !stop_now {
            drop(dispatcher);
            drain.cancel();
            tokio::select! {
                biased;
                () = cancel.cancelled() => {}
                _ = &mut writer => {}
            }
        }
    }
    debug!(conn, reason = ?outcome, "RPC connection closed");
}

/// Reads lines until end of input (`Ok`) or until the writer is gone (`Err`). A line longer than
/// `max_line_len` is answered with an error and its rest skipped as it arrives, never buffered.
async fn read_requests(
    read_half: ReadHalf,
    dispatcher: &mut Dispatcher,
    activity: &Activity,
    max_line_len: usize,
    conn: usize,
) -> Result<(), Closed> {
    let mut reader = BufReader::with_capacity(READ_BUFFER, read_half);
    let mut line = Vec::new();
    let mut skipping = false;
    loop {
        let buffer = match reader.fill_buf().await {
            Ok(buffer) => buffer,
            Err(e) => {
                debug!(conn, error = %e, "RPC connection read failed");
                return Ok(());
            }
        };
        activity.touch();
        if buffer.is_empty() {
            if !skipping && !line.is_empty() {
                dispatcher.handle_line(&line).await?;
            }
            return Ok(());
        }
        let newline = buffer.iter().position(|&b| b == b'\n');
        let chunk = &buffer[..newline.unwrap_or(buffer.len())];
        let consumed = chunk.len() + usize::from(newline.is_some());

        if skipping {
            // Dropping bytes until the end of the long line.
        } else if line.is_empty() && newline.is_some() && chunk.len() <= max_line_len {
            // The whole line is in the buffer: handle it in place, without a copy.
            dispatcher.handle_line(chunk).await?;
            reader.consume(consumed);
            continue;
        } else if line.len() + chunk.len() > max_line_len {
            skipping = true;
            line = Vec::new();
            dispatcher.line_too_long().await?;
        } else {
            line.extend_from_slice(chunk);
        }
        reader.consume(consumed);

        if newline.is_some() {
            if !skipping {
                dispatcher.handle_line(&line).await?;
                line.clear();
                if line.capacity() > KEPT_LINE_CAPACITY {
                    line = Vec::new();
                }
            }
            skipping = false;
        }
    }
}
