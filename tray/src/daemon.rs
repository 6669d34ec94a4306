//! The connection to chatd, as two sockets: one subscribed to events (read by a thread of its
//! own that forwards each event to the main loop), and one for calls (`conversations.list`,
//! `contacts.get`, `messages.mark_read`, `account.lock`), so a call never waits behind a
//! stream of events and the event reader never needs a read timeout (which could split a line).
//!
//! Each [`Session`] has a number; what its reader sends is tagged with it, so the main loop
//! ignores whatever a previous session's reader still had in flight.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use api::client::{Client, ClientError};
use api::events::{Event, NOTIFICATION};
use api::methods as m;
use api::types::Subscribe;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Input;

/// How long a call may take before the daemon is taken for wedged and the session ends.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// What the event reader forwards.
#[derive(Debug)]
pub enum Delivery {
    /// An event. `cursor` is read even from an event this version cannot parse (a newer
    /// daemon's kind), so it still counts as handled.
    Event {
        /// Its cursor.
        cursor: Option<u64>,
        /// The event, if this version knows its kind.
        event: Option<Box<Event>>,
    },
    /// The event connection ended.
    Closed(String),
}

/// One connection to chatd: the subscription's reader thread and the call socket.
#[derive(Debug)]
pub struct Session {
    id: u64,
    socket: std::path::PathBuf,
    calls: Client,
    stop: Arc<AtomicBool>,
}

impl Session {
    /// Connects to the socket, subscribes with `since` (delivered events go to `inputs` as
    /// [`Input::Daemon`] tagged with `id`), and opens the call socket.
    pub fn open(
        socket: &Path,
        since: u64,
        id: u64,
        inputs: Sender<Input>,
    ) -> Result<Self, ClientError> {
        let mut events = Client::connect(socket)?;
        events.set_read_timeout(Some(CALL_TIMEOUT))?;
        let subscription: serde_json::Value =
            events.call(m::EVENTS_SUBSCRIBE, &Subscribe { since: Some(since) })?;
        events.set_read_timeout(None)?;
        let calls = Client::connect(socket)?;
        calls.set_read_timeout(Some(CALL_TIMEOUT))?;

        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("chatd-events".into())
            .spawn(move || {
                loop {
                    let delivery = match events.next_notification() {
                        Ok(n) if n.method != NOTIFICATION || n.subscription != subscription => {
                            continue;
                        }
                        Ok(n) => Delivery::Event {
                            cursor: n.result.get("cursor").and_then(serde_json::Value::as_u64),
                            event: n.event().map(Box::new),
                        },
                        Err(e) => Delivery::Closed(e.to_string()),
                    };
                    // A stale reader (its session ended) stops at its next event; its socket
                    // closes with it.
                    let closed = matches!(delivery, Delivery::Closed(_));
                    if stopped.load(Ordering::Relaxed)
                        || inputs.send(Input::Daemon(id, delivery)).is_err()
                        || closed
                    {
                        return;
                    }
                }
            })
            .map_err(ClientError::Io)?;
        Ok(Self {
            id,
            socket: socket.to_path_buf(),
            calls,
            stop,
        })
    }

    /// This session's number.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Calls `method` on the call socket. chatd closes a connection that has sent nothing for
    /// its idle timeout (the call socket between two clicks, say), so a call that finds the
    /// socket closed is made once more on a new one; an answer, even an error, is final.
    pub fn call<P: Serialize, R: DeserializeOwned>(
        &mut self,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        match self.calls.call(method, params) {
            Err(ClientError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                let calls = Client::connect(&self.socket)?;
                calls.set_read_timeout(Some(CALL_TIMEOUT))?;
                self.calls = calls;
                self.calls.call(method, params)
            }
            answered => answered,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Whether an error means the connection is gone (rather than a refused call).
pub fn is_disconnect(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Unreachable { .. } | ClientError::Io(_) | ClientError::Protocol(_)
    )
}
