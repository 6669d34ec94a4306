//! The daemon's local JSON-RPC transport (ARCHITECTURE.md, `rpc`): the Unix socket (a named pipe on
//! Windows), its framing, and the connection loop that drives jsonrpsee's [`Methods`] itself,
//! because jsonrpsee's own servers do not serve a local socket.
//!
//! This module owns the transport and nothing else; the daemon registers its methods in a
//! `jsonrpsee::RpcModule` and hands them to [`serve`].
//!
//! - [`RpcListener`] (`listener.rs`): the socket file, its private directory, the lock that keeps
//!   two daemons off one path, and the removal of the socket on drop; or the socket a service
//!   manager passed, taken over as it is ([`RpcListener::inherited`], with `activation.rs`,
//!   the `LISTEN_FDS` protocol).
//! - On Windows, `pipe.rs` takes `listener.rs`'s place (same items): the named pipe, created as
//!   its first instance (one daemon per name) with a DACL that admits only the user and SYSTEM,
//!   which stands in for the peer-uid check; `notify_windows.rs` is a no-op `Notifier`. Both
//!   are compiled and linted for Windows in CI but have never run.
//! - [`serve`] (here): the accept loop, the peer-uid check (ARCHITECTURE.md, "Threat model"; the
//!   `Acceptor` of `listener.rs`), the connection cap, and shutdown. Every task it starts is
//!   owned by a `TaskTracker` and has ended when `serve` returns. It calls its `ready` hook
//!   once the socket accepts connections, which is when the daemon tells a service manager it
//!   is ready ([`Notifier`], `notify.rs`, the `sd_notify` protocol).
//! - `connection.rs`: one connection's reader (line framing with a hard length cap), its tasks,
//!   and how it ends.
//! - `dispatch.rs`: JSON-RPC 2.0 over jsonrpsee's `MethodCallback`s: single calls, notifications,
//!   batches, subscriptions.
//! - `writer.rs`: the task that owns a connection's write half, with a timeout on every write.
//!
//! # Wire rules
//!
//! One JSON message per line (`\n`), UTF-8, at most [`ServerLimits::max_line_len`] bytes before
//! the `\n`. A longer line is answered with a -32600 error (id null) and skipped without being
//! buffered; a line that is not JSON (or not UTF-8, anywhere in it) gets -32700, JSON that is
//! not a request -32600, and the connection carries on in every case. Empty lines are ignored; a
//! last line without `\n` before end of input is still handled, and once the client has closed
//! its sending side the calls in flight are still answered before the connection closes. Responses may come out of order (ids match); notifications of
//! subscriptions are interleaved with them.
//!
//! # What method authors can rely on
//!
//! - Each connection has its own `jsonrpsee::ConnectionId` (from 1), in every call's
//!   `Extensions` (`ext.get::<ConnectionId>()`), next to whatever `Methods::extensions_mut` holds.
//! - Synchronous methods (`register_method`) and unsubscriptions run inline on the connection's
//!   reader: they must not block. Asynchronous ones (`register_async_method`,
//!   `register_blocking_method`) run as tasks, at most [`MAX_IN_FLIGHT`] per connection, so a slow
//!   call does not hold up `daemon.status`.
//! - A method that panics is answered with -32603 (internal error); the daemon carries on.
//! - When a connection closes, its outgoing channel closes: a subscription sees
//!   `SubscriptionSink::closed()` resolve and `send` fail, and must then return. Subscription
//!   tasks are spawned by jsonrpsee itself, so ending them on close is their job; the transport
//!   guarantees the signal.
//! - A notification (a request without `id`) runs and its result is dropped. A notification to a
//!   subscription method is ignored: the client could never learn the subscription's id.
//! - In a batch, a subscription's answer goes out as its own line, before the subscription's
//!   first notification, and is left out of the batch's array.
//!
//! # Limits
//!
//! See [`ServerLimits`]. A client that stops reading is cut off once a write has waited
//! [`ServerLimits::write_timeout`]; the daemon keeps serving everyone else. A connection without a
//! subscription or a call in flight that sends no request for [`ServerLimits::idle_timeout`]
//! is closed. When [`ServerLimits::max_connections`] are open, a new connection closes the
//! idle one that sent its last request longest ago and takes its place (`idle.rs`); only when
//! none is idle is it answered with one -32009 "server is busy" line (id null), then closed.

#[cfg(unix)]
mod activation;
mod connection;
mod dispatch;
#[cfg(unix)]
pub(crate) mod fuzzing;
mod idle;
#[cfg(unix)]
mod listener;
#[cfg(windows)]
#[path = "pipe.rs"]
mod listener;
#[cfg(unix)]
mod notify;
#[cfg(windows)]
#[path = "notify_windows.rs"]
mod notify;
mod writer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jsonrpsee::types::ErrorObject;
use jsonrpsee::types::error::{SERVER_IS_BUSY_CODE, SERVER_IS_BUSY_MSG};
use jsonrpsee::{ConnectionId, Extensions, Methods};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

pub use listener::RpcListener;
pub use notify::Notifier;

/// How many requests one connection may have running at once (asynchronous methods, pending
/// subscriptions and batches); the connection stops reading while it is at the limit.
pub const MAX_IN_FLIGHT: usize = 64;

/// How long the accept loop waits after a failed `accept` (out of file descriptors, say) so
/// that it does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long the accept loop waits for an evicted connection to give its place back.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// The limits [`serve`] enforces.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Connections served at once; further ones get a "server is busy" line and are closed.
    pub max_connections: usize,
    /// The longest request line, in bytes, not counting its `\n`.
    pub max_line_len: usize,
    /// The longest response (or batch response), in bytes; a method's larger answer is replaced
    /// by jsonrpsee's "response is too big" error.
    pub max_response_len: usize,
    /// How long one write to a client may wait before the client is cut off.
    pub write_timeout: Duration,
    /// Subscriptions one connection may hold at once.
    pub max_subscriptions_per_connection: u32,
    /// Messages (responses and notifications) queued for one connection's writer.
    pub outgoing_buffer: usize,
    /// Requests in one batch.
    pub max_batch_len: usize,
    /// How long a connection without a subscription or a call in flight may stay without
    /// sending a request before it is closed.
    pub idle_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            max_line_len: api::MAX_LINE_LEN,
            max_response_len: 16 * 1024 * 1024,
            write_timeout: Duration::from_secs(10),
            max_subscriptions_per_connection: 16,
            outgoing_buffer: 1024,
            max_batch_len: 100,
            idle_timeout: Duration::from_secs(5 * 60),
        }
    }
}

/// Serves `methods` on `listener` until `shutdown` resolves; then stops accepting, closes every
/// connection (in-flight calls are dropped, subscriptions see their connection close), removes
/// the socket file (unless it was inherited) and returns.
///
/// `ready` is called once, with the socket's path, as soon as the socket is served: a client
/// that connects after it is answered. It is not called if the socket cannot be served.
///
/// Only peers running as our own (effective) uid are served; anyone else is dropped at once with
/// a log line and no answer. (On Windows the pipe's DACL keeps everyone else from opening it.) Dropping the returned future instead of awaiting it also closes
/// every connection.
pub async fn serve(
    listener: RpcListener,
    methods: Methods,
    limits: ServerLimits,
    ready: impl FnOnce(&std::path::Path),
    shutdown: impl Future<Output = ()>,
) {
    let (acceptor, socket_file) = match listener.into_acceptor() {
        Ok(parts) => parts,
        Err(e) => {
            error!(error = %e, "cannot serve the RPC socket (no tokio reactor?)");
            return;
        }
    };
    let shared = Arc::new(Shared::new(methods, limits));
    let busy_line = busy_line(shared.limits.max_connections);
    let slots = Arc::new(Semaphore::new(shared.limits.max_connections));
    let cancel = CancellationToken::new();
    // If this future is dropped rather than run to the end, the connections still stop.
    let _stop_connections = cancel.clone().drop_guard();
    let tracker = TaskTracker::new();
    let mut last_id = 0usize;
    let mut shutdown = std::pin::pin!(shutdown);
    info!(path = %socket_file.path().display(), "RPC socket listening");
    // The socket has listened since it was bound (on Windows: the pipe's first instance has
    // waited for a client since it was created), so connections made from here on queue, and
    // the loop below, which runs next, accepts and answers them.
    ready(socket_file.path());

    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = acceptor.accept() => accepted,
        };
        let stream = match accepted {
            Ok(Some(stream)) => stream,
            // Refused by the peer check, and logged there.
            Ok(None) => continue,
            Err(e) => {
                warn!(error = %e, "accept on the RPC socket failed");
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => Some(slot),
            // Full: make room by closing the connection idle the longest, and take its place
            // once it has given it back (at once, in practice).
            Err(_) if shared.registry.evict_longest_idle() => {
                info!("the RPC server is full: closed the connection idle the longest");
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    slot = tokio::time::timeout(EVICTION_WAIT, Arc::clone(&slots).acquire_owned()) => {
                        slot.ok().and_then(Result::ok)
                    }
                }
            }
            Err(_) => None,
        };
        let Some(slot) = slot else {
            warn!(
                limit = shared.limits.max_connections,
                "refused an RPC connection: too many connections, none of them idle"
            );
            listener::refuse_busy(stream, &busy_line, &tracker);
            continue;
        };
        last_id += 1;
        tracker.spawn(connection::run(
            stream,
            ConnectionId(last_id),
            Arc::clone(&shared),
            cancel.child_token(),
            slot,
        ));
    }

    drop(acceptor);
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    drop(socket_file);
    info!("RPC socket closed");
}

/// What every connection of one server shares.
#[derive(Debug)]
struct Shared {
    methods: Methods,
    limits: ServerLimits,
    /// The methods' own extensions, which every call gets (plus its `ConnectionId`).
    extensions: Extensions,
    /// Every open connection's activity, for the idle timeout and eviction.
    registry: Arc<idle::Registry>,
}

impl Shared {
    fn new(mut methods: Methods, limits: ServerLimits) -> Self {
        let extensions = methods.extensions().clone();
        Self {
            methods,
            limits,
            extensions,
            registry: Arc::default(),
        }
    }
}

/// The line a connection beyond the cap gets before it is closed.
fn busy_line(limit: usize) -> String {
    let error = ErrorObject::owned(
        SERVER_IS_BUSY_CODE,
        format!("{SERVER_IS_BUSY_MSG}: too many connections (at most {limit})"),
        None::<()>,
    );
    let mut line = serde_json::json!({ "jsonrpc": "2.0", "id": null, "error": error }).to_string();
    line.push('\n');
    line
}

/// The connection went away (its writer stopped): stop working for it.
#[derive(Debug, Clone, Copy)]
struct Closed;

#[cfg(all(test, unix))]
mod tests;
